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
