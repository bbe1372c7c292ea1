"""One dbt project, every engine: the segments of a segsql project on top of dbt read each
profile's relations and give the same members on DuckDB, Postgres, Spark and Snowflake (docs/dbt.md,
section 7, whose YAML and commands these tests use).

The fixture dbt project (tests/fixtures/dbt_project) is built with dbt-core three times: by
dbt-duckdb (target `prod`, artifacts in target/), by dbt-postgres on a throwaway server (target
`pg`, target-pg/, models in schema `analytics`) and by dbt-snowflake on fakesnow (target `snow`,
target-snowflake/). Spark has no dbt target: it gets copies of the DuckDB build's relations under
the same schema.table names, from Parquet, as a team replicating its marts would."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from segsql import ConfigError, Project
from segsql.config.dbt import DbtNode, relation
from tests import test_dbt
from tests.conftest import REPO, write_files
from tests.pg import DATABASE, PASSWORD, USER, PostgresServer
from tests.test_snowflake import PASSWORD_ENV as SNOWFLAKE_PASSWORD_ENV
from tests.test_snowflake import raw_connection
from tests.test_spark import require_spark

PG_PASSWORD_ENV = "SEGSQL_TEST_PGPASSWORD"
SNOWFLAKE_DATABASE = "SEGSQL_DBT"
# after the snapshot was taken (its versions are valid from the build), so every segment sees it all
AS_OF = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)

SNAPSHOT_DACH = """\
{{ config(entity='customer', description='DACH customers as the dbt snapshot knows them') }}
select s.customer_id, s.country
from {{ dbt('customers_snapshot') }} as s
where s.country in ('DE', 'AT', 'CH')
"""
BIG_ORDERS = """\
{{ config(entity='customer', description='Customers with an order of 100 or more') }}
select o.customer_id, max(o.amount) as largest_order
from {{ dbt('raw_orders') }} as o
group by o.customer_id
having max(o.amount) >= 100
"""
SEGMENTS = {**test_dbt.SEGMENTS, "segments_sql/snapshot_dach.sql": SNAPSHOT_DACH,
            "segments_sql/big_orders.sql": BIG_ORDERS}
EXPECTED = {"dach_high_value": {1, 3, 6, 7}, "dach_paying": {1, 3, 6, 7}, "snapshot_dach": {1, 2, 3, 5, 6, 7, 9},
            "big_orders": {3, 4, 7}}
PROFILE_NAMES = ("pg", "spark", "snowflake")


def doc_yaml(marker: str) -> str:
    """The yaml block of docs/dbt.md whose first line is the comment `marker`."""
    (block,) = [block for block in test_dbt.doc_blocks("yaml") if block.startswith(f"# {marker}\n")]
    return block


def doc_commands(program: str) -> list[list[str]]:
    """The `program` command lines of docs/dbt.md's several-warehouses section, as argv lists."""
    section = (REPO / "docs" / "dbt.md").read_text(encoding="utf-8").split("## 7. ", 1)[1]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return [line.split() for block in blocks for line in block.splitlines() if line.startswith(f"{program} ")]


def dbt_commands(target: str) -> list[list[str]]:
    """docs/dbt.md's dbt commands for `target`, without `--target` (run_dbt adds it)."""
    commands = [command for command in doc_commands("dbt") if command[command.index("--target") + 1] == target]
    assert [command[1] for command in commands] == ["build", "docs"], target  # build, then docs generate
    return [[word for word in command[1:] if word not in ("--target", target)] for command in commands]


