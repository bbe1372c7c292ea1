{{ config(
    entity='account',
    description='RFM at risk high value: used to buy often and spend much, not lately. Edit the WHERE to change the rule.',
    owner='analytics',
    tags=['value', 'rfm'],
    tests={'min_size': 1, 'expect': ['r_score >= 1']},
) }}
SELECT r.account_id, r.recency, r.frequency, r.monetary, r.r_score, r.f_score, r.m_score
FROM {{ ref('rfm_scores') }} AS r
WHERE (r.r_score <= 2 AND r.f_score >= 3 AND r.m_score >= 4) AND NOT (r.r_score >= 4 AND r.f_score >= 4 AND r.m_score >= 4) AND NOT (r.r_score >= 3 AND r.f_score >= 4)
