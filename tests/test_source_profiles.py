"""One project on every engine: a source names its location per profile (a table on Postgres,
files on DuckDB or Spark), and `validate --target X` checks what X will read."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from segsql import ConfigError, Project
from segsql.cli.main import cli
from tests.conftest import AS_OF, write_files

SEGMENT = ("{{ config(entity='customer') }}\nSELECT c.c_custkey FROM {{ source('customers') }} AS c "
           "WHERE c.c_nationkey = 3")


def _config(profiles: str, locations: str) -> str:
    return ("connection: {type: duckdb, path: data/empty.duckdb}\n" + profiles +
            "sources:\n  customers:\n    path: data/customers.parquet\n"
            "    columns: {c_custkey: BIGINT, c_nationkey: INTEGER}\n" + locations +
            "entities:\n  customer: {key: c_custkey, source: customers}\n")


def _data(root: Path) -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect(str(root / "data" / "tables.duckdb"))
    connection.execute("CREATE TABLE customers AS SELECT range AS c_custkey, (range % 7)::INTEGER AS c_nationkey "
                       "FROM range(1, 701)")
    connection.execute(f"COPY customers TO '{root / 'data' / 'customers.parquet'}' (FORMAT parquet)")
    connection.close()


def test_each_profile_reads_the_source_where_it_is(tmp_path: Path) -> None:
    config = _config("profiles:\n  warehouse: {type: duckdb, path: data/tables.duckdb}\n",
                     "    profiles:\n      warehouse: {table: customers}\n")
    write_files(tmp_path, {"segsql.yml": config, "segments_sql/nation_three.sql": SEGMENT})
    _data(tmp_path)
    on_files = Project.load(tmp_path, as_of=AS_OF)
    on_tables = Project.load(tmp_path, as_of=AS_OF, target="warehouse")
    assert on_tables.config.sources["customers"].table == "customers"
    assert on_tables.config.sources["customers"].path is None
    assert on_files.config.sources["customers"].path == "data/customers.parquet"
    on_files.run()
    on_tables.run()
    assert sorted(on_files.members("nation_three").c_custkey) == sorted(on_tables.members("nation_three").c_custkey)
    assert on_files.size("nation_three") == 100


def test_validate_for_a_table_engine_refuses_file_sources_at_their_line(tmp_path: Path) -> None:
    os.environ.setdefault("SEGSQL_TEST_PGPASSWORD", "unused")
    profiles = ("profiles:\n  pg: {type: postgres, host: 127.0.0.1, dbname: x, user: u, "
                "password_env: SEGSQL_TEST_PGPASSWORD}\n")
    write_files(tmp_path, {"segsql.yml": _config(profiles, ""), "segments_sql/nation_three.sql": SEGMENT})
    result = CliRunner().invoke(cli, ["validate", "--project", str(tmp_path), "--target", "pg"])
    assert result.exit_code == 1
    assert "segsql.yml:6:" in result.output and "which a postgres connection cannot read" in result.output
    assert "sources.customers.profiles.<profile>.table" in result.output
    write_files(tmp_path, {"segsql.yml": _config(profiles, "    profiles:\n      pg: {table: tpch.customer}\n")})
    fixed = CliRunner().invoke(cli, ["validate", "--project", str(tmp_path), "--target", "pg"])
    assert fixed.exit_code == 0, fixed.output
    assert Project.load(tmp_path, target="pg").config.sources["customers"].table == "tpch.customer"


def test_a_location_for_an_unknown_profile_is_a_located_error(tmp_path: Path) -> None:
    write_files(tmp_path, {"segsql.yml": _config("profiles:\n  warehouse: {type: duckdb}\n",
                                                 "    profiles:\n      warehous: {table: customers}\n")})
    with pytest.raises(ConfigError) as caught:
        Project.load(tmp_path)
    assert "unknown profile `warehous`" in caught.value.message and "did you mean `warehouse`?" in (caught.value.hint or "")
    assert caught.value.line == 9


@pytest.mark.parametrize("kind", ["duckdb", "postgres", "spark", "dbapi"])
def test_file_readers_match_each_adapter(kind: str) -> None:
    from segsql.engines import FILE_READERS, REGISTRY

    module_name, class_name = REGISTRY[kind][0].split(":")
    try:
        adapter = getattr(importlib.import_module(module_name), class_name)
    except ImportError:
        pytest.skip(f"the {kind} driver is not installed")
    assert adapter.capabilities.reads_files == (kind in FILE_READERS)



@pytest.mark.parametrize("kind", ["duckdb", "postgres", "spark"])
def test_engine_dialects_match_each_adapter(kind: str) -> None:
    from segsql.engines import ENGINE_DIALECTS, REGISTRY

    module_name, class_name = REGISTRY[kind][0].split(":")
    try:
        adapter = getattr(importlib.import_module(module_name), class_name)
    except ImportError:
        pytest.skip(f"the {kind} driver is not installed")
    assert adapter.dialect == ENGINE_DIALECTS[kind]


def test_validate_for_a_target_compiles_for_its_engine(tmp_path: Path) -> None:
    os.environ.setdefault("SEGSQL_TEST_PGPASSWORD", "unused")
    profiles = ("profiles:\n  pg: {type: postgres, host: 127.0.0.1, dbname: x, user: u, "
                "password_env: SEGSQL_TEST_PGPASSWORD}\n")
    ambiguous = ("{{ config(entity='customer') }}\nSELECT c.c_custkey, c.c_nationkey * 0 AS c_nationkey "
                 "FROM {{ source('customers') }} AS c\nQUALIFY ROW_NUMBER() OVER (ORDER BY c.c_custkey) <= 5 "
                 "AND c_nationkey > 1")
    write_files(tmp_path, {"segsql.yml": _config(profiles, "    profiles:\n      pg: {table: customer}\n"),
                           "segments_sql/first_five.sql": ambiguous})
    assert [e.message for e in Project.load(tmp_path).validate()] == []  # DuckDB runs QUALIFY itself
    [error] = Project.load(tmp_path, target="pg").validate()
    assert "QUALIFY with a name that is both an output alias and a column cannot run on postgres" in error.message
    assert error.path == "segments_sql/first_five.sql"
