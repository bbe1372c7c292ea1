{{ config(
    entity='account',
    description='Accounts in a trial started in the last 30 days, not converted, whose users tried at least three features.',
    owner='growth',
    tags=['behavioural', 'lifecycle'],
    tests={'unique': ['trial_id'], 'expect': ['features_tried >= 3']},
) }}
SELECT
  t.account_id,
  MAX(t.trial_id) AS trial_id,
  COUNT(DISTINCT e.feature) AS features_tried
FROM {{ source('trials') }} AS t
JOIN {{ source('events') }} AS e
  ON e.account_id = t.account_id
  AND e.occurred_at >= t.started_at
WHERE t.converted_at IS NULL
  AND {{ last_n_days('t.started_at', 30) }}
  AND e.event_type = 'feature_used'
GROUP BY t.account_id
HAVING COUNT(DISTINCT e.feature) >= {{ param('min_features', 3) }}
