"""Hardening on a real PostgreSQL server, connected as a superuser (the role initdb creates):
literals with `%`, `?`, `:name`, `$1` and `{}` run and give DuckDB's members; reads cannot write;
a statement over limits.query_seconds is stopped; functions outside the allowlist never reach it."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest

from segsql import EngineError, Project
from segsql.run.runner import RunError, ValidationFailed
from tests.conftest import AS_OF, write_files
from tests.pg import PostgresServer, copy_duckdb_tables, running_server

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
PASSWORD_ENV = "SEGSQL_TEST_PGPASSWORD"
NAMES = ["Apple", "100% pure", "why?", ":name", "$1", "{}", "{0}", "%s", "%(x)s", "it's", "Zürich", "plain"]
SOURCES = textwrap.dedent("""\
    sources:
      accounts: {table: accounts, columns: {account_id: BIGINT, name: VARCHAR}}
    entities:
      account: {key: account_id, source: accounts}
    """)
TRICKY = {
    "percent": "WHERE a.name LIKE '%pure' OR a.name LIKE 'A%' OR a.name = '%s' OR a.name = '%(x)s'",
    "markers": "WHERE a.name IN ('why?', ':name', '$1', '{}', '{0}')",
    "concatenated": "WHERE concat(a.name, '%') = 'Zürich%' OR replace(a.name, '%', '?') = '100? pure'",
    "params": "WHERE a.name <> {{ var('skip') }} AND a.name LIKE {{ var('pattern') }}",
}


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with running_server() as started:
        yield started


def _projects(server: PostgresServer, root: Path, segments: dict[str, str], limits: str = "") -> tuple[Path, Path]:
    os.environ[PASSWORD_ENV] = "s3cret-pw"
    database = root / "duck" / "data.duckdb"
    database.parent.mkdir(parents=True)
    connection = duckdb.connect(str(database))
    connection.execute("CREATE TABLE accounts (account_id BIGINT, name VARCHAR)")
    connection.executemany("INSERT INTO accounts VALUES (?, ?)", list(enumerate(NAMES, start=1)))
    connection.execute("INSERT INTO accounts SELECT 100 + range, 'filler ' || range FROM range(3000)")
    connection.close()
    copy_duckdb_tables(database, server, ["accounts"])
    files = {f"segments_sql/{name}.sql": "{{ config(entity='account') }}\n"
             "SELECT a.account_id, a.name FROM {{ source('accounts') }} AS a\n" + where
             for name, where in segments.items()}
    variables = "vars: {skip: \"%s'; --\", pattern: '%?%'}\n"
    duck_root, pg_root = root / "duck", root / "pg"
    write_files(duck_root, {"segsql.yml": f"connection: {{type: duckdb, path: {database}}}\n" + SOURCES + variables
                            + limits, **files})
    write_files(pg_root, {"segsql.yml": server.config_yaml(PASSWORD_ENV) + "dialect: postgres\n" + SOURCES
                          + variables + limits, **files})
    return duck_root, pg_root


def _members(root: Path) -> dict[str, set[int]]:
    project = Project.load(root, as_of=AS_OF)
    project.run()
    return {name: {int(k) for k in project.members(name)["account_id"]} for name in sorted(project.segments)}


def test_literals_with_placeholder_characters_run_and_agree_with_duckdb(server: PostgresServer,
                                                                         tmp_path: Path) -> None:
    duck_root, pg_root = _projects(server, tmp_path, TRICKY)
    on_duckdb, on_postgres = _members(duck_root), _members(pg_root)
    assert on_postgres == on_duckdb
    by_name = {name: i for i, name in enumerate(NAMES, start=1)}
    assert on_duckdb["percent"] == {by_name[n] for n in ("100% pure", "Apple", "%s", "%(x)s")}
    assert on_duckdb["markers"] == {by_name[n] for n in ("why?", ":name", "$1", "{}", "{0}")}
    assert on_duckdb["concatenated"] == {by_name["Zürich"], by_name["100% pure"]}
    assert on_duckdb["params"] == {by_name["why?"]}  # '%?%' matches names with a `?`, bound as a value
    pg = Project.load(pg_root, as_of=AS_OF)
    assert pg.compare(["percent"], []).baseline == "rest"  # reads with parameters on the same tables
    assert len(pg.members("markers", limit=2)) == 2


def test_format_with_percent_placeholders_runs_on_postgres(server: PostgresServer, tmp_path: Path) -> None:
    """Postgres' format() takes printf-style `%s` (DuckDB's takes `{}`, so this one is Postgres only)."""
    _, pg_root = _projects(server, tmp_path, {"formatted": "WHERE format('%s!', a.name) = 'it''s!'"})
    assert _members(pg_root) == {"formatted": {NAMES.index("it's") + 1}}


def test_functions_outside_the_allowlist_never_reach_the_server(server: PostgresServer, tmp_path: Path) -> None:
    calls = {"large_object": "WHERE lo_from_bytea(0, 'x'::bytea) > 0",
             "xml": "WHERE query_to_xml('DELETE FROM accounts', true, true, '') IS NOT NULL",
             "settings": "WHERE set_config('default_transaction_read_only', 'off', false) = 'off'",
             "locks": "FOR UPDATE"}
    _, pg_root = _projects(server, tmp_path, calls)
    project = Project.load(pg_root, as_of=AS_OF)
    errors = {error.path.split("/")[-1]: error.message for error in project.validate()}
    assert set(errors) == {f"{name}.sql" for name in calls}
    with pytest.raises(ValidationFailed):
        project.run()
    with psycopg.connect(**server.params()) as connection:
        assert connection.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone() == (0,)


def test_reads_run_in_read_only_sessions_even_for_a_superuser(server: PostgresServer, tmp_path: Path) -> None:
    _, pg_root = _projects(server, tmp_path, {"plain": ""})
    project = Project.load(pg_root, as_of=AS_OF)
    with psycopg.connect(**server.params()) as connection:
        assert connection.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
    with project.engine() as engine, pytest.raises(EngineError) as caught:
        engine.execute("CREATE TABLE written_by_a_read (a INT)")
    assert "read-only" in caught.value.message


def test_a_statement_over_the_time_limit_is_stopped(server: PostgresServer, tmp_path: Path) -> None:
    slow = ", {{ source('accounts') }} AS b, {{ source('accounts') }} AS c " \
           "WHERE (a.account_id * 7 + b.account_id * 13 + c.account_id) % 100003 = 99999"
    _, pg_root = _projects(server, tmp_path, {"slow": slow}, "limits: {query_seconds: 0.5}\n")
    with pytest.raises(RunError) as caught:
        Project.load(pg_root, as_of=AS_OF).run()
    assert "ran longer than 0.5 s" in caught.value.message


def test_engine_errors_on_postgres_hide_the_row_value(server: PostgresServer, tmp_path: Path) -> None:
    _, pg_root = _projects(server, tmp_path, {"cast": "WHERE CAST(a.name AS INTEGER) > 0 AND a.name <> 'Kept'"})
    with pytest.raises(RunError) as caught:
        Project.load(pg_root, as_of=AS_OF).run()
    assert "invalid input syntax for type" in caught.value.message
    assert not any(name in caught.value.message for name in NAMES) and "…" in caught.value.message


def test_qualify_with_a_qualified_column_runs_on_postgres_with_duckdb_members(server: PostgresServer,
                                                                               tmp_path: Path) -> None:
    """sqlglot's own QUALIFY rewrite leaves `a.name` outside its subquery ("missing FROM-clause
    entry"); segsql's rewrite runs and gives the members DuckDB gives."""
    qualify = ("WHERE a.account_id > 0 QUALIFY ROW_NUMBER() OVER (PARTITION BY LENGTH(a.name) "
               "ORDER BY a.account_id DESC) = 1 AND a.name <> 'plain'")
    duck_root, pg_root = _projects(server, tmp_path, {"latest_per_length": qualify})
    on_duckdb, on_postgres = _members(duck_root), _members(pg_root)
    assert on_postgres == on_duckdb and len(on_duckdb["latest_per_length"]) > 5
