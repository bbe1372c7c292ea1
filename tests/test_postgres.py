"""PostgreSQL against a real server started by the tests: same members as DuckDB, atomic runs,
clear failures."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from segsql import EngineError, Project
from segsql.run.runner import RunError
from segsql.starter.scaffold import create_project
from tests import engines
from tests.pg import PostgresServer, copy_duckdb_tables, running_server

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
PASSWORD_ENV = "SEGSQL_TEST_PGPASSWORD"


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with running_server() as started:
        yield started


@pytest.fixture(scope="module")
def projects(server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Project]:
    """The starter project twice: on DuckDB, and on the Postgres server with the same data."""
    os.environ[PASSWORD_ENV] = "s3cret-pw"
    duck_root = tmp_path_factory.mktemp("duck") / "p"
    create_project(duck_root)
    database = engines.build_demo(duck_root)
    copy_duckdb_tables(database, server, engines.TABLES)
    pg_root = tmp_path_factory.mktemp("pg") / "p"
    shutil.copytree(duck_root, pg_root, ignore=shutil.ignore_patterns("data"))
    config = (pg_root / "segsql.yml").read_text()
    config = config.replace("connection:\n  type: duckdb\n  path: data/demo.duckdb        # `segsql demo` fills it; "
                            ":memory: also works\n", server.config_yaml(PASSWORD_ENV))
    (pg_root / "segsql.yml").write_text(config)
    return Project.load(duck_root, as_of=engines.AS_OF), Project.load(pg_root, as_of=engines.AS_OF)


def test_every_starter_segment_has_the_same_members(projects: tuple[Project, Project]) -> None:
    duck, pg = projects
    on_duckdb, on_postgres = engines.memberships(duck), engines.memberships(pg)
    assert set(on_duckdb) == set(on_postgres)
    differences = {name: (sorted(on_duckdb[name] - on_postgres[name])[:5], sorted(on_postgres[name] - on_duckdb[name])[:5])
                   for name in on_duckdb if on_duckdb[name] != on_postgres[name]}
    assert not differences
    assert sum(len(m) for m in on_duckdb.values()) > 1000  # the comparison is not vacuous
    assert "900001" in on_duckdb["enterprise_dach"] and "900004" not in on_duckdb["enterprise_dach"]


@pytest.mark.usefixtures("projects")
def test_postgres_catalog_validates_columns(server: PostgresServer, tmp_path: Path) -> None:
    root = tmp_path / "q"
    root.mkdir()
    (root / "segsql.yml").write_text(server.config_yaml(PASSWORD_ENV) + "sources:\n  accounts: {table: accounts}\n"
                                     "entities:\n  account: {key: account_id, source: accounts}\n")
    (root / "segments_sql").mkdir()
    (root / "segments_sql" / "s.sql").write_text("{{ config(entity='account') }}\n"
                                                 "SELECT a.account_id, a.mrrr FROM {{ source('accounts') }} AS a")
    [error] = Project.load(root, as_of=engines.AS_OF).validate()
    assert "unknown column `mrrr`" in error.message  # columns read from information_schema


def test_compare_gives_the_same_numbers(projects: tuple[Project, Project]) -> None:
    duck, pg = projects
    metrics = ["churn_rate", "nrr", "mrr_per_account", "csat"]
    a = duck.compare(["high_mrr_accounts", "enterprise_dach"], metrics).to_frame()
    b = pg.compare(["high_mrr_accounts", "enterprise_dach"], metrics).to_frame()
    for column in ("members", "measured"):
        assert a[column].tolist() == b[column].tolist()
    for column in ("value", "baseline", "p_value"):
        assert a[column].astype(float).fillna(-1).round(9).tolist() == b[column].astype(float).fillna(-1).round(9).tolist()


def test_show_and_members_read_from_postgres(projects: tuple[Project, Project]) -> None:
    _, pg = projects
    pg.run(select=["enterprise_dach"])
    members = pg.members("enterprise_dach", limit=3)
    assert len(members) == 3 and members.account_id.tolist() == sorted(members.account_id.tolist())
    assert pg.size("enterprise_dach") == len(pg.members("enterprise_dach"))


def test_wrong_password_is_a_clear_error(projects: tuple[Project, Project]) -> None:
    _, pg = projects
    os.environ[PASSWORD_ENV] = "wrong"
    try:
        with pytest.raises(EngineError, match="password authentication failed"):
            pg.with_options().run(select=["enterprise_dach"])
    finally:
        os.environ[PASSWORD_ENV] = "s3cret-pw"


def test_missing_password_variable_is_a_clear_error(projects: tuple[Project, Project]) -> None:
    _, pg = projects
    saved = os.environ.pop(PASSWORD_ENV)
    try:
        with pytest.raises(EngineError, match=f"{PASSWORD_ENV} .* is not set"):
            pg.with_options().run(select=["enterprise_dach"])
    finally:
        os.environ[PASSWORD_ENV] = saved


def membership_rows(server: PostgresServer) -> list[tuple]:
    import psycopg

    with psycopg.connect(**server.params()) as connection:
        return connection.execute("SELECT segment, entity_key FROM segsql.membership ORDER BY 1, 2").fetchall()


def test_server_stopped_mid_run_leaves_membership_intact(projects: tuple[Project, Project], server: PostgresServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from segsql.run import runner

    _, pg = projects
    pg.run()
    before = membership_rows(server)
    original = runner._materialise
    calls = {"n": 0}

    def stop_during_second(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            server.stop("immediate")  # the server dies while the run's transaction is open
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "_materialise", stop_during_second)
    with pytest.raises((RunError, EngineError)) as caught:
        pg.with_options().run()
    assert "Postgres" in str(caught.value)
    server.resume()
    assert membership_rows(server) == before


def test_missing_table_fails_cleanly_and_keeps_membership(projects: tuple[Project, Project], server: PostgresServer) -> None:
    import psycopg

    _, pg = projects
    pg.run(select=["enterprise_dach"])
    before = membership_rows(server)
    with psycopg.connect(**server.params(), autocommit=True) as connection:
        connection.execute("ALTER TABLE account_history RENAME TO accounts_moved")
    try:
        with pytest.raises(RunError, match='relation "account_history" does not exist'):
            pg.with_options().run(select=["enterprise_dach"])
    finally:
        with psycopg.connect(**server.params(), autocommit=True) as connection:
            connection.execute("ALTER TABLE accounts_moved RENAME TO account_history")
    assert membership_rows(server) == before


def test_target_profile_runs_the_same_project_on_postgres(projects: tuple[Project, Project], server: PostgresServer) -> None:
    from click.testing import CliRunner

    from segsql.cli import cli

    duck, _ = projects
    config = (duck.root / "segsql.yml").read_text()
    profile = "\n".join("    " + line for line in server.config_yaml(PASSWORD_ENV).splitlines()[1:])
    (duck.root / "segsql.yml").write_text(config + f"\nprofiles:\n  warehouse:\n{profile}\n")
    try:
        result = CliRunner().invoke(cli, ["run", "--project", str(duck.root), "--target", "warehouse",
                                          "--select", "enterprise_dach", "--as-of", str(engines.AS_OF)])
        assert result.exit_code == 0, result.stderr
        assert ("enterprise_dach", ) in {(r[0],) for r in membership_rows(server)}
        wrong = CliRunner().invoke(cli, ["run", "--project", str(duck.root), "--target", "warehous"])
        assert wrong.exit_code == 2 and "did you mean `warehouse`?" in wrong.stderr
    finally:
        (duck.root / "segsql.yml").write_text(config)


def test_generic_dbapi_adapter_runs_the_starter_library(projects: tuple[Project, Project], server: PostgresServer,
                                                        tmp_path: Path) -> None:
    """The generic DB-API adapter, here with psycopg as the driver, gives the same members."""
    duck, _ = projects
    root = tmp_path / "generic"
    shutil.copytree(duck.root, root, ignore=shutil.ignore_patterns("data", "target"))
    params = server.params()
    generic = (f"connection:\n  type: dbapi\n  module: psycopg\n  dialect: postgres\n  password_env: {PASSWORD_ENV}\n"
               f"  connect_args: {{host: '{params['host']}', port: {params['port']}, dbname: {params['dbname']}, "
               f"user: {params['user']}}}\n  schema: public\n")
    config = (root / "segsql.yml").read_text().replace(
        "connection:\n  type: duckdb\n  path: data/demo.duckdb        # `segsql demo` fills it; :memory: also works\n", generic)
    (root / "segsql.yml").write_text(config)
    project = Project.load(root, as_of=engines.AS_OF)
    assert engines.memberships(project) == engines.memberships(duck)
    assert project.members("enterprise_dach").account_id.tolist() == sorted(project.members("enterprise_dach").account_id)


def test_forget_leaves_no_trace_on_postgres(projects: tuple[Project, Project], server: PostgresServer) -> None:
    import psycopg

    _, pg = projects
    pg.run()
    members = pg.members("dach_users")
    key = str(members[members.marketing_consent.astype(bool)].user_id.iloc[0])
    pg.export("dach_users", "table", purpose="marketing_email")
    pg.export("dach_users", "csv", path=pg.root / "crm", changes_only=True, purpose="marketing_email")
    removed = pg.forget("user", key, reason="DSR-42").rows_removed
    assert removed >= 6  # membership, history, result table, export state x2, export memberships, members
    with psycopg.connect(**server.params()) as connection:
        tables = [r[0] for r in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'segsql'").fetchall()]
        for table in tables:
            rows = connection.execute(f'SELECT * FROM segsql."{table}"').fetchall()
            assert not any(key in (str(value) for value in row) for row in rows), table
        assert connection.execute("SELECT reason FROM segsql.erasures").fetchall()[-1] == ("DSR-42",)


def test_consent_gated_export_on_postgres_matches_pandas(projects: tuple[Project, Project],
                                                          server: PostgresServer) -> None:
    import psycopg

    _, pg = projects
    pg.run()
    result = pg.export("dach_users", "table", purpose="marketing_email")
    members = pg.members("dach_users")
    consented = members[members.marketing_consent.fillna(False).astype(bool)]
    assert (result.members, result.dropped_no_consent) == (len(consented), len(members) - len(consented))
    with psycopg.connect(**server.params()) as connection:
        exported = {r[0] for r in connection.execute("SELECT entity_key FROM segsql.export_members__dach_users")}
        columns = [r[0] for r in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'segsql' "
            "AND table_name = 'export_members__dach_users' ORDER BY ordinal_position")]
    assert exported == {str(k) for k in consented.user_id}
    assert columns == ["segment", "entity", "entity_key", "email", "country"]


def test_split_rfm_cohorts_profiles_clusters_propensity_agree(projects: tuple[Project, Project]) -> None:
    """split() assigns every key to the same group, rfm() gives the same scores, and cohorts,
    profiles, clusters and propensity read the same numbers as on DuckDB."""
    duck, pg = projects
    engines.assert_methods_agree(duck, pg)


def test_backfill_equals_runs_as_of_each_date(projects: tuple[Project, Project],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A third of the starter segments (refs, rollups, methods among them), three month ends: the history a backfill writes on Postgres is the
    one three runs `--as-of` write (recorded at the same instants), member for member."""
    from tests import backfills

    _, pg = projects
    backfills.assert_backfill_equals_runs_on_one_store(pg, pg.select()[::3], monkeypatch)


