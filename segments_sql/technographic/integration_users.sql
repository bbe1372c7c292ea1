{{ config(
    entity='user',
    description='Users who used a given integration (slack by default) in the last 30 days.',
    owner='partnerships',
    tags=['technographic'],
    tests={'min_size': 1, 'expect': ['uses >= 1']},
) }}
SELECT
  e.user_id,
  COUNT(*) AS uses
FROM {{ source('events') }} AS e
WHERE e.event_type = 'integration_used'
  AND e.integration = {{ param('integration', 'slack') }}
  AND {{ last_n_days('e.occurred_at', 30) }}
GROUP BY e.user_id
