"""What a user meets from a terminal (issue #20's table), as whole processes, each against its
baseline in the same run. Figures are CPU seconds (user + system of the process, from wait4),
because the machine is shared; wall seconds are printed for context.

  startup   `segsql --help`                      vs `python -c 'import duckdb'`
  compile   `segsql compile`, 1,000 segments, cold vs `dbt compile --no-partial-parse` of the same
            segments written as dbt models (`segsql compile --format dbt`), per segment/model
  warm      the same `segsql compile` with nothing changed vs dbt's partial parse
  library   `segsql run` of the starter library (demo)  vs its compiled SQL as CTAS in one bare
            Python + DuckDB process
  compare   `segsql compare`, 20 segments x 6 KPIs      vs the floor query in a bare DuckDB process,
            and vs 20 naive queries in one
  show      `segsql show many --limit 20`, 5M members   vs a bare process: count + top 20 (time, peak RSS)

    python benchmarks/terminal.py [--scale 30] [--repeat 3] [--dbt-python .ci/dbt-venv/bin/python]
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import backfill as backfill_bench
from benchmarks import compare as compare_bench
from benchmarks import compile as compile_bench
from benchmarks import run as run_bench
from segsql import Project
from segsql.demo.project import prepare_demo

WORK = Path(__file__).resolve().parent / ".work" / "terminal"
AS_OF = dt.date(2026, 11, 23)
SEGSQL = [sys.executable, "-m", "segsql"]


@dataclass
class Cost:
    cpu: float
    wall: float
    peak_mb: float


def installed_like_a_wheel() -> None:
    """A wheel install leaves bytecode beside every module; this sandbox sets PYTHONDONTWRITEBYTECODE,
    which would make every process here compile segsql from source (~0.35 s of each CLI call)."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parent.parent / "segsql"),
                    str(Path(__file__).resolve().parent.parent / "magics")], check=True, timeout=600)


def process(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Cost:
    """Run one whole process to its end; its CPU seconds and peak RSS come from wait4."""
    peak = WORK / "peak.txt"  # GNU time's %M: ru_maxrss of our own fork would carry this process's peak
    started = time.perf_counter()
    child = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(peak), *command], cwd=cwd, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    error = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{error[-2000:]}")
    return Cost(usage.ru_utime + usage.ru_stime, wall, int(peak.read_text().split()[-1]) / 1024)


def median_cost(run: Callable[[], Cost], repeat: int) -> Cost:
    costs = [run() for _ in range(repeat)]
    return Cost(*(statistics.median(getattr(c, f) for c in costs) for f in ("cpu", "wall", "peak_mb")))


def row(name: str, ours: Cost, base: Cost, per: int = 1, target: str = "") -> None:
    ratio = ours.cpu / base.cpu
    print(f"| {name} | {ours.cpu / per:.4g} s CPU ({ours.wall / per:.3g} s wall) | "
          f"{base.cpu / per:.4g} s CPU ({base.wall / per:.3g} s wall) | {ratio:.2f} | {target} |", flush=True)


# -- start-up and compile ------------------------------------------------------------------------
def startup(repeat: int) -> None:
    ours = median_cost(lambda: process([*SEGSQL, "--help"]), repeat)
    base = median_cost(lambda: process([sys.executable, "-c", "import duckdb"]), repeat)
    row("`segsql --help`", ours, base, target=f"≤ 0.25 s CPU absolute: {'met' if ours.cpu <= 0.25 else 'not met'}")


