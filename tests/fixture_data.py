"""A small hand-made dataset for the starter schema, with rows on every boundary.

as_of is 2026-11-23. Expected members of each starter segment (and why) are in
STARTER_MEMBERS; the golden tests execute compiled SQL on this data.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

STATEMENTS = [
    """CREATE TABLE accounts AS SELECT * FROM (VALUES
      (1, 'Acme GmbH', 'software', 5000, '1000+', 'DE', 'DACH', 'enterprise', DATE '2020-01-10', 60000.0, 'customer', NULL::DATE),
      (2, 'Beta AG', 'finance', 200, '200-999', 'CH', 'DACH', 'growth', DATE '2026-10-01', 10800.0, 'customer', NULL),
      (3, 'Gamma Ltd', 'retail', 3000, '1000+', 'GB', 'UKI', 'enterprise', DATE '2021-05-05', 30000.0, 'customer', NULL),
      (4, 'Delta GmbH', 'manufacturing', 1500, '1000+', 'AT', 'DACH', 'enterprise', DATE '2019-03-03', 0.0, 'churned', DATE '2026-06-30'),
      (5, 'Epsilon Inc', 'software', 50, '1-49', 'US', 'NA', 'starter', DATE '2026-11-20', 0.0, 'trial', NULL),
      (6, 'Zeta SA', 'health', 1000, '1000+', 'CH', 'DACH', 'enterprise', DATE '2026-08-25', 24000.0, 'customer', NULL)
    ) AS t(account_id, name, industry, employees, employee_band, country, region, plan_tier, signup_date, arr, status, churned_at)""",
    """CREATE TABLE users AS SELECT * FROM (VALUES
      (11, 1, 'a@acme.example', 'Ann A', 'admin', 'DE', DATE '2020-01-10', TIMESTAMP '2026-11-23 09:00', true),
      (12, 1, 'b@acme.example', 'Ben B', 'member', 'DE', DATE '2020-02-10', TIMESTAMP '2026-11-22 09:00', false),
      (13, 1, 'c@acme.example', 'Cy C', 'member', 'DE', DATE '2021-02-10', TIMESTAMP '2026-11-21 09:00', true),
      (14, 1, 'd@acme.example', 'Di D', 'member', 'DE', DATE '2022-02-10', TIMESTAMP '2026-10-23 10:00', true),
      (15, 1, 'e@acme.example', 'Ed E', 'member', 'DE', DATE '2022-02-10', TIMESTAMP '2026-10-24 00:00', true),
      (16, 2, 'f@beta.example', 'Flo F', 'admin', 'CH', DATE '2026-10-01', TIMESTAMP '2026-08-25 00:00', true),
      (17, 2, 'g@beta.example', 'Gus G', 'member', 'CH', DATE '2026-10-01', TIMESTAMP '2026-08-24 23:59', false),
      (21, 3, 'h@gamma.example', 'Hal H', 'admin', 'GB', DATE '2021-05-05', TIMESTAMP '2026-11-23 08:00', true),
      (22, 3, 'i@gamma.example', 'Ivy I', 'member', 'GB', DATE '2021-05-05', TIMESTAMP '2026-11-23 08:00', true),
      (61, 6, 'j@zeta.example', 'Jo J', 'admin', 'CH', DATE '2026-08-25', TIMESTAMP '2026-11-01 08:00', true)
    ) AS t(user_id, account_id, email, full_name, role, country, signup_date, last_seen_at, marketing_consent)""",
    # Power users: 11, 12, 13 active 15 distinct days; 21 exactly 12 days; 22 only 11 days.
    # Two events on one day count once; an event on 2026-10-24 23:59 is 31 days back (outside).
    """CREATE TABLE events AS
      SELECT row_number() OVER () AS event_id, u.user_id, u.account_id,
             TIMESTAMP '2026-11-23 10:00' - INTERVAL (d) DAY AS occurred_at,
             'login' AS event_type, NULL::VARCHAR AS feature, NULL::VARCHAR AS integration, 'web' AS platform
      FROM (VALUES (11, 1, 15), (12, 1, 15), (13, 1, 15), (21, 3, 12), (22, 3, 11)) AS u(user_id, account_id, days),
           range(0, 29) AS r(d)
      WHERE d < u.days
      UNION ALL SELECT 1000, 22, 3, TIMESTAMP '2026-11-23 11:00', 'login', NULL, NULL, 'web'
      UNION ALL SELECT 1001, 22, 3, TIMESTAMP '2026-10-24 23:59', 'login', NULL, NULL, 'web'
      UNION ALL SELECT 1002, 21, 3, TIMESTAMP '2026-11-01 12:00', 'integration_used', NULL, 'salesforce', 'web'
      UNION ALL SELECT 1003, 16, 2, TIMESTAMP '2026-08-01 12:00', 'integration_used', NULL, 'salesforce', 'web'
      UNION ALL SELECT 1004, 61, 6, TIMESTAMP '2026-11-02 12:00', 'integration_used', NULL, 'slack', 'web'
      -- last events of 14-17 on the dormant window's edges; 14 comes back after as_of (not seen then)
      UNION ALL SELECT 1005, 14, 1, TIMESTAMP '2026-10-23 10:00', 'page_view', NULL, NULL, 'web'
      UNION ALL SELECT 1006, 15, 1, TIMESTAMP '2026-10-24 00:00', 'page_view', NULL, NULL, 'web'
      UNION ALL SELECT 1007, 16, 2, TIMESTAMP '2026-08-25 00:00', 'page_view', NULL, NULL, 'web'
      UNION ALL SELECT 1008, 17, 2, TIMESTAMP '2026-08-24 23:59', 'page_view', NULL, NULL, 'web'
      UNION ALL SELECT 1009, 14, 1, TIMESTAMP '2026-11-24 00:00', 'page_view', NULL, NULL, 'web'""",
    # `accounts` as it was over time: one version each since signup, except Delta (customer, then
    # churned from the day after its last paid day) and Beta (an upgrade after as_of: not seen then).
    """CREATE TABLE account_history AS
      SELECT *, signup_date AS valid_from, CAST(NULL AS DATE) AS valid_to FROM accounts WHERE account_id NOT IN (2, 4)
      UNION ALL SELECT *, signup_date, DATE '2026-11-25' FROM accounts WHERE account_id = 2
      UNION ALL SELECT * REPLACE ('enterprise' AS plan_tier, 99000.0 AS arr), DATE '2026-11-25', NULL
                FROM accounts WHERE account_id = 2
      UNION ALL SELECT * REPLACE ('customer' AS status, 21600.0 AS arr, NULL AS churned_at), signup_date,
                DATE '2026-07-01' FROM accounts WHERE account_id = 4
      UNION ALL SELECT *, DATE '2026-07-01', NULL FROM accounts WHERE account_id = 4""",
    """CREATE TABLE mrr_monthly AS SELECT * FROM (VALUES
      (1, DATE '2026-11-01', 5000.0, 'enterprise'), (1, DATE '2026-10-01', 4800.0, 'enterprise'),
      (2, DATE '2026-11-01', 900.0, 'growth'),
      (3, DATE '2026-11-01', 2000.0, 'enterprise'), (3, DATE '2026-10-01', 2600.0, 'enterprise'),
      (4, DATE '2026-06-01', 1800.0, 'enterprise'),
      (6, DATE '2026-11-01', 1999.99, 'enterprise')
    ) AS t(account_id, month, mrr, plan_tier)""",
    """CREATE TABLE invoices AS SELECT * FROM (VALUES
      (1, 1, DATE '2026-11-01', 5000.0, 'paid'), (2, 3, DATE '2026-11-01', 2000.0, 'open')
    ) AS t(invoice_id, account_id, issued_at, amount, status)""",
    """CREATE TABLE tickets AS SELECT * FROM (VALUES
      (1, 2, 16, TIMESTAMP '2026-11-01 10:00', 'billing', 2),
      (2, 2, 17, TIMESTAMP '2026-08-26 10:00', 'billing', NULL),
      (3, 3, 21, TIMESTAMP '2026-11-10 10:00', 'billing', 5),
      (4, 3, 22, TIMESTAMP '2026-08-25 10:00', 'billing', 4),
      (5, 1, 11, TIMESTAMP '2026-11-10 10:00', 'billing', 4),
      (6, 1, 12, TIMESTAMP '2026-11-11 10:00', 'onboarding', 5)
    ) AS t(ticket_id, account_id, user_id, opened_at, topic, csat)""",
    """CREATE TABLE trials AS SELECT * FROM (VALUES
      (1, 5, DATE '2026-11-20', DATE '2026-12-04', NULL::DATE, 'starter'),
      (2, 2, DATE '2026-09-01', DATE '2026-09-15', DATE '2026-09-30', 'growth')
    ) AS t(trial_id, account_id, started_at, ended_at, converted_at, plan_tier)""",
    """CREATE TABLE marketing_touches AS SELECT * FROM (VALUES
      (1, 11, 1, TIMESTAMP '2026-11-01 10:00', 'email', 'autumn')
    ) AS t(touch_id, user_id, account_id, occurred_at, channel, campaign)""",
]

STARTER_MEMBERS: dict[str, list[int]] = {
    "enterprise_dach": [1, 6],             # 4 is churned, 2 too small, 3 not DACH; 6 has exactly 1000
    "high_mrr_accounts": [1, 3],           # 3 has exactly 2000; 6 has 1999.99
    "power_users": [11, 12, 13, 21],       # 21 has exactly 12 active days; 22 has 11 (+1 outside)
    "dormant_users": [14, 16],             # 14: 31 days ago; 16: 90 days ago; 15: 30; 17: 91
    "new_accounts": [2, 5],                # 6 signed up 90 days before as_of (outside)
    "salesforce_integrators": [3],         # 2's salesforce use is older than 90 days
    "billing_help_seekers": [2],           # 3 has one billing ticket in window; 1 one billing
    "accounts_with_power_users": [1],      # 1 has three power users, 3 has one
    "enterprise_expansion_targets": [1],   # high MRR ∩ enterprise DACH ∩ power-user accounts
}


def build(path: Path) -> Path:
    """Create the fixture database at `path` and return it."""
    connection = duckdb.connect(str(path))
    try:
        for statement in STATEMENTS:
            connection.execute(statement)
    finally:
        connection.close()
    return path
