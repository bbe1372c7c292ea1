{{ config(
    entity='account',
    description='Enterprise-size customer accounts in the home regions (DACH by default).',
    owner='sales-ops',
    tags=['firmographic', 'geographic'],
    tests={'min_size': 1, 'not_null': ['name'], 'expect': ['employees >= 1000']},
) }}
SELECT
  a.account_id,
  a.name,
  a.country,
  a.employees
FROM {{ source('accounts') }} AS a
WHERE a.region IN {{ var('home_regions') }}
  AND a.employees >= {{ param('min_employees', 1000) }}
  AND a.status = 'customer'
