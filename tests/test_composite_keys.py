"""Composite entity keys (`key: [l_orderkey, l_linenumber]`): TPC-H-like line items through run,
membership, history, exports, hooks, rollups and erasure, on DuckDB, a real Postgres and Spark."""

from __future__ import annotations

import csv
import json
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from sqlglot import exp

from segsql import Project
from segsql.cli.main import cli
from segsql.compile.keys import EntityKey
from segsql.engines import storage
from segsql.errors import ConfigError, SegsqlError, ValidationError
from segsql.run.runner import RunError
from tests.conftest import write_files
from tests.pg import PostgresServer, copy_duckdb_tables, running_server

AS_OF = "2026-11-23"
CONFIG = """\
name: composite_keys
connection: {type: duckdb, path: data.duckdb}
sources:
  lineitem: {table: lineitem}
  orders: {table: orders}
entities:
  order: {key: o_orderkey, source: orders}
  line:
    key: [l_orderkey, l_linenumber]
    source: lineitem
    parent: order
    parent_key: l_orderkey
"""
BIG_LINES = """{{ config(entity='line', export_columns=['l_quantity']) }}
SELECT l.l_orderkey, l.l_linenumber, l.l_quantity, l.l_returnflag
FROM {{ source('lineitem') }} AS l WHERE l.l_quantity >= 40"""
ORDERS_WITH_BIG_LINES = """{{ config(entity='order') }}
{{ rollup('big_lines', 'at_least', n=2) }}"""
SEGMENTS = {"segments_sql/big_lines.sql": BIG_LINES, "segments_sql/orders_with_big_lines.sql": ORDERS_WITH_BIG_LINES}


def line_items(seed: int, orders: int = 120) -> list[tuple[int, int, int, str]]:
    """(l_orderkey, l_linenumber, l_quantity, l_returnflag): 1..7 lines per order, like TPC-H."""
    rng = random.Random(seed)
    return [(order, line, rng.randint(1, 50), rng.choice("ANR"))
            for order in range(1, orders + 1) for line in range(1, rng.randint(1, 7) + 1)]


def load(database: Path, rows: list[tuple[int, int, int, str]]) -> None:
    connection = duckdb.connect(str(database))
    try:
        connection.execute("CREATE OR REPLACE TABLE lineitem (l_orderkey BIGINT, l_linenumber INTEGER, "
                           "l_quantity INTEGER, l_returnflag VARCHAR)")
        connection.executemany("INSERT INTO lineitem VALUES (?, ?, ?, ?)", rows)
        connection.execute("CREATE OR REPLACE TABLE orders AS SELECT DISTINCT l_orderkey AS o_orderkey, "
                           "l_orderkey % 17 AS o_custkey FROM lineitem")
    finally:
        connection.close()


def big(rows: list[tuple[int, int, int, str]]) -> set[str]:
    """The pandas-free re-computation of `big_lines`, encoded as segsql stores it."""
    return {f"{order}|{line}" for order, line, quantity, _ in rows if quantity >= 40}


def stored(project: Project, table: str, segment: str) -> set[str]:
    query = exp.select("entity_key").from_(storage.table(table)).where(
        exp.column("segment").eq(exp.Literal.string(segment)))
    with project.engine() as engine:
        return {str(row[0]) for row in engine.fetchall(query)}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_files(tmp_path, {"segsql.yml": CONFIG, **SEGMENTS})
    return tmp_path


