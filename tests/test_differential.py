"""Differential suite: segments that validate without a determinism warning give the same members
on DuckDB, Postgres and Spark and on every rerun; the ones that get the warning are ones where a
legitimate engine could return other members (shown by two tie-breaks that disagree).

The data is generated (seeded) to trip engines: ties in every sort key, NULLs in keys, traits and
amounts, duplicate timestamps per customer, mixed-case and non-ASCII names, '' beside NULL,
`%` and `_` in text, timestamps on day boundaries (midnight, 23:59:59.999999), orders of unknown
customers and orders without a customer (NOT IN semantics).
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from segsql import Project
from tests.conftest import write_files
from tests.pg import PASSWORD, PostgresServer, copy_duckdb_tables
from tests.test_spark import require_spark

pytestmark = [pytest.mark.slow]

AS_OF = dt.date(2026, 11, 23)
MIDNIGHT = dt.datetime(2026, 11, 23)
NAMES = ["Anna", "anna", "ANNA", "Ärger", "ärger", "Zürich", "zürich", "naïve", "Naive", "Émile", "emile", "",
         None, "Bob", "bob", "Mango", "mango", "_under", "50% off", "O'Brien", "zebra", "Zebra", "123", "ñandú"]
SEGMENTS = ["SMB", "smb", "Mid-Market", "Enterprise", None, ""]
PRIORITIES = ["1-URGENT", "2-HIGH", "3-MEDIUM", None]
NOTES = ["50% off", "a_b", "it's", "", None, "%", "plain"]
BOUNDARIES = [MIDNIGHT, MIDNIGHT - dt.timedelta(microseconds=1), MIDNIGHT + dt.timedelta(days=1, microseconds=-1),
              MIDNIGHT - dt.timedelta(days=29), MIDNIGHT - dt.timedelta(days=30),
              MIDNIGHT - dt.timedelta(days=30, microseconds=1), dt.datetime(2026, 10, 1), dt.datetime(2026, 9, 30, 23, 59, 59)]


def generate(seed: int) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """(customers, orders) rows with many ties, NULLs and boundary values, in shuffled order."""
    rng = random.Random(seed)
    customers = []
    for c_id in rng.sample(range(1, 401), 400):
        balance = rng.choice([None, 0.0, -5.0, 100.0, 250.0, 300.0, 500.0, 799.99, 800.0, 1000.0])
        signup = rng.choice(BOUNDARIES) if rng.random() < 0.5 else MIDNIGHT - dt.timedelta(days=rng.randint(0, 90))
        customers.append((c_id, rng.choice(NAMES), rng.choice(SEGMENTS), balance, signup, rng.randint(0, 4)))
    orders = []
    for o_id in rng.sample(range(1, 3201), 3200):
        roll = rng.random()
        c_id = None if roll < 0.01 else rng.randint(401, 420) if roll < 0.03 else rng.randint(1, 400)
        ordered_at = rng.choice(BOUNDARIES) if rng.random() < 0.4 else MIDNIGHT - dt.timedelta(days=rng.randint(0, 12))
        amount = Decimal(rng.choice([100, 250, 400, 500, 900, 1000])) + Decimal(rng.choice([0, 50])) / 100
        orders.append((o_id, c_id, ordered_at, amount, rng.choice(PRIORITIES), rng.choice(NOTES)))
    orders.append((3201, None, MIDNIGHT, Decimal("100.00"), "1-URGENT", None))  # NOT IN (... NULL ...) is empty
    return customers, orders


CUSTOMERS = "{{ source('customers') }} AS c"
ORDERS = "{{ source('orders') }} AS o"
COUNTS = f"(SELECT o.c_id, COUNT(*) AS n FROM {ORDERS} WHERE o.c_id IS NOT NULL GROUP BY o.c_id) AS t"
SPEND = f"(SELECT o.c_id, SUM(o.amount) AS s FROM {ORDERS} WHERE o.c_id IS NOT NULL GROUP BY o.c_id) AS t"

# name -> body; deterministic: every engine and rerun must agree
DETERMINISTIC = {
    "balance_high": f"SELECT c.c_id FROM {CUSTOMERS} WHERE c.balance > 500",
    "balance_missing": f"SELECT c.c_id FROM {CUSTOMERS} WHERE c.balance IS NULL OR c.balance <= 0",
    "name_starts_a": f"SELECT c.c_id FROM {CUSTOMERS} WHERE c.name LIKE 'A%'",
    "name_blank": f"SELECT c.c_id FROM {CUSTOMERS} WHERE COALESCE(c.name, '') = ''",
    "name_empty_not_null": f"SELECT c.c_id FROM {CUSTOMERS} WHERE c.name = ''",
    "segment_exact_case": f"SELECT c.c_id FROM {CUSTOMERS} WHERE c.segment = 'smb'",
    "segment_any_case": f"SELECT c.c_id FROM {CUSTOMERS} WHERE UPPER(c.segment) = 'SMB'",
    "non_ascii_names": f"SELECT c.c_id FROM {CUSTOMERS} WHERE c.name IN ('Zürich', 'Ärger', 'naïve', 'ñandú')",
    "name_length": f"SELECT c.c_id FROM {CUSTOMERS} WHERE LENGTH(c.name) = 6",
    "percent_literal": f"SELECT DISTINCT o.c_id FROM {ORDERS} WHERE o.note = '50% off' AND o.c_id IS NOT NULL",
    "percent_like": f"SELECT DISTINCT o.c_id FROM {ORDERS} WHERE o.note LIKE '50%' AND o.c_id IS NOT NULL",
    "frequent": f"SELECT o.c_id FROM {ORDERS} WHERE o.c_id IS NOT NULL GROUP BY o.c_id HAVING COUNT(*) >= 10",
    "big_spenders": f"SELECT o.c_id FROM {ORDERS} WHERE o.c_id IS NOT NULL GROUP BY o.c_id "
                    "HAVING SUM(o.amount) >= 5500",
    "avg_order_high": f"SELECT o.c_id FROM {ORDERS} WHERE o.c_id IS NOT NULL GROUP BY o.c_id "
                      "HAVING AVG(o.amount) > 600",
    "median_order_high": f"SELECT o.c_id FROM {ORDERS} WHERE o.c_id IS NOT NULL GROUP BY o.c_id "
                         "HAVING MEDIAN(o.amount) >= 500",
    "many_priorities": f"SELECT o.c_id FROM {ORDERS} WHERE o.c_id IS NOT NULL GROUP BY o.c_id "
                       "HAVING COUNT(DISTINCT o.priority) >= 3",
    "recent_buyers": f"SELECT DISTINCT o.c_id FROM {ORDERS} WHERE o.c_id IS NOT NULL "
                     "AND {{ last_n_days('o.ordered_at', 30) }}",
    "ordered_29_to_30_days_ago": f"SELECT DISTINCT o.c_id FROM {ORDERS} WHERE o.c_id IS NOT NULL "
                                 "AND {{ between_days('o.ordered_at', 29, 30) }}",
    "signed_up_as_of_day": f"SELECT c.c_id FROM {CUSTOMERS} WHERE c.signup >= TIMESTAMP '2026-11-23 00:00:00' "
                           "AND c.signup < TIMESTAMP '2026-11-24 00:00:00'",
    "signup_month": f"SELECT c.c_id FROM {CUSTOMERS} WHERE DATE_TRUNC('month', c.signup) = DATE '2026-10-01'",
    "signup_before_cutoff": f"SELECT c.c_id FROM {CUSTOMERS} WHERE CAST(c.signup AS DATE) < {{{{ days_ago(30) }}}}",
    "latest_order_urgent": f"SELECT o.c_id FROM {ORDERS} WHERE o.c_id IS NOT NULL\n"
                           "QUALIFY ROW_NUMBER() OVER (PARTITION BY o.c_id ORDER BY o.ordered_at DESC, o.o_id DESC) = 1 "
                           "AND o.priority = '1-URGENT'",
    "bottom_balance_quintile": f"SELECT t.c_id FROM (SELECT c.c_id, NTILE(5) OVER (ORDER BY c.balance NULLS FIRST, "
                               f"c.c_id) AS q FROM {CUSTOMERS}) AS t WHERE t.q = 1",
    "top_spend_rank": f"SELECT t.c_id FROM {SPEND}\nQUALIFY RANK() OVER (ORDER BY t.s DESC) <= 10",
    "top_spend_dense": f"SELECT t.c_id FROM {SPEND}\nQUALIFY DENSE_RANK() OVER (ORDER BY t.s DESC) <= 3",
    "top20_total_order": f"SELECT t.c_id FROM {SPEND}\nORDER BY t.s DESC, t.c_id LIMIT 20",
    "never_ordered": f"SELECT c.c_id FROM {CUSTOMERS} WHERE NOT EXISTS "
                     "(SELECT 1 FROM {{ source('orders') }} AS o WHERE o.c_id = c.c_id)",
    "not_in_with_nulls": f"SELECT c.c_id FROM {CUSTOMERS} WHERE c.c_id NOT IN "
                         "(SELECT o.c_id FROM {{ source('orders') }} AS o WHERE o.priority = '1-URGENT')",
    "long_gap": f"SELECT DISTINCT t.c_id FROM (SELECT o.c_id, o.ordered_at, LAG(o.ordered_at) OVER "
                f"(PARTITION BY o.c_id ORDER BY o.ordered_at, o.o_id) AS prev FROM {ORDERS} "
                "WHERE o.c_id IS NOT NULL) AS t WHERE t.prev < t.ordered_at - INTERVAL 50 DAY",
    "enterprise_or_big_order": f"SELECT c.c_id FROM {CUSTOMERS} WHERE c.segment = 'Enterprise' UNION "
                               f"SELECT o.c_id FROM {ORDERS} WHERE o.amount > 900 AND o.c_id IS NOT NULL",
    "smb_and_urgent": f"SELECT c.c_id FROM {CUSTOMERS} WHERE c.segment = 'SMB' INTERSECT "
                      f"SELECT o.c_id FROM {ORDERS} WHERE o.priority = '1-URGENT'",
    "customers_without_urgent": f"SELECT c.c_id FROM {CUSTOMERS} EXCEPT "
                                f"SELECT o.c_id FROM {ORDERS} WHERE o.priority = '1-URGENT'",
    "silver_tier": f"WITH tiers AS (SELECT c.c_id, CASE WHEN c.balance >= 800 THEN 'gold' WHEN c.balance >= 300 "
                   f"THEN 'silver' ELSE 'bronze' END AS tier FROM {CUSTOMERS})\n"
                   "SELECT tiers.c_id FROM tiers WHERE tiers.tier = 'silver'",
    "balance_over_seven": f"SELECT c.c_id FROM {CUSTOMERS} WHERE CAST(c.balance AS INTEGER) / 7 > 71",
    "key_mod_seven": f"SELECT c.c_id FROM {CUSTOMERS} WHERE c.c_id % 7 = 3",
    "concat_null": f"SELECT c.c_id FROM {CUSTOMERS} WHERE (c.name || '!') IS NULL",
    "text_range": f"SELECT c.c_id FROM {CUSTOMERS} WHERE c.name >= 'a' AND c.name < 'n'",
    "rich_and_frequent": "SELECT b.c_id FROM {{ ref('balance_high') }} AS b "
                         "JOIN {{ ref('frequent') }} AS f ON f.c_id = b.c_id",
    "split_treatment": f"SELECT t.c_id FROM (SELECT c.c_id, {{{{ split('c.c_id', {{'control': 30, 'treatment': 70}}, "
                       f"salt='diff-1') }}}} AS arm FROM {CUSTOMERS}) AS t WHERE t.arm = 'treatment'",
}

# name -> (body, two tie-breaks that make it total in opposite directions: their members differ)
ORDER_DEPENDENT = {
    "ntile_ties": ("SELECT t.c_id FROM (SELECT c.c_id, NTILE(5) OVER (ORDER BY c.balance NULLS FIRST{tb}) AS q "
                   f"FROM {CUSTOMERS}) AS t WHERE t.q = 1", (", c.c_id", ", c.c_id DESC")),
    "latest_order_ties": (f"SELECT o.c_id FROM {ORDERS} WHERE o.c_id IS NOT NULL\nQUALIFY ROW_NUMBER() OVER "
                          "(PARTITION BY o.c_id ORDER BY o.ordered_at DESC{tb}) = 1 AND o.priority = '1-URGENT'",
                          (", o.o_id", ", o.o_id DESC")),
    "top20_ties": (f"SELECT t.c_id FROM {COUNTS}\nORDER BY t.n DESC{{tb}} LIMIT 20".replace("{{tb}}", "{tb}"),
                   (", t.c_id", ", t.c_id DESC")),
    "first_signups": ("SELECT t.c_id FROM (SELECT c.c_id, ROW_NUMBER() OVER (ORDER BY c.signup DESC{tb}) AS n "
                      f"FROM {CUSTOMERS}) AS t WHERE t.n <= 30", (", c.c_id", ", c.c_id DESC")),
    "any_priority": (f"SELECT o.c_id FROM {ORDERS} WHERE o.c_id IS NOT NULL GROUP BY o.c_id "
                     "HAVING {tb}(o.priority) = '2-HIGH'", ("ANY_VALUE", "ANY_VALUE")),
}
PICK_WITNESSES = {"any_priority": ("MIN", "MAX")}  # an aggregate pick: the two extremes it may return


def _bodies() -> dict[str, str]:
    bodies = dict(DETERMINISTIC)
    for name, (body, (tie_break, _)) in ORDER_DEPENDENT.items():
        bodies[name] = body.replace("{tb}", "" if name not in PICK_WITNESSES else tie_break)
    return bodies


def _witnesses(name: str) -> tuple[str, str]:
    body, tie_breaks = ORDER_DEPENDENT[name]
    choices = PICK_WITNESSES.get(name, tie_breaks)
    return body.replace("{tb}", choices[0]), body.replace("{tb}", choices[1])


SPARK_PROFILE = "  spark: {type: spark, master: 'local[2]', warehouse: spark-warehouse}\n"
SOURCES = """\
sources:
  customers:
    table: customers
    unique: [c_id]
    static: true
    profiles: {spark: {path: data/parquet/customers.parquet}}
  orders:
    table: orders
    unique: [o_id]
    static: true
    profiles: {spark: {path: data/parquet/orders.parquet}}
