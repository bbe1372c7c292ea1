SELECT
  a.account_id,
  COALESCE(m.mrr, 0) AS mrr,
  COALESCE(u.users, 0) AS users,
  COALESCE(l.logins_30d, 0) AS logins_30d,
  COALESCE(t.tickets_90d, 0) AS tickets_90d,
  DATEDIFF(DAY, a.signup_date, CAST('2026-11-23' AS DATE)) AS tenure_days
FROM (
  SELECT
    *
  FROM account_history AS a
  WHERE
    (
      valid_from IS NULL OR valid_from < CAST('2026-11-24' AS DATE)
    )
    AND (
      valid_to IS NULL OR valid_to >= CAST('2026-11-24' AS DATE)
    )
) AS a
LEFT JOIN (
  SELECT
    *
  FROM mrr_monthly AS m
  WHERE
    month IS NULL OR month < CAST('2026-11-24' AS DATE)
) AS m
  ON m.account_id = a.account_id AND m.month = CAST('2026-11-01' AS DATE)
LEFT JOIN (
  SELECT
    us.account_id,
    COUNT(*) AS users
  FROM (
    SELECT
      *
    FROM users AS us
    WHERE
      signup_date IS NULL OR signup_date < CAST('2026-11-24' AS DATE)
  ) AS us
  GROUP BY
    us.account_id
) AS u
  ON u.account_id = a.account_id
LEFT JOIN (
  SELECT
    e.account_id,
    COUNT(*) AS logins_30d
  FROM (
    SELECT
      *
    FROM events AS e
    WHERE
      occurred_at IS NULL OR occurred_at < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
  ) AS e
  WHERE
    e.event_type = 'login'
    AND (
      e.occurred_at >= CAST('2026-10-25' AS DATE)
      AND e.occurred_at < CAST('2026-11-24' AS DATE)
    )
  GROUP BY
    e.account_id
) AS l
  ON l.account_id = a.account_id
LEFT JOIN (
  SELECT
    tk.account_id,
    COUNT(*) AS tickets_90d
  FROM (
    SELECT
      *
    FROM tickets AS tk
    WHERE
      opened_at IS NULL OR opened_at < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
  ) AS tk
  WHERE
    (
      tk.opened_at >= CAST('2026-08-26' AS DATE)
      AND tk.opened_at < CAST('2026-11-24' AS DATE)
    )
  GROUP BY
    tk.account_id
) AS t
  ON t.account_id = a.account_id
WHERE
  a.status = 'customer'
  AND a.signup_date <= CAST('2026-11-23' AS DATE)
  AND (
    a.churned_at IS NULL OR a.churned_at > CAST('2026-11-23' AS DATE)
  )
