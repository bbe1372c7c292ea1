SELECT
  u.user_id,
  u.signup_date,
  CASE
    WHEN (
      (
        POSITION(
          SUBSTRING(MD5('onboarding-email-2026-11:' || CAST(u.user_id AS TEXT)) FROM 1 FOR 1) IN '0123456789abcdef'
        ) - 1
      ) * 4096 + (
        POSITION(
          SUBSTRING(MD5('onboarding-email-2026-11:' || CAST(u.user_id AS TEXT)) FROM 2 FOR 1) IN '0123456789abcdef'
        ) - 1
      ) * 256 + (
        POSITION(
          SUBSTRING(MD5('onboarding-email-2026-11:' || CAST(u.user_id AS TEXT)) FROM 3 FOR 1) IN '0123456789abcdef'
        ) - 1
      ) * 16 + (
        POSITION(
          SUBSTRING(MD5('onboarding-email-2026-11:' || CAST(u.user_id AS TEXT)) FROM 4 FOR 1) IN '0123456789abcdef'
        ) - 1
      ) * 1
    ) < 32768
    THEN 'control'
    ELSE 'treatment'
  END AS arm
FROM (
  SELECT
    *
  FROM users AS u
  WHERE
    signup_date IS NULL OR signup_date < CAST('2026-11-24' AS DATE)
) AS u
WHERE
  (
    u.signup_date >= CAST('2026-05-28' AS DATE)
    AND u.signup_date < CAST('2026-11-24' AS DATE)
  )
