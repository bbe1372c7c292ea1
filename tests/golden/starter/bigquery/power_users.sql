SELECT
  e.user_id,
  COUNT(DISTINCT CAST(e.occurred_at AS DATE)) AS active_days
FROM (
  SELECT
    *
  FROM events AS e
  WHERE
    occurred_at IS NULL OR occurred_at < CAST('2026-11-24 00:00:00' AS DATETIME)
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
