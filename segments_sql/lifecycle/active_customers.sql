{{ config(
    entity='account',
    description='Paying customers with at least one login in the last 30 days.',
    owner='customer-success',
    tags=['lifecycle'],
    tests={'min_size': 1, 'not_null': ['last_login_at']},
) }}
SELECT
  a.account_id,
  MAX(e.occurred_at) AS last_login_at
FROM {{ source('accounts') }} AS a
JOIN {{ source('events') }} AS e
  ON e.account_id = a.account_id
WHERE a.status = 'customer'
  AND e.event_type = 'login'
  AND {{ last_n_days('e.occurred_at', 30) }}
GROUP BY a.account_id
