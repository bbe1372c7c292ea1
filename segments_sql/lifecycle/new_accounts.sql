{{ config(
    entity='account',
    description='Accounts that signed up in the last 90 days.',
    owner='growth',
    tags=['lifecycle'],
) }}
SELECT
  a.account_id,
  a.signup_date
FROM {{ source('accounts') }} AS a
WHERE {{ last_n_days('a.signup_date', 90) }}
