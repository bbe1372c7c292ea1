{{ config(
    entity='account',
    description='Accounts with at least two billing tickets in the last 90 days.',
    owner='support',
    tags=['needs'],
    tests={'min_size': 1, 'expect': ['billing_tickets >= 2']},
) }}
SELECT
  t.account_id,
  COUNT(*) AS billing_tickets
FROM {{ source('tickets') }} AS t
WHERE t.topic = 'billing'
  AND {{ last_n_days('t.opened_at', 90) }}
GROUP BY t.account_id
HAVING COUNT(*) >= {{ param('min_tickets', 2) }}