def test_line_items_run_rerun_history_export_and_forget(root: Path) -> None:
    first, second = line_items(1), line_items(2)
    load(root / "data.duckdb", first)
    project = Project.load(root, as_of=AS_OF)
    assert project.run().ok
    assert stored(project, "membership", "big_lines") == big(first)
    assert stored(project, "history", "big_lines") == big(first)
    members = project.members("big_lines")
    assert list(members.columns[:2]) == ["l_orderkey", "l_linenumber"]  # stored sorted by the key's parts
    assert list(members.itertuples(index=False, name=None))[:2] == sorted(
        (o, n, q, f) for o, n, q, f in first if q >= 40)[:2]
    export = root / "out"
    project.export("big_lines", to="csv", path=export, changes_only=True)

    load(root / "data.duckdb", second)
    project = Project.load(root, as_of=AS_OF)
    assert project.run().ok
    entered, exited = big(second) - big(first), big(first) - big(second)
    assert entered and exited
    change = project.changes("big_lines").iloc[-1]
    assert (int(change["entered"]), int(change["exited"])) == (len(entered), len(exited))
    assert set(project.members_at("big_lines", "2099-01-01")) == big(second)

    result = project.export("big_lines", to="csv", path=export, changes_only=True)
    assert (result.added, result.removed) == (len(entered), len(exited))
    with open(export / "members.csv") as handle:
        sent = list(csv.DictReader(handle))
    assert {row["entity_key"] for row in sent} == entered
    assert {(row["l_orderkey"], row["l_linenumber"]) for row in sent} == {tuple(k.split("|")) for k in entered}
    assert set(sent[0]) == {"segment", "entity", "entity_key", "l_orderkey", "l_linenumber", "l_quantity"}
    with open(export / "memberships.csv") as handle:
        removed = [row for row in csv.DictReader(handle) if row["change"] == "removed"]
    assert {(row["l_orderkey"], row["l_linenumber"]) for row in removed} == {tuple(k.split("|")) for k in exited}

    order, line = sorted(entered)[0].split("|")
    erasure = project.forget("line", [order, line], reason="ticket-1")
    assert erasure.rows_removed >= 4  # membership, history, export state, result table
    assert erasure.files_rewritten
    gone = f"{order}|{line}"
    for table in ("membership", "history", "export_state"):
        assert gone not in stored(project, table, "big_lines")
    left = project.members("big_lines")
    assert not ((left.l_orderkey == int(order)) & (left.l_linenumber == int(line))).any()
    assert stored(project, "membership", "big_lines") == big(second) - {gone}
    with open(export / "members.csv") as handle:
        assert gone not in {row["entity_key"] for row in csv.DictReader(handle)}


def test_rollup_counts_lines_per_order_and_names_its_key(root: Path) -> None:
    rows = line_items(3)
    load(root / "data.duckdb", rows)
    write_files(root, {"segments_sql/by_customer.sql": "{{ config(entity='order') }}\n"
                       "SELECT r.o_key AS o_orderkey FROM ({{ rollup('big_lines', as_key='o_key') }}) AS r"})
    project = Project.load(root, as_of=AS_OF)
    assert project.run().ok
    per_order: dict[int, int] = {}
    for order, _, quantity, _ in rows:
        per_order[order] = per_order.get(order, 0) + (quantity >= 40)
    assert stored(project, "membership", "orders_with_big_lines") == {str(o) for o, n in per_order.items() if n >= 2}
    assert stored(project, "membership", "by_customer") == {str(o) for o, n in per_order.items() if n >= 1}


