{{ config(
    entity='user',
    description='Users whose last product event was 31 to 90 days ago: once active, now quiet.',
    owner='customer-success',
    tags=['behavioural', 'lifecycle'],
    tests={'min_size': 1, 'not_null': ['last_seen_at']},
) }}
WITH last_seen AS (
  SELECT e.user_id, MAX(e.occurred_at) AS last_seen_at
  FROM {{ source('events') }} AS e
  GROUP BY e.user_id
)
SELECT
  u.user_id,
  u.account_id,
  s.last_seen_at
FROM {{ source('users') }} AS u
JOIN last_seen AS s ON s.user_id = u.user_id
WHERE {{ between_days('s.last_seen_at', 31, 90) }}
