SELECT
  a.account_id,
  a.name,
  a.industry,
  a.employees
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
WHERE
  a.status = 'customer' AND a.employees < 200 AND a.industry = 'software'
