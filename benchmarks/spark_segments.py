"""Spark per segment (issue #20): `Project.run(select=[name])` on Spark against bare PySpark running
the same compiled SQL, in one process and one SparkSession (local[2]), so the JVM start counts on
neither side. Target: per segment ≤ 1.3x; at most one Spark job per segment.

  segsql    Project.run(select=[name]) on the spark profile of the demo (scale 1, Parquet sources)
  bare      spark.sql(Project.compile(name)).write.mode("overwrite").saveAsTable("bare.<name>"):
            what a user would do to materialise the members, over the same temp views

Each (segsql, bare) pair is interleaved, repeated --repeat times; medians of wall seconds. Spark
jobs are counted per run (the engine's job group plus jobs without a group). Then, with
--profile, every statement segsql sends to Spark during one run of each of --profile-segments
segments is listed with its time (SparkSession.sql and the engine's collects, wrapped at runtime).

    python benchmarks/spark_segments.py [--scale 1] [--repeat 3] [--segments N] [--profile]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from segsql import Project
from segsql.demo.project import prepare_demo
from tests.test_spark import copy_as_parquet, spark_config

WORK = Path(__file__).resolve().parent / ".work" / "spark_segments"
AS_OF = dt.date(2026, 11, 23)


class Jobs:
    """Spark job ids seen by the status tracker: a job group's, plus those without a group."""

    def __init__(self, spark: Any):
        self.tracker = spark.sparkContext.statusTracker()

    def ungrouped(self) -> set[int]:
        return set(self.tracker.getJobIdsForGroup(None))

    def of(self, group: str) -> set[int]:
        return set(self.tracker.getJobIdsForGroup(group))


class Statements:
    """Every SparkSession.sql call and engine collect while recording, with its wall time and its
    nesting depth (the engine's first use of its session re-points the stored tables inside
    whichever call touched the session first)."""

    def __init__(self) -> None:
        self.recording = False
        self.depth = 0
        self.log: list[list[Any]] = []  # [kind, seconds, text, depth, jobs started], in call order
        self.groups: list[str] = []
        self.total_jobs: Callable[[], int] = lambda: 0

    @contextmanager
    def record(self) -> Iterator[list[list[Any]]]:
        self.log, self.groups, self.recording, self.depth = [], [], True, 0
        try:
            yield self.log
        finally:
            self.recording = False

    def install(self) -> None:
        from pyspark.sql import SparkSession

        from segsql.engines.spark import SparkEngine

        recorder = self

        def timed(kind: str, original: Callable[..., Any], text: Callable[..., str]) -> Callable[..., Any]:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if not recorder.recording:
                    return original(*args, **kwargs)
                entry = [kind, 0.0, text(*args, **kwargs), recorder.depth, 0]
                recorder.log.append(entry)
                recorder.depth += 1
                jobs = recorder.total_jobs()
                start = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    entry[1] = time.perf_counter() - start
                    entry[4] = recorder.total_jobs() - jobs
                    recorder.depth -= 1
            return wrapper

        SparkSession.sql = timed("spark.sql", SparkSession.sql, lambda _s, query, *a, **k: str(query))
        SparkEngine._collect = timed("collect", SparkEngine._collect,
                                     lambda _e, _frame, how="collect": f"DataFrame.{how}() of the statement above")
        SparkEngine.prepare_sources = timed("prepare_sources", SparkEngine.prepare_sources,
                                            lambda _e: "read.parquet + createOrReplaceTempView per file source")
        SparkEngine._register_storage = timed("register_storage", SparkEngine._register_storage,
                                              lambda _e: "first use of the session: re-point every stored table")
        original_own = SparkEngine._own_jobs

        def own_jobs(engine: Any) -> None:
            if engine._job_group not in recorder.groups:
                recorder.groups.append(engine._job_group)
            original_own(engine)
        SparkEngine._own_jobs = own_jobs