def test_duplicate_and_null_tuples_are_refused_and_dedupe_keeps_one_per_tuple(root: Path) -> None:
    rows = line_items(4, orders=30)
    load(root / "data.duckdb", rows)
    joined = ("SELECT l.l_orderkey, l.l_linenumber, m.l_linenumber AS other FROM {{ source('lineitem') }} AS l "
              "JOIN {{ source('lineitem') }} AS m ON m.l_orderkey = l.l_orderkey")
    write_files(root, {"segments_sql/twice.sql": "{{ config(entity='line') }}\n" + joined})
    project = Project.load(root, as_of=AS_OF)
    with pytest.raises(RunError, match=r"duplicate `\(l_orderkey, l_linenumber\)` value"):
        project.run(["twice"])
    # one line per order number: duplicates of l_orderkey alone are fine when the tuple is unique
    assert project.run(["big_lines"]).ok
    write_files(root, {"segments_sql/twice.sql": "{{ config(entity='line', duplicates='dedupe') }}\n" + joined})
    project = Project.load(root, as_of=AS_OF)
    assert project.run(["twice"]).ok
    assert stored(project, "membership", "twice") == {f"{o}|{n}" for o, n, _, _ in rows}
    write_files(root, {"segments_sql/twice.sql": "{{ config(entity='line') }}\nSELECT l.l_orderkey, "
                       "CASE WHEN l.l_linenumber = 2 THEN NULL ELSE l.l_linenumber END AS l_linenumber "
                       "FROM {{ source('lineitem') }} AS l"})
    project = Project.load(root, as_of=AS_OF)
    with pytest.raises(RunError, match=r"NULL in a part of the key `\(l_orderkey, l_linenumber\)`"):
        project.run(["twice"])


def test_the_encoding_is_injective_for_separator_and_escape_characters(tmp_path: Path) -> None:
    tricky = [("a|b", "c"), ("a", "b|c"), ("a%7Cb", "c"), ("a%", "7Cb|c"), ("", "|"), ("|", "")]
    connection = duckdb.connect(str(tmp_path / "data.duckdb"))
    connection.execute("CREATE TABLE codes (code VARCHAR, part VARCHAR)")
    connection.executemany("INSERT INTO codes VALUES (?, ?)", tricky)
    connection.close()
    write_files(tmp_path, {"segsql.yml": "connection: {type: duckdb, path: data.duckdb}\nsources:\n"
                           "  codes: {table: codes}\nentities:\n  code: {key: [code, part], source: codes}\n",
                           "segments_sql/all_codes.sql": "{{ config(entity='code') }}\n"
                           "SELECT c.code, c.part FROM {{ source('codes') }} AS c"})
    project = Project.load(tmp_path, as_of=AS_OF)
    assert project.run().ok
    keys = stored(project, "membership", "all_codes")
    assert len(keys) == len(tricky)
    key = EntityKey(("code", "part"))
    assert {key.decode(k) for k in keys} == set(tricky)
    assert keys == {key.encode(parts) for parts in tricky}
    project.forget("code", ["a|b", "c"])
    assert {key.decode(k) for k in stored(project, "membership", "all_codes")} == set(tricky) - {("a|b", "c")}


def test_hooks_send_the_key_columns_by_name(root: Path) -> None:
    load(root / "data.duckdb", line_items(5, orders=20))
    payload = root / "payload.json"
    command = [sys.executable, "-c", f"import sys; open({str(payload)!r}, 'wb').write(sys.stdin.buffer.read())"]
    (root / "segsql.yml").write_text(CONFIG + f"hooks:\n  - {{name: log, segments: [big_lines], command: {json.dumps(command)}}}\n")
    project = Project.load(root, as_of=AS_OF)
    assert [hook.status for hook in project.run().hooks] == ["ok"]
    segment = json.loads(payload.read_text())["segments"][0]
    assert segment["entered"] and all(set(key) == {"l_orderkey", "l_linenumber"} for key in segment["entered"])
    assert {f"{k['l_orderkey']}|{k['l_linenumber']}" for k in segment["entered"]} == stored(
        project, "membership", "big_lines")


@pytest.mark.parametrize(("key", "message", "line"), [
    ("[]", "at least one column", 4), ("[a, A]", "key column `A` is listed twice", 4)])
def test_bad_composite_keys_are_located_config_errors(tmp_path: Path, key: str, message: str, line: int) -> None:
    write_files(tmp_path, {"segsql.yml": "connection: {type: duckdb}\nsources: {t: {table: t}}\nentities:\n"
                           f"  thing: {{key: {key}, source: t}}\n"})
    with pytest.raises(ConfigError, match=message) as raised:
        Project.load(tmp_path)
    assert raised.value.line == line


