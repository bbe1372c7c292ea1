SELECT
  u.user_id,
  u.signup_date,
  CASE
    WHEN (
      (
        INSTR(
          '0123456789abcdef',
          SUBSTRING(TO_HEX(MD5('onboarding-email-2026-11:' || CAST(u.user_id AS STRING))), 1, 1)
        ) - 1
      ) * 4096 + (
        INSTR(
          '0123456789abcdef',
          SUBSTRING(TO_HEX(MD5('onboarding-email-2026-11:' || CAST(u.user_id AS STRING))), 2, 1)
        ) - 1
      ) * 256 + (
        INSTR(
          '0123456789abcdef',
          SUBSTRING(TO_HEX(MD5('onboarding-email-2026-11:' || CAST(u.user_id AS STRING))), 3, 1)
        ) - 1
      ) * 16 + (
        INSTR(
          '0123456789abcdef',
          SUBSTRING(TO_HEX(MD5('onboarding-email-2026-11:' || CAST(u.user_id AS STRING))), 4, 1)
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
