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
