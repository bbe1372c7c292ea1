{{ config(
    entity='account',
    description='Enterprise DACH accounts with high MRR and power-user adoption: expansion candidates.',
    owner='sales-ops',
    tags=['value', 'composite'],
    tests={'unique': ['account_id']},
) }}
SELECT
  h.account_id,
  h.mrr
FROM {{ ref('high_mrr_accounts') }} AS h
JOIN ({{ intersect('enterprise_dach', 'accounts_with_power_users') }}) AS both_
  ON both_.account_id = h.account_id
