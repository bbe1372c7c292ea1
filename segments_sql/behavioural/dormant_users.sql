{{ config(
    entity='user',
    description='Users last seen 31 to 90 days ago: once active, now quiet.',
    owner='customer-success',
    tags=['behavioural', 'lifecycle'],
    tests={'min_size': 1, 'not_null': ['last_seen_at']},
) }}
SELECT
  u.user_id,
  u.account_id,
  u.last_seen_at
FROM {{ source('users') }} AS u
WHERE {{ between_days('u.last_seen_at', 31, 90) }}
