{{ config(
    entity='user',
    description='Users who signed up in the last 60 days and already opened an onboarding ticket.',
    owner='support',
    tags=['needs', 'lifecycle'],
    tests={'not_null': ['signup_date']},
) }}
SELECT
  u.user_id,
  u.signup_date,
  COUNT(t.ticket_id) AS onboarding_tickets
FROM {{ source('users') }} AS u
JOIN {{ source('tickets') }} AS t
  ON t.user_id = u.user_id
WHERE t.topic = 'onboarding'
  AND {{ last_n_days('u.signup_date', 60) }}
  AND t.opened_at >= u.signup_date
GROUP BY u.user_id, u.signup_date
