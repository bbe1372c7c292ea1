"""Compile benchmark: 1,000 realistic segments over a declared schema.

Measures, in one process: cold compile+validate (every segment rendered, parsed, checked and
written for the project dialect) and warm (nothing changed: all skipped by content hash), plus
the same through the CLI in a fresh interpreter. Targets (issue 2): cold < 3 s, warm < 0.5 s.

    python benchmarks/compile.py [--segments 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import sqlglot

from segsql import Project

WORK = Path(__file__).resolve().parent / ".work" / "compile"
TABLES = 20
COLUMNS = 15


def schema_yaml() -> str:
    lines = ["dialect: duckdb", "sources:"]
    for t in range(TABLES):
        lines += [f"  t{t}:", f"    table: raw_t{t}", "    columns:", "      account_id: BIGINT",
                  "      occurred_at: TIMESTAMP"]
        lines += [f"      c{c}: {'DOUBLE' if c % 3 else 'VARCHAR'}" for c in range(COLUMNS)]
    lines += ["entities:", "  account: {key: account_id}", "vars:", "  regions: [DACH, NA]"]
    return "\n".join(lines) + "\n"


def segment(index: int, rng: random.Random) -> str:
    a, b = rng.sample(range(TABLES), 2)
    c1, c2, c3 = (f"c{rng.randrange(start, COLUMNS, 3)}" for start in (1, 2, 0))
    ref = ""
    if index > 10 and rng.random() < 0.3:
        upstream = f"seg_{rng.randrange(index - 10, index):04d}"
        ref = f"\n  AND x.account_id IN (SELECT r.account_id FROM {{{{ ref('{upstream}') }}}} AS r)"
    return f"""{{{{ config(entity='account', description='Benchmark segment {index}', owner='bench', tags=['t{a}']) }}}}
WITH recent AS (
  SELECT e.account_id, COUNT(*) AS events, SUM(e.{c1}) AS total
  FROM {{{{ source('t{a}') }}}} AS e
  WHERE {{{{ last_n_days('e.occurred_at', {rng.choice([7, 30, 90])}) }}}}
  GROUP BY e.account_id
), profile AS (
  SELECT p.account_id, MAX(p.{c2}) AS peak, MIN(p.{c3}) AS label
  FROM {{{{ source('t{b}') }}}} AS p
  WHERE p.occurred_at >= {{{{ days_ago(365) }}}}
  GROUP BY p.account_id
)
SELECT
  x.account_id,
  x.events,
  x.total,
  y.peak,
  CASE WHEN x.total > {{{{ param('high', {rng.randint(100, 900)}) }}}} THEN 'high' ELSE 'low' END AS band
FROM recent AS x
JOIN profile AS y ON y.account_id = x.account_id
WHERE x.events >= {{{{ param('min_events', {rng.randint(1, 20)}) }}}}
  AND {{{{ positive('y.peak') }}}}
  AND y.label IN {{{{ var('regions') }}}}{ref}
"""


def build_project(root: Path, count: int) -> None:
    shutil.rmtree(root, ignore_errors=True)
    (root / "segments_sql").mkdir(parents=True)
    (root / "macros").mkdir()
    (root / "segsql.yml").write_text(schema_yaml())
    (root / "macros" / "filters.sql").write_text("{% macro positive(col) %}{{ ident(col) }} > 0{% endmacro %}\n")
    rng = random.Random(7)
    for i in range(count):
        folder = root / "segments_sql" / f"group_{i // 100:02d}"
        folder.mkdir(exist_ok=True)
        (folder / f"seg_{i:04d}.sql").write_text(segment(i, rng))


def timed(function) -> float:  # type: ignore[no-untyped-def]
    gc.collect()  # the previous run's trees are garbage; don't bill their collection to this run
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def compile_all(root: Path, as_of: str = "2026-11-23", workers: int | None = None) -> None:
    project = Project.load(root, as_of=as_of)
    report = project.write_target(project.select(ordered=False), ["duckdb"], workers=workers)
    assert not report.errors, report.errors[:3]


def scenarios(root: Path, workers: int | None, repeat: int) -> dict[str, list[float]]:
    """cold: no target/, empty Jinja cache; new_day: as_of changed (everything re-validated,
    Jinja code cached); warm: nothing changed."""
    times: dict[str, list[float]] = {"cold": [], "new_day": [], "warm": []}
    for run in range(repeat):
        os.environ["SEGSQL_CACHE_DIR"] = str(WORK / f"cache-{workers}-{run}")
        shutil.rmtree(WORK / f"cache-{workers}-{run}", ignore_errors=True)
        shutil.rmtree(root / "target", ignore_errors=True)
        times["cold"].append(timed(lambda: compile_all(root, "2026-11-23", workers)))
        times["new_day"].append(timed(lambda: compile_all(root, "2026-11-24", workers)))
        times["warm"].append(timed(lambda: compile_all(root, "2026-11-24", workers)))
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--segments", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = WORK / "project"
    build_project(root, args.segments)
    lines = sum(len(p.read_text().splitlines()) for p in (root / "segments_sql").rglob("*.sql"))
    compiled = "sqlglotc (mypyc)" if Path(sqlglot.parser.__file__).suffix == ".so" else "pure Python"
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, sqlglot {getattr(sqlglot, '__version__', '?')} ({compiled})")
    print(f"segments: {args.segments} ({lines} template lines, ~30% with a ref); median of {args.repeat}")
    for workers, label in ((1, "1 process"), (None, "all cores")):
        times = scenarios(root, workers, args.repeat)
        for scenario, values in times.items():
            median = statistics.median(values)
            print(f"  {label:9} {scenario:8} {median:6.2f} s  ({median / args.segments * 1000:.2f} ms/segment)")
    shutil.rmtree(root / "target", ignore_errors=True)
    cli = timed(lambda: subprocess.run([sys.executable, "-m", "segsql", "compile", "--project", str(root),
                                        "--as-of", "2026-11-23"], check=True, capture_output=True))
    print(f"  CLI, fresh interpreter, cold target/ (Jinja cache warm): {cli:.2f} s")
    command = [sys.executable, "-m", "segsql", "compile", "--project", str(root), "--as-of", "2026-11-23"]
    cli_warm = statistics.median(timed(lambda: subprocess.run(command, check=True, capture_output=True))
                                 for _ in range(args.repeat))
    startup = statistics.median(timed(lambda: subprocess.run([sys.executable, "-m", "segsql", "--help"],
                                                             check=True, capture_output=True))
                                for _ in range(args.repeat))
    print(f"  CLI warm (nothing changed): {cli_warm:.2f} s, of which interpreter + imports: {startup:.2f} s")


if __name__ == "__main__":
    main()
