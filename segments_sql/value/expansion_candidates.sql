{{ config(
    entity='account',
    description='Customers on starter or growth plans with many weekly active users: outgrowing their plan.',
    owner='sales-ops',
    tags=['value', 'behavioural'],
    tests={'min_size': 1, 'expect': ["plan_tier IN ('starter', 'growth')", 'weekly_active_users >= 5']},
) }}
SELECT
  a.account_id,
  a.plan_tier,
  COUNT(DISTINCT e.user_id) AS weekly_active_users
FROM {{ source('accounts') }} AS a
JOIN {{ source('events') }} AS e
  ON e.account_id = a.account_id
WHERE a.status = 'customer'
  AND a.plan_tier IN ('starter', 'growth')
  AND e.event_type = 'login'
  AND {{ last_n_days('e.occurred_at', 7) }}
GROUP BY a.account_id, a.plan_tier
HAVING COUNT(DISTINCT e.user_id) >= {{ param('min_weekly_active', 5) }}
