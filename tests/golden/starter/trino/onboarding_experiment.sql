SELECT
  u.user_id,
  u.signup_date,
  CASE
    WHEN (
      (
        STRPOS(
          '0123456789abcdef',
          SUBSTR(
            LOWER(
              TO_HEX(
                MD5(
                  TO_UTF8(CONCAT(CAST('onboarding-email-2026-11:' AS VARCHAR), CAST(u.user_id AS VARCHAR)))
                )
              )
            ),
            1,
            1
          )
        ) - 1
      ) * 4096 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTR(
            LOWER(
              TO_HEX(
                MD5(
                  TO_UTF8(CONCAT(CAST('onboarding-email-2026-11:' AS VARCHAR), CAST(u.user_id AS VARCHAR)))
                )
              )
            ),
            2,
            1
          )
        ) - 1
      ) * 256 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTR(
            LOWER(
              TO_HEX(
                MD5(
                  TO_UTF8(CONCAT(CAST('onboarding-email-2026-11:' AS VARCHAR), CAST(u.user_id AS VARCHAR)))
                )
              )
            ),
            3,
            1
          )
        ) - 1
      ) * 16 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTR(
            LOWER(
              TO_HEX(
                MD5(
                  TO_UTF8(CONCAT(CAST('onboarding-email-2026-11:' AS VARCHAR), CAST(u.user_id AS VARCHAR)))
                )
              )
            ),
            4,
            1
          )
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