entities:
  customer: {key: c_id, source: customers}
"""


def _load(database: Path, seed: int) -> None:
    customers, orders = generate(seed)
    connection = duckdb.connect(str(database))
    connection.execute("CREATE TABLE customers (c_id BIGINT, name VARCHAR, segment VARCHAR, balance DOUBLE, "
                       "signup TIMESTAMP, nation INTEGER)")
    connection.execute("CREATE TABLE orders (o_id BIGINT, c_id BIGINT, ordered_at TIMESTAMP, amount DECIMAL(12, 2), "
                       "priority VARCHAR, note VARCHAR)")
    connection.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", customers)
    connection.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", orders)
    parquet = database.parent / "parquet"
    parquet.mkdir()
    for table in ("customers", "orders"):
        connection.execute(f"COPY {table} TO '{parquet / table}.parquet' (FORMAT parquet)")
    connection.close()


def _write_project(root: Path, bodies: dict[str, str], profiles: str) -> None:
    config = ("connection: {type: duckdb, path: data/diff.duckdb}\n" + profiles + SOURCES +
              "point_in_time: off\n")
    write_files(root, {"segsql.yml": config,
                       **{f"segments_sql/{name}.sql": "{{ config(entity='customer') }}\n" + body
                          for name, body in bodies.items()}})


def _inline(connection_yaml: str) -> str:
    """`connection:` YAML as a one-line mapping for `profiles:`."""
    return connection_yaml.replace("connection:\n  ", "{").replace("\n  ", ", ").rstrip("\n") + "}"


@pytest.fixture(scope="module")
def project_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The project with its data in DuckDB, in Parquet for Spark, in a real Postgres and in
    fakesnow (a Snowflake emulator, through the real Snowflake connector)."""
    root = tmp_path_factory.mktemp("differential") / "p"
    (root / "data").mkdir(parents=True)
    _load(root / "data" / "diff.duckdb", seed=16)
    server = PostgresServer().start()
    try:
        copy_duckdb_tables(root / "data" / "diff.duckdb", server, ["customers", "orders"])
        profiles = "profiles:\n  pg: " + _inline(server.config_yaml()) + "\n" + SPARK_PROFILE
        _write_project(root, _bodies(), profiles)
        os.environ["SEGSQL_TEST_PGPASSWORD"] = PASSWORD
        yield root
    finally:
        server.cleanup()


