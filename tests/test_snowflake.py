"""Snowflake end to end: segsql's snowflake-connector-python against a fakesnow server (tests/conftest.py
fakesnow_server): the starter library gives the same members as DuckDB, compare the same numbers,
history and exports the same rows, runs are atomic, secrets stay in the environment."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

from segsql import ConfigError, EngineError, Project
from segsql.run.runner import RunError
from segsql.starter.scaffold import create_project
from tests import engines

pytestmark = [pytest.mark.slow]
PASSWORD_ENV = "SEGSQL_TEST_SNOWFLAKE_PASSWORD"
DATABASE = "SEGSQL_TEST"
DUCKDB_CONNECTION = ("connection:\n  type: duckdb\n  path: data/demo.duckdb        # `segsql demo` fills it; "
                     ":memory: also works\n")


# QUALIFY with windows whose ties are broken, over a source and over a ref (the starter library has none)
QUALIFY_SEGMENTS = {
    "latest_ticket_billing": "{{ config(entity='account') }}\n"
    "SELECT t.account_id, t.topic, t.opened_at FROM {{ source('tickets') }} AS t\n"
    "QUALIFY ROW_NUMBER() OVER (PARTITION BY t.account_id ORDER BY t.opened_at DESC, t.ticket_id DESC) = 1\n"
    "  AND t.topic = 'billing'\n",
    "top_mrr_accounts": "{{ config(entity='account') }}\n"
    "SELECT h.account_id, h.mrr, RANK() OVER (ORDER BY h.mrr DESC, h.account_id) AS mrr_rank\n"
    "FROM {{ ref('high_mrr_accounts') }} AS h\n"
    "QUALIFY ROW_NUMBER() OVER (ORDER BY h.mrr DESC, h.account_id) <= 25\n",
}


def connection_yaml(host: str, port: int, database: str = DATABASE) -> str:
    return (f"connection:\n  type: snowflake\n  account: fakesnow\n  user: segsql\n  password_env: {PASSWORD_ENV}\n"
            f"  database: {database}\n  schema: PUBLIC\n  warehouse: SEGSQL_WH\n  role: SEGSQL_ROLE\n"
            f"  host: {host}\n  port: {port}\n  protocol: http\n")


def raw_connection(server: tuple[str, int], database: str = DATABASE) -> Any:
    """A connection of the test's own (to load data and look behind segsql's back)."""
    import snowflake.connector

    host, port = server
    return snowflake.connector.connect(account="fakesnow", user="segsql", password="x", host=host, port=port,
                                       protocol="http", database=database, schema="PUBLIC", paramstyle="qmark",
                                       network_timeout=60, login_timeout=30,
                                       session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False})


def load_duckdb_tables(database: Path, server: tuple[str, int], tables: list[str], folder: Path) -> None:
    """Each DuckDB table into Snowflake the way one loads a warehouse: CREATE TABLE with the
    types transpiled, a Parquet file PUT to a stage, COPY INTO."""
    import duckdb

    source = duckdb.connect(str(database), read_only=True)
    connection = raw_connection(server)
    try:
        cursor = connection.cursor()
        for name in tables:
            columns = source.execute(f"DESCRIBE {name}").fetchall()
            create = exp.Create(kind="TABLE", replace=True, this=exp.Schema(this=exp.to_table(name), expressions=[
                exp.ColumnDef(this=exp.to_identifier(column[0]), kind=exp.DataType.build(column[1], dialect="duckdb"))
                for column in columns]))
            cursor.execute(create.sql(dialect="snowflake"))
            file = folder / f"{name}.parquet"
            source.execute(f"COPY {name} TO '{file}' (FORMAT parquet)")
            cursor.execute(f"CREATE OR REPLACE TEMPORARY STAGE load_{name}")
            cursor.execute(f"PUT file://{file} @load_{name} AUTO_COMPRESS=FALSE")
            cursor.execute(f"COPY INTO {name} FROM @load_{name} FILE_FORMAT = (TYPE = PARQUET) "
                           "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE")
            [(count,)] = cursor.execute(f"SELECT COUNT(*) FROM {name}").fetchall()
            assert count == source.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0], name  # type: ignore[index]
    finally:
        connection.close()
        source.close()


@pytest.fixture(scope="module")
def projects(fakesnow_server: tuple[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Project]]:
    """The starter project twice: on DuckDB, and on Snowflake (fakesnow) with the same data."""
    os.environ[PASSWORD_ENV] = "s3cret-snow"
    duck_root = tmp_path_factory.mktemp("duck") / "p"
    create_project(duck_root)
    for name, text in QUALIFY_SEGMENTS.items():
        (duck_root / "segments_sql" / f"{name}.sql").write_text(text)
    database = engines.build_demo(duck_root)
    load_duckdb_tables(database, fakesnow_server, engines.TABLES, tmp_path_factory.mktemp("parquet"))
    snow_root = tmp_path_factory.mktemp("snow") / "p"
    shutil.copytree(duck_root, snow_root, ignore=shutil.ignore_patterns("data"))
    config = (snow_root / "segsql.yml").read_text()
    assert DUCKDB_CONNECTION in config
    (snow_root / "segsql.yml").write_text(config.replace(DUCKDB_CONNECTION, connection_yaml(*fakesnow_server)))
    yield Project.load(duck_root, as_of=engines.AS_OF), Project.load(snow_root, as_of=engines.AS_OF)
    os.environ.pop(PASSWORD_ENV, None)


def rows(server: tuple[str, int], sql: str) -> list[tuple[Any, ...]]:
    connection = raw_connection(server)
    try:
        return [tuple(row) for row in connection.cursor().execute(sql).fetchall()]
    finally:
        connection.close()


def test_every_starter_segment_has_the_same_members(projects: tuple[Project, Project]) -> None:
    duck, snow = projects
    on_duckdb, on_snowflake = engines.memberships(duck), engines.memberships(snow)
    assert set(on_duckdb) == set(on_snowflake)
    differences = {name: (sorted(on_duckdb[name] - on_snowflake[name])[:5],
                          sorted(on_snowflake[name] - on_duckdb[name])[:5])
                   for name in on_duckdb if on_duckdb[name] != on_snowflake[name]}
    assert not differences
    assert sum(len(m) for m in on_duckdb.values()) > 1000  # the comparison is not vacuous
    assert "900001" in on_duckdb["enterprise_dach"] and "900004" not in on_duckdb["enterprise_dach"]


def test_qualify_runs_natively(projects: tuple[Project, Project]) -> None:
    """Snowflake gets the segment's QUALIFY as written (no subquery rewrite as for Postgres)."""
    _, snow = projects
    for name in QUALIFY_SEGMENTS:
        sql = snow.compile(name, dialect="snowflake")
        assert "QUALIFY" in sql and "_segsql_q" not in sql, name
        assert snow.size(name) > 5


