"""Engines benchmark: each starter segment on DuckDB, PostgreSQL and Spark (local) over the same
demo data, plus Spark with 1 and 2 local cores. No targets: the goal is correctness and a path
to scale; numbers go to benchmarks/RESULTS.md.

    python benchmarks/engines.py [--scale 30]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from segsql import Project
from segsql.demo.project import prepare_demo
from tests import engines
from tests.pg import PostgresServer, copy_duckdb_tables
from tests.test_spark import spark_config

WORK = Path(__file__).resolve().parent / ".work" / "engines"
AS_OF = dt.date(2026, 11, 23)


def time_segments(project: Project, names: list[str]) -> dict[str, float]:
    project.run(select=names[:1])  # warm up: connections, JVM, catalog
    out = {}
    for name in names:
        start = time.perf_counter()
        project.run(select=[name])
        out[name] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=30)
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    duck_root = WORK / "duck"
    project, stats = prepare_demo(duck_root, scale=args.scale, seed=42, as_of=AS_OF)
    names = project.select()
    database = duck_root / "data" / "demo.duckdb"
    server = PostgresServer().start()
    os.environ["SEGSQL_BENCH_PGPASSWORD"] = "s3cret-pw"
    try:
        started = time.perf_counter()
        copy_duckdb_tables(database, server, engines.TABLES)
        load_pg = time.perf_counter() - started
        pg_root = WORK / "pg"
        shutil.copytree(duck_root, pg_root, ignore=shutil.ignore_patterns("data", "target"))
        default = ("connection:\n  type: duckdb\n  path: data/demo.duckdb        # `segsql demo` fills it; "
                   ":memory: also works\n")
        config = (pg_root / "segsql.yml").read_text().replace(default, server.config_yaml("SEGSQL_BENCH_PGPASSWORD"))
        (pg_root / "segsql.yml").write_text(config)
        spark_root = WORK / "spark"
        shutil.copytree(duck_root, spark_root, ignore=shutil.ignore_patterns("data", "target"))
        (spark_root / "data" / "parquet").mkdir(parents=True)
        connection = duckdb.connect(str(database), read_only=True)
        for table in engines.TABLES:
            connection.execute(f"COPY {table} TO '{spark_root / 'data' / 'parquet' / table}.parquet' (FORMAT parquet)")
        connection.close()
        base = spark_config((duck_root / "segsql.yml").read_text())
        results = {"duckdb": time_segments(Project.load(duck_root, as_of=AS_OF), names),
                   "postgres": time_segments(Project.load(pg_root, as_of=AS_OF), names)}
        for cores in (1, 2):
            (spark_root / "segsql.yml").write_text(base.replace("master: local[2]", f"master: local[{cores}]"))
            from pyspark.sql import SparkSession

            active = SparkSession.getActiveSession()
            if active is not None:
                active.stop()
            results[f"spark local[{cores}]"] = time_segments(Project.load(spark_root, as_of=AS_OF), names)
    finally:
        server.cleanup()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(f"demo scale {args.scale:g}: {stats.accounts:,} accounts, {stats.users:,} users, {stats.events:,} events; "
          f"Postgres load (COPY) {load_pg:.0f} s; one `segsql run --select NAME` each, after a warm-up")
    engines_ = list(results)
    print(f"{'segment':30} " + " ".join(f"{e:>16}" for e in engines_))
    for name in names:
        print(f"{name:30} " + " ".join(f"{results[e][name]:15.2f}s" for e in engines_))
    print(f"{'total':30} " + " ".join(f"{sum(results[e].values()):15.2f}s" for e in engines_))


if __name__ == "__main__":
    main()
