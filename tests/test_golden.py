"""Golden compiled SQL: the starter library and one fixture per template helper, per dialect.

Each golden file is the exact compiled SQL; it must re-parse in its dialect. DuckDB goldens are
executed on fixture data: the golden and the freshly compiled SQL return the same rows, and the
starter segments return the members pinned in tests/fixture_data.py.
Regenerate with `make goldens` (SEGSQL_UPDATE_GOLDENS=1) and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest
import sqlglot

from segsql import Project
from segsql.config import DIALECTS
from segsql.starter.scaffold import create_project
from tests import fixture_data
from tests.conftest import AS_OF, BASE_CONFIG, write_files

GOLDEN = Path(__file__).parent / "golden"
TEMPLATES = Path(__file__).parent / "fixtures" / "templates"
UPDATE = os.environ.get("SEGSQL_UPDATE_GOLDENS") == "1"


@pytest.fixture(scope="module")
def starter(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("golden") / "starter"
    create_project(root)
    fixture_data.build(root / "fixture.duckdb")
    return Project.load(root, as_of=AS_OF)


@pytest.fixture(scope="module")
def builtins_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("golden") / "builtins"
    write_files(root, {"segsql.yml": BASE_CONFIG})
    for path in sorted(TEMPLATES.glob("*.sql")):
        write_files(root, {f"segments_sql/{path.name}": path.read_text(encoding="utf-8")})
    return Project.load(root, as_of=AS_OF)


def starter_names() -> list[str]:
    return sorted(p.stem for p in (Path(__file__).parent.parent / "segments_sql").rglob("*.sql"))


def template_names() -> list[str]:
    return sorted(p.stem for p in TEMPLATES.glob("*.sql"))


def check_golden(project: Project, group: str, name: str, dialect: str) -> str:
    compiled = project.compile(name, dialect=dialect) + "\n"
    path = GOLDEN / group / dialect / f"{name}.sql"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(compiled, encoding="utf-8")
    assert path.exists(), f"no golden file {path}; run `make goldens`"
    assert compiled == path.read_text(encoding="utf-8"), f"{path} differs; run `make goldens` and review"
    sqlglot.parse_one(compiled, dialect=dialect)  # re-parses in its own dialect
    return compiled


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", starter_names())
def test_starter_golden(starter: Project, name: str, dialect: str) -> None:
    check_golden(starter, "starter", name, dialect)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", template_names())
def test_builtin_golden(builtins_project: Project, name: str, dialect: str) -> None:
    check_golden(builtins_project, "builtins", name, dialect)


@pytest.mark.parametrize("name", starter_names())
def test_starter_golden_runs_on_duckdb(starter: Project, name: str) -> None:
    golden = (GOLDEN / "starter" / "duckdb" / f"{name}.sql").read_text(encoding="utf-8")
    key = starter.config.entities[starter.compiled(name).entity].key
    connection = duckdb.connect(str(starter.root / "fixture.duckdb"), read_only=True)
    try:
        from_golden = connection.execute(golden).fetchall()
        from_compiler = connection.execute(starter.compile(name)).fetchall()
        columns = [c[0] for c in connection.execute(golden).description]
    finally:
        connection.close()
    assert sorted(from_golden) == sorted(from_compiler)
    if name in fixture_data.STARTER_MEMBERS:  # the rest are pinned by their own unit tests
        members = sorted(row[columns.index(key)] for row in from_golden)
        assert members == fixture_data.STARTER_MEMBERS[name]
