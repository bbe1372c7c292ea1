{{ config(
    entity='user',
    description='Users who signed up in the last 180 days, split 50/50 into the onboarding-email experiment (salted hash: stable across runs and engines).',
    owner='growth',
    tags=['experiment'],
    tests={'min_size': 1, 'expect': ["arm IN ('control', 'treatment')"]},
) }}
SELECT
  u.user_id,
  u.signup_date,
  {{ split('u.user_id', {'control': 50, 'treatment': 50}, salt=param('salt', 'onboarding-email-2026-11')) }} AS arm
FROM {{ source('users') }} AS u
WHERE {{ last_n_days('u.signup_date', 180) }}
