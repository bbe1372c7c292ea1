{{ config(
    entity='user',
    description='Users based in Germany, Austria or Switzerland (the DACH market).',
    owner='marketing',
    tags=['geographic'],
    export_columns=['email', 'country'],
    tests={'min_size': 1, 'expect': ["country IN ('DE', 'AT', 'CH')"]},
) }}
SELECT
  u.user_id,
  u.email,
  u.country,
  u.marketing_consent
FROM {{ source('users') }} AS u
WHERE u.country IN {{ param('countries', ['DE', 'AT', 'CH']) }}
