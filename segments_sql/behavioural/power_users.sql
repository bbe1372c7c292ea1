{{ config(
    entity='user',
    description='Users active on at least min_active_days distinct days in the last 30 days.',
    owner='product-analytics',
    tags=['behavioural'],
    tests={'min_size': 1, 'max_share': 0.5, 'expect': ['active_days >= 12']},
) }}
SELECT
  e.user_id,
  COUNT(DISTINCT CAST(e.occurred_at AS DATE)) AS active_days
FROM {{ source('events') }} AS e
WHERE {{ last_n_days('e.occurred_at', 30) }}
GROUP BY e.user_id
HAVING COUNT(DISTINCT CAST(e.occurred_at AS DATE)) >= {{ param('min_active_days', 12) }}
