"""Spark Connect: a real Connect server (spark-submit of SparkConnectServer from the pyspark
installation, on loopback) and a profile with `remote: sc://...`: segments run through it with
DuckDB's members, a second run keeps history, and the results read back through the server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from segsql import Project
from tests.pg import _free_port
from tests.test_spark import require_spark
from tests.test_spark_cluster import _listening, _wait
from tests.test_spark_history import SEGMENTS, spark_project

pytestmark = [pytest.mark.spark, pytest.mark.slow]
AS_OF = "2026-06-30"


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_spark()
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
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def test_segments_run_through_spark_connect_with_duckdbs_members(connect_url: str, tmp_path: Path) -> None:
    spark_project(tmp_path)  # two segments (one refs the other) over a Parquet source
    config = tmp_path / "segsql.yml"
    config.write_text(config.read_text() + f"profiles:\n  connect: {{type: spark, remote: '{connect_url}', "
                      "warehouse: wh-connect}\n  duck: {type: duckdb, path: duck.duckdb}\n")
    duck = Project.load(tmp_path, as_of=AS_OF, target="duck")
    duck.run()
    remote = Project.load(tmp_path, as_of=AS_OF, target="connect")
    assert [str(e) for e in remote.validate()] == [], [str(w) for w in remote.warnings]
    for _ in range(2):
        assert remote.run().ok
    compared = 0
    for name in SEGMENTS:
        on_duckdb = {str(k) for k in duck.members(name)["account_id"]}
        assert {str(k) for k in remote.members(name)["account_id"]} == on_duckdb, name
        assert remote.size(name) == len(on_duckdb)
        compared += len(on_duckdb)
    assert compared > 10  # not vacuous
    history = remote.changes(next(iter(SEGMENTS)))
    assert len(history) == 2  # both runs recorded
