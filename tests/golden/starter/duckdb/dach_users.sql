SELECT
  u.user_id,
  u.email,
  u.country,
  u.marketing_consent
FROM (
  SELECT
    *
  FROM users AS u
  WHERE
    signup_date IS NULL OR signup_date < CAST('2026-11-24' AS DATE)
) AS u
WHERE
  u.country IN ('DE', 'AT', 'CH')