def build(scale: float) -> Path:
    shutil.rmtree(WORK, ignore_errors=True)
    duck_root = WORK / "duck"
    prepare_demo(duck_root, scale=scale, seed=42, as_of=AS_OF)
    spark_root = copy_as_parquet(duck_root, duck_root / "data" / "demo.duckdb", WORK / "spark")
    shutil.rmtree(spark_root / "target", ignore_errors=True)
    (spark_root / "segsql.yml").write_text(spark_config((duck_root / "segsql.yml").read_text()))
    return spark_root


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--segments", type=int, default=0, help="only the first N segments (0: all)")
    parser.add_argument("--profile", action="store_true", help="list segsql's Spark statements per segment run")
    parser.add_argument("--profile-segments", type=int, default=3)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # only matters for child processes; none here
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    started = time.perf_counter()
    root = build(args.scale)
    built = time.perf_counter() - started
    project = Project.load(root, as_of=AS_OF)
    names = project.select()
    chosen = names[: args.segments] if args.segments else names
    recorder = Statements()
    recorder.install()

    started = time.perf_counter()
    project.run()  # untimed: starts the JVM, creates every segment's table (refs read them)
    warm = time.perf_counter() - started
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()  # the session segsql started
    jobs = Jobs(spark)
    # The project's dialect is the one its segments are written in (duckdb); Spark needs them compiled for it.
    sqls = {name: project.compile(name, dialect="spark") for name in chosen}
    bare_views(spark, project, root)

    def segsql_once(name: str, index: int) -> tuple[float, int]:
        before = jobs.ungrouped()
        # Jobs before the engine sets its own job group (it is thread-local) land in this one.
        spark.sparkContext.setJobGroup(f"before-segsql-{name}-{index}", "segsql run")
        with recorder.record():
            start = time.perf_counter()
            project.run(select=[name])
            seconds = time.perf_counter() - start
            groups = list(recorder.groups)
        groups.append(f"before-segsql-{name}-{index}")
        count = len(jobs.ungrouped() - before) + sum(len(jobs.of(g)) for g in groups)
        return seconds, count

    def bare_once(name: str, index: int) -> tuple[float, int]:
        group = f"bare-{name}-{index}"
        before = jobs.ungrouped()
        spark.sparkContext.setJobGroup(group, "bare")
        start = time.perf_counter()
        spark.sql(sqls[name]).write.mode("overwrite").saveAsTable(f"bare.{name}")
        seconds = time.perf_counter() - start
        return seconds, len(jobs.ungrouped() - before) + len(jobs.of(group))

    for name in chosen[:1]:  # one untimed bare write too (saveAsTable's first call loads classes)
        bare_once(name, -1)
    timings: dict[str, dict[str, list[float]]] = {n: {"segsql": [], "bare": [], "sjobs": [], "bjobs": []}
                                                  for n in chosen}
    for index in range(args.repeat):
        for name in chosen:
            order = ("segsql", "bare") if index % 2 == 0 else ("bare", "segsql")
            for side in order:
                seconds, count = segsql_once(name, index) if side == "segsql" else bare_once(name, index)
                timings[name][side].append(seconds)
                timings[name]["sjobs" if side == "segsql" else "bjobs"].append(count)
        print(f"  repeat {index + 1}/{args.repeat} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, pyspark {spark.version}, master {spark.sparkContext.master}")
    print(f"demo scale {args.scale:g} (built in {built:.0f} s); warm-up run of all {len(names)} segments {warm:.1f} s; "
          f"{len(chosen)} segments timed; medians of {args.repeat}, (segsql, bare) interleaved, order alternating")
    if args.repeat:
        table(chosen, timings)
    if args.profile:
        profile(project, chosen[: args.profile_segments], recorder, jobs)


def bare_views(spark: Any, project: Project, root: Path) -> None:
    """The same temp views over the Parquet files that segsql's engine registers (the compiled SQL
    reads them by the source's name), and a database for the bare tables."""
    spark.sql("CREATE DATABASE IF NOT EXISTS bare")
    for name, source in sorted(project.config.sources.items()):
        if source.path is not None:
            spark.read.parquet(str(root / source.path)).createOrReplaceTempView(name)


def table(chosen: list[str], timings: dict[str, dict[str, list[float]]]) -> None:
    print()
    print("| segment | segsql run (s) | bare PySpark CTAS (s) | ratio | Spark jobs segsql | Spark jobs bare |")
    print("|---|---|---|---|---|---|")
    total_s = total_b = 0.0
    for name in chosen:
        seg, bare = statistics.median(timings[name]["segsql"]), statistics.median(timings[name]["bare"])
        total_s, total_b = total_s + seg, total_b + bare
        sj, bj = statistics.median(timings[name]["sjobs"]), statistics.median(timings[name]["bjobs"])
        print(f"| {name} | {seg:.2f} | {bare:.2f} | {seg / bare:.2f} | {sj:g} | {bj:g} |")
    print(f"| **sum of {len(chosen)}** | {total_s:.2f} | {total_b:.2f} | {total_s / total_b:.2f} | | |")


def profile(project: Project, names: list[str], recorder: Statements, jobs: Jobs) -> None:
    """What segsql sends to Spark during one `Project.run(select=[name])`, statement by statement
    (nested calls indented under the call they ran in)."""
    from pyspark.sql import SparkSession

    context = SparkSession.builder.getOrCreate().sparkContext
    scheduler = context._jsc.sc().dagScheduler()  # its job counter: every job the driver started
    recorder.total_jobs = lambda: int(scheduler.numTotalJobs())
    for name in names:
        before = jobs.ungrouped()
        context.setJobGroup(f"before-profile-{name}", "segsql run")
        with recorder.record() as log:
            start = time.perf_counter()
            project.run(select=[name])
            wall = time.perf_counter() - start
            groups = [*recorder.groups, f"before-profile-{name}"]
        count = sum(len(jobs.of(g)) for g in groups) + len(jobs.ungrouped() - before)
        top = sum(entry[1] for entry in log if entry[3] == 0)
        print()
        print(f"### {name}: {wall:.2f} s wall, {len(log)} calls, {top:.2f} s inside them (outermost calls), "
              f"{wall - top:.2f} s in segsql's Python between them; Spark jobs {count}")
        print()
        print("| # | call | s | Spark jobs | statement |")
        print("|---|---|---|---|---|")
        for number, (kind, seconds, text, depth, started) in enumerate(log, 1):
            short = " ".join(text.split())
            short = short if len(short) <= 100 else short[:97] + "..."
            print(f"| {number} | {'↳ ' * depth}{kind} | {seconds:.3f} | {started} | `{short}` |")
        by_kind: dict[str, list[tuple[float, int]]] = {}
        for kind, seconds, text, depth, started in log:
            head = kind if kind != "spark.sql" else "spark.sql " + " ".join(text.split()[:2]).upper()
            by_kind.setdefault(f"{head} (depth {depth})", []).append((seconds, started))
        print()
        print("| kind | calls | s | Spark jobs |")
        print("|---|---|---|---|")
        for head, values in sorted(by_kind.items(), key=lambda kv: -sum(v[0] for v in kv[1])):
            print(f"| {head} | {len(values)} | {sum(v[0] for v in values):.3f} | {sum(v[1] for v in values)} |")


if __name__ == "__main__":
    main()
