SELECT
  u.user_id,
  u.signup_date,
  CASE
    WHEN (
      (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(MD5('onboarding-email-2026-11:' || CAST(u.user_id AS TEXT)), 1, 1)
        ) - 1
      ) * 4096 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(MD5('onboarding-email-2026-11:' || CAST(u.user_id AS TEXT)), 2, 1)
        ) - 1
      ) * 256 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(MD5('onboarding-email-2026-11:' || CAST(u.user_id AS TEXT)), 3, 1)
        ) - 1
      ) * 16 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(MD5('onboarding-email-2026-11:' || CAST(u.user_id AS TEXT)), 4, 1)
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
