{{ config(
    entity='account',
    description='Small and mid-sized paying customers (under max_employees) in one industry.',
    owner='marketing',
    tags=['firmographic'],
    tests={'min_size': 1, 'not_null': ['name'], 'expect': ['employees < 200']},
) }}
SELECT
  a.account_id,
  a.name,
  a.industry,
  a.employees
FROM {{ source('accounts') }} AS a
WHERE a.status = 'customer'
  AND a.employees < {{ param('max_employees', 200) }}
  AND a.industry = {{ param('industry', 'software') }}
