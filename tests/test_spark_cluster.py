"""Spark on a real standalone cluster: a master and two workers started from the pyspark
installation on loopback, segments run through `segsql run --target cluster` (a profile whose
`master:` is the cluster's URL), members equal DuckDB's, and the executors ran on the workers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from segsql import Project
from tests.test_spark import require_spark
from tests.test_spark_history import SEGMENTS, spark_project

pytestmark = [pytest.mark.spark, pytest.mark.slow]
AS_OF = "2026-06-30"
START_SECONDS = 120  # JVM start-up on a loaded 2-core machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(what: str, ready: object, log: Path, seconds: float = START_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise AssertionError(f"{what} not ready after {seconds} s:\n{tail}")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Cluster:
    """`java -cp $SPARK_HOME/jars/* org.apache.spark.deploy.{master.Master,worker.Worker}`: the
    pip pyspark has the jars but not the sbin start scripts."""

    def __init__(self, folder: Path) -> None:
        from pyspark.find_spark_home import _find_spark_home

        self.home, self.folder = Path(_find_spark_home()), folder
        self.port = _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []
        # SPARK_SCALA_VERSION: without a RELEASE file (pip's pyspark has none) the worker's
        # launcher looks for a source build ("Cannot find any build directories")
        self.env = {**os.environ, "SPARK_HOME": str(self.home), "SPARK_LOCAL_IP": "127.0.0.1",
                    "SPARK_SCALA_VERSION": "2.13", "PYSPARK_PYTHON": sys.executable}

    def _java(self, name: str, main: str, *arguments: str) -> Path:
        log = self.folder / f"{name}.log"
        command = ["java", "-Xmx512m", "-cp", f"{self.home / 'jars'}/*", main, *arguments]
        with log.open("wb") as out:
            self.processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                                   cwd=self.folder))
        return log

    def start(self) -> Cluster:
        master = self._java("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                            "--port", str(self.port), "--webui-port", str(_free_port()))
        _wait("the Spark master", lambda: _listening(self.port), master)
        for number in (1, 2):
            work = self.folder / f"worker{number}"
            work.mkdir()
            self._java(f"worker{number}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                       "--cores", "1", "--memory", "1g", "--webui-port", str(_free_port()), "--work-dir", str(work),
                       self.url)
        _wait("two Spark workers", lambda: master.read_text(errors="replace").count("Registering worker") >= 2,
              master)
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_spark()
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield running.start()
    finally:
        running.stop()


def test_segments_run_on_a_standalone_cluster_with_duckdbs_members(cluster: Cluster,
                                                                  tmp_path: Path) -> None:
    spark_project(tmp_path)  # two segments (one refs the other) over a Parquet source
    profiles = (f"profiles:\n  cluster:\n    type: spark\n    master: {cluster.url}\n    warehouse: wh-cluster\n"
                "    conf: {spark.executor.memory: 512m, spark.cores.max: '2', spark.driver.host: 127.0.0.1}\n"
                "  duck: {type: duckdb, path: duck.duckdb}\n")
    config = tmp_path / "segsql.yml"
    config.write_text(config.read_text() + profiles)
    command = [sys.executable, "-m", "segsql", "run", "--project", str(tmp_path), "--target", "cluster",
               "--as-of", AS_OF]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=cluster.env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    duck = Project.load(tmp_path, as_of=AS_OF, target="duck")
    duck.run()
    pointer = json.loads((tmp_path / "wh-cluster" / "segsql" / "current.json").read_text())
    reader, compared = duckdb.connect(), 0
    for name in SEGMENTS:
        on_cluster = {str(r[0]) for r in reader.execute(
            f"SELECT account_id FROM read_parquet('{pointer[name]['location']}/*.parquet')").fetchall()}
        on_duckdb = {str(k) for k in duck.members(name)["account_id"]}
        assert on_cluster == on_duckdb, name
        compared += len(on_duckdb)
    reader.close()
    assert compared > 10  # not vacuous
    # the work was distributed: each worker launched an executor for the application
    for number in (1, 2):
        assert list((cluster.folder / f"worker{number}").glob("app-*/*/stderr")), f"worker{number} ran nothing"
