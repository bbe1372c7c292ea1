SELECT
  a.account_id,
  a.plan_tier,
  COUNT(DISTINCT e.user_id) AS weekly_active_users
FROM accounts AS a
JOIN events AS e
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
