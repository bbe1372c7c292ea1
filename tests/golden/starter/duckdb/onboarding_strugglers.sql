SELECT
  u.user_id,
  u.signup_date,
  COUNT(t.ticket_id) AS onboarding_tickets
FROM (
  SELECT
    *
  FROM users AS u
  WHERE
    signup_date IS NULL OR signup_date < CAST('2026-11-24' AS DATE)
) AS u
JOIN (
  SELECT
    *
  FROM tickets AS t
  WHERE
    opened_at IS NULL OR opened_at < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
) AS t
  ON t.user_id = u.user_id
WHERE
  t.topic = 'onboarding'
  AND (
    u.signup_date >= CAST('2026-09-25' AS DATE)
    AND u.signup_date < CAST('2026-11-24' AS DATE)
  )
  AND t.opened_at >= u.signup_date
GROUP BY
  u.user_id,
  u.signup_date
