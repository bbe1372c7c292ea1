"""Point-in-time benchmark: what the source filters cost on a normal run (as of today).

The starter library on the demo data, two ways, in one process and alternated so both see the
same machine state:

- declared: the starter segsql.yml (accounts read from the SCD-2 `account_history`, every
  source with `time:`), so every source read goes through its known-rows subquery;
- undeclared: the same segments on the pre-#17 config (accounts from the current `accounts`
  table, no `time:`), i.e. today's run without the filters.

Measured: the compiled SQL of all segments as CTAS in DuckDB (the engine work), and the whole
`Project.run()` (what a user runs). Target (issue #17): declared within 5% of undeclared.

    python benchmarks/point_in_time.py [--scale 15] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shutil
import statistics
import time
from pathlib import Path

import duckdb

from segsql import Project
from segsql.demo.project import prepare_demo

WORK = Path(__file__).resolve().parent / ".work" / "point_in_time"
AS_OF = dt.date(2026, 11, 30)


def undeclared_config(text: str) -> str:
    lines = [line for line in text.splitlines() if not line.strip().startswith(("time:", "unique: [[account_id"))]
    text = "\n".join(lines).replace("table: account_history", "table: accounts")
    return text + "\npoint_in_time: off\n"


def projects(scale: float) -> tuple[Project, Project]:
    if WORK.exists():
        shutil.rmtree(WORK)
    declared_root = WORK / "declared"
    prepare_demo(declared_root, scale=scale, as_of=AS_OF)[0].close()
    undeclared_root = WORK / "undeclared"
    shutil.copytree(declared_root, undeclared_root, ignore=shutil.ignore_patterns("data"))
    (undeclared_root / "data").mkdir()
    shutil.copy(declared_root / "data" / "demo.duckdb", undeclared_root / "data" / "demo.duckdb")
    config = undeclared_root / "segsql.yml"
    config.write_text(undeclared_config(config.read_text()))
    return Project.load(declared_root), Project.load(undeclared_root)


def engine_seconds(project: Project) -> float:
    """All segments' compiled SQL as CTAS in one DuckDB connection (no segsql bookkeeping)."""
    statements = [project.compile(name) for name in project.select()]
    project.close()
    connection = duckdb.connect(str(project.root / "data" / "demo.duckdb"))
    try:
        started = time.perf_counter()
        for index, sql in enumerate(statements):
            connection.execute(f"CREATE OR REPLACE TEMP TABLE bench_{index} AS {sql}")
        return time.perf_counter() - started
    finally:
        connection.close()


def run_seconds(project: Project) -> float:
    started = time.perf_counter()
    result = project.run()
    assert result.ok, result
    project.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=15.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    declared, undeclared = projects(args.scale)
    timings: dict[str, list[float]] = {"engine declared": [], "engine undeclared": [], "run declared": [],
                                       "run undeclared": []}
    for _ in range(args.repeat):
        for label, project in (("declared", declared), ("undeclared", undeclared)):
            timings[f"engine {label}"].append(engine_seconds(project))
            timings[f"run {label}"].append(run_seconds(project))
    medians = {label: statistics.median(values) for label, values in timings.items()}
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}, "
          f"scale {args.scale}, {len(declared.select())} segments, median of {args.repeat}")
    for kind in ("engine", "run"):
        ratio = medians[f"{kind} declared"] / medians[f"{kind} undeclared"]
        print(f"{kind}: declared {medians[f'{kind} declared']:.2f} s, undeclared "
              f"{medians[f'{kind} undeclared']:.2f} s, ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
