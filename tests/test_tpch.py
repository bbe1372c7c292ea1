"""Regression cases found on TPC-H (data nobody here wrote, from `tpchgen-cli`), kept as tests:
ties in NTILE flagged, QUALIFY plus a filter on the ordered table runs on Postgres and Spark with
DuckDB's members, a text range on an ICU Postgres database warned about (and fixed by
`collation: binary`), one project for files (DuckDB, Spark) and tables (Postgres), and rfm() over
orders keyed like the customer entity (`as_key`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from segsql import Project
from segsql.cli.main import cli
from tests.conftest import REQUIRE_ALL, write_files
from tests.pg import PASSWORD, PostgresServer, copy_duckdb_tables
from tests.test_spark import require_spark

pytestmark = [pytest.mark.slow]
AS_OF = "1998-08-02"  # TPC-H's last order date
SCALE = "0.05"  # 7,500 customers, 75,000 orders

CUSTOMERS = "{{ source('customer') }} AS c"
ORDERS = "{{ source('orders') }} AS o"
COUNTS = (f"(SELECT c.c_custkey, COUNT(o.o_orderkey) AS n_orders FROM {CUSTOMERS} LEFT JOIN {ORDERS} "
          "ON o.o_custkey = c.c_custkey GROUP BY c.c_custkey) AS t")
SEGMENTS = {
    "quintile_ties": f"SELECT t.c_custkey FROM {COUNTS}\nQUALIFY NTILE(5) OVER (ORDER BY t.n_orders) = 1",
    "quintile_total": f"SELECT t.c_custkey FROM {COUNTS}\nQUALIFY NTILE(5) OVER (ORDER BY t.n_orders, t.c_custkey) = 1",
    "latest_urgent": f"SELECT o.o_custkey AS c_custkey FROM {ORDERS}\n"
                     "QUALIFY ROW_NUMBER() OVER (PARTITION BY o.o_custkey ORDER BY o.o_orderdate DESC, o.o_orderkey) = 1 "
                     "AND o.o_orderpriority = '1-URGENT'",
    "address_a_to_m": f"SELECT c.c_custkey FROM {CUSTOMERS}\nWHERE c.c_address >= 'A' AND c.c_address < 'M'",
    "rfm_champions": "SELECT r.c_custkey FROM ({{ rfm('orders', at='o_orderdate', amount='o_totalprice', "
                     "key='o_custkey', as_key='c_custkey') }}) AS r WHERE r.rfm_segment = 'champions'",
}


def require_tpchgen() -> str:
    found = shutil.which("tpchgen-cli")
    if found is None:
        if REQUIRE_ALL:
            pytest.fail("tpchgen-cli is not installed (SEGSQL_REQUIRE_ALL=1): pip install 'segsql[dev]'")
        pytest.skip("tpchgen-cli is not installed")
    return found


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, PostgresServer]]:
    """A project over TPC-H Parquet files (DuckDB, Spark) and the same tables in a C and an ICU
    en-US Postgres database (per-profile sources)."""
    root = tmp_path_factory.mktemp("tpch") / "p"
    parquet = root / "data" / "tpch"
    subprocess.run([require_tpchgen(), "parquet", "-s", SCALE, "--tables=customer,orders", f"--output-dir={parquet}"],
                   check=True, capture_output=True, timeout=300)
    database = root / "data" / "tpch.duckdb"
    connection = duckdb.connect(str(database))
    for table in ("customer", "orders"):
        connection.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{parquet / table}.parquet')")
    connection.close()
    server = PostgresServer().start()
    try:
        import psycopg

        with psycopg.connect(**server.params(dbname="postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE linguistic TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'")
        for dbname in ("segsql_test", "linguistic"):
            copy_duckdb_tables(database, server, ["customer", "orders"], dbname)
        database.unlink()  # DuckDB reads the files, like Spark
        os.environ["SEGSQL_TEST_PGPASSWORD"] = PASSWORD
        _write(root, server, "warn")
        yield root, server
    finally:
        server.cleanup()


def _write(root: Path, server: PostgresServer, collation: str) -> None:
    pg = ("{type: postgres, host: 127.0.0.1, port: %d, dbname: %s, user: segsql, password_env: SEGSQL_TEST_PGPASSWORD}")
    config = (
        "connection: {type: duckdb, path: data/state.duckdb}\n"
        f"profiles:\n  pg: {pg % (server.port, 'segsql_test')}\n  icu: {pg % (server.port, 'linguistic')}\n"
        "  spark: {type: spark, master: 'local[2]', warehouse: spark-warehouse}\n"
        "sources:\n"
        "  customer:\n    path: data/tpch/customer.parquet\n    unique: [c_custkey]\n    static: true\n"
        "    profiles: {pg: {table: customer}, icu: {table: customer}}\n"
        "  orders:\n    path: data/tpch/orders.parquet\n    unique: [o_orderkey]\n"
        "    time: {event: o_orderdate}\n"
        "    profiles: {pg: {table: orders}, icu: {table: orders}}\n"
        "entities:\n  customer: {key: c_custkey, source: customer}\n"
        f"collation: {collation}\n")
    write_files(root, {"segsql.yml": config, **{f"segments_sql/{name}.sql": "{{ config(entity='customer') }}\n" + body
                                                for name, body in SEGMENTS.items()}})


def _members(root: Path, target: str | None, names: list[str]) -> dict[str, set[int]]:
    project = Project.load(root, as_of=AS_OF, target=target)
    assert project.run(select=names).ok
    return {name: {int(k) for k in project.members(name).c_custkey} for name in names}


def test_ntile_ties_are_flagged_and_the_tie_broken_version_is_stable(tpch: tuple[Path, PostgresServer]) -> None:
    root, _ = tpch
    result = CliRunner().invoke(cli, ["validate", "--project", str(root)])
    assert result.exit_code == 0, result.output
    tie_lines = [line for line in result.output.splitlines() if "can tie" in line]
    assert len(tie_lines) == 1 and "segments_sql/quintile_ties.sql:3:" in tie_lines[0], result.output
    assert "add t.c_custkey" in tie_lines[0]
    runs = [_members(root, None, ["quintile_total"])["quintile_total"] for _ in range(3)]
    assert len(runs[0]) == 1500 and runs[0] == runs[1] == runs[2]


def test_qualify_with_a_filter_runs_on_postgres_and_spark_with_duckdbs_members(tpch: tuple[Path, PostgresServer]) -> None:
    require_spark()
    root, _ = tpch
    names = ["latest_urgent", "quintile_total", "rfm_champions"]
    on_duckdb = _members(root, None, names)
    assert len(on_duckdb["latest_urgent"]) > 500 and len(on_duckdb["rfm_champions"]) > 100
    assert _members(root, "pg", names) == on_duckdb
    assert _members(root, "spark", names) == on_duckdb


def test_a_text_range_on_an_icu_database(tpch: tuple[Path, PostgresServer]) -> None:
    root, server = tpch
    names = ["address_a_to_m"]
    on_duckdb = _members(root, None, names)["address_a_to_m"]
    assert _members(root, "pg", names)["address_a_to_m"] == on_duckdb  # C collation: byte order, like DuckDB
    on_icu = _members(root, "icu", names)["address_a_to_m"]
    assert len(on_icu) > len(on_duckdb) * 1.5  # lower-case first letters sort among the upper case there
    result = CliRunner().invoke(cli, ["validate", "--project", str(root), "--target", "icu", "-s", "address_a_to_m"])
    assert result.exit_code == 0 and result.output.count("collation `en-US` (ICU)") == 2, result.output
    _write(root, server, "binary")
    try:
        assert _members(root, "icu", names)["address_a_to_m"] == on_duckdb
    finally:
        _write(root, server, "warn")


def test_validate_for_postgres_checks_the_tables_it_will_read(tpch: tuple[Path, PostgresServer]) -> None:
    root, _ = tpch
    project = Project.load(root, as_of=AS_OF, target="pg")
    assert project.config.sources["orders"].table == "orders" and project.config.sources["orders"].path is None
    assert project.validate() == []
    columns = project.compiler.catalog.tables[("orders",)]
    assert columns is not None and "o_orderpriority" in columns  # read from the Postgres catalog
