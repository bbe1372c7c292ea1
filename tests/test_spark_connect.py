"""Spark Connect: a real Connect server (spark-submit of SparkConnectServer from the pyspark
installation, on loopback) and a profile with `remote: sc://...`: segments run through it with
DuckDB's members, a second run keeps history, and the results read back through the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from segsql import Project
from tests.conftest import stop_process
from tests.pg import _free_port
from tests.test_spark import REQUIRE_ALL, require_spark
from tests.test_spark_cluster import _listening, _wait
from tests.test_spark_history import SEGMENTS, spark_project

pytestmark = [pytest.mark.spark, pytest.mark.slow]
AS_OF = "2026-06-30"


def require_connect_client() -> None:
    import importlib.util

    missing = [name for name in ("grpc", "grpc_status", "zstandard") if importlib.util.find_spec(name) is None]
    if missing:
        problem = f"Spark Connect's client needs {', '.join(missing)}: pip install 'segsql[spark-connect]'"
        if REQUIRE_ALL:
            pytest.fail(problem + " (SEGSQL_REQUIRE_ALL=1)")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_spark()
    require_connect_client()
    from pyspark.find_spark_home import _find_spark_home

    home, port = Path(_find_spark_home()), _free_port()
    log = tmp_path_factory.mktemp("connect") / "server.log"
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_SCALA_VERSION": "2.13", "PYSPARK_PYTHON": sys.executable}
    command = [str(home / "bin" / "spark-submit"), "--master", "local[2]", "--driver-memory", "768m",
               "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
               "--conf", f"spark.connect.grpc.binding.port={port}", "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
               "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=4", "spark-internal"]
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait("the Spark Connect server", lambda: server.poll() is None and _listening(port), log)
        yield f"sc://127.0.0.1:{port}"
    finally:
        stop_process(server, 60)


def segsql(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own: PySpark cannot mix Spark Connect with the local drivers
    other tests start in this one."""
    done = subprocess.run([sys.executable, "-m", "segsql", *args], capture_output=True, text=True, timeout=timeout,
                          check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def connect_project(root: Path, url: str) -> None:
    spark_project(root)  # two segments (one refs the other) over a Parquet source
    config = root / "segsql.yml"
    config.write_text(config.read_text() + f"profiles:\n  connect: {{type: spark, remote: '{url}', "
                      "warehouse: wh-connect}\n  duck: {type: duckdb, path: duck.duckdb}\n")


def test_segments_run_through_spark_connect_with_duckdbs_members(connect_url: str, tmp_path: Path) -> None:
    connect_project(tmp_path, connect_url)
    duck = Project.load(tmp_path, as_of=AS_OF, target="duck")
    duck.run()
    where = ("--project", str(tmp_path), "--target", "connect", "--as-of", AS_OF)
    segsql("validate", *where)
    for _ in range(2):
        segsql("run", *where)
    compared = 0
    for name in SEGMENTS:
        on_duckdb = {str(k) for k in duck.members(name)["account_id"]}
        shown = json.loads(segsql("show", name, "--all", "--format", "json", *where).stdout)
        assert {str(row["account_id"]) for row in shown} == on_duckdb, name
        compared += len(on_duckdb)
    assert compared > 10  # not vacuous
    runs = json.loads(segsql("history", next(iter(SEGMENTS)), "--format", "json", *where).stdout)
    assert len(runs) == 2  # both runs recorded


MIXED = """
import sys
from segsql import EngineError, Project
from sqlglot import exp
first, then = sys.argv[2], sys.argv[3]
with Project.load(sys.argv[1], target=first).connect() as engine:
    engine.table_exists(exp.to_table("segsql.runs"))
try:
    with Project.load(sys.argv[1], target=then).connect() as engine:
        engine.table_exists(exp.to_table("segsql.runs"))
except EngineError as refused:
    print(refused.message)
    print(refused.hint)
"""


@pytest.mark.parametrize("first, then", [("connect", "local"), ("local", "connect")])
def test_a_local_driver_and_spark_connect_in_one_process_are_refused_by_name(
        connect_url: str, tmp_path: Path, first: str, then: str) -> None:
    connect_project(tmp_path, connect_url)
    config = tmp_path / "segsql.yml"
    config.write_text(config.read_text() + "  local: {type: spark, master: 'local[1]', warehouse: wh-local}\n")
    done = subprocess.run([sys.executable, "-c", MIXED, str(tmp_path), first, then], capture_output=True, text=True,
                          timeout=600, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = ("cannot start a Spark driver (local[1]) in a process that has used Spark Connect" if then == "local"
                else f"cannot use Spark Connect ({connect_url}) in a process that runs a local Spark driver")
    assert expected in done.stdout, done.stdout
    assert "run the other target in another process" in done.stdout