def test_a_one_item_list_is_the_plain_key(tmp_path: Path) -> None:
    write_files(tmp_path, {"segsql.yml": "connection: {type: duckdb}\nsources: {t: {table: t}}\nentities:\n"
                           "  thing: {key: [thing_id], source: t}\n"})
    assert Project.load(tmp_path).config.entities["thing"].key == "thing_id"


def test_parts_that_print_differently_per_engine_are_refused(root: Path) -> None:
    load(root / "data.duckdb", line_items(6, orders=5))
    write_files(root, {"segments_sql/floaty.sql": "{{ config(entity='line') }}\nSELECT l.l_orderkey, "
                       "CAST(l.l_linenumber AS DOUBLE) AS l_linenumber FROM {{ source('lineitem') }} AS l"})
    errors = Project.load(root, as_of=AS_OF).validate(["floaty"])
    assert len(errors) == 1 and isinstance(errors[0], ValidationError)
    assert "key column `l_linenumber` of entity `line` is DOUBLE" in errors[0].message
    for kind, refused in (("DECIMAL(10, 2)", True), ("DECIMAL(10, 0)", False), ("DATE", False)):
        write_files(root, {"segments_sql/floaty.sql": "{{ config(entity='line') }}\nSELECT l.l_orderkey, "
                           f"CAST(l.l_linenumber AS {kind}) AS l_linenumber FROM {{{{ source('lineitem') }}}} AS l"})
        assert bool(Project.load(root, as_of=AS_OF).validate(["floaty"])) == refused, kind


def test_features_that_need_one_key_column_refuse_clearly(root: Path) -> None:
    load(root / "data.duckdb", line_items(7, orders=5))
    project = Project.load(root, as_of=AS_OF)
    assert project.run().ok
    with pytest.raises(SegsqlError, match=r"cohorts needs a one-column entity key; entity `line` is keyed by "
                                          r"\(l_orderkey, l_linenumber\)"):
        project.cohorts("line", "lineitem", at="l_quantity")
    write_files(root, {"segments_sql/scored.sql": "{{ config(entity='line') }}\n"
                       "{{ rfm('lineitem', at='l_quantity', amount='l_quantity') }}"})
    errors = Project.load(root, as_of=AS_OF).validate(["scored"])
    assert errors and "rfm() outputs one key column" in errors[0].message
    (root / "segsql.yml").write_text(CONFIG.replace("  order: {key: o_orderkey, source: orders}",
                                                    "  order: {key: [o_orderkey, o_custkey], source: orders}"))
    with pytest.raises(ConfigError, match="parent `order` has a composite key") as raised:
        Project.load(root)
    assert raised.value.line == 11  # the `parent:` line


def test_one_column_keys_store_exactly_what_they_always_did() -> None:
    """The statements main wrote for a one-column key, byte for byte: existing membership and
    history keep matching (no migration)."""
    key = EntityKey(("user_id",))
    assert storage.insert_membership("s", "user", key).sql("duckdb") == (
        "INSERT INTO segsql.membership (segment, entity, entity_key, run_id, as_of) "
        "SELECT 's', 'user', CAST(user_id AS TEXT), ?, ? FROM segsql.segment__s")
    assert storage.close_history("s", key).sql("postgres") == (
        "UPDATE segsql.history SET valid_to = %s, closed_by_run = %s WHERE (segment = 's' AND valid_to IS NULL) "
        "AND NOT entity_key IN (SELECT CAST(user_id AS VARCHAR) FROM segsql.segment__s)")
    assert storage.open_history("s", "user", key).sql("spark") == (
        "INSERT INTO segsql.history (segment, entity, entity_key, valid_from, run_id, definition_hash, as_of) "
        "SELECT 's', 'user', CAST(user_id AS STRING), ?, ?, ?, ? FROM segsql.segment__s WHERE NOT CAST(user_id AS "
        "STRING) IN (SELECT entity_key FROM segsql.history WHERE segment = 's' AND valid_to IS NULL)")


