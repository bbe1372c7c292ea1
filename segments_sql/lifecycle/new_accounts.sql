{{ config(
    entity='account',
    description='Accounts that signed up in the last 90 days.',
    owner='growth',
    tags=['lifecycle'],
    tests={'min_size': 1, 'not_null': ['signup_date']},
) }}
SELECT
  a.account_id,
  a.signup_date
FROM {{ source('accounts') }} AS a
WHERE {{ last_n_days('a.signup_date', 90) }}
