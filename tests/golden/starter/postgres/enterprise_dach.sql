SELECT
  a.account_id,
  a.name,
  a.country,
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
  a.region IN ('DACH') AND a.employees >= 1000 AND a.status = 'customer'