def test_one_column_projects_keep_their_stored_values(tmp_path: Path) -> None:
    connection = duckdb.connect(str(tmp_path / "data.duckdb"))
    connection.execute("CREATE TABLE users AS SELECT * FROM (VALUES (1::BIGINT, DATE '2026-01-05'), "
                       "(20, DATE '2026-11-30')) AS t(user_id, signup)")
    connection.close()
    write_files(tmp_path, {"segsql.yml": "connection: {type: duckdb, path: data.duckdb}\nsources:\n"
                           "  users: {table: users}\nentities:\n  user: {key: user_id, source: users}\n"
                           "  day: {key: signup}\n",
                           "segments_sql/everyone.sql": "{{ config(entity='user') }}\n"
                           "SELECT u.user_id FROM {{ source('users') }} AS u",
                           "segments_sql/days.sql": "{{ config(entity='day') }}\n"
                           "SELECT u.signup FROM {{ source('users') }} AS u"})
    project = Project.load(tmp_path, as_of=AS_OF)
    assert project.run().ok
    assert stored(project, "membership", "everyone") == stored(project, "history", "everyone") == {"1", "20"}
    assert stored(project, "membership", "days") == {"2026-01-05", "2026-11-30"}


# -- the same members on every engine ----------------------------------------------------------
PASSWORD_ENV = "SEGSQL_TEST_PGPASSWORD"


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with running_server() as started:
        yield started


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_stores_the_same_keys_and_history(server: PostgresServer, tmp_path: Path) -> None:
    os.environ[PASSWORD_ENV] = "s3cret-pw"
    duck_root, pg_root = tmp_path / "duck", tmp_path / "pg"
    for folder in (duck_root, pg_root):
        write_files(folder, {"segsql.yml": CONFIG, **SEGMENTS})
    (pg_root / "segsql.yml").write_text(CONFIG.replace("connection: {type: duckdb, path: data.duckdb}\n",
                                                       server.config_yaml(PASSWORD_ENV)))
    timelines: dict[str, list[tuple[int, int]]] = {}
    for seed in (8, 9):
        load(duck_root / "data.duckdb", line_items(seed))
        copy_duckdb_tables(duck_root / "data.duckdb", server, ["lineitem", "orders"])
        for name, folder in (("duckdb", duck_root), ("postgres", pg_root)):
            project = Project.load(folder, as_of=AS_OF)
            assert project.run().ok
            change = project.changes("big_lines").iloc[-1]
            timelines.setdefault(name, []).append((int(change["entered"]), int(change["exited"])))
    duck, pg = Project.load(duck_root, as_of=AS_OF), Project.load(pg_root, as_of=AS_OF)
    for segment in ("big_lines", "orders_with_big_lines"):
        assert stored(duck, "membership", segment) == stored(pg, "membership", segment)
        assert stored(duck, "history", segment) == stored(pg, "history", segment)
    assert stored(pg, "membership", "big_lines") == big(line_items(9))
    assert timelines["duckdb"] == timelines["postgres"]
    order, line = sorted(stored(pg, "membership", "big_lines"))[0].split("|")
    pg.forget("line", [order, line])
    assert f"{order}|{line}" not in stored(pg, "membership", "big_lines") | stored(pg, "history", "big_lines")


