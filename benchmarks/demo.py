"""Demo benchmark: what `segsql demo` costs with this checkout's generator against another
revision's (e.g. the 90-day generator before the churn signal, #18).

For each repeat, alternated so both see the same machine state, in one process:

- generate: `segsql.demo.generate.generate` of that revision into a fresh DuckDB file;
- demo: what `segsql demo` does: the starter project, the data, then `Project.run()` of every
  starter segment (this checkout's segments and pipeline for both: only the data differs).

The baseline's generate.py is read with `git show REV:segsql/demo/generate.py` and loaded as a
module; it must import nothing from segsql that this checkout lacks.

    python benchmarks/demo.py --baseline 6419abc [--scale 1] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from segsql.demo import generate as current
from segsql.demo import project as demo_project

REPO = Path(__file__).resolve().parent.parent
WORK = Path(__file__).resolve().parent / ".work" / "demo"
AS_OF = dt.date(2026, 11, 30)


def baseline_module(revision: str) -> ModuleType:
    source = subprocess.run(["git", "show", f"{revision}:segsql/demo/generate.py"], cwd=REPO, check=True,
                            capture_output=True, text=True, timeout=60).stdout
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "baseline_generate.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("baseline_generate", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def time_generate(module: ModuleType, scale: float, name: str) -> tuple[float, int]:
    target = WORK / f"{name}.duckdb"
    target.unlink(missing_ok=True)
    start = time.perf_counter()
    stats = module.generate(target, scale=scale, seed=42, today=AS_OF)
    return time.perf_counter() - start, int(stats.events)


def time_demo(module: ModuleType, scale: float, name: str) -> float:
    folder = WORK / f"project_{name}"
    shutil.rmtree(folder, ignore_errors=True)
    original: Any = demo_project.generate
    demo_project.generate = module.generate  # prepare_demo calls the name it imported
    try:
        start = time.perf_counter()
        project, _ = demo_project.prepare_demo(folder, scale=scale, seed=42, as_of=AS_OF)
        result = project.run()
        elapsed = time.perf_counter() - start
        project.close()
    finally:
        demo_project.generate = original
    assert result.ok, result
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision of the generator to compare with")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    modules = {"baseline": baseline_module(args.baseline), "current": current}
    import pandas  # noqa: F401  # both generators import it through pyarrow; not in either's time

    generate_times: dict[str, list[float]] = {name: [] for name in modules}
    demo_times: dict[str, list[float]] = {name: [] for name in modules}
    events = {}
    for _ in range(args.repeat):
        for name, module in modules.items():
            seconds, events[name] = time_generate(module, args.scale, name)
            generate_times[name].append(seconds)
            demo_times[name].append(time_demo(module, args.scale, name))
    print(f"machine: {platform.machine()} {platform.processor() or ''}, Python {platform.python_version()}, "
          f"{dt.date.today()}; scale {args.scale}, median of {args.repeat}, alternated")
    print(f"events: baseline ({args.baseline}) {events['baseline']:,}, current {events['current']:,}")
    print("| measure | current | baseline | ratio |")
    print("|---|---|---|---|")
    for label, times in (("generate", generate_times), ("`segsql demo` (generate + run every segment)", demo_times)):
        now, before = statistics.median(times["current"]), statistics.median(times["baseline"])
        print(f"| {label} | {now:.2f} s | {before:.2f} s | {now / before:.3f} |")


if __name__ == "__main__":
    main()