def test_compare_gives_the_same_numbers(projects: tuple[Project, Project]) -> None:
    duck, snow = projects
    metrics = ["churn_rate", "nrr", "mrr_per_account", "csat"]
    a = duck.compare(["high_mrr_accounts", "enterprise_dach"], metrics).to_frame()
    b = snow.compare(["high_mrr_accounts", "enterprise_dach"], metrics).to_frame()
    for column in ("members", "measured"):
        assert a[column].tolist() == b[column].tolist()
    for column in ("value", "baseline", "p_value"):
        assert (a[column].astype(float).fillna(-1).round(9).tolist()
                == b[column].astype(float).fillna(-1).round(9).tolist())


def test_preview_reads_members_sorted_with_lower_case_columns(projects: tuple[Project, Project]) -> None:
    duck, snow = projects
    snow.run(select=["enterprise_dach"])
    duck.run(select=["enterprise_dach"])
    members = snow.members("enterprise_dach", limit=3)
    assert len(members) == 3 and members.account_id.tolist() == sorted(members.account_id.tolist())
    assert list(members.columns) == list(duck.members("enterprise_dach", limit=3).columns)
    assert snow.size("enterprise_dach") == len(snow.members("enterprise_dach")) == duck.size("enterprise_dach")


def _update_both(duck: Project, server: tuple[str, int], *statements: str) -> None:
    """The same change to the source data on DuckDB and on Snowflake."""
    import duckdb

    connection = duckdb.connect(str(duck.root / "data" / "demo.duckdb"))
    try:
        for statement in statements:
            connection.execute(statement)
    finally:
        connection.close()
    for statement in statements:
        rows(server, statement)