@pytest.mark.spark
@pytest.mark.slow
def test_spark_stores_the_same_keys_and_forgets_them(tmp_path: Path) -> None:
    from tests.test_spark import require_spark

    require_spark()
    rows = line_items(10, orders=40)
    duck_root, spark_root = tmp_path / "duck", tmp_path / "spark"
    write_files(duck_root, {"segsql.yml": CONFIG, "segments_sql/big_lines.sql": BIG_LINES})
    load(duck_root / "data.duckdb", rows)
    spark_config = (CONFIG.replace("connection: {type: duckdb, path: data.duckdb}",
                                   "connection: {type: spark, master: 'local[1]', warehouse: wh}")
                    .replace("{table: lineitem}", "{path: lineitem.parquet}").replace("{table: orders}",
                                                                                        "{path: orders.parquet}"))
    write_files(spark_root, {"segsql.yml": spark_config, "segments_sql/big_lines.sql": BIG_LINES})
    connection = duckdb.connect(str(duck_root / "data.duckdb"), read_only=True)
    for table in ("lineitem", "orders"):
        connection.execute(f"COPY {table} TO '{spark_root / table}.parquet' (FORMAT parquet)")
    connection.close()
    duck, spark = Project.load(duck_root, as_of=AS_OF), Project.load(spark_root, as_of=AS_OF)
    assert duck.run().ok and spark.run().ok
    assert stored(spark, "membership", "big_lines") == stored(duck, "membership", "big_lines") == big(rows)
    assert stored(spark, "history", "big_lines") == big(rows)
    order, line = sorted(big(rows))[0].split("|")
    spark.forget("line", [order, line])
    spark = Project.load(spark_root, as_of=AS_OF)
    assert stored(spark, "membership", "big_lines") == big(rows) - {f"{order}|{line}"}
    assert f"{order}|{line}" not in stored(spark, "history", "big_lines")


def test_overlap_prioritize_and_profiles_compare_whole_tuples(root: Path) -> None:
    rows = line_items(11, orders=40)
    load(root / "data.duckdb", rows)
    write_files(root, {"segments_sql/returned.sql": "{{ config(entity='line') }}\nSELECT l.l_orderkey, "
                       "l.l_linenumber FROM {{ source('lineitem') }} AS l WHERE l.l_returnflag = 'R'"})
    project = Project.load(root, as_of=AS_OF)
    assert project.run().ok
    returned = {f"{o}|{n}" for o, n, _, flag in rows if flag == "R"}
    both = big(rows) & returned
    overlap = project.overlap(["big_lines", "returned"])
    pair = overlap[(overlap.left == "big_lines") & (overlap.right == "returned")].iloc[0]
    assert (int(pair["shared"]), int(pair["right_size"])) == (len(both), len(returned))
    priority = project.prioritize(["big_lines", "returned"])
    assert dict(zip(priority.counts.segment, priority.counts.assigned, strict=True)) == {
        "big_lines": len(big(rows)), "returned": len(returned - big(rows))}
    profile = project.profile("big_lines", traits=["l_quantity"])
    assert not profile.empty


def test_forget_on_the_cli_takes_one_key_per_column(root: Path, runner: CliRunner) -> None:
    rows = line_items(12, orders=10)
    load(root / "data.duckdb", rows)
    assert Project.load(root, as_of=AS_OF).run().ok
    order, line = sorted(big(rows))[0].split("|")
    short = runner.invoke(cli, ["forget", "--project", str(root), "--entity", "line", "--key", order])
    assert short.exit_code == 2 and "give 2 key value(s), got 1" in short.output
    done = runner.invoke(cli, ["forget", "--project", str(root), "--entity", "line", "--key", order, "--key", line])
    assert done.exit_code == 0, done.output
    assert stored(Project.load(root, as_of=AS_OF), "membership", "big_lines") == big(rows) - {f"{order}|{line}"}


def test_backfill_stages_and_checks_composite_keys(root: Path) -> None:
    rows = line_items(13, orders=15)
    load(root / "data.duckdb", rows)
    project = Project.load(root, as_of=AS_OF)
    result = project.backfill("2026-08-01", "2026-10-01", every="month", select=["big_lines"])
    assert [plan.rows for run in result.runs for plan in run.segments] == [len(big(rows))] * 3
    assert stored(project, "history", "big_lines") == big(rows)
    write_files(root, {"segments_sql/big_lines.sql": BIG_LINES.replace("l.l_linenumber,", "1 AS l_linenumber,")})
    with pytest.raises(RunError, match=r"duplicate `\(l_orderkey, l_linenumber\)`"):
        Project.load(root, as_of=AS_OF).backfill("2026-08-01", "2026-10-01", every="month", select=["big_lines"],
                                                 replace=True)


