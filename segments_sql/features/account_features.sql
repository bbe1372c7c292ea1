{{ config(
    entity='account',
    description='Numeric features of every customer account at as_of (paying: not trials, lost trials or churned accounts), for clustering and propensity models: MRR, users, logins in the last 30 days, support tickets in the last 90 days, tenure.',
    owner='analytics',
    tags=['features'],
    tests={'min_size': 1, 'expect': ['users >= 0', 'tenure_days >= 0']},
) }}
SELECT
  a.account_id,
  COALESCE(m.mrr, 0) AS mrr,
  COALESCE(u.users, 0) AS users,
  COALESCE(l.logins_30d, 0) AS logins_30d,
  COALESCE(t.tickets_90d, 0) AS tickets_90d,
  DATE_DIFF('day', a.signup_date, {{ days_ago(0) }}) AS tenure_days
FROM {{ source('accounts') }} AS a
LEFT JOIN {{ source('mrr_monthly') }} AS m
  ON m.account_id = a.account_id AND m.month = {{ month_start() }}
LEFT JOIN (
  SELECT us.account_id, COUNT(*) AS users FROM {{ source('users') }} AS us GROUP BY us.account_id
) AS u ON u.account_id = a.account_id
LEFT JOIN (
  SELECT e.account_id, COUNT(*) AS logins_30d FROM {{ source('events') }} AS e
  WHERE e.event_type = 'login' AND {{ last_n_days('e.occurred_at', 30) }}
  GROUP BY e.account_id
) AS l ON l.account_id = a.account_id
LEFT JOIN (
  SELECT tk.account_id, COUNT(*) AS tickets_90d FROM {{ source('tickets') }} AS tk
  WHERE {{ last_n_days('tk.opened_at', 90) }}
  GROUP BY tk.account_id
) AS t ON t.account_id = a.account_id
WHERE a.status = 'customer'
  AND a.signup_date <= {{ days_ago(0) }}
  AND (a.churned_at IS NULL OR a.churned_at > {{ days_ago(0) }})
