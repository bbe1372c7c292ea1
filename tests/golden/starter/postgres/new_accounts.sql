SELECT
  a.account_id,
  a.signup_date
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
  (
    a.signup_date >= CAST('2026-08-26' AS DATE)
    AND a.signup_date < CAST('2026-11-24' AS DATE)
  )
