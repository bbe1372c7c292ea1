{{ config(
    entity='account',
    description='Accounts that churned in the last 90 days, with the MRR they paid in their last month.',
    owner='customer-success',
    tags=['lifecycle'],
    tests={'min_size': 1, 'not_null': ['churned_at'], 'expect': ['last_mrr > 0']},
) }}
SELECT
  a.account_id,
  a.churned_at,
  MAX(m.mrr) AS last_mrr
FROM {{ source('accounts') }} AS a
JOIN {{ source('mrr_monthly') }} AS m
  ON m.account_id = a.account_id
  AND m.month = CAST(DATE_TRUNC('month', a.churned_at) AS DATE)
WHERE a.status = 'churned'
  AND {{ last_n_days('a.churned_at', 90) }}
GROUP BY a.account_id, a.churned_at
