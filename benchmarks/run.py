"""Run benchmark: segsql's overhead over raw DuckDB, and memory of `show` on huge segments.

1. Demo data at --scale (30 gives ≥ 10M events). For each starter segment, in one process:
   (a) project.run(select=[name]): validate, materialise, key checks, membership swap, bookkeeping;
   (b) raw DuckDB running the same compiled SQL as CREATE TABLE AS (the floor for materialising).
   Target (issue 3): (a)/(b) ≤ 1.10.
2. Peak RSS of `segsql show NAME --limit 20` (fresh process) on a 50k- and a 5M-member segment:
   it must stay flat, because the LIMIT runs in the engine.

    python benchmarks/run.py [--scale 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
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

WORK = Path(__file__).resolve().parent / ".work" / "run"
AS_OF = dt.date(2026, 11, 23)


def timed(function) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def overhead(project: Project, repeat: int) -> list[tuple[str, int, float, float]]:
    rows = []
    database = str(project.root / "data" / "demo.duckdb")
    for name in project.select():
        sql = project.compile(name)
        ours, raw, size = [], [], 0
        for _ in range(repeat):
            ours.append(timed(lambda n=name: project.run(select=[n])))
            connection = duckdb.connect(database)
            raw.append(timed(lambda c=connection, q=sql: c.execute(f"CREATE OR REPLACE TABLE bench_raw AS {q}")))
            size = connection.execute("SELECT count(*) FROM bench_raw").fetchone()[0]
            connection.execute("DROP TABLE bench_raw")
            connection.close()
        rows.append((name, size, statistics.median(ours), statistics.median(raw)))
    return rows


def show_memory(members: int) -> tuple[int, int]:
    """Peak RSS (MB) of a process that only opens the database read-only, and of
    `segsql show many --limit 20` on a segment with `members` members."""
    root = show_project(WORK / f"show-{members}", members)
    show = ("from segsql.cli import main\n"
            f"sys.argv = ['segsql', 'show', 'many', '--project', {str(root)!r}, '--limit', '20']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n")
    open_only = f"import duckdb\nduckdb.connect({str(root / 'db.duckdb')!r}, read_only=True).close()\n"
    return _peak(open_only), _peak(show)


def show_project(root: Path, members: int) -> Path:
    """A project whose one segment, `many`, has `members` members, run once."""
    shutil.rmtree(root, ignore_errors=True)
    (root / "segments_sql").mkdir(parents=True)
    (root / "segsql.yml").write_text(
        "connection: {type: duckdb, path: db.duckdb}\nsources:\n  people: {table: people}\n"
        "entities:\n  person: {key: person_id, source: people}\n")
    (root / "segments_sql" / "many.sql").write_text(
        "{{ config(entity='person') }}\nSELECT p.person_id, p.score, p.label FROM {{ source('people') }} AS p")
    connection = duckdb.connect(str(root / "db.duckdb"))
    connection.execute(f"CREATE TABLE people AS SELECT range AS person_id, random() AS score, "
                       f"'member ' || range AS label FROM range({members})")
    connection.close()
    Project.load(root, as_of=AS_OF).run()
    return root


def _peak(body: str) -> int:
    """Peak RSS in MB of a fresh interpreter: VmHWM, because ru_maxrss survives exec and would
    report the peak of this (forking) benchmark process."""
    probe = "import sys\n" + body + (
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(hwm, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return int(done.stderr.strip().splitlines()[-1]) // 1024


def report_memory() -> None:
    for members in (50_000, 5_000_000):
        opened, shown = show_memory(members)
        print(f"peak RSS, {members:>9,} members: open the database only {opened} MB; "
              f"`show --limit 20` {shown} MB (+{shown - opened} MB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-only", action="store_true")
    args = parser.parse_args()
    if args.memory_only:
        report_memory()
        return
    shutil.rmtree(WORK / "demo", ignore_errors=True)
    started = time.perf_counter()
    project, stats = prepare_demo(WORK / "demo", scale=args.scale, seed=42, as_of=AS_OF)
    generation = time.perf_counter() - started
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, duckdb {duckdb.__version__}")
    print(f"demo scale {args.scale:g}: {stats.accounts:,} accounts, {stats.users:,} users, {stats.events:,} events "
          f"(generated in {generation:.0f} s); median of {args.repeat}")
    print(f"{'segment':30} {'members':>9} {'segsql run':>11} {'raw duckdb':>11} {'ratio':>6}")
    rows = overhead(project, args.repeat)
    for name, size, ours, raw in rows:
        print(f"{name:30} {size:9,} {ours:10.3f}s {raw:10.3f}s {ours / raw:6.2f}")
    total_ours, total_raw = sum(r[2] for r in rows), sum(r[3] for r in rows)
    print(f"{'all segments, summed':30} {'':9} {total_ours:10.3f}s {total_raw:10.3f}s {total_ours / total_raw:6.2f}")
    all_at_once = statistics.median(timed(project.run) for _ in range(args.repeat))
    print(f"one run of all {len(rows)} segments: {all_at_once:.2f} s")
    report_memory()


if __name__ == "__main__":
    main()
