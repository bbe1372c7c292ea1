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
    project = make_project({"seg": CFG + body}, config=config)
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
    assert isinstance(error, ValidationError) and "LIMIT without a total ORDER BY" in error.message
    project = make_project({"seg": body}, config=ORDERS + "determinism: off\n")
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
