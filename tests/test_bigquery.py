"""BigQuery without a network: the jobs segsql submits (their SQL and QueryJobConfig) recorded by a
stand-in client. No BigQuery emulator installs offline, so — for BigQuery only — the client is a
fake: it records every job, refuses what BigQuery refuses (DDL inside a transaction, a job of the
transaction outside its session), and runs the SQL, parsed as BigQuery and transpiled to DuckDB, on
an in-memory DuckDB so a whole run's members can be checked. Also: the warehouse docs' profiles."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from segsql import ConfigError, EngineError, Project
from segsql.run.runner import RunError

pytest.importorskip("google.cloud.bigquery")
from google.cloud import bigquery

from segsql.engines.bigquery import BigQueryEngine

REPO = Path(__file__).resolve().parent.parent
BUDGET = 5_000_000_000
CONFIG = f"""\
connection:
  type: bigquery
  project: my-gcp-project
  dataset: analytics
  location: EU
  maximum_bytes_billed: {BUDGET}
point_in_time: off
sources:
  accounts:
    table: accounts
    unique: [account_id]
  orders:
    table: orders
    unique: [order_id]
entities:
  account: {{key: account_id, source: accounts}}
"""
SEGMENTS = {
    "big_accounts": "{{ config(entity='account') }}\nSELECT a.account_id, a.arr FROM {{ source('accounts') }} AS a "
                    "WHERE a.arr >= {{ param('min_arr', 5000) }}",
    "latest_order_urgent": "{{ config(entity='account') }}\n"
                           "SELECT o.account_id, o.priority FROM {{ source('orders') }} AS o\n"
                           "QUALIFY ROW_NUMBER() OVER (PARTITION BY o.account_id ORDER BY o.ordered_at DESC, "
                           "o.order_id DESC) = 1 AND o.priority = 'urgent'",
}


class Result:
    def __init__(self, names: list[str], rows: list[tuple[Any, ...]]):
        self.schema = [SimpleNamespace(name=name) for name in names]
        self.rows = rows

    def __iter__(self) -> Any:
        return iter(SimpleNamespace(values=lambda row=row: row) for row in self.rows)

    def to_arrow(self, create_bqstorage_client: bool = True) -> pa.Table:
        assert create_bqstorage_client is False  # no second API for small results
        return pa.table({field.name: [row[i] for row in self.rows] for i, field in enumerate(self.schema)})


class Job:
    def __init__(self, result: Result | None, session: str | None = None, scanned: int = 0):
        self._result, self.total_bytes_processed = result, scanned
        self.session_info = SimpleNamespace(session_id=session)

    def result(self, timeout: float | None = None) -> Result | None:
        assert timeout is not None  # every wait is bounded
        return self._result


class RecordingClient:
    """Records (sql, job_config) of every job; see the module docstring."""

    def __init__(self, database: duckdb.DuckDBPyConnection, scanned: int = 1000):
        self.database, self.scanned = database, scanned
        self.jobs: list[tuple[str, bigquery.QueryJobConfig]] = []
        self.session: str | None = None
        self.in_transaction = False

    def query(self, sql: str, job_config: bigquery.QueryJobConfig) -> Job:
        self.jobs.append((sql, job_config))
        if sql == "CALL BQ.ABORT_SESSION()":  # sqlglot parses no CALL
            self.session = None
            return Job(Result([], []))
        tree = sqlglot.parse_one(sql, read="bigquery")  # what BigQuery would parse
        if job_config.dry_run:
            return Job(None, scanned=self.scanned)
        joined = {p.key: p.value for p in job_config.connection_properties or []}.get("session_id")
        if self.in_transaction and joined != self.session:
            raise RuntimeError("400 Transaction is not active in this session")
        if isinstance(tree, exp.Transaction):
            if job_config.create_session:
                self.session = f"session-{len(self.jobs)}"
            self.database.begin()
            self.in_transaction = True
            return Job(Result([], []), session=self.session)
        if isinstance(tree, exp.Commit | exp.Rollback):
            (self.database.commit if isinstance(tree, exp.Commit) else self.database.rollback)()
            self.in_transaction = False
            return Job(Result([], []))
        if self.in_transaction and isinstance(tree, exp.Create | exp.Drop | exp.Alter):
            raise RuntimeError("400 DDL statement not supported inside a multi-statement transaction")
        for table in list(tree.find_all(exp.Table)):
            if table.name.upper().startswith("INFORMATION_SCHEMA."):  # dataset.INFORMATION_SCHEMA.VIEW
                dataset = table.db
                table.replace(exp.table_(table.name.split(".")[1].lower(), db="information_schema"))
                assert isinstance(tree, exp.Select)
                tree = tree.where(exp.column("table_schema").eq(exp.Literal.string(dataset)))
        cursor = self.database.execute(tree.sql(dialect="duckdb"),
                                       [p.value for p in job_config.query_parameters])
        names = [column[0] for column in cursor.description or []]
        return Job(Result(names, cursor.fetchall() if names else []))

    def close(self) -> None:
        pass


def data() -> duckdb.DuckDBPyConnection:
    database = duckdb.connect()
    database.execute("CREATE SCHEMA analytics")
    database.execute("CREATE TABLE analytics.accounts AS SELECT range AS account_id, (range * 37 % 100) * 100.0 AS arr "
                     "FROM range(1, 201)")
    database.execute("CREATE TABLE analytics.orders AS SELECT range AS order_id, range % 150 + 1 AS account_id, "
                     "DATE '2026-01-01' + CAST(range % 40 AS INTEGER) AS ordered_at, "
                     "CASE WHEN range % 3 = 0 THEN 'urgent' ELSE 'normal' END AS priority FROM range(1, 1001)")
    database.execute("USE analytics")
    return database


@pytest.fixture
def bigquery_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Project, RecordingClient]:
    (tmp_path / "segments_sql").mkdir()
    (tmp_path / "segsql.yml").write_text(CONFIG)
    for name, text in SEGMENTS.items():
        (tmp_path / "segments_sql" / f"{name}.sql").write_text(text)
    client = RecordingClient(data())
    monkeypatch.setattr(BigQueryEngine, "make_client", lambda self: client)
    return Project.load(tmp_path, as_of="2026-11-23"), client


def expected_members(client: RecordingClient) -> dict[str, set[str]]:
    big = client.database.execute("SELECT account_id FROM analytics.accounts WHERE arr >= 5000").fetchall()
    latest = client.database.execute(
        "SELECT account_id FROM analytics.orders QUALIFY ROW_NUMBER() OVER (PARTITION BY account_id "
        "ORDER BY ordered_at DESC, order_id DESC) = 1 AND priority = 'urgent'").fetchall()
    return {"big_accounts": {str(r[0]) for r in big}, "latest_order_urgent": {str(r[0]) for r in latest}}


def test_a_run_gives_the_members_and_submits_what_bigquery_takes(
        bigquery_project: tuple[Project, RecordingClient]) -> None:
    project, client = bigquery_project
    assert project.run().ok
    members = {name: {str(k) for k in project.members(name).iloc[:, 0]} for name in SEGMENTS}
    expected = expected_members(client)
    assert members == expected and all(len(keys) > 10 for keys in expected.values())
    assert project.size("big_accounts") == len(expected["big_accounts"])

    submitted = [sql for sql, config in client.jobs if not config.dry_run]
    assert any(sql.startswith("CREATE TABLE IF NOT EXISTS segsql.runs (run_id STRING NOT NULL") or
               sql.startswith("CREATE TABLE IF NOT EXISTS segsql.runs (run_id STRING,") for sql in submitted)
    assert not any("PRIMARY KEY" in sql for sql in submitted)  # BigQuery takes keys only NOT ENFORCED
    [materialised] = [sql for sql in submitted if sql.startswith("CREATE OR REPLACE TABLE segsql.staged__latest")]
    assert "QUALIFY ROW_NUMBER() OVER (PARTITION BY o.account_id ORDER BY o.ordered_at DESC" in materialised
    assert "ALTER TABLE segsql.staged__big_accounts RENAME TO segment__big_accounts" in submitted


def test_every_job_carries_labels_budget_timeout_and_typed_parameters(
        bigquery_project: tuple[Project, RecordingClient]) -> None:
    project, client = bigquery_project
    project.run()
    for _, config in client.jobs:
        assert config.labels == {"tool": "segsql"}
        assert config.maximum_bytes_billed == BUDGET and int(config.job_timeout_ms) == 600_000
        assert config.use_legacy_sql is False
    [(sql, membership)] = [(sql, config) for sql, config in client.jobs
                           if sql.startswith("INSERT INTO segsql.membership") and "big_accounts" in sql]
    kinds = [(p.name, p.type_, type(p.value).__name__) for p in membership.query_parameters]
    assert kinds == [(None, "STRING", "str"), (None, "DATE", "date")]  # run_id, as_of: bound, not pasted
    assert "2026-11-23" not in sql


def test_the_run_is_one_transaction_in_a_session_with_ddl_before_it(
        bigquery_project: tuple[Project, RecordingClient]) -> None:
    project, client = bigquery_project
    project.run()
    jobs = [(sql, config) for sql, config in client.jobs if not config.dry_run]
    sqls = [sql for sql, _ in jobs]
    begin, commit = sqls.index("BEGIN TRANSACTION"), sqls.index("COMMIT TRANSACTION")
    assert jobs[begin][1].create_session is True
    session = f"session-{client.jobs.index(jobs[begin]) + 1}"  # the id the fake handed out
    for _, config in jobs[begin + 1:commit + 1]:  # every later job of the transaction joins its session
        assert {p.key: p.value for p in config.connection_properties} == {"session_id": session}
    written = sqls[begin:commit]
    assert any(s.startswith("INSERT INTO segsql.membership") for s in written)
    assert any(s.startswith("UPDATE segsql.history") for s in written)
    assert not any(re.match(r"(CREATE|DROP|ALTER) ", s) for s in written)  # the fake would refuse them too
    assert sqls.index("ALTER TABLE segsql.staged__big_accounts RENAME TO segment__big_accounts") < begin
    assert client.jobs[-1][0] == "CALL BQ.ABORT_SESSION()" and client.session is None  # closed with the engine
    assert {p.key: p.value for p in client.jobs[-1][1].connection_properties} == {"session_id": session}


def test_each_materialisation_is_dry_run_first_and_refused_over_the_budget(
        bigquery_project: tuple[Project, RecordingClient]) -> None:
    project, client = bigquery_project
    project.run(select=["big_accounts"])
    dry = [i for i, (_, config) in enumerate(client.jobs) if config.dry_run]
    assert dry
    for i in dry:  # the dry run of a materialisation, then the same statement for real
        sql, config = client.jobs[i]
        assert sql.startswith("CREATE OR REPLACE TABLE segsql.staged__") and config.use_query_cache is False
        assert client.jobs[i + 1][0] == sql and not client.jobs[i + 1][1].dry_run

    before = client.database.execute("SELECT segment, entity_key FROM segsql.membership ORDER BY 1, 2").fetchall()
    client.scanned = BUDGET + 1
    with pytest.raises(RunError) as caught:
        project.with_options().run(select=["big_accounts"])
    assert "would scan 5,000,000,001 bytes, over the budget of 5,000,000,000" in caught.value.message
    assert client.database.execute("SELECT segment, entity_key FROM segsql.membership ORDER BY 1, 2").fetchall() == before


def test_missing_credentials_and_missing_extra_are_clear_errors(bigquery_project: tuple[Project, RecordingClient],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import google.auth.exceptions

    project, _ = bigquery_project

    def no_credentials(self: BigQueryEngine) -> Any:
        raise google.auth.exceptions.DefaultCredentialsError("Your default credentials were not found")

    monkeypatch.setattr(BigQueryEngine, "make_client", no_credentials)
    with pytest.raises(EngineError) as caught, project.engine() as engine:
        engine.fetchall(exp.select(exp.Literal.number(1)))
    assert "no Google credentials for BigQuery project my-gcp-project" in caught.value.message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in (caught.value.hint or "")
    monkeypatch.setitem(sys.modules, "google.cloud.bigquery", None)
    with pytest.raises(EngineError) as missing, project.engine():
        pass
    assert missing.value.hint == "run: pip install 'segsql[bigquery]'"


def test_credentials_in_the_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "segsql.yml").write_text("connection:\n  type: bigquery\n  project: p\n  dataset: d\n"
                                         "  keyfile: /home/me/key.json\n")
    with pytest.raises(ConfigError, match=r"`keyfile:` is a secret and never goes in segsql\.yml"):
        Project.load(tmp_path)


def test_the_warehouse_docs_profiles_load(tmp_path: Path) -> None:
    """docs/warehouses.md's segsql.yml snippet is a valid config (so the steps cannot drift)."""
    from segsql.config.models import BigQueryConnection, SnowflakeConnection, load_project_config

    text = (REPO / "docs" / "warehouses.md").read_text()
    [snippet] = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    (tmp_path / "segsql.yml").write_text("\n".join(line[3:] for line in snippet.splitlines()) + "\n")
    config = load_project_config(tmp_path)
    snowflake, bigquery_profile = config.profiles["snowflake"], config.profiles["bigquery"]
    assert isinstance(snowflake, SnowflakeConnection) and snowflake.password_env == "SNOWFLAKE_PASSWORD"
    assert isinstance(bigquery_profile, BigQueryConnection) and bigquery_profile.location == "EU"
    for command in re.findall(r"`segsql (\w+) --target snowflake`", text):
        from click.testing import CliRunner

        from segsql.cli import cli

        assert "--target" in CliRunner().invoke(cli, [command, "--help"]).output, command
