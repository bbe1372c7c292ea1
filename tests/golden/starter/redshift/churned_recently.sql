SELECT
  a.account_id,
  a.churned_at,
  MAX(m.mrr) AS last_mrr
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
  FROM mrr_monthly AS m
  WHERE
    month IS NULL OR month < CAST('2026-11-24' AS DATE)
) AS m
  ON m.account_id = a.account_id
  AND m.month = CAST(DATE_TRUNC('MONTH', a.churned_at) AS DATE)
WHERE
  a.status = 'churned'
  AND (
    a.churned_at >= CAST('2026-08-26' AS DATE)
    AND a.churned_at < CAST('2026-11-24' AS DATE)
  )
GROUP BY
  a.account_id,
  a.churned_at
