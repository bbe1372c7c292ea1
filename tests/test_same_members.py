"""What passes validate gives the same members on every rerun and target: ties and self-changing
values are flagged at their line; QUALIFY is rewritten so Postgres, Spark and Trino can run it;
the SQL compiled for a target is scope-checked there."""

from __future__ import annotations

from typing import Any

import pytest
import sqlglot

from segsql import SegsqlError, ValidationError
from tests.conftest import BASE_CONFIG, ProjectFactory

CFG = "{{ config(entity='account') }}\n"
ORDERS = BASE_CONFIG.replace("sources:\n", "sources:\n  orders:\n    table: orders\n    unique: [order_id]\n"
                             "    columns: {order_id: BIGINT, account_id: BIGINT, ordered_at: DATE, "
                             "priority: VARCHAR, amount: DOUBLE}\n", 1)


def warnings_of(make_project: ProjectFactory, body: str, config: str = ORDERS) -> list[Any]:
    # point-in-time findings have their own tests (test_point_in_time.py)
    project = make_project({"seg": CFG + body}, config=config.rstrip("\n") + "\npoint_in_time: off\n")
    assert project.validate() == []
    return project.warnings


@pytest.mark.parametrize("body", [
    "SELECT a.account_id, NTILE(5) OVER (ORDER BY a.arr) AS q FROM {{ source('accounts') }} AS a",
    "SELECT o.account_id FROM {{ source('orders') }} AS o\n"
    "QUALIFY ROW_NUMBER() OVER (PARTITION BY o.account_id ORDER BY o.ordered_at DESC) = 1",
    "SELECT a.account_id FROM {{ source('accounts') }} AS a ORDER BY a.arr DESC LIMIT 10",
    "SELECT a.account_id FROM {{ source('accounts') }} AS a LIMIT 10",
    "SELECT o.account_id, ANY_VALUE(o.priority) AS p FROM {{ source('orders') }} AS o GROUP BY o.account_id",
    "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE random() < 0.5",
    "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.signup_date > CURRENT_DATE - 30",
])
def test_order_dependent_and_changing_constructs_warn_at_their_line(make_project: ProjectFactory, body: str) -> None:
    [warning] = warnings_of(make_project, body)
    assert warning.path == "segments_sql/seg.sql" and warning.line is not None and warning.line >= 2
    assert warning.hint


@pytest.mark.parametrize("body", [
    "SELECT a.account_id, NTILE(5) OVER (ORDER BY a.arr, a.account_id) AS q FROM {{ source('accounts') }} AS a",
    "SELECT o.account_id FROM {{ source('orders') }} AS o\n"
    "QUALIFY ROW_NUMBER() OVER (PARTITION BY o.account_id ORDER BY o.ordered_at DESC, o.order_id) = 1",
    "SELECT a.account_id FROM {{ source('accounts') }} AS a ORDER BY a.arr DESC, a.account_id LIMIT 10",
    "SELECT t.account_id FROM (SELECT o.account_id, COUNT(*) AS n FROM {{ source('orders') }} AS o "
    "GROUP BY o.account_id) AS t QUALIFY RANK() OVER (ORDER BY t.n DESC) <= 3",  # RANK keeps ties together
    "SELECT t.account_id FROM (SELECT o.account_id, COUNT(*) AS n FROM {{ source('orders') }} AS o "
    "GROUP BY o.account_id) AS t QUALIFY ROW_NUMBER() OVER (ORDER BY t.n DESC, t.account_id) <= 3",
    "SELECT o.account_id, SUM(o.amount) OVER (PARTITION BY o.account_id) AS total FROM {{ source('orders') }} AS o",
    "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.signup_date > {{ days_ago(30) }}",
])
def test_total_orders_and_as_of_dates_do_not_warn(make_project: ProjectFactory, body: str) -> None:
    assert warnings_of(make_project, body) == []


def test_the_hint_names_the_tie_breaker(make_project: ProjectFactory) -> None:
    [warning] = warnings_of(make_project, "SELECT a.account_id, NTILE(5) OVER (ORDER BY a.arr) AS q "
                                          "FROM {{ source('accounts') }} AS a")
    assert "NTILE() orders rows that can tie" in warning.message and "a.account_id" in (warning.hint or "")
    assert (warning.line, warning.col) == (2, 22)


def test_determinism_error_mode_and_off(make_project: ProjectFactory) -> None:
    body = CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a LIMIT 10"
    [error] = make_project({"seg": body}, config=ORDERS + "determinism: error\n").validate()
    assert isinstance(error, ValidationError) and "LIMIT/OFFSET without a total ORDER BY" in error.message
    project = make_project({"seg": body}, config=ORDERS + "determinism: off\npoint_in_time: off\n")
    assert project.validate() == [] and project.warnings == []


