"""Backfill benchmark: 12 monthly dates x every starter segment on the demo (--scale 30: ~10M events).

Three whole processes on the same data (a fresh copy of the database each, copying not timed):
  (a) `segsql backfill --from D1 --to D12 --every month --quiet`
  (b) 12 sequential `segsql run --as-of D` (the same dates, one process each)
  (c) one bare Python + DuckDB process running the compiled SQL of every segment for every date
      as CREATE OR REPLACE TABLE ... AS (compiled beforehand, not timed): the floor
Targets (issue #17): (a)/(c) <= 1.3 and (b)/(a) >= 2. Also, in process: how long compiling the
12 x N segments takes (the part of (a) that (c) does not pay).

    python benchmarks/backfill.py [--scale 30] [--repeat 1] [--data DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from segsql import Project
from segsql.demo.project import prepare_demo
from segsql.run.backfill import schedule

AS_OF = dt.date(2026, 11, 23)
DATES = schedule(dt.date(2025, 11, 30), dt.date(2026, 10, 30), "month")  # 12 dates, the 30th (Feb: 28th)
RAW = """\
import json, sys, duckdb
connection = duckdb.connect(sys.argv[1])
for sql in json.load(open(sys.argv[2])):
    connection.execute("CREATE OR REPLACE TABLE bench_raw AS " + sql)
connection.execute("DROP TABLE bench_raw")
connection.close()
"""


def fresh(data: Path, work: Path) -> Path:
    """A copy of the pristine demo project (no runs, no history) to measure on."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(data, work)
    return work


def whole(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=3600)
    return time.perf_counter() - start


def measure(data: Path, work: Path) -> dict[str, float]:
    segsql = [sys.executable, "-m", "segsql"]
    root = fresh(data, work)
    backfill = whole([*segsql, "backfill", "--project", str(root), "--from", str(DATES[0]), "--to", str(DATES[-1]),
                      "--every", "month", "--quiet"])
    root = fresh(data, work)
    runs = sum(whole([*segsql, "run", "--project", str(root), "--as-of", str(day)]) for day in DATES)
    root = fresh(data, work)
    project = Project.load(root, as_of=AS_OF)
    names = project.select()
    started = time.perf_counter()
    sql = [project.with_options(as_of=day).compile(name) for day in DATES for name in names]
    compile_seconds = time.perf_counter() - started
    (work / "raw.json").write_text(json.dumps(sql))
    (work / "raw.py").write_text(RAW)
    raw = whole([sys.executable, str(work / "raw.py"), str(root / "data" / "demo.duckdb"), str(work / "raw.json")])
    return {"backfill": backfill, "runs": runs, "raw": raw, "compile": compile_seconds, "segments": len(names)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=30)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parent / ".work" / "backfill-data")
    args = parser.parse_args()
    if not (args.data / "data" / "demo.duckdb").exists():
        _, stats = prepare_demo(args.data, scale=args.scale, seed=42, as_of=AS_OF)
        print(f"demo data: {stats.events:,} events, {stats.accounts:,} accounts", file=sys.stderr)
    work = args.data.parent / "backfill-work"
    results = [measure(args.data, work) for _ in range(args.repeat)]
    shutil.rmtree(work, ignore_errors=True)
    median = {key: statistics.median(r[key] for r in results) for key in results[0]}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{dt.date.today()}; median of {args.repeat}")
    print(f"{len(DATES)} monthly dates ({DATES[0]} .. {DATES[-1]}) x {int(median['segments'])} segments")
    print(f"  (a) segsql backfill, whole process   {median['backfill']:7.1f} s")
    a, b, c = median["backfill"], median["runs"], median["raw"]
    print(f"  (b) 12 x segsql run --as-of          {b:7.1f} s   (b)/(a) = {b / a:.2f}  (target >= 2)")
    print(f"  (c) raw compiled SQL, bare DuckDB    {c:7.1f} s   (a)/(c) = {a / c:.2f}  (target <= 1.3)")
    print(f"  compiling {len(DATES)} x {int(median['segments'])} segments in process: {median['compile']:.1f} s")


if __name__ == "__main__":
    main()
