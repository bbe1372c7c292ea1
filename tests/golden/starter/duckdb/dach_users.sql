SELECT
  u.user_id,
  u.email,
  u.country,
  u.marketing_consent
FROM users AS u
WHERE
  u.country IN ('DE', 'AT', 'CH')