def _drop_accounts(duck: Project, server: tuple[str, int], keys: list[int]) -> None:
    listed = ", ".join(str(k) for k in keys)
    _update_both(duck, server, *[f"UPDATE {table} SET region = 'AMER' WHERE account_id IN ({listed})"
                                 for table in ("accounts", "account_history")])


def test_history_over_two_runs_is_the_same(projects: tuple[Project, Project], fakesnow_server: tuple[str, int]) -> None:
    """Two runs with members leaving in between: the same stays opened and closed, and
    members_at/changes read the same on both engines."""
    duck, snow = projects
    for project in (duck, snow):
        project.run(select=["enterprise_dach"])
    first = sorted(duck.members("enterprise_dach").account_id)[:3]
    _drop_accounts(duck, fakesnow_server, [int(k) for k in first])
    for project in (duck, snow):
        project.run(select=["enterprise_dach"])

    def last_two_runs(project: Project) -> list[tuple[int, int, int]]:
        changes = project.changes("enterprise_dach")
        return [(int(r.entered), int(r.exited), int(r.size)) for r in changes.tail(2).itertuples()]

    on_duckdb, on_snowflake = last_two_runs(duck), last_two_runs(snow)
    assert on_duckdb == on_snowflake
    assert on_duckdb[-1][:2] == (0, 3)  # not vacuous: exactly the three that left
    assert sorted(duck.members("enterprise_dach").account_id) == sorted(snow.members("enterprise_dach").account_id)
    [(open_stays,)] = rows(fakesnow_server, "SELECT COUNT(*) FROM segsql.history "
                                            "WHERE segment = 'enterprise_dach' AND valid_to IS NULL")
    assert open_stays == duck.size("enterprise_dach")


def test_export_writes_the_same_members(projects: tuple[Project, Project], tmp_path: Path) -> None:
    import pyarrow.csv as pacsv

    duck, snow = projects
    for project in (duck, snow):
        project.run(select=["dach_users"])
    exported = {}
    for label, project in (("duck", duck), ("snow", snow)):
        result = project.export("dach_users", "csv", path=tmp_path / label, purpose="marketing_email")
        members = pacsv.read_csv(tmp_path / label / "members.csv")
        exported[label] = (result.members, result.dropped_no_consent, sorted(members.column("entity_key").to_pylist()),
                           members.column_names)
    assert exported["duck"] == exported["snow"] and exported["duck"][0] > 0


def test_table_export_lands_in_the_warehouse(projects: tuple[Project, Project], fakesnow_server: tuple[str, int]) -> None:
    _, snow = projects
    snow.run(select=["dach_users"])
    result = snow.export("dach_users", "table", purpose="marketing_email")
    keys = {str(r[0]) for r in rows(fakesnow_server, "SELECT entity_key FROM segsql.export_members__dach_users")}
    assert len(keys) == result.members > 0


def test_a_failing_run_leaves_membership_and_results_intact(projects: tuple[Project, Project],
                                                           fakesnow_server: tuple[str, int]) -> None:
    """A segment that fails after another was materialised: its staged table is dropped, the
    other's renamed result is renamed back, membership is untouched."""
    _, snow = projects
    snow.run(select=["enterprise_dach", "high_mrr_accounts"])
    membership = "SELECT segment, entity_key FROM segsql.membership ORDER BY 1, 2"
    before = rows(fakesnow_server, membership)
    result = rows(fakesnow_server, "SELECT account_id FROM segsql.segment__enterprise_dach ORDER BY 1")
    rows(fakesnow_server, "ALTER TABLE mrr_monthly RENAME TO mrr_moved")
    try:
        with pytest.raises(RunError, match="MRR_MONTHLY"):
            snow.with_options().run(select=["enterprise_dach", "high_mrr_accounts"])
    finally:
        rows(fakesnow_server, "ALTER TABLE mrr_moved RENAME TO mrr_monthly")
    assert rows(fakesnow_server, membership) == before
    assert rows(fakesnow_server, "SELECT account_id FROM segsql.segment__enterprise_dach ORDER BY 1") == result
    leftovers = rows(fakesnow_server, "SELECT table_name FROM information_schema.tables "
                                      "WHERE table_schema = 'SEGSQL' AND table_name LIKE 'STAGED__%'")
    assert leftovers == []
    [(status,)] = rows(fakesnow_server, "SELECT status FROM segsql.runs ORDER BY started_at DESC LIMIT 1")
    assert status == "failed"


