"""segsql.yml: strict models, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from segsql import ConfigError, Project
from tests.conftest import write_files


def load_error(tmp_path: Path, config: str) -> ConfigError:
    write_files(tmp_path, {"segsql.yml": config})
    with pytest.raises(ConfigError) as caught:
        Project.load(tmp_path)
    return caught.value


@pytest.mark.parametrize(("config", "fragment", "line", "col"), [
    ("dialect: duckdb\nsourcse: {}\n", "unknown key `sourcse`", 2, 1),
    ("dialect: mysql\n", "`dialect`", 1, 1),
    ("sources:\n  a:\n    table: x\n    path: y.csv\n", "exactly one of `table` or `path`", 2, 3),
    ("connection:\n  type: postgres\n  dbname: d\n  user: u\n  password: hunter2\n", "unknown key `connection.password`", 5, 3),
    ("connection:\n  type: postgres\n  user: u\n", "missing required key `connection.dbname`", 1, 1),
    ("entities:\n  account:\n    key: [1]\n", "`entities.account.key`", 3, 5),
    ("entities:\n  account:\n    key: id\n    source: nope\n", "unknown source `nope`", 4, 5),
    ("entities:\n  a: {key: id}\n  u: {key: uid, parent: acount}\n", "unknown parent entity `acount`", 3, 17),
    ("sources:\n  bad-name: {table: t}\n", "must be a plain identifier", 2, 3),
    ("dialect: duckdb\ndialect: postgres\n", "duplicate key `dialect`", 2, 1),
    ("sources: [1,\n", "invalid YAML", 2, 1),
    ("- just\n- a list\n", "must be a mapping", 1, 1),
])
def test_config_errors_name_key_and_line(tmp_path: Path, config: str, fragment: str, line: int, col: int) -> None:
    error = load_error(tmp_path, config)
    assert fragment in error.message, str(error)
    assert (error.path, error.line, error.col) == ("segsql.yml", line, col), str(error)


def test_missing_project_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Project.load(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"no segsql\.yml"):
        Project.load(tmp_path)


def test_empty_config_gives_defaults(tmp_path: Path) -> None:
    write_files(tmp_path, {"segsql.yml": "# nothing yet\n"})
    project = Project.load(tmp_path)
    assert project.config.dialect == "duckdb" and project.config.connection.type == "duckdb"


def test_non_utf8_config(tmp_path: Path) -> None:
    write_files(tmp_path, {"segsql.yml": b"name: \xff\n"})
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        Project.load(tmp_path)
