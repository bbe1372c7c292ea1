{{ config(
    entity='account',
    description='Accounts where at least three users are power users (B2B rollup).',
    owner='customer-success',
    tags=['behavioural', 'rollup'],
) }}
{{ rollup('power_users', 'at_least', n=param('min_power_users', 3)) }}