def _members(project: Project, names: list[str] | None = None) -> dict[str, frozenset[str]]:
    result = project.run(select=names)
    assert result.ok
    return {name: frozenset(str(key) for key in project.members(name).iloc[:, 0])
            for name in names or project.select()}


def test_the_order_dependent_segments_are_exactly_the_warned_ones(project_root: Path) -> None:
    project = Project.load(project_root, as_of=AS_OF)
    assert project.validate() == []
    warned = {Path(str(w.path)).stem for w in project.warnings if "differ between reruns" in w.message
              or "arbitrary subset" in w.message or "picks one of several rows" in w.message}
    assert warned == set(ORDER_DEPENDENT)
    # Postgres 15 has no ANY_VALUE: validating for it says so at the file, not the run
    [error] = Project.load(project_root, as_of=AS_OF, target="pg").validate()
    assert error.path == "segments_sql/any_priority.sql" and "ANY_VALUE cannot run on postgres" in error.message


def test_each_warned_segment_has_two_legitimate_answers_on_this_data(tmp_path: Path, project_root: Path) -> None:
    """Two tie-breaks (or the two rows an aggregate may pick) give other members: an engine may
    return either, so the warning is not a false alarm."""
    bodies = {}
    for name in ORDER_DEPENDENT:
        bodies[f"{name}__a"], bodies[f"{name}__b"] = _witnesses(name)
    root = tmp_path / "w"
    (root / "data").mkdir(parents=True)
    (root / "data" / "diff.duckdb").write_bytes((project_root / "data" / "diff.duckdb").read_bytes())
    _write_project(root, bodies, "profiles:\n" + SPARK_PROFILE)
    members = _members(Project.load(root, as_of=AS_OF))
    same = [name for name in ORDER_DEPENDENT if members[f"{name}__a"] == members[f"{name}__b"]]
    assert same == []


