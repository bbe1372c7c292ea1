{{ config(
    entity='account',
    description='RFM scores of every account with purchases in invoices (classic convention; rfm_segment names the RFM segment).',
    owner='analytics',
    tags=['value', 'rfm'],
    tests={'min_size': 1, 'expect': ['r_score BETWEEN 1 AND 5', 'f_score BETWEEN 1 AND 5']},
) }}
{{ rfm('invoices', at='issued_at', amount='amount', where="status = 'paid'") }}
