SELECT
  e.account_id,
  COUNT(*) AS salesforce_events
FROM (
  SELECT
    *
  FROM events AS e
  WHERE
    occurred_at IS NULL OR occurred_at < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
) AS e
WHERE
  e.integration = 'salesforce'
  AND (
    e.occurred_at >= CAST('2026-08-26' AS DATE)
    AND e.occurred_at < CAST('2026-11-24' AS DATE)
  )
GROUP BY
  e.account_id