def dbt_project(root: Path, segments: Path) -> Path:
    """The benchmark's segments as dbt models (written by segsql itself) in a dbt-duckdb project."""
    dbt = root / "dbt"
    shutil.rmtree(dbt, ignore_errors=True)
    (dbt / "models").mkdir(parents=True)
    subprocess.run([*SEGSQL, "compile", "--project", str(segments), "--as-of", str(AS_OF), "--format", "dbt",
                    "--out", str(dbt / "models")], check=True, capture_output=True, timeout=600)
    (dbt / "dbt_project.yml").write_text("name: bench\nversion: '1.0'\nprofile: bench\nmodel-paths: [models]\n")
    (dbt / "profiles.yml").write_text(f"bench:\n  target: dev\n  outputs:\n    dev: {{type: duckdb, path: "
                                      f"'{dbt / 'bench.duckdb'}'}}\n")
    return dbt


def compile_rows(segments: int, repeat: int, dbt_python: str | None) -> None:
    root = WORK / "compile"
    compile_bench.build_project(root, segments)
    env = {**os.environ, "SEGSQL_CACHE_DIR": str(WORK / "compile-cache")}

    def cold() -> Cost:
        shutil.rmtree(root / "target", ignore_errors=True)
        shutil.rmtree(WORK / "compile-cache", ignore_errors=True)
        return process([*SEGSQL, "compile", "--project", str(root), "--as-of", str(AS_OF)], env=env)

    ours_cold = median_cost(cold, repeat)
    ours_warm = median_cost(lambda: process([*SEGSQL, "compile", "--project", str(root), "--as-of", str(AS_OF)],
                                            env=env), repeat)
    if dbt_python is None:
        print(f"| compile {segments} segments, cold CLI | {ours_cold.cpu / segments * 1000:.2f} ms CPU/segment | "
              "(no dbt: --dbt-python) | | |")
        return
    dbt = dbt_project(WORK, root)
    dbt_cli = [dbt_python, "-m", "dbt.cli.main", "compile", "--project-dir", str(dbt), "--profiles-dir", str(dbt),
               "--quiet"]
    base_cold = median_cost(lambda: process([*dbt_cli, "--no-partial-parse"]), repeat)
    process(dbt_cli)  # writes the partial-parse state
    base_warm = median_cost(lambda: process(dbt_cli), repeat)
    models = len(list((dbt / "models").glob("*.sql")))
    row(f"compile+validate {segments} segments, cold CLI (per segment; dbt: {models} models, no validation)",
        ours_cold, base_cold, per=segments, target="≤ 0.1")
    row("same, warm (nothing changed; dbt partial parse)", ours_warm, base_warm,
        target=f"whole process ≤ 0.4 s: {'met' if ours_warm.wall <= 0.4 else 'not met'} ({ours_warm.wall:.2f} s wall)")


# -- runs on the demo ----------------------------------------------------------------------------
RAW_QUERIES = """\
import json, sys, duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
for sql in json.load(open(sys.argv[2])):
    connection.execute(sql).fetchall()
connection.close()
"""


def fresh_copy(pristine: Path, name: str) -> Path:
    work = WORK / name
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(pristine, work)
    return work


def library_row(pristine: Path, repeat: int) -> None:
    names = Project.load(pristine, as_of=AS_OF).select()
    sql = [Project.load(pristine, as_of=AS_OF).compile(name) for name in names]
    (WORK / "library.json").write_text(json.dumps(sql))
    (WORK / "raw_ctas.py").write_text(backfill_bench.RAW)  # CTAS of each statement, one process
    ours = median_cost(lambda: process([*SEGSQL, "run", "--project", str(fresh_copy(pristine, "lib")),
                                        "--as-of", str(AS_OF)]), repeat)
    base = median_cost(lambda: process([sys.executable, str(WORK / "raw_ctas.py"),
                                        str(fresh_copy(pristine, "lib") / "data" / "demo.duckdb"),
                                        str(WORK / "library.json")]), repeat)
    row(f"whole starter library run ({len(names)} segments), first run", ours, base, target="≤ 1.10")
    ran = fresh_copy(pristine, "lib-again")
    process([*SEGSQL, "run", "--project", str(ran), "--as-of", str(AS_OF)])
    again = median_cost(lambda: process([*SEGSQL, "run", "--project", str(ran), "--as-of", str(AS_OF)]), repeat)
    row("same, a later run (history rewritten)", again, base, target="≤ 1.10")


