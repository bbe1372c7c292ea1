"""Compare benchmark: 20 overlapping segments × 6 KPIs on the ≥ 10M-event demo, in one run:

  (a) segsql: project.compare(20 segments, 6 metrics) — one engine query + statistics
  (b) floor: one hand-written query joining the memberships to the metric sources, grouped by segment
  (c) naive: one query per segment (the same KPIs, 20 queries)
  (d) one plain scan: the per-account distinct count of active users over the events table

Targets (issue 4): (a) within 1.2× of (b), and at least 2× faster than (c).

    python benchmarks/compare.py [--scale 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import time
from pathlib import Path

import duckdb

from segsql import Project
from segsql.demo.project import prepare_demo

WORK = Path(__file__).resolve().parent / ".work" / "compare"
AS_OF = dt.date(2026, 11, 23)
METRICS = ["churn_rate", "nrr", "mrr_per_account", "csat", "expansion_rate", "active_users"]
EXTRA_METRIC = """
  active_users:
    entity: account
    kind: mean
    source: events
    period: 30 days up to as_of
    description: Distinct active users per account in the last 30 days.
    where: "{{ last_n_days('occurred_at', 30) }}"
    numerator: "COUNT(DISTINCT user_id)"
"""


def segments() -> dict[str, str]:
    """20 overlapping account segments: size bands crossed with regions and tiers."""
    out = {}
    for index in range(20):
        floor = [1, 10, 50, 100, 200][index % 5]
        regions = [["DACH"], ["DACH", "UKI"], ["North America"], ["Nordics", "Benelux", "DACH"]][index // 5]
        out[f"bench_{index:02d}"] = (
            "{{ config(entity='account') }}\nSELECT a.account_id FROM {{ source('accounts') }} AS a "
            f"WHERE a.employees >= {floor} AND a.region IN {tuple(regions) if len(regions) > 1 else f'({regions[0]!r})'}")
    return out


def timed(function) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


KPI_SQL = """
  churn AS (SELECT account_id AS key,
      MAX(CASE WHEN month = DATE '{m1}' AND mrr > 0 THEN 1 ELSE 0 END) * (1 - MAX(CASE WHEN month = DATE '{m0}' AND mrr > 0 THEN 1 ELSE 0 END)) AS num,
      MAX(CASE WHEN month = DATE '{m1}' AND mrr > 0 THEN 1 ELSE 0 END) AS den
    FROM mrr_monthly WHERE month IN (DATE '{m1}', DATE '{m0}') GROUP BY account_id),
  nrr AS (SELECT account_id AS key, SUM(CASE WHEN month = DATE '{m0}' THEN mrr ELSE 0 END) AS num,
      NULLIF(SUM(CASE WHEN month = DATE '{m12}' THEN mrr ELSE 0 END), 0) AS den
    FROM mrr_monthly WHERE month IN (DATE '{m12}', DATE '{m0}') GROUP BY account_id),
  mrr AS (SELECT account_id AS key, SUM(mrr) AS num FROM mrr_monthly WHERE month = DATE '{m0}' AND mrr > 0 GROUP BY account_id),
  csat AS (SELECT account_id AS key, SUM(CASE WHEN csat >= 4 THEN 1 ELSE 0 END) AS num, NULLIF(COUNT(csat), 0) AS den
    FROM tickets WHERE opened_at >= DATE '{d89}' AND opened_at < DATE '{d_1}' GROUP BY account_id),
  expansion AS (SELECT account_id AS key,
      CASE WHEN MAX(CASE WHEN month = DATE '{m1}' AND mrr > 0 THEN 1 ELSE 0 END) = 1
       AND SUM(CASE WHEN month = DATE '{m0}' THEN mrr ELSE 0 END) > SUM(CASE WHEN month = DATE '{m1}' THEN mrr ELSE 0 END)
      THEN 1 ELSE 0 END AS num, MAX(CASE WHEN month = DATE '{m1}' AND mrr > 0 THEN 1 ELSE 0 END) AS den
    FROM mrr_monthly WHERE month IN (DATE '{m1}', DATE '{m0}') GROUP BY account_id),
  active AS (SELECT account_id AS key, COUNT(DISTINCT user_id) AS num FROM events
    WHERE occurred_at >= DATE '{d29}' AND occurred_at < DATE '{d_1}' GROUP BY account_id)