def test_break_ties_picks_the_smallest_key_on_the_tree(tmp_path: Path, project_root: Path) -> None:
    """`break_ties: true` appends the key as the last ORDER BY term: no warning, and the members of
    the ascending tie-break (ANY_VALUE, which no order fixes, still warns)."""
    root = tmp_path / "b"
    (root / "data").mkdir(parents=True)
    (root / "data" / "diff.duckdb").write_bytes((project_root / "data" / "diff.duckdb").read_bytes())
    bodies = {name: body for name, body in _bodies().items() if name in ORDER_DEPENDENT}
    bodies.update({f"{name}__a": _witnesses(name)[0] for name in ORDER_DEPENDENT})
    _write_project(root, bodies, "profiles:\n" + SPARK_PROFILE)
    (root / "segsql.yml").write_text((root / "segsql.yml").read_text() + "break_ties: true\n")
    project = Project.load(root, as_of=AS_OF)
    assert project.validate() == []
    assert {Path(str(w.path)).stem for w in project.warnings} == {"any_priority"}
    assert "ORDER BY c.balance NULLS FIRST, c.c_id" in project.compiler.to_sql("ntile_ties", pretty=False)
    members = _members(project)
    assert all(members[name] == members[f"{name}__a"] for name in ORDER_DEPENDENT if name != "any_priority")


