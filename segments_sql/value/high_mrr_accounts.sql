{{ config(
    entity='account',
    description='Accounts whose MRR in the month of as_of is at least min_mrr.',
    owner='revops',
    tags=['value'],
    tests={'min_size': 1, 'max_share': 0.5, 'expect': ['mrr >= 2000']},
) }}
SELECT
  m.account_id,
  m.mrr,
  m.plan_tier
FROM {{ source('mrr_monthly') }} AS m
WHERE m.month = {{ month_start() }}
  AND m.mrr >= {{ param('min_mrr', 2000) }}
