{{ config(
    entity='user',
    description='Users last seen 31 to 90 days ago: once active, now quiet.',
    owner='customer-success',
    tags=['behavioural', 'lifecycle'],
) }}
SELECT
  u.user_id,
  u.account_id,
  u.last_seen_at
FROM {{ source('users') }} AS u
WHERE {{ between_days('u.last_seen_at', 31, 90) }}
