{{ config(
    entity='account',
    description='Accounts that connected the Salesforce integration and used it in the last 90 days.',
    owner='partnerships',
    tags=['technographic'],
    tests={'min_size': 1, 'expect': ['salesforce_events >= 1']},
) }}
SELECT
  e.account_id,
  COUNT(*) AS salesforce_events
FROM {{ source('events') }} AS e
WHERE e.integration = {{ param('integration', 'salesforce') }}
  AND {{ last_n_days('e.occurred_at', 90) }}
GROUP BY e.account_id
