"""Text comparisons follow the engine's collation: on a Postgres database with a linguistic
(ICU) collation `name >= 'a' AND name < 'n'` keeps other rows than on DuckDB, Spark or a
C-collation Postgres. validate warns at the line when the target's collation is not byte order,
and `collation: binary` compiles the comparison with COLLATE "C" so the members match."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from segsql import Project
from segsql.cli.main import cli
from tests.conftest import AS_OF, BASE_CONFIG, ProjectFactory, write_files
from tests.pg import PASSWORD, PostgresServer, copy_duckdb_tables

CFG = "{{ config(entity='account') }}\n"
ACCOUNTS = "FROM {{ source('accounts') }} AS a"


def text_orders(make_project: ProjectFactory, body: str) -> list[str]:
    project = make_project({"seg": CFG + body}, config=BASE_CONFIG + "point_in_time: off\ndeterminism: off\n")
    assert project.validate() == []
    return [description for description, _ in project.compiler.compiled("seg").text_orders]


@pytest.mark.parametrize("body, expected", [
    (f"SELECT a.account_id {ACCOUNTS} WHERE a.name >= 'A' AND a.name < 'M'", ["`a.name >= 'A'`", "`a.name < 'M'`"]),
    (f"SELECT a.account_id {ACCOUNTS} WHERE LOWER(a.region) BETWEEN 'a' AND 'm'",
     ["`LOWER(a.region) BETWEEN 'a' AND 'm'`"]),
    (f"SELECT t.account_id FROM (SELECT a.account_id, UPPER(a.name) AS n {ACCOUNTS}) AS t WHERE t.n > 'K'",
     ["`t.n > 'K'`"]),
    (f"SELECT a.account_id, ROW_NUMBER() OVER (ORDER BY a.name, a.account_id) AS r {ACCOUNTS}",
     ["`ROW_NUMBER() OVER (ORDER BY a.name, a.account_id)`"]),
    (f"SELECT a.account_id {ACCOUNTS} ORDER BY a.country, a.account_id LIMIT 5", ["`ORDER BY a.country, a.account_id`"]),
    (f"SELECT MIN(a.account_id) AS account_id, MAX(a.name) AS last_name {ACCOUNTS} GROUP BY a.region",
     ["`MAX(a.name)`"]),
])
def test_text_orders_are_found_where_they_are(make_project: ProjectFactory, body: str, expected: list[str]) -> None:
    assert text_orders(make_project, body) == expected


@pytest.mark.parametrize("body", [
    f"SELECT a.account_id {ACCOUNTS} WHERE a.name = 'Zürich'",  # equality: every default collation is deterministic
    f"SELECT a.account_id {ACCOUNTS} WHERE a.signup_date >= '2024-01-01'",  # a date, written as text
    f"SELECT a.account_id {ACCOUNTS} WHERE a.arr > 100 AND a.name IN ('a', 'b')",
    f"SELECT a.account_id {ACCOUNTS} ORDER BY a.name",  # ORDER BY without LIMIT keeps every row
    f"SELECT a.account_id, SUM(a.arr) OVER (PARTITION BY a.region) AS total {ACCOUNTS}",
    f"SELECT MIN(a.account_id) AS account_id {ACCOUNTS} GROUP BY a.region",
])
def test_comparisons_that_do_not_order_text_are_not_flagged(make_project: ProjectFactory, body: str) -> None:
    assert text_orders(make_project, body) == []


@pytest.mark.parametrize("body, expected", [
    (f"SELECT a.account_id {ACCOUNTS} WHERE LOWER(a.name) = 'ärger'", ["`LOWER(a.name)`"]),
    (f"SELECT a.account_id {ACCOUNTS} WHERE a.name ILIKE 'z%'", ["`a.name ILIKE 'z%'`"]),
    (f"SELECT a.account_id {ACCOUNTS} WHERE UPPER('x') = 'X' AND LOWER(CAST(a.arr AS VARCHAR)) = '1'",
     ["`LOWER(CAST(a.arr AS TEXT))`"]),
    (f"SELECT a.account_id {ACCOUNTS} WHERE a.name = 'x'", []),
])
def test_case_mappings_are_found(make_project: ProjectFactory, body: str, expected: list[str]) -> None:
    project = make_project({"seg": CFG + body}, config=BASE_CONFIG + "point_in_time: off\n")
    assert project.validate() == []
    assert [description for description, _ in project.compiler.compiled("seg").case_maps] == expected


def test_collation_off_records_nothing(make_project: ProjectFactory) -> None:
    project = make_project({"seg": CFG + f"SELECT a.account_id {ACCOUNTS} WHERE a.name >= 'A'"},
                           config=BASE_CONFIG + "point_in_time: off\ncollation: off\n")
    assert project.validate() == [] and project.compiler.compiled("seg").text_orders == []


def test_binary_compiles_byte_order_for_postgres_only(make_project: ProjectFactory) -> None:
    body = (f"SELECT a.account_id, MAX(a.name) AS top {ACCOUNTS}\nWHERE a.name >= 'A'\nGROUP BY a.account_id")
    project = make_project({"seg": CFG + body}, config=BASE_CONFIG + "point_in_time: off\ncollation: binary\n")
    assert project.validate() == []
    postgres = project.compiler.to_sql("seg", "postgres")
    assert postgres.count('COLLATE "C"') == 2, postgres
    assert "COLLATE" not in project.compiler.to_sql("seg", "duckdb")
    assert "COLLATE" not in project.compiler.to_sql("seg", "spark")


def test_duckdb_with_a_default_collation_warns(tmp_path: Path) -> None:
    """DuckDB keeps `SET default_collation` in the database file's session only, so this is
    checked on an open connection: the engine reports what the connection will do."""
    from segsql.engines.duckdb import DuckDBEngine

    write_files(tmp_path, {"segsql.yml": BASE_CONFIG, "segments_sql/seg.sql": CFG + "SELECT 1 AS account_id"})
    project = Project.load(tmp_path, as_of=AS_OF)
    engine = DuckDBEngine(project.config, tmp_path)
    try:
        assert engine.text_collation() is None
        engine.execute("SET default_collation = 'nocase'")
        assert engine.text_collation() == "`nocase` (DuckDB default_collation)"
    finally:
        engine.close()


# -- a real Postgres server with a C and an ICU database ---------------------------------------
NAMES = ["apple", "Apple", "banana", "Banana", "zebra", "Zebra", "Ärger", "ärger", "mango", "Mango", "_under",
         "123", "éclair", "Éclair", "", "naïve", "Naive", "omega", "Omega"]
SEGMENT = (CFG + "SELECT a.account_id\nFROM {{ source('accounts') }} AS a\n"
           "WHERE a.name >= 'a' AND a.name < 'n'\n")
LOWER_SEGMENT = CFG + "SELECT a.account_id\nFROM {{ source('accounts') }} AS a\nWHERE LOWER(a.name) = 'ärger'\n"


def _names_database(database: Path) -> Path:
    database.parent.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect(str(database))
    connection.execute("CREATE TABLE accounts (account_id BIGINT, name VARCHAR)")
    connection.executemany("INSERT INTO accounts VALUES (?, ?)", list(enumerate(NAMES, start=1)))
    connection.close()
    return database


@pytest.fixture(scope="module")
def icu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A C database (the test cluster's default) and an ICU en-US one, both holding the names
    (loaded before segsql creates its `segsql` schema, which the test user's search_path prefers)."""
    server = PostgresServer().start()
    try:
        import psycopg

        with psycopg.connect(**server.params(dbname="postgres"), autocommit=True) as connection:
            connection.execute("CREATE DATABASE linguistic TEMPLATE template0 LOCALE_PROVIDER icu "
                               "ICU_LOCALE 'en-US' LOCALE 'C'")
        database = _names_database(tmp_path_factory.mktemp("names") / "names.duckdb")
        for dbname in ("segsql_test", "linguistic"):
            copy_duckdb_tables(database, server, ["accounts"], dbname)
        yield server
    finally:
        server.cleanup()