def _add_snowflake(root: Path, server: tuple[str, int], folder: Path) -> None:
    from tests.test_snowflake import PASSWORD_ENV, connection_yaml, load_duckdb_tables

    load_duckdb_tables(root / "data" / "diff.duckdb", server, ["customers", "orders"], folder)
    os.environ.setdefault(PASSWORD_ENV, "fakesnow-accepts-any")
    config = root / "segsql.yml"
    config.write_text(config.read_text().replace("profiles:\n", "profiles:\n  snow: " +
                                                 _inline(connection_yaml(*server)) + "\n", 1))


def test_deterministic_segments_agree_on_every_engine_and_rerun(project_root: Path, fakesnow_server: tuple[str, int],
                                                                tmp_path: Path) -> None:
    require_spark()
    _add_snowflake(project_root, fakesnow_server, tmp_path)
    runs: dict[str, list[dict[str, frozenset[str]]]] = {}
    for target, reruns in ((None, 3), ("pg", 3), ("spark", 2), ("snow", 2)):
        project = Project.load(project_root, as_of=AS_OF, target=target)
        runs[target or "duckdb"] = [_members(project, list(DETERMINISTIC)) for _ in range(reruns)]
    reference = runs["duckdb"][0]
    assert sum(len(reference[name]) for name in DETERMINISTIC) > 2000  # not vacuous
    assert sum(1 for name in DETERMINISTIC if reference[name]) >= len(DETERMINISTIC) - 2
    assert reference["not_in_with_nulls"] == frozenset()  # a NULL in NOT IN (...) keeps nobody, everywhere
    mismatches = {}
    for engine, results in runs.items():
        for index, members in enumerate(results):
            for name in DETERMINISTIC:
                if members[name] != reference[name]:
                    mismatches[f"{engine} run {index + 1}: {name}"] = (
                        sorted(reference[name] - members[name])[:5], sorted(members[name] - reference[name])[:5])
    assert mismatches == {}
