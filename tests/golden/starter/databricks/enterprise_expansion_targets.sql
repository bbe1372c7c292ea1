WITH power_users AS (
  SELECT
    e.user_id,
    COUNT(DISTINCT CAST(e.occurred_at AS DATE)) AS active_days
  FROM (
    SELECT
      *
    FROM events AS e
    WHERE
      occurred_at IS NULL OR occurred_at < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
  ) AS e
  WHERE
    (
      e.occurred_at >= CAST('2026-10-25' AS DATE)
      AND e.occurred_at < CAST('2026-11-24' AS DATE)
    )
  GROUP BY
    e.user_id
  HAVING
    COUNT(DISTINCT CAST(e.occurred_at AS DATE)) >= 12
), accounts_with_power_users AS (
  SELECT
    p.account_id AS account_id,
    COUNT(DISTINCT m.user_id) AS matching_count,
    COUNT(DISTINCT c.user_id) AS total_count
  FROM (
    SELECT
      *
    FROM account_history AS p
    WHERE
      (
        valid_from IS NULL OR valid_from < CAST('2026-11-24' AS DATE)
      )
      AND (
        valid_to IS NULL OR valid_to >= CAST('2026-11-24' AS DATE)
      )
  ) AS p
  LEFT JOIN (
    SELECT
      *
    FROM users AS c
    WHERE
      signup_date IS NULL OR signup_date < CAST('2026-11-24' AS DATE)
  ) AS c
    ON c.account_id = p.account_id
  LEFT JOIN power_users AS m
    ON m.user_id = c.user_id
  GROUP BY
    p.account_id
  HAVING
    COUNT(DISTINCT m.user_id) >= 3
), enterprise_dach AS (
  SELECT
    a.account_id,
    a.name,
    a.country,
    a.employees
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
  WHERE
    a.region IN ('DACH') AND a.employees >= 1000 AND a.status = 'customer'
), high_mrr_accounts AS (
  SELECT
    m.account_id,
    m.mrr,
    m.plan_tier
  FROM (
    SELECT
      *
    FROM mrr_monthly AS m
    WHERE
      month IS NULL OR month < CAST('2026-11-24' AS DATE)
  ) AS m
  WHERE
    m.month = CAST('2026-11-01' AS DATE) AND m.mrr >= 2000
)
SELECT
  h.account_id,
  h.mrr
FROM high_mrr_accounts AS h
JOIN (
  SELECT
    account_id
  FROM enterprise_dach
  INTERSECT
  SELECT
    account_id
  FROM accounts_with_power_users
) AS both_
  ON both_.account_id = h.account_id