def dbt_profiles(folder: Path, server: PostgresServer, snowflake: tuple[str, int]) -> None:
    """profiles.yml beside the dbt project: `prod` on a DuckDB file, `pg` on the test's Postgres,
    `snow` on fakesnow (dbt-snowflake pointed at its host); passwords from the environment."""
    outputs = {"prod": {"type": "duckdb", "path": str(folder / "warehouse.duckdb"), "threads": 1},
               "pg": {"type": "postgres", "host": "127.0.0.1", "port": server.port, "user": USER,
                      "password": "{{ env_var('" + PG_PASSWORD_ENV + "') }}", "dbname": DATABASE,
                      "schema": "analytics", "threads": 1},
               "snow": {"type": "snowflake", "account": "fakesnow", "user": "segsql", "database": SNOWFLAKE_DATABASE,
                        "password": "{{ env_var('" + SNOWFLAKE_PASSWORD_ENV + "') }}", "schema": "ANALYTICS",
                        "warehouse": "SEGSQL_WH", "role": "SEGSQL_ROLE", "host": snowflake[0], "port": snowflake[1],
                        "protocol": "http", "connect_timeout": 30, "threads": 1}}
    (folder / "profiles.yml").write_text(json.dumps({"shop": {"target": "prod", "outputs": outputs}}), encoding="utf-8")


def segsql_yml(pg_port: int, snowflake: tuple[str, int], login_timeout: int = 30) -> str:
    """The segsql project of docs/dbt.md's several-warehouses section, with the test's servers."""
    host, port = snowflake
    return (doc_yaml("segsql.yml") +
            "connection: {type: duckdb, path: ../warehouse.duckdb}\n"
            "profiles:\n"
            f"  pg: {{type: postgres, host: 127.0.0.1, port: {pg_port}, dbname: {DATABASE}, user: {USER}, "
            f"password_env: {PG_PASSWORD_ENV}}}\n"
            "  spark: {type: spark, master: 'local[1]', warehouse: spark-warehouse}\n"
            f"  snowflake: {{type: snowflake, account: fakesnow, user: segsql, password_env: {SNOWFLAKE_PASSWORD_ENV}, "
            f"database: {SNOWFLAKE_DATABASE}, schema: PUBLIC, host: {host}, port: {port}, protocol: http, "
            f"login_timeout: {login_timeout}}}\n"
            "entities:\n  customer: {key: customer_id, source: 'dbt:customer_ltv'}\n")