@pytest.mark.parametrize(("where", "column"), [
    ("a.signup_date > 5", 21),  # operator does not exist: date > integer (at the `>`)
    ("a.signup_date > DATE '2020-01-01'\n  AND a.signup_date > 5", 21),  # the second of two alike, on line 5
])
def test_runtime_errors_in_a_cell_point_at_the_cell_line(projects: tuple[Project, Project], where: str,
                                                         column: int) -> None:
    """Validation passes; Postgres refuses the statement when the preview runs it, giving the
    error's position in the SQL segsql generated: reported at the cell's own line, as DuckDB's."""
    from IPython.core.interactiveshell import InteractiveShell

    _, pg = projects
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "segsql")
        shell.run_line_magic("segsql", f"project {pg.root}")
        shell.run_line_magic("segsql", f"as_of {engines.AS_OF}")
        result = shell.run_cell(f"%%segment late --entity account\nSELECT a.account_id\nFROM {{{{ source('accounts') }}}} "
                                f"AS a\nWHERE {where}", store_history=False)
        assert not result.success and type(result.error_in_exec).__name__ == "UsageError"
        line = 3 + len(where.splitlines())
        assert str(result.error_in_exec).startswith(f"cell late:{line}:{column}: Postgres: operator does not exist"), \
            result.error_in_exec
    finally:
        shell.run_line_magic("segsql", "close")
        shell.run_line_magic("unload_ext", "segsql")
        InteractiveShell.clear_instance()
