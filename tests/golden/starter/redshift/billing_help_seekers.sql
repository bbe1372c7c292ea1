SELECT
  t.account_id,
  COUNT(*) AS billing_tickets
FROM (
  SELECT
    *
  FROM tickets AS t
  WHERE
    opened_at IS NULL OR opened_at < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
) AS t
WHERE
  t.topic = 'billing'
  AND (
    t.opened_at >= CAST('2026-08-26' AS DATE)
    AND t.opened_at < CAST('2026-11-24' AS DATE)
  )
GROUP BY
  t.account_id
HAVING
  COUNT(*) >= 2