QUALIFIED = CFG + ("SELECT o.account_id FROM {{ source('orders') }} AS o\n"
                   "QUALIFY ROW_NUMBER() OVER (PARTITION BY o.account_id ORDER BY o.ordered_at DESC, o.order_id) = 1 "
                   "AND o.priority = '1-URGENT'")


@pytest.mark.parametrize("dialect", ["postgres", "spark", "trino"])
def test_qualify_compiles_to_sql_the_target_resolves(make_project: ProjectFactory, dialect: str) -> None:
    sql = make_project({"seg": QUALIFIED}, config=ORDERS).compile("seg", dialect=dialect)
    tree = sqlglot.parse_one(sql, read=dialect)
    assert tree.find(sqlglot.exp.Qualify) is None
    outer_columns = [c for c in tree.args["where"].find_all(sqlglot.exp.Column)]
    assert outer_columns and all(not c.table or c.table == "_segsql_q" for c in outer_columns)


def test_the_target_scope_check_catches_a_column_outside_its_scope(make_project: ProjectFactory,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Without segsql's rewrite, sqlglot's own leaves `o.priority` outside the subquery: the target
    check names it instead of letting Postgres fail at run time."""
    from segsql.compile import portability

    monkeypatch.setattr(portability, "for_dialect", lambda tree, dialect: tree)
    with pytest.raises(SegsqlError) as caught:
        make_project({"seg": QUALIFIED}, config=ORDERS).compile("seg", dialect="postgres")
    assert "does not resolve there" in caught.value.message


SEMANTIC_CASES = [
    "SELECT a.account_id, a.arr FROM t AS a QUALIFY ROW_NUMBER() OVER (PARTITION BY a.g ORDER BY a.arr DESC, "
    "a.account_id) = 1 AND a.arr > 5",
    'SELECT a.account_id AS "ID" FROM t AS a QUALIFY ROW_NUMBER() OVER (PARTITION BY a.g ORDER BY a.account_id) = 1',
    "SELECT DISTINCT a.g FROM t AS a QUALIFY COUNT(*) OVER (PARTITION BY a.g) > 3 ORDER BY a.g LIMIT 2",
    "SELECT a.account_id, COUNT(*) OVER () AS n FROM t AS a QUALIFY ROW_NUMBER() OVER (ORDER BY a.account_id) <= 3",
    "SELECT a.account_id FROM t AS a WHERE a.arr > 0 QUALIFY ROW_NUMBER() OVER (PARTITION BY a.g ORDER BY "
    "a.account_id DESC) = 1 ORDER BY a.arr, a.account_id LIMIT 3",
]
REFUSED_CASES = [
    "SELECT a.account_id, a.arr * 0 AS arr FROM t AS a QUALIFY ROW_NUMBER() OVER (ORDER BY a.account_id) = 1 "
    "AND arr > 5",  # DuckDB reads `arr` as the column, a rewrite would read the alias
    "SELECT a.g, SUM(a.arr) AS s FROM t AS a GROUP BY a.g QUALIFY RANK() OVER (ORDER BY SUM(a.arr)) <= 2",
    "SELECT a.g, a.account_id FROM t AS a QUALIFY ROW_NUMBER() OVER w = 1 WINDOW w AS (PARTITION BY a.g ORDER BY "
    "a.account_id)",
    "SELECT a.account_id FROM t AS a QUALIFY ROW_NUMBER() OVER (ORDER BY a.account_id) = 1 AND a.g IN "
    "(SELECT b.g FROM t AS b)",
]


@pytest.mark.parametrize("sql", SEMANTIC_CASES)
def test_the_qualify_rewrite_keeps_duckdbs_result(sql: str) -> None:
    import duckdb

    from segsql.compile.portability import for_dialect

    connection = duckdb.connect()
    connection.execute("CREATE TABLE t AS SELECT range AS account_id, (range % 7) * 3 AS arr, range % 4 AS g "
                       "FROM range(1, 50)")
    tree = sqlglot.parse_one(sql, read="duckdb")
    rewritten = for_dialect(tree, "postgres")
    assert rewritten.find(sqlglot.exp.Qualify) is None
    assert sorted(connection.execute(rewritten.sql("duckdb")).fetchall()) == \
        sorted(connection.execute(tree.sql("duckdb")).fetchall())


@pytest.mark.parametrize("sql", REFUSED_CASES)
def test_a_qualify_whose_rewrite_would_guess_is_refused(sql: str) -> None:
    from segsql.compile.portability import UnrewritableQualifyError, for_dialect

    with pytest.raises(UnrewritableQualifyError) as caught:
        for_dialect(sqlglot.parse_one(sql, read="duckdb"), "postgres")
    assert "cannot run on postgres" in caught.value.message and "ROW_NUMBER()" in (caught.value.hint or "")


MONTHLY = ORDERS.replace("  orders:\n", "  monthly:\n    table: monthly\n    unique: [[account_id, month]]\n"
                         "    columns: {account_id: BIGINT, month: DATE, mrr: DOUBLE}\n  orders:\n", 1)


@pytest.mark.parametrize("body", [
    # a CTE that filters a source keeps its key
    "WITH big AS (SELECT o.order_id, o.account_id, o.amount FROM {{ source('orders') }} AS o WHERE o.amount > 10)\n"
    "SELECT b.account_id FROM big AS b QUALIFY ROW_NUMBER() OVER (PARTITION BY b.account_id ORDER BY b.amount, "
    "b.order_id) = 1",
    # GROUP BY by position, ordered by the group column
    "SELECT o.account_id, COUNT(*) AS n FROM {{ source('orders') }} AS o GROUP BY 1 ORDER BY o.account_id LIMIT 5",
    # a composite key ordered by both its columns
    "SELECT m.account_id FROM {{ source('monthly') }} AS m "
    "QUALIFY ROW_NUMBER() OVER (PARTITION BY m.account_id ORDER BY m.month DESC) = 1",
    # LIMIT under EXISTS, and over a one-row aggregate
    "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE EXISTS (SELECT 1 FROM {{ source('orders') }} AS o "
    "WHERE o.account_id = a.account_id LIMIT 1)",
    "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.arr > (SELECT MAX(o.amount) "
    "FROM {{ source('orders') }} AS o LIMIT 1)",
    # an aggregate over the whole ROWS frame
    "SELECT o.account_id, SUM(o.amount) OVER (PARTITION BY o.account_id ORDER BY o.ordered_at ROWS BETWEEN "
    "UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS total FROM {{ source('orders') }} AS o",
])
def test_ordinary_total_orders_do_not_warn(make_project: ProjectFactory, body: str) -> None:
    assert warnings_of(make_project, body, MONTHLY) == []


@pytest.mark.parametrize("body", [
    "SELECT m.account_id FROM {{ source('monthly') }} AS m QUALIFY ROW_NUMBER() OVER (ORDER BY m.month) <= 5",
    "SELECT o.account_id, FIRST_VALUE(o.priority IGNORE NULLS) OVER (PARTITION BY o.account_id ORDER BY "
    "o.ordered_at) AS p FROM {{ source('orders') }} AS o",
    "SELECT a.account_id FROM {{ source('accounts') }} AS a OFFSET 5",
    "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.signup_date > LOCALTIMESTAMP",
    "SELECT t.account_id FROM (SELECT o.account_id, o.ordered_at FROM {{ source('orders') }} AS o) AS t "
    "QUALIFY ROW_NUMBER() OVER (PARTITION BY t.account_id ORDER BY t.ordered_at) = 1",
])
def test_order_dependence_the_first_version_missed_warns(make_project: ProjectFactory, body: str) -> None:
    assert len(warnings_of(make_project, body, MONTHLY)) == 1


@pytest.mark.parametrize("body", [
    # users N:1 accounts: ordering by the user key is total, the account side is looked up on its key
    "SELECT u.account_id FROM {{ source('users') }} AS u JOIN {{ source('accounts') }} AS a "
    "ON a.account_id = u.account_id QUALIFY ROW_NUMBER() OVER (PARTITION BY u.account_id ORDER BY a.arr DESC, "
    "u.user_id) = 1",
    "SELECT u.account_id FROM {{ source('users') }} AS u JOIN {{ source('accounts') }} AS a USING (account_id) "
    "QUALIFY ROW_NUMBER() OVER (PARTITION BY u.account_id ORDER BY u.user_id) = 1",
])
def test_a_join_on_the_other_sides_key_needs_no_key_of_it(make_project: ProjectFactory, body: str) -> None:
    assert warnings_of(make_project, body) == []


def test_a_join_on_a_non_key_still_needs_both_keys(make_project: ProjectFactory) -> None:
    body = ("SELECT u.account_id FROM {{ source('users') }} AS u JOIN {{ source('orders') }} AS o "
            "ON o.account_id = u.account_id QUALIFY ROW_NUMBER() OVER (PARTITION BY u.account_id ORDER BY "
            "u.user_id) = 1")  # one user, many orders: the order is not total
    assert len(warnings_of(make_project, body)) == 1
