SELECT
  a.account_id,
  MAX(e.occurred_at) AS last_login_at
FROM accounts AS a
JOIN events AS e
  ON e.account_id = a.account_id
WHERE
  a.status = 'customer'
  AND e.event_type = 'login'
  AND (
    e.occurred_at >= CAST('2026-10-25' AS DATE)
    AND e.occurred_at < CAST('2026-11-24' AS DATE)
  )
GROUP BY
  a.account_id
