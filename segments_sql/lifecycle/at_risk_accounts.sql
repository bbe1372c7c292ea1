{{ config(
    entity='account',
    description='Customers paying at least min_mrr who logged in 15 to 42 days ago but not in the last 14 days.',
    owner='customer-success',
    tags=['lifecycle', 'value'],
    tests={'min_size': 1, 'expect': ['mrr >= 500']},
) }}
SELECT
  a.account_id,
  m.mrr
FROM {{ source('accounts') }} AS a
JOIN {{ source('mrr_monthly') }} AS m
  ON m.account_id = a.account_id
  AND m.month = {{ month_start() }}
WHERE a.status = 'customer'
  AND m.mrr >= {{ param('min_mrr', 500) }}
  AND EXISTS (
    SELECT 1 FROM {{ source('events') }} AS before_
    WHERE before_.account_id = a.account_id
      AND before_.event_type = 'login'
      AND {{ between_days('before_.occurred_at', 15, 42) }}
  )
  AND NOT EXISTS (
    SELECT 1 FROM {{ source('events') }} AS recent
    WHERE recent.account_id = a.account_id
      AND recent.event_type = 'login'
      AND {{ last_n_days('recent.occurred_at', 14) }}
  )
