SELECT
  t.account_id,
  MAX(t.trial_id) AS trial_id,
  COUNT(DISTINCT e.feature) AS features_tried
FROM (
  SELECT
    trial_id,
    account_id,
    started_at,
    ended_at,
    CASE WHEN converted_at < CAST('2026-11-24' AS DATE) THEN converted_at END AS converted_at,
    plan_tier
  FROM trials AS t
  WHERE
    started_at IS NULL OR started_at < CAST('2026-11-24' AS DATE)
) AS t
JOIN (
  SELECT
    *
  FROM events AS e
  WHERE
    occurred_at IS NULL OR occurred_at < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
) AS e
  ON e.account_id = t.account_id AND e.occurred_at >= t.started_at
WHERE
  t.converted_at IS NULL
  AND (
    t.started_at >= CAST('2026-10-25' AS DATE)
    AND t.started_at < CAST('2026-11-24' AS DATE)
  )
  AND e.event_type = 'feature_used'
GROUP BY
  t.account_id
HAVING
  COUNT(DISTINCT e.feature) >= 3
