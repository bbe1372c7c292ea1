SELECT
  a.account_id,
  a.plan_tier,
  COUNT(DISTINCT e.user_id) AS weekly_active_users
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
JOIN (
  SELECT
    *
  FROM events AS e
  WHERE
    occurred_at IS NULL OR occurred_at < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
) AS e
  ON e.account_id = a.account_id
WHERE
  a.status = 'customer'
  AND a.plan_tier IN ('starter', 'growth')
  AND e.event_type = 'login'
  AND (
    e.occurred_at >= CAST('2026-11-17' AS DATE)
    AND e.occurred_at < CAST('2026-11-24' AS DATE)
  )
GROUP BY
  a.account_id,
  a.plan_tier
HAVING
  COUNT(DISTINCT e.user_id) >= 5
