SELECT
  e.user_id,
  COUNT(*) AS uses
FROM (
  SELECT
    *
  FROM events AS e
  WHERE
    occurred_at IS NULL OR occurred_at < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
) AS e
WHERE
  e.event_type = 'integration_used'
  AND e.integration = 'slack'
  AND (
    e.occurred_at >= CAST('2026-10-25' AS DATE)
    AND e.occurred_at < CAST('2026-11-24' AS DATE)
  )
GROUP BY
  e.user_id