def test_ddl_inside_an_open_transaction_is_refused(projects: tuple[Project, Project]) -> None:
    """Snowflake would commit the open transaction first; the engine refuses instead of splitting it."""
    _, snow = projects
    with snow.engine(write=True) as engine:
        engine.run_store().ensure_tables()
        engine.begin()
        engine.execute(exp.delete("segsql.unmask_audit", where=exp.false()))
        with pytest.raises(EngineError, match="commit the open transaction"):
            engine.execute(exp.Create(this=exp.to_table("segsql.never_made"), kind="TABLE",
                                      expression=exp.select("1")))
        engine.rollback()


def test_values_are_bound_on_the_server(projects: tuple[Project, Project]) -> None:
    """qmark binding: a value with quotes and a question mark comes back as it went in."""
    _, snow = projects
    tricky = "O'Brien ? %s :1"
    with snow.engine() as engine:
        assert engine.fetchall(exp.select(exp.Placeholder().as_("v")), [tricky]) == [(tricky,)]
        assert engine.connect_arguments()["paramstyle"] == "qmark"  # type: ignore[attr-defined]


def test_a_literal_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    (tmp_path / "segsql.yml").write_text("connection:\n  type: snowflake\n  account: a\n  user: u\n  database: d\n"
                                         "  password: hunter2-secret\n")
    with pytest.raises(ConfigError) as caught:
        Project.load(tmp_path)
    assert "never goes in segsql.yml" in caught.value.message and "password_env" in caught.value.message
    assert "hunter2" not in str(caught.value) and caught.value.location is not None
    assert caught.value.location.line == 1  # the connection block


def test_missing_password_variable_is_a_clear_error(projects: tuple[Project, Project]) -> None:
    _, snow = projects
    saved = os.environ.pop(PASSWORD_ENV)
    try:
        with pytest.raises(EngineError, match=f"{PASSWORD_ENV} .* is not set"):
            snow.with_options().run(select=["enterprise_dach"])
    finally:
        os.environ[PASSWORD_ENV] = saved


def test_an_unreachable_server_is_a_clear_error_without_the_password(projects: tuple[Project, Project],
                                                                     tmp_path: Path) -> None:
    _, snow = projects
    root = tmp_path / "away"
    shutil.copytree(snow.root, root, ignore=shutil.ignore_patterns("target"))
    config = (root / "segsql.yml").read_text()
    port = int(config.split("  port: ")[1].split("\n")[0])
    (root / "segsql.yml").write_text(config.replace(f"  port: {port}\n", "  port: 9\n  login_timeout: 2\n"))
    with pytest.raises(EngineError) as caught:
        Project.load(root, as_of=engines.AS_OF).run(select=["enterprise_dach"])
    assert "cannot connect to Snowflake segsql@fakesnow/SEGSQL_TEST.PUBLIC" in caught.value.message
    assert "s3cret-snow" not in str(caught.value) + (caught.value.hint or "")