"""
AGGREGATES = ", ".join(
    f"COUNT({k}.num), SUM({k}.num), SUM({k}.num * {k}.num)" + (f", SUM({k}.den), SUM({k}.den * {k}.den), SUM({k}.num * {k}.den)"
                                                               if k in ("churn", "nrr", "csat", "expansion") else "")
    for k in ("churn", "nrr", "mrr", "csat", "expansion", "active"))
JOINS = " ".join(f"LEFT JOIN {k} ON {k}.key = g.key" for k in ("churn", "nrr", "mrr", "csat", "expansion", "active"))


def kpi_sql() -> str:
    d = AS_OF
    return KPI_SQL.format(m0=d.replace(day=1), m1=(d.replace(day=1) - dt.timedelta(days=1)).replace(day=1),
                          m12=d.replace(day=1, year=d.year - 1), d89=d - dt.timedelta(days=89),
                          d29=d - dt.timedelta(days=29), d_1=d + dt.timedelta(days=1))


def floor_query(names: list[str]) -> str:
    groups = " UNION ALL ".join(f"SELECT '{n}' AS grp, account_id AS key FROM segsql.segment__{n}" for n in names)
    groups += " UNION ALL SELECT '__all__', account_id FROM (SELECT DISTINCT account_id FROM accounts)"
    return f"WITH g AS ({groups}), {kpi_sql()} SELECT g.grp, COUNT(*), {AGGREGATES} FROM g {JOINS} GROUP BY g.grp"


def naive_queries(names: list[str]) -> list[str]:
    return [f"WITH g AS (SELECT account_id AS key FROM segsql.segment__{n}), {kpi_sql()} "
            f"SELECT COUNT(*), {AGGREGATES} FROM g {JOINS}" for n in names]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    project_dir = WORK / "demo"
    project, stats = prepare_demo(project_dir, scale=args.scale, seed=42, as_of=AS_OF)
    for name, text in segments().items():
        (project_dir / "segments_sql" / f"{name}.sql").write_text(text)
    metrics_file = project_dir / "metrics.yml"
    if "active_users:" not in metrics_file.read_text():
        metrics_file.write_text(metrics_file.read_text() + EXTRA_METRIC)
    project = Project.load(project_dir, as_of=AS_OF)
    names = sorted(segments())
    project.run(select=names)
    database = str(project_dir / "data" / "demo.duckdb")
    connection = duckdb.connect(database, read_only=True)
    result: dict[str, list[float]] = {"a": [], "a_warm": [], "b": [], "c": [], "d": []}
    warm = Project.load(project_dir, as_of=AS_OF)
    warm.compare(names, METRICS)
    for _ in range(args.repeat):
        fresh = Project.load(project_dir, as_of=AS_OF)  # includes loading and rendering the metrics
        result["a"].append(timed(lambda p=fresh: p.compare(names, METRICS)))
        result["a_warm"].append(timed(lambda: warm.compare(names, METRICS)))
        result["b"].append(timed(lambda: connection.execute(floor_query(names)).fetchall()))
        result["c"].append(timed(lambda: [connection.execute(q).fetchall() for q in naive_queries(names)]))
        result["d"].append(timed(lambda: connection.execute(
            f"SELECT account_id, COUNT(DISTINCT user_id) FROM events WHERE occurred_at >= DATE '{AS_OF - dt.timedelta(days=29)}' "
            "GROUP BY account_id").fetchall()))
    median = {k: statistics.median(v) for k, v in result.items()}
    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}, duckdb {duckdb.__version__}")
    print(f"demo scale {args.scale:g}: {stats.accounts:,} accounts, {stats.events:,} events; "
          f"20 segments × {len(METRICS)} metrics; median of {args.repeat}")
    labels = {"a": "segsql compare, fresh Project", "a_warm": "segsql compare, reused Project",
              "b": "floor: one hand-written query", "c": "naive: one query per segment",
              "d": "one plain scan (distinct users)"}
    for key, label in labels.items():
        print(f"  ({key}) {label:34} {median[key]:7.3f} s  ({median[key] / median['d']:.1f}× d)")
    print(f"  (a)/(b) = {median['a'] / median['b']:.2f} fresh, {median['a_warm'] / median['b']:.2f} reused (target ≤ 1.2); "
          f"(c)/(a) = {median['c'] / median['a']:.1f} (target ≥ 2)")


if __name__ == "__main__":
    main()
