{{ config(
    entity='account',
    description='Accounts where at least three users are power users (B2B rollup).',
    owner='customer-success',
    tags=['behavioural', 'rollup'],
    tests={'min_size': 1, 'expect': ['matching_count >= 3', 'matching_count <= total_count']},
) }}
{{ rollup('power_users', 'at_least', n=param('min_power_users', 3)) }}
