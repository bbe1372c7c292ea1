"""Shared data for the cross-engine tests: the demo plus rows that expose engine differences."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from segsql.demo.generate import generate

AS_OF = dt.date(2026, 11, 23)
TABLES = ["accounts", "account_history", "users", "events", "mrr_monthly", "invoices", "tickets", "trials", "marketing_touches"]

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
    # the same accounts as the one version each has had since signup (the `accounts` source is the history)
    "INSERT INTO account_history SELECT *, signup_date, NULL FROM accounts WHERE account_id >= 900000",
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


# Segments built by the analysis methods: their computed traits must match too, not just keys.
METHOD_TRAITS = {
    "onboarding_experiment": ["arm"],
    "rfm_scores": ["first_purchase", "days_since_last", "frequency", "monetary", "r_score", "f_score", "m_score",
                   "rfm_segment"],
}


def _plain(value: object) -> object:
    import datetime as dt
    import decimal
    import math

    if isinstance(value, decimal.Decimal | float):
        return None if math.isnan(float(value)) else round(float(value), 6)  # NaN: no value, comparable
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())  # type: ignore[attr-defined]
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def method_traits(project) -> dict[str, dict[str, tuple[object, ...]]]:  # type: ignore[no-untyped-def]
    """segment -> key -> its method-computed traits (call after a run)."""
    result = {}
    for name, columns in METHOD_TRAITS.items():
        frame = project.members(name)
        keys = frame.iloc[:, 0]
        result[name] = {str(k): tuple(_plain(v) for v in row)
                        for k, row in zip(keys, frame[columns].itertuples(index=False), strict=True)}
    return result


def assert_same_traits(left: dict[str, dict[str, tuple[object, ...]]],
                       right: dict[str, dict[str, tuple[object, ...]]]) -> None:
    for name in METHOD_TRAITS:
        assert len(left[name]) > 10, name  # not vacuous
        differing = [k for k in left[name] if left[name][k] != right[name].get(k)]
        assert not differing, (name, [(k, left[name][k], right[name].get(k)) for k in differing[:3]])
        assert set(left[name]) == set(right[name]), name


def method_results(project) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Cohorts, a profile, clusters and a propensity fit on the demo data, rounded for comparison
    across engines (after a run of the starter segments)."""
    import datetime as dt

    def rows(frame) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
        return [tuple(_plain(v) for v in row) for row in frame.itertuples(index=False)]

    monthly = project.cohorts("account", "mrr_monthly", "month", revenue="mrr").frame
    weekly = project.cohorts("user", "events", "occurred_at", period="week", segments=["power_users"],
                             membership="current").frame
    # members when each cohort formed: the segment evaluated as of ~30 month ends in one query
    by_segment = project.cohorts("account", "mrr_monthly", "month", segments=["high_mrr_accounts"]).frame
    assert len(by_segment) > 100
    clusters = project.cluster("account_features", k=3)
    fitted = project.propensity("account_features", "churned_recently", AS_OF - dt.timedelta(days=120), 90)
    assert fitted.scores is not None
    scored = _engine_scores(project, fitted)
    worst = max(abs(scored[k] - fitted.scores[k]) for k in fitted.scores.index)
    assert worst < 1e-9, f"the SQL score differs from the model by {worst}"  # scoring runs in this engine
    return {"monthly cohorts": rows(monthly), "weekly cohorts": rows(weekly), "cohorts by segment": rows(by_segment),
            "profile": rows(project.profile("enterprise_dach")),
            "clusters": rows(clusters.summary()[["cluster", "size", "rule", "precision", "recall"]]),
            "propensity": (round(fitted.auc or 0, 9), {k: round(v, 9) for k, v in fitted.coefficients.items()})}


def assert_methods_agree(duck, other) -> None:  # type: ignore[no-untyped-def]
    """split()/rfm() traits and the method results are the same on DuckDB and `other`."""
    for project in (duck, other):
        project.run(select=[*METHOD_TRAITS, "power_users", "enterprise_dach"])
    assert_same_traits(method_traits(duck), method_traits(other))
    on_duckdb, on_other = method_results(duck), method_results(other)
    for part, value in on_duckdb.items():
        assert on_other[part] == value, part


def _engine_scores(project, fitted) -> dict[object, float]:  # type: ignore[no-untyped-def]
    """The exported logistic score evaluated by the engine over the features segment."""
    from sqlglot import exp

    query = exp.select(exp.column("account_id", "f"), fitted.score_sql("f").as_("score")).from_(
        project.compiler.tree("account_features").subquery("f"))
    with project.engine() as engine:
        engine.prepare_sources()
        return {row[0]: float(row[1]) for row in engine.fetchall(query)}
