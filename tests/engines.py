"""Shared data for the cross-engine tests: the demo plus rows that expose engine differences."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from segsql.demo.generate import generate

AS_OF = dt.date(2026, 11, 23)
TABLES = ["accounts", "users", "events", "mrr_monthly", "invoices", "tickets", "trials", "marketing_touches"]

# Rows chosen to trip portability: '' versus NULL, midnight on window edges, ties, NULL traits,
# integer-looking doubles, mixed case, non-ASCII text.
ADVERSARIAL = [
    "INSERT INTO accounts VALUES (900001, '', 'software', 1000, '1000+', 'DE', 'DACH', 'enterprise', "
    "DATE '2026-08-26', 0.0, 'customer', NULL)",
    "INSERT INTO accounts VALUES (900002, NULL, NULL, NULL, NULL, NULL, NULL, NULL, DATE '2026-08-25', NULL, "
    "'customer', NULL)",
    "INSERT INTO accounts VALUES (900003, 'Zürich Größe AG', 'software', 199, '50-199', 'CH', 'DACH', 'growth', "
    "DATE '2026-11-23', 1200.0, 'customer', NULL)",
    "INSERT INTO accounts VALUES (900004, 'dach lowercase', 'software', 5000, '1000+', 'DE', 'dach', 'enterprise', "
    "DATE '2020-01-01', 1.0, 'customer', NULL)",
    "INSERT INTO users VALUES (900101, 900001, '', '', 'admin', '', DATE '2026-09-01', TIMESTAMP '2026-10-24 00:00:00', "
    "NULL)",
    "INSERT INTO users VALUES (900102, 900001, NULL, NULL, 'member', NULL, DATE '2026-09-01', "
    "TIMESTAMP '2026-08-25 00:00:00', true)",
    "INSERT INTO users VALUES (900103, 900003, 'x@y.example', 'X Y', 'admin', 'AT', DATE '2026-11-01', "
    "TIMESTAMP '2026-10-23 23:59:59.999999', false)",
    "INSERT INTO events SELECT 990000 + range, 900101, 900001, TIMESTAMP '2026-10-25 00:00:00' + INTERVAL (range) DAY, "
    "'login', NULL, NULL, 'web' FROM range(12)",
    "INSERT INTO events VALUES (990100, 900103, 900003, TIMESTAMP '2026-11-23 23:59:59', 'integration_used', NULL, "
    "'slack', 'web'), (990101, 900103, 900003, TIMESTAMP '2026-10-24 23:59:59', 'integration_used', NULL, 'slack', "
    "'web')",
    "INSERT INTO mrr_monthly VALUES (900001, DATE '2026-11-01', 2000.0, 'enterprise'), "
    "(900003, DATE '2026-11-01', 1999.999999, 'growth'), (900004, DATE '2026-11-01', 2000.0, 'enterprise')",
    "INSERT INTO tickets VALUES (990001, 900001, 900101, TIMESTAMP '2026-08-26 00:00:00', 'billing', NULL), "
    "(990002, 900001, 900101, TIMESTAMP '2026-11-23 23:59:59', 'billing', 5), "
    "(990003, 900001, 900102, TIMESTAMP '2026-08-25 23:59:59', 'billing', 1)",
]


def build_demo(folder: Path) -> Path:
    """Demo data (small) plus the adversarial rows, in a DuckDB file."""
    path = folder / "data" / "demo.duckdb"
    generate(path, scale=0.2, seed=11, today=AS_OF)
    connection = duckdb.connect(str(path))
    try:
        for statement in ADVERSARIAL:
            connection.execute(statement)
    finally:
        connection.close()
    return path


def memberships(project) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    """segment -> member keys (as text) after a run of every segment."""
    result = project.run()
    assert result.ok
    return {name: {str(k) for k in project.members(name).iloc[:, 0]} for name in project.select()}