def _project(root: Path, server: PostgresServer, collation: str) -> Path:
    _names_database(root / "data" / "names.duckdb")
    profiles = "".join(
        f"  {name}: {{type: postgres, host: 127.0.0.1, port: {server.port}, dbname: {dbname}, user: segsql, "
        "password_env: SEGSQL_TEST_PGPASSWORD}\n" for name, dbname in (("c", "segsql_test"), ("icu", "linguistic")))
    config = ("connection: {type: duckdb, path: data/names.duckdb}\nprofiles:\n" + profiles +
              "sources:\n  accounts: {table: accounts, static: true}\n"
              "entities:\n  account: {key: account_id, source: accounts}\n" + f"collation: {collation}\n")
    write_files(root, {"segsql.yml": config, "segments_sql/a_to_m.sql": SEGMENT,
                       "segments_sql/lower_match.sql": LOWER_SEGMENT})
    return root


def _members(root: Path, target: str | None, name: str = "a_to_m") -> set[int]:
    project = Project.load(root, as_of=AS_OF, target=target)
    project.run()
    return {int(key) for key in project.members(name).account_id}


@pytest.mark.slow
def test_an_icu_database_keeps_other_members_and_validate_says_so(icu_server: PostgresServer, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSQL_TEST_PGPASSWORD", PASSWORD)
    root = _project(tmp_path / "warn", icu_server, "warn")
    on_duckdb = _members(root, None)
    assert on_duckdb == {i for i, name in enumerate(NAMES, start=1) if "a" <= name < "n"}  # Python: code points
    assert _members(root, "c") == on_duckdb
    on_icu = _members(root, "icu")
    assert on_icu != on_duckdb and {2, 4} <= on_icu - on_duckdb  # 'Apple', 'Banana' sort among the lower case

    # the C database (LC_CTYPE C) lowercases ASCII letters only: 'Ärger' stays 'Ärger'
    assert _members(root, None, "lower_match") == {7, 8} and _members(root, "icu", "lower_match") == {7, 8}
    assert _members(root, "c", "lower_match") == {8}

    for target, warned in (("icu", True), ("c", False), (None, False)):
        result = CliRunner().invoke(cli, ["validate", "--project", str(root), *(["--target", target] if target else [])])
        assert result.exit_code == 0, result.output
        lines = [line for line in result.output.splitlines() if "orders text by" in line]
        case_lines = [line for line in result.output.splitlines() if "maps letter case" in line]
        assert len(case_lines) == (1 if target == "c" else 0), result.output
        if case_lines:
            assert case_lines[0].startswith("warning: segments_sql/lower_match.sql:4:7: `LOWER(a.name)` maps letter "
                                            "case by the postgres LC_CTYPE `C` of database segsql_test"), case_lines
        if warned:
            assert len(lines) == 2, result.output
            assert lines[0].startswith("warning: segments_sql/a_to_m.sql:4:7: `a.name >= 'a'` orders text by the "
                                       "postgres collation `en-US` (ICU) of database linguistic"), lines[0]
            assert "collation: binary" in result.output
        else:
            assert lines == [], result.output


@pytest.mark.slow
def test_binary_gives_duckdbs_members_on_the_icu_database(icu_server: PostgresServer, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSQL_TEST_PGPASSWORD", PASSWORD)
    root = _project(tmp_path / "binary", icu_server, "binary")
    assert _members(root, "icu") == _members(root, None) == _members(root, "c")
    result = CliRunner().invoke(cli, ["validate", "--project", str(root), "--target", "icu"])
    assert result.exit_code == 0 and "orders text by" not in result.output, result.output
    assert os.environ["SEGSQL_TEST_PGPASSWORD"] == PASSWORD