def compare_rows(pristine: Path, repeat: int) -> None:
    root = fresh_copy(pristine, "compare")
    for name, text in compare_bench.segments().items():
        (root / "segments_sql" / f"{name}.sql").write_text(text)
    metrics = root / "metrics.yml"
    metrics.write_text(metrics.read_text() + compare_bench.EXTRA_METRIC)
    names = sorted(compare_bench.segments())
    Project.load(root, as_of=AS_OF).run(select=names)
    database = str(root / "data" / "demo.duckdb")
    (WORK / "floor.json").write_text(json.dumps([compare_bench.floor_query(names)]))
    (WORK / "naive.json").write_text(json.dumps(compare_bench.naive_queries(names)))
    (WORK / "raw_queries.py").write_text(RAW_QUERIES)
    command = [*SEGSQL, "compare", *names, "--project", str(root), "--as-of", str(AS_OF), "--format", "json",
               "--metrics", ",".join(compare_bench.METRICS)]
    ours = median_cost(lambda: process(command), repeat)
    floor = median_cost(lambda: process([sys.executable, str(WORK / "raw_queries.py"), database,
                                         str(WORK / "floor.json")]), repeat)
    naive = median_cost(lambda: process([sys.executable, str(WORK / "raw_queries.py"), database,
                                         str(WORK / "naive.json")]), repeat)
    row("`segsql compare` 20 segments × 6 KPIs, whole process, vs the floor query's process", ours, floor,
        target="≤ 1.5")
    row("20 naive queries' process vs `segsql compare` (speed-up)", naive, ours, target="≥ 3")


SHOW_RAW = """\
import sys, duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
connection.execute("SELECT count(*) FROM segsql.segment__many").fetchall()
connection.execute("SELECT * FROM segsql.segment__many ORDER BY person_id LIMIT 20").fetchall()
"""


def show_row(members: int, repeat: int) -> None:
    root = run_bench.show_project(WORK / "show", members)
    (WORK / "show_raw.py").write_text(SHOW_RAW)
    ours = median_cost(lambda: process([*SEGSQL, "show", "many", "--project", str(root), "--limit", "20"]), repeat)
    base = median_cost(lambda: process([sys.executable, str(WORK / "show_raw.py"), str(root / "db.duckdb")]), repeat)
    row(f"`segsql show --limit 20`, {members:,} members", ours, base,
        target=f"≤ 2; peak RSS {ours.peak_mb:.0f} MB vs {base.peak_mb:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--segments", type=int, default=1000)
    parser.add_argument("--members", type=int, default=5_000_000)
    parser.add_argument("--dbt-python", default=os.environ.get("SEGSQL_DBT_PYTHON"))
    parser.add_argument("--only", nargs="*", default=["startup", "compile", "library", "compare", "show"])
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    installed_like_a_wheel()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, duckdb {duckdb.__version__}; {dt.datetime.now():%Y-%m-%d %H:%M}; "
          f"load average {os.getloadavg()[0]:.1f}; median of {args.repeat}")
    print("| measure | segsql | baseline in the same run | ratio | target |\n|---|---|---|---|---|")
    if "startup" in args.only:
        startup(max(args.repeat, 5))
    if "compile" in args.only:
        compile_rows(args.segments, args.repeat, args.dbt_python)
    if {"library", "compare"} & set(args.only):
        pristine = WORK / f"demo-{args.scale:g}"
        if not (pristine / "data" / "demo.duckdb").exists():
            prepare_demo(pristine, scale=args.scale, seed=42, as_of=AS_OF)
        if "library" in args.only:
            library_row(pristine, args.repeat)
        if "compare" in args.only:
            compare_rows(pristine, args.repeat)
    if "show" in args.only:
        show_row(args.members, args.repeat)


if __name__ == "__main__":
    main()
