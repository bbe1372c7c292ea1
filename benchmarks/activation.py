"""Activation and methods benchmark: what exports, diff and the method builtins cost over raw DuckDB.

On demo data at --scale (30 gives ~10M events, ~170k users), in one process, medians of --repeat:
1. export of `dach_users` (email, country; consent-gated) to CSV: segsql full export, segsql
   changes-only export (nothing changed), vs raw DuckDB COPY of the same consented rows to CSV.
2. split(): `onboarding_experiment` as CREATE TABLE AS with and without the split() column.
3. rfm(): `rfm_scores` as CREATE TABLE AS vs a plain GROUP BY of invoices (count, sum, max).
4. segsql diff of one changed segment vs running both versions' queries raw.
No targets were set for these; the numbers say what the features cost.

    python benchmarks/activation.py [--scale 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from segsql import Project
from segsql.demo.project import prepare_demo

WORK = Path(__file__).resolve().parent / ".work" / "activation"
AS_OF = dt.date(2026, 11, 23)


def median_time(function, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def raw(database: Path, sql: str) -> None:
    connection = duckdb.connect(str(database))
    try:
        connection.execute(sql)
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    project, stats = prepare_demo(WORK / "demo", scale=options.scale, seed=42, as_of=AS_OF)
    project.run()
    database = project.root / "data" / "demo.duckdb"
    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}, "
          f"duckdb {duckdb.__version__}; {dt.date.today()}")
    print(f"data: scale {options.scale}: {stats.accounts:,} accounts, {stats.users:,} users, {stats.events:,} events")
    members = project.size("dach_users")
    out = WORK / "raw.csv"
    copy = (f"COPY (SELECT CAST(s.user_id AS VARCHAR) AS entity_key, s.email, s.country FROM segsql.segment__dach_users"
            f" AS s WHERE CAST(s.user_id AS VARCHAR) IN (SELECT CAST(user_id AS VARCHAR) FROM users WHERE "
            f"marketing_consent = TRUE) ORDER BY 1) TO '{out}' (HEADER)")
    full = median_time(lambda: project.export("dach_users", "csv", purpose="marketing_email"), options.repeat)
    changes = median_time(lambda: project.export("dach_users", "csv", purpose="marketing_email", changes_only=True),
                          options.repeat)
    floor = median_time(lambda: raw(database, copy), options.repeat)
    print(f"export dach_users ({members:,} members): full {full:.3f} s, changes-only {changes:.3f} s, "
          f"raw COPY {floor:.3f} s -> {full / floor:.2f}x / {changes / floor:.2f}x")
    for name in ("onboarding_experiment", "rfm_scores"):
        sql = project.compile(name)
        ours = median_time(lambda q=sql: raw(database, f"CREATE OR REPLACE TABLE bench AS {q}"), options.repeat)
        if name == "onboarding_experiment":
            plain = sql.split("CASE")[0].rstrip().rstrip(",") + "\nFROM users AS u\nWHERE " + sql.split("WHERE", 1)[1]
        else:
            plain = ("SELECT account_id, MIN(issued_at), MAX(issued_at), COUNT(*), SUM(amount) FROM invoices "
                     "WHERE status = 'paid' AND issued_at <= DATE '2026-11-23' GROUP BY account_id")
        base = median_time(lambda q=plain: raw(database, f"CREATE OR REPLACE TABLE bench AS {q}"), options.repeat)
        print(f"{name}: with the method {ours:.3f} s, plain query {base:.3f} s -> {ours / base:.2f}x")
    _diff(project, database, options.repeat)


def _diff(project: Project, database: Path, repeat: int) -> None:
    root = project.root
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / ".gitignore").write_text("data/\ntarget/\nexports/\n")
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.org"]
    subprocess.run([*git, "add", "."], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=root, check=True)
    path = next(root.rglob("power_users.sql"))
    path.write_text(path.read_text().replace("param('min_active_days', 12)", "param('min_active_days', 10)"))
    changed = Project.load(root, as_of=AS_OF)
    ours = median_time(lambda: changed.diff(base="HEAD", select=["power_users"]), repeat)
    new_sql = changed.compile("power_users")
    old_sql = new_sql.replace(">= 10", ">= 12")
    both = median_time(lambda: raw(database, f"SELECT count(*) FROM (({new_sql}) EXCEPT ({old_sql}))"), repeat)
    print(f"diff power_users: segsql diff {ours:.3f} s, raw EXCEPT of both versions {both:.3f} s -> "
          f"{ours / both:.2f}x (git archive, two compiles, four counting queries)")


if __name__ == "__main__":
    sys.exit(main())