def test_a_run_failing_after_the_renames_puts_the_previous_results_back(projects: tuple[Project, Project],
                                                                          fakesnow_server: tuple[str, int]) -> None:
    """The membership write fails once the staged results are renamed into place: the renames are
    undone (the previous typed results are back), membership and history are unchanged."""
    _, snow = projects
    snow.run(select=["enterprise_dach", "top_mrr_accounts"])
    snapshot = ["SELECT segment, entity_key FROM segsql.membership ORDER BY 1, 2",
                "SELECT account_id FROM segsql.segment__enterprise_dach ORDER BY 1",
                "SELECT account_id, mrr FROM segsql.segment__top_mrr_accounts ORDER BY 1",
                "SELECT segment, entity_key, run_id FROM segsql.history WHERE valid_to IS NULL ORDER BY 1, 2"]
    before = [rows(fakesnow_server, sql) for sql in snapshot]
    top = int(before[2][0][0])
    _update_both(projects[0], fakesnow_server, f"UPDATE mrr_monthly SET mrr = 0 WHERE account_id = {top}")
    rows(fakesnow_server, "ALTER TABLE segsql.membership RENAME COLUMN as_of TO as_of_moved")
    try:
        with pytest.raises(RunError, match="AS_OF"):
            snow.with_options().run(select=["enterprise_dach", "top_mrr_accounts"])
    finally:
        rows(fakesnow_server, "ALTER TABLE segsql.membership RENAME COLUMN as_of_moved TO as_of")
    assert [rows(fakesnow_server, sql) for sql in snapshot] == before
    leftovers = rows(fakesnow_server, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'SEGSQL' "
                                      "AND (table_name LIKE 'STAGED__%' OR table_name LIKE 'PREVIOUS__%')")
    assert leftovers == []
    snow.run(select=["enterprise_dach", "top_mrr_accounts"])  # and the next run goes through
    assert rows(fakesnow_server, snapshot[2]) != before[2]  # the next run would differ: the renames were undone


def test_the_cli_runs_and_shows_a_snowflake_profile(projects: tuple[Project, Project],
                                                    fakesnow_server: tuple[str, int]) -> None:
    """docs/warehouses.md's step 4: `segsql run --target snowflake` on a DuckDB project with the profile."""
    from click.testing import CliRunner

    from segsql.cli import cli

    duck, _ = projects
    config = (duck.root / "segsql.yml").read_text()
    profile = "\n".join("    " + line for line in connection_yaml(*fakesnow_server).splitlines()[1:])
    (duck.root / "segsql.yml").write_text(config + f"\nprofiles:\n  snowflake:\n{profile}\n")
    try:
        common = ["--project", str(duck.root), "--target", "snowflake"]
        result = CliRunner().invoke(cli, ["run", *common, "--select", "enterprise_dach", "--as-of", str(engines.AS_OF)])
        assert result.exit_code == 0, result.output
        shown = CliRunner().invoke(cli, ["show", "enterprise_dach", *common])
        assert shown.exit_code == 0 and "900001" in shown.output, shown.output
    finally:
        (duck.root / "segsql.yml").write_text(config)
    [(members,)] = rows(fakesnow_server, "SELECT COUNT(*) FROM segsql.membership WHERE segment = 'enterprise_dach'")
    duck.run(select=["enterprise_dach"])
    assert members == duck.size("enterprise_dach")


def test_forget_removes_the_key_from_every_storage_table(projects: tuple[Project, Project],
                                                         fakesnow_server: tuple[str, int]) -> None:
    """Erasure is DML only, so it is one transaction on Snowflake too (Time Travel still keeps the
    deleted rows for the retention period: docs/warehouses.md)."""
    _, snow = projects
    snow.run(select=["dach_users"])
    members = snow.members("dach_users")
    key = str(members[members.marketing_consent.fillna(False).astype(bool)].user_id.iloc[0])
    snow.export("dach_users", "table", purpose="marketing_email")
    removed = snow.forget("user", key, reason="DSR-7").rows_removed
    assert removed >= 4  # membership, history, result table, export state / memberships / members
    tables = [r[0] for r in rows(fakesnow_server, "SELECT table_name FROM information_schema.tables "
                                                  "WHERE table_schema = 'SEGSQL'")]
    assert "MEMBERSHIP" in tables
    for table in tables:
        found = rows(fakesnow_server, f"SELECT * FROM segsql.{table}")
        assert not any(key in (str(value) for value in row) for row in found), table
    assert rows(fakesnow_server, "SELECT reason FROM segsql.erasures")[-1] == ("DSR-7",)
