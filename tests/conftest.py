"""Shared fixtures: small projects written to a temp folder, and a CLI runner."""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from segsql import Project

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-23"
REQUIRE_ALL = os.environ.get("SEGSQL_REQUIRE_ALL") == "1"

BASE_CONFIG = """\
dialect: duckdb
sources:
  accounts:
    table: accounts
    columns: {account_id: BIGINT, name: VARCHAR, arr: DOUBLE, region: VARCHAR, country: VARCHAR, signup_date: DATE}
  users:
    table: users
    columns: {user_id: BIGINT, account_id: BIGINT, role: VARCHAR, country: VARCHAR, last_seen_at: TIMESTAMP}
entities:
  account: {key: account_id, source: accounts}
  user: {key: user_id, source: users, parent: account}
vars:
  regions: [DACH]
"""

ProjectFactory = Callable[..., Project]


def stop_process(process: Any, grace_seconds: float) -> None:
    """Terminate a server the tests started, killing it if it outlives the grace period."""
    import subprocess

    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace_seconds)


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")


def write_tables(database: Path, tables: dict[str, Any]) -> None:
    """Each pandas frame as a table of the DuckDB file `database` (replacing one of that name)."""
    import duckdb

    connection = duckdb.connect(str(database))
    try:
        for name, frame in tables.items():
            connection.register("frame", frame)
            connection.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM frame")
            connection.unregister("frame")
    finally:
        connection.close()


@pytest.fixture
def make_project(tmp_path: Path) -> ProjectFactory:
    """make_project({'name': template, ...}, config=..., files={...}) -> Project."""

    def factory(segments: dict[str, str] | None = None, config: str = BASE_CONFIG,
                files: dict[str, str | bytes] | None = None, **options: object) -> Project:
        write_files(tmp_path, {"segsql.yml": config})
        write_files(tmp_path, {f"segments_sql/{n}.sql": t for n, t in (segments or {}).items()})
        write_files(tmp_path, files or {})
        options.setdefault("as_of", AS_OF)
        return Project.load(tmp_path, **options)  # type: ignore[arg-type]

    return factory


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def starter_project(tmp_path: Path) -> Path:
    """A fresh `segsql init` project (starter config and segment library)."""
    from segsql.starter.scaffold import create_project

    root = tmp_path / "starter"
    create_project(root)
    return root


def copy_tree(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


# -- fakesnow: a Snowflake emulator (on DuckDB), run as an HTTP server from its own venv ----------
# fakesnow pins its own sqlglot and duckdb, so it cannot share segsql's environment: .ci/run builds
# .ci/fakesnow-venv and exports SEGSQL_FAKESNOW_PYTHON; segsql's real snowflake-connector-python
# talks to it over HTTP on 127.0.0.1.
FAKESNOW_STARTUP_SECONDS = 60


def fakesnow_python() -> str:
    """The interpreter of the venv fakesnow is installed in (skip, or fail under SEGSQL_REQUIRE_ALL)."""
    import subprocess

    candidate = os.environ.get("SEGSQL_FAKESNOW_PYTHON") or str(REPO / ".ci" / "fakesnow-venv" / "bin" / "python")
    try:
        ok = subprocess.run([candidate, "-c", "import fakesnow, uvicorn"], check=False, capture_output=True,
                            timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        reason = (f"fakesnow is not installed for {candidate}: python3 -m venv .ci/fakesnow-venv && "
                  ".ci/fakesnow-venv/bin/pip install 'fakesnow[server]==0.12.1' (or set SEGSQL_FAKESNOW_PYTHON)")
        if REQUIRE_ALL:
            pytest.fail(f"{reason} (SEGSQL_REQUIRE_ALL=1)")
        pytest.skip(reason)
    try:
        import snowflake.connector  # noqa: F401
    except ImportError:
        if REQUIRE_ALL:
            pytest.fail("snowflake-connector-python is not installed (SEGSQL_REQUIRE_ALL=1): pip install 'segsql[snowflake]'")
        pytest.skip("snowflake-connector-python is not installed")
    return candidate


@pytest.fixture(scope="session")
def fakesnow_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A fakesnow server on a free loopback port: yields (host, port); stopped afterwards."""
    import socket
    import subprocess
    import time

    python = fakesnow_python()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log = tmp_path_factory.mktemp("fakesnow") / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen([python, "-m", "fakesnow", "-s", "--host", "127.0.0.1", "-p", str(port)],
                                   stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + FAKESNOW_STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"fakesnow exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"fakesnow did not listen on port {port} within {FAKESNOW_STARTUP_SECONDS} s")
                time.sleep(0.2)
        yield ("127.0.0.1", port)
    finally:
        stop_process(process, 15)


@pytest.fixture(scope="session")
def tour_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project as a git repository with one segment edited since its commit (tests/tour.py),
    built once; the notebook tests copy it."""
    from tests.tour import build_template

    return build_template(tmp_path_factory.mktemp("tour-template"))
