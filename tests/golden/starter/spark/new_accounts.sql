SELECT
  a.account_id,
  a.signup_date
FROM accounts AS a
WHERE
  (
    a.signup_date >= CAST('2026-08-26' AS DATE)
    AND a.signup_date < CAST('2026-11-24' AS DATE)
  )