@pytest.mark.slow
def test_snowflake_stores_the_same_keys(fakesnow_server: tuple[str, int], tmp_path: Path) -> None:
    """The encoding in Snowflake's dialect (REPLACE, ||, CAST AS VARCHAR) through the real connector."""
    from tests.test_snowflake import PASSWORD_ENV as SNOWFLAKE_PASSWORD_ENV
    from tests.test_snowflake import connection_yaml, load_duckdb_tables

    rows = line_items(14, orders=30)
    duck_root, snow_root = tmp_path / "duck", tmp_path / "snow"
    write_files(duck_root, {"segsql.yml": CONFIG, "segments_sql/big_lines.sql": BIG_LINES})
    load(duck_root / "data.duckdb", rows)
    connection = duckdb.connect(str(duck_root / "data.duckdb"))
    connection.execute("CREATE TABLE ck_lineitem AS SELECT * FROM lineitem")
    connection.execute("CREATE TABLE ck_orders AS SELECT * FROM orders")
    connection.close()
    load_duckdb_tables(duck_root / "data.duckdb", fakesnow_server, ["ck_lineitem", "ck_orders"], tmp_path)
    os.environ[SNOWFLAKE_PASSWORD_ENV] = "s3cret-snow"
    config = (CONFIG.replace("connection: {type: duckdb, path: data.duckdb}\n", connection_yaml(*fakesnow_server))
              .replace("{table: lineitem}", "{table: ck_lineitem}").replace("{table: orders}", "{table: ck_orders}"))
    write_files(snow_root, {"segsql.yml": config, "segments_sql/big_lines.sql": BIG_LINES})
    duck, snow = Project.load(duck_root, as_of=AS_OF), Project.load(snow_root, as_of=AS_OF)
    assert duck.run().ok and snow.run().ok
    assert stored(snow, "membership", "big_lines") == stored(duck, "membership", "big_lines") == big(rows)


def test_split_on_one_key_column_keeps_an_orders_lines_together(root: Path) -> None:
    load(root / "data.duckdb", line_items(15, orders=60))
    write_files(root, {"segments_sql/arms.sql": "{{ config(entity='line') }}\nSELECT l.l_orderkey, l.l_linenumber, "
                       "{{ split('l.l_orderkey', {'control': 50, 'treatment': 50}, salt='ck-1') }} AS arm "
                       "FROM {{ source('lineitem') }} AS l"})
    project = Project.load(root, as_of=AS_OF)
    assert project.run(["arms"]).ok
    arms = project.members("arms")
    assert set(arms.arm) == {"control", "treatment"}
    assert (arms.groupby("l_orderkey").arm.nunique() == 1).all()
    with pytest.raises(SegsqlError, match="an experiment readout needs a one-column entity key"):
        project.readout("arms", metrics=[])


def test_diff_counts_changed_tuples(root: Path) -> None:
    from tests.test_gitdiff import git

    rows = line_items(16, orders=40)
    load(root / "data.duckdb", rows)
    write_files(root, {".gitignore": "data.duckdb*\ntarget/\n"})
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    (root / "segments_sql" / "big_lines.sql").write_text(BIG_LINES.replace(">= 40", ">= 45"))
    report = Project.load(root, as_of=AS_OF).diff(base="HEAD", select=["big_lines"])
    [segment] = [s for s in report.segments if s.name == "big_lines"]
    dropped = {f"{o}|{n}" for o, n, q, _ in rows if 40 <= q < 45}
    assert (segment.added, segment.removed) == (0, len(dropped))
    assert segment.removed_sample == sorted(dropped)[:5]