def duckdb_relations(database: Path) -> list[tuple[str, str]]:
    """(schema, name) of every table and view dbt-duckdb built (segsql's own schema left out)."""
    connection = duckdb.connect(str(database), read_only=True)
    try:
        return [(schema, name) for schema, name in connection.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('main', 'stripe') order by 1, 2").fetchall()]
    finally:
        connection.close()


def export_parquet(database: Path, folder: Path) -> dict[tuple[str, str], Path]:
    """Each relation of the DuckDB build as a Parquet file (how a team replicates marts)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    connection = duckdb.connect(str(database), read_only=True)
    try:
        for schema, name in duckdb_relations(database):
            files[(schema, name)] = folder / f"{schema}.{name}.parquet"
            connection.execute(f"COPY {schema}.{name} TO '{files[(schema, name)]}' (FORMAT parquet)")
    finally:
        connection.close()
    return files


def load_spark(project: Project, files: dict[tuple[str, str], Path]) -> None:
    """The relations as Spark tables over the Parquet files, under the same schema.table names
    (Spark's session, and so its catalog, is shared by the process: segsql's engine sees them)."""
    with project.engine() as engine:
        spark = engine.spark  # type: ignore[attr-defined]
        for (schema, name), file in files.items():
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {schema}")
            spark.sql(f"DROP TABLE IF EXISTS {schema}.{name}")
            spark.sql(f"CREATE TABLE {schema}.{name} USING parquet LOCATION '{file}'")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory: pytest.TempPathFactory, fakesnow_server: tuple[str, int]) -> Iterator[dict[str, Any]]:
    """The dbt project built on DuckDB, Postgres and Snowflake, the DuckDB build's relations copied
    to Spark, and a segsql project `segments/` on top of it with a profile per engine."""
    test_dbt.require_dbt("dbt-postgres", "dbt-snowflake")
    server = PostgresServer().start()
    os.environ[PG_PASSWORD_ENV] = PASSWORD
    os.environ[SNOWFLAKE_PASSWORD_ENV] = "s3cret-snow"
    try:
        base = tmp_path_factory.mktemp("dbt_engines")
        shutil.copytree(test_dbt.FIXTURE, base / "analytics",
                        ignore=shutil.ignore_patterns("target*", "logs", "dbt_packages"))
        dbt_profiles(base, server, fakesnow_server)
        test_dbt.run_dbt(base / "analytics", ["build"], ["docs", "generate"])
        for target in ("pg", "snow"):
            test_dbt.run_dbt(base / "analytics", *dbt_commands(target), target=target)
        files = export_parquet(base / "warehouse.duckdb", base / "parquet")
        write_files(base / "segments", {"segsql.yml": segsql_yml(server.port, fakesnow_server), **SEGMENTS})
        yield {"base": base, "server": server, "files": files, "snowflake": fakesnow_server}
    finally:
        os.environ.pop(PG_PASSWORD_ENV, None)
        os.environ.pop(SNOWFLAKE_PASSWORD_ENV, None)
        server.cleanup()


def load(base: Path, target: str | None) -> Project:
    return Project.load(base / "segments", as_of=AS_OF, target=target)


def members(project: Project) -> dict[str, set[int]]:
    result = project.run()
    assert result.ok
    return {name: {int(key) for key in project.members(name)["customer_id"]} for name in project.select()}


@pytest.mark.slow
@pytest.mark.postgres
def test_each_profile_reads_the_relations_its_warehouse_has(warehouses: dict[str, Any]) -> None:
    base = warehouses["base"]
    tables = {target: {name: load(base, target).config.sources[name].table
                       for name in ("dbt:customer_ltv", "dbt:stripe.invoices", "dbt:customers_snapshot")}
              for target in (None, *PROFILE_NAMES)}
    assert tables[None] == {"dbt:customer_ltv": "warehouse.main.customer_ltv",
                            "dbt:stripe.invoices": "warehouse.stripe.invoices",
                            "dbt:customers_snapshot": "warehouse.main.customers_snapshot"}
    # dbt-postgres's own relations (its target schema), without the connection's database
    assert tables["pg"] == {"dbt:customer_ltv": "analytics.customer_ltv", "dbt:stripe.invoices": "stripe.invoices",
                            "dbt:customers_snapshot": "analytics.customers_snapshot"}
    # dbt-snowflake's, database included (Snowflake reads across databases)
    assert tables["snowflake"] == {"dbt:customer_ltv": "SEGSQL_DBT.ANALYTICS.customer_ltv",
                                   "dbt:stripe.invoices": "SEGSQL_DBT.stripe.invoices",
                                   "dbt:customers_snapshot": "SEGSQL_DBT.ANALYTICS.customers_snapshot"}
    # no dbt target of its own: the `prod` relations by schema.name (a DuckDB file's name means nothing there)
    assert tables["spark"] == {"dbt:customer_ltv": "main.customer_ltv", "dbt:stripe.invoices": "stripe.invoices",
                               "dbt:customers_snapshot": "main.customers_snapshot"}
    pg = load(base, "pg").config.sources["dbt:customer_ltv"]
    assert pg.columns is not None and pg.columns["lifetime_value"] == "double precision"  # from target-pg's catalog
    snow = load(base, "snowflake").config.sources["dbt:customers_snapshot"]
    assert snow.columns is not None and snow.columns["customer_id"] == "NUMBER"  # catalog.json says CUSTOMER_ID
    assert snow.time is not None and snow.time.valid_to == "dbt_valid_to"
    for target in PROFILE_NAMES:  # the same dbt lineage whichever warehouse runs
        assert load(base, target).select(["dbt:customer_ltv"]) == ["dach_high_value", "dach_paying"], target
        assert load(base, target).select(["dbt:customers_snapshot"]) == ["snapshot_dach"], target


def test_the_docs_run_each_target_the_test_runs() -> None:
    commands = doc_commands("segsql")
    assert ["segsql", "validate", "--target", "pg"] in commands
    assert sorted(command[3] for command in commands if command[1] == "run") == sorted(PROFILE_NAMES)
    assert ["segsql", "compile", "--format", "dbt", "--target", "snowflake"] in commands  # as the test below runs it


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.spark
def test_the_same_segments_have_the_same_members_on_every_engine(warehouses: dict[str, Any]) -> None:
    require_spark()
    base = warehouses["base"]
    on = {"duckdb": members(load(base, None)), "pg": members(load(base, "pg"))}
    on["snowflake"] = members(load(base, "snowflake"))
    spark = load(base, "spark")
    load_spark(spark, warehouses["files"])
    on["spark"] = members(spark)
    assert on["duckdb"] == EXPECTED  # the fixture's data: equal empty sets would prove nothing
    for engine, found in on.items():
        assert found == EXPECTED, engine


@pytest.mark.slow
@pytest.mark.postgres
def test_a_profile_reads_the_same_traits_from_each_warehouses_catalog(warehouses: dict[str, Any]) -> None:
    """The traits of the entity's dbt source are typed by each target's catalog.json (BIGINT,
    bigint, NUMBER): numbers are profiled as numbers on every warehouse."""
    found = {}
    for target in (None, "pg", "snowflake"):
        project = load(warehouses["base"], target)
        project.run(["dach_high_value"])
        frame = project.profile("dach_high_value", traits=["orders", "lifetime_value", "country"])
        found[target] = sorted((row.trait, row.kind, row.value, round(float(row.segment), 6))
                               for row in frame.itertuples() if row.kind == "numeric")
    assert [trait for trait, kind, value, _ in found[None] if value == "mean"] == ["lifetime_value", "orders"]
    assert found["pg"] == found[None] and found["snowflake"] == found[None]


@pytest.mark.slow
@pytest.mark.postgres
def test_validate_needs_no_connection_for_any_target(warehouses: dict[str, Any], tmp_path: Path) -> None:
    """`segsql validate --target X` in a fresh process, with every server unreachable: no DuckDB
    file, nothing on the Postgres and Snowflake ports, no Java for Spark."""
    base = warehouses["base"]
    offline = base / "offline"
    config = segsql_yml(free_port(), ("127.0.0.1", free_port()), login_timeout=5)
    write_files(offline, {"segsql.yml": config.replace("../warehouse.duckdb", "no_such_folder/w.duckdb"), **SEGMENTS})
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no_java"), "PATH": _path_without_java(),
           PG_PASSWORD_ENV: "unused", SNOWFLAKE_PASSWORD_ENV: "unused"}
    for target in (None, *PROFILE_NAMES):
        command = ["segsql", "validate", "--project", str(offline), *(["--target", target] if target else [])]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
        assert done.returncode == 0, (target, done.stdout, done.stderr)
        assert "4 segment(s) valid" in done.stdout, target
        assert "not found in the connection" not in done.stderr, target  # columns came from the catalog
    wrong = SEGMENTS["segments_sql/snapshot_dach.sql"].replace("s.country in", "s.countyr in")
    write_files(offline, {"segments_sql/snapshot_dach.sql": wrong})
    done = subprocess.run(["segsql", "validate", "--project", str(offline), "--target", "pg"], capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    assert done.returncode == 1 and "countyr" in done.stdout + done.stderr


def _path_without_java() -> str:
    """PATH without the folder of `java`, so Spark cannot start (it would, were validate to connect)."""
    java = shutil.which("java")
    folders = os.environ.get("PATH", "").split(os.pathsep)
    if java is None:
        return os.pathsep.join(folders)
    real = {str(Path(java).parent), str(Path(java).resolve().parent)}
    return os.pathsep.join(folder for folder in folders if folder not in real)


@pytest.mark.slow
@pytest.mark.postgres
def test_generated_models_build_on_postgres_and_snowflake_with_the_same_members(
        warehouses: dict[str, Any], runner: CliRunner) -> None:
    from segsql.cli import cli

    base = warehouses["base"]
    queries = {"pg": lambda name: postgres_keys(warehouses["server"], f"select customer_id from analytics.{name}"),
               "snowflake": lambda name: snowflake_keys(warehouses["snowflake"],
                                                        f"select customer_id from {SNOWFLAKE_DATABASE}.ANALYTICS.{name}")}
    for target, dbt_target, dialect in (("pg", "pg", "postgres"), ("snowflake", "snow", "snowflake")):
        written = runner.invoke(cli, ["compile", "--project", str(base / "segments"), "--as-of", AS_OF.isoformat(),
                                      "--format", "dbt", "--target", target])
        assert written.exit_code == 0, written.output
        model = (base / "analytics" / "models" / "segments" / "snapshot_dach.sql").read_text()
        assert f"in {dialect} SQL" in model.splitlines()[1], target  # the profile's dbt adapter's SQL
        (build, _) = dbt_commands(dbt_target)
        test_dbt.run_dbt(base / "analytics", [*build, "--select", "path:models/segments"], target=dbt_target)
        for name, expected in EXPECTED.items():
            assert queries[target](name) == expected, (target, name)
    both = runner.invoke(cli, ["compile", "--project", str(base / "segments"), "--format", "dbt",
                               "--target", "pg", "--target", "snowflake"])
    assert both.exit_code == 2 and "one dbt target" in both.output


@pytest.mark.slow
@pytest.mark.postgres
def test_diff_on_a_profile_compares_with_that_profiles_dbt_target(warehouses: dict[str, Any], tmp_path: Path) -> None:
    """`segsql diff --target snowflake`: the base revision reads target-snowflake's relations as
    the head does, so only the changed dbt column is reported, no segment's SQL."""
    for folder in ("analytics", "segments"):
        shutil.copytree(warehouses["base"] / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("spark-warehouse", "logs", "*.duckdb*"))
    test_dbt.commit_everything(tmp_path, "*.duckdb\n*.wal\nspark-warehouse/\n")
    test_dbt.change_column_type(tmp_path / "analytics" / "target-snowflake", "LIFETIME_VALUE", "NUMBER(18,2)")
    project = Project.load(tmp_path / "segments", as_of=AS_OF, target="snowflake")
    report = project.diff("HEAD")
    assert report.dbt_changes == {"dbt:customer_ltv": {"lifetime_value": "FLOAT -> NUMBER(18,2)"}}
    assert {segment.name: segment.status for segment in report.segments} == dict.fromkeys(EXPECTED, "unchanged")
    change = "dbt:customer_ltv.lifetime_value: FLOAT -> NUMBER(18,2)"
    assert {s.name: s.dbt_columns for s in report.segments if s.dbt_columns} == {
        "dach_high_value": [change], "dach_paying": [change]}


def postgres_keys(server: PostgresServer, query: str) -> set[int]:
    import psycopg

    with psycopg.connect(**server.params()) as connection:
        return {int(row[0]) for row in connection.execute(query).fetchall()}


def snowflake_keys(server: tuple[str, int], query: str) -> set[int]:
    connection = raw_connection(server, SNOWFLAKE_DATABASE)
    try:
        return {int(row[0]) for row in connection.cursor().execute(query).fetchall()}
    finally:
        connection.close()


def _node(**fields: Any) -> DbtNode:
    defaults: dict[str, Any] = {"unique_id": "model.shop.customer_ltv", "resource_type": "model",
                                "name": "customer_ltv", "package": "shop", "database": "warehouse",
                                "schema": "main", "identifier": "customer_ltv",
                                "relation_name": '"warehouse"."main"."customer_ltv"'}
    return DbtNode(**{**defaults, **fields})


def test_a_relation_keeps_the_quotes_its_warehouse_needs() -> None:
    """dbt-postgres quotes every name; a schema `Analytics` only exists quoted, `main` needs none."""
    mixed = _node(database="shop_db", schema="Analytics", relation_name='"shop_db"."Analytics"."customer_ltv"')
    assert relation(mixed, "postgres", "postgres").sql("postgres") == '"Analytics".customer_ltv'
    assert relation(mixed, "duckdb", "postgres").sql("duckdb") == "Analytics.customer_ltv"  # a copy elsewhere folds
    assert relation(_node(), "duckdb", "duckdb").sql("duckdb") == "warehouse.main.customer_ltv"
    assert relation(_node(), "spark", "duckdb").sql("spark") == "main.customer_ltv"
    upper = _node(database="ANALYTICS", schema="MARTS", relation_name="ANALYTICS.MARTS.customer_ltv")
    assert relation(upper, "snowflake", "snowflake").sql("snowflake") == "ANALYTICS.MARTS.customer_ltv"
    quoted = _node(database="ANALYTICS", schema="MARTS", relation_name='ANALYTICS.MARTS."customer_ltv"')
    assert relation(quoted, "snowflake", "snowflake").sql("snowflake") == 'ANALYTICS.MARTS."customer_ltv"'
    project = _node(database="my-project", schema="marts", relation_name="`my-project`.`marts`.`customer_ltv`")
    assert relation(project, "bigquery", "bigquery").sql("bigquery") == "`my-project`.marts.customer_ltv"


def test_a_dbt_target_for_an_unknown_profile_is_a_located_error(tmp_path: Path) -> None:
    write_files(tmp_path, {"dbt/target/manifest.json": '{"nodes": {}, "sources": {}}',
                           "dbt/target/catalog.json": '{"nodes": {}, "sources": {}}',
                           "segsql.yml": "dbt:\n  project_dir: dbt\n  profiles:\n    pgg: {target: pg}\n"
                                         "profiles:\n  pg: {type: duckdb}\n"})
    with pytest.raises(ConfigError, match="unknown profile `pgg`") as raised:
        Project.load(tmp_path)
    assert raised.value.location is not None and raised.value.location.line == 4
    assert "did you mean `pg`?" in (raised.value.hint or "")



def test_a_profiles_dbt_artifacts_are_its_own(tmp_path: Path) -> None:
    empty = '{"nodes": {}, "sources": {}}'
    write_files(tmp_path, {"dbt/target/manifest.json": empty, "dbt/target/catalog.json": empty,
                           "dbt/target/run_results.json": '{"args": {"target": "prod"}}',
                           "dbt/target-pg/manifest.json": empty, "dbt/target-pg/catalog.json": empty,
                           "dbt/target-pg/run_results.json": '{"args": {"target": "pg"}}',
                           "segsql.yml": "dbt:\n  project_dir: dbt\n  target: prod\n  profiles:\n"
                                         "    pg: {target_path: target-pg}\n    lake: {target_path: target-lake}\n"
                                         "profiles:\n  pg: {type: duckdb}\n  lake: {type: duckdb}\n"})
    # a folder of another target is not checked against `prod` (its own `target:` would be)
    assert Project.load(tmp_path, target="pg").config.dbt_artifacts.manifest_path == \
        tmp_path / "dbt" / "target-pg" / "manifest.json"
    with pytest.raises(ConfigError, match=re.escape("target-lake/manifest.json does not exist")) as raised:
        Project.load(tmp_path, target="lake")
    assert raised.value.location is not None and raised.value.location.line == 6  # at the profile's entry


def test_an_unreachable_engine_leaves_every_source_in_the_catalog(tmp_path: Path) -> None:
    """A dbt node catalog.json does not describe (fakesnow lists no views) needs the engine; when it
    cannot be reached, the sources after it must still be known, with their declared columns."""
    pytest.importorskip("psycopg")
    os.environ.setdefault(PG_PASSWORD_ENV, "unused")
    config = (f"connection: {{type: postgres, host: 127.0.0.1, port: {free_port()}, dbname: x, user: u, "
              f"password_env: {PG_PASSWORD_ENV}}}\n"
              "sources:\n  a_undescribed: {table: a_undescribed}\n"
              "  b_declared: {table: b_declared, columns: {customer_id: BIGINT}}\n"
              "entities:\n  customer: {key: customer_id}\n")
    write_files(tmp_path, {"segsql.yml": config, "segments_sql/s.sql":
                           "{{ config(entity='customer') }}\nselect customer_id from {{ source('b_declared') }}\n"})
    project = Project.load(tmp_path)
    assert [error.message for error in project.validate()] == []
    assert any("cannot connect" in str(warning) for warning in project.warnings)
    typo = "{{ config(entity='customer') }}\nselect customer_idd from {{ source('b_declared') }}\n"
    write_files(tmp_path, {"segments_sql/s.sql": typo})
    [error] = Project.load(tmp_path).validate()
    assert "customer_idd" in error.message  # its declared columns are still checked
