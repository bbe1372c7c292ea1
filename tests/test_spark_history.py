"""Spark (local mode): the history rewrite is planned as hash/sort-merge joins whatever the
history's size (no nested loop from `NOT IN` under an OR), and a backfill writes the history
that runs `--as-of` each date write."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlglot import exp

from segsql import Project
from segsql.engines.spark import SparkEngine
from tests import backfills
from tests.conftest import write_files
from tests.test_spark import require_spark

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SEGMENTS = {
    "recent": "{{ config(entity='account') }}\nSELECT a.account_id FROM {{ source('accounts') }} AS a\n"
              "WHERE a.signup_date <= {{ days_ago(0) }} AND a.signup_date > {{ days_ago(60) }}",
    "recent_even": "{{ config(entity='account') }}\nSELECT r.account_id FROM {{ ref('recent') }} AS r "
                   "WHERE r.account_id % 2 = 0",
}


def spark_project(root: Path) -> Project:
    write_files(root, {"segsql.yml": "connection: {type: spark, master: 'local[1]', warehouse: wh}\n"
                                     "sources:\n  accounts: {path: accounts.parquet}\n"
                                     "entities:\n  account: {key: account_id, source: accounts}\n",
                       **{f"segments_sql/{name}.sql": text for name, text in SEGMENTS.items()}})
    connection = duckdb.connect()
    connection.execute(f"COPY (SELECT range AS account_id, DATE '2026-01-01' + CAST(range * 7 AS INT) AS signup_date "
                       f"FROM range(1, 60)) TO '{root / 'accounts.parquet'}' (FORMAT parquet)")
    connection.close()
    return Project.load(root)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, list[str]]:
    """Runs as of each backfill date, with the physical plan of every history rewrite."""
    require_spark()
    project = spark_project(tmp_path_factory.mktemp("ran"))
    plans: list[str] = []
    original = SparkEngine.execute

    def execute(self: SparkEngine, statement: Any, params: Any = ()) -> None:
        if isinstance(statement, exp.Create) and statement.this.name.startswith("staged__history"):
            plans.append(self._frame(statement.expression, params)._jdf.queryExecution().executedPlan().toString())
        original(self, statement, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SparkEngine, "execute", execute)
        backfills.run_on_dates(project, backfills.DATES, list(SEGMENTS), patch)
    return project, plans


def operators(plan: str) -> list[str]:
    """The physical operators of a plan, top to bottom (ids and expressions left out)."""
    return [match.group(1) for line in plan.splitlines()
            if (match := re.match(r"[\s:+\-*()\d]*([A-Z][A-Za-z]+)", line))]


def test_every_run_rewrites_the_history_with_the_same_join_plan(ran: tuple[Project, list[str]]) -> None:
    _, plans = ran
    assert len(plans) == len(backfills.DATES)
    first, second, third = (operators(plan) for plan in plans)
    for shape in (first, second, third):
        assert "BroadcastNestedLoopJoin" not in shape and "CartesianProduct" not in shape, shape
    # from the second run on, the old history is joined to the new members: the same plan, so
    # the tenth run costs what the second does (linear in history + members, not their product)
    assert second == third
    assert {"BroadcastHashJoin", "SortMergeJoin", "ShuffledHashJoin"} & set(second)
    assert sum("Join" in op for op in second) == 1 + len(SEGMENTS)  # one left join, one anti-join per segment


def test_backfill_on_spark_equals_runs_as_of_each_date(ran: tuple[Project, list[str]], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    project, _ = ran
    backfilled = spark_project(tmp_path)
    result = backfilled.backfill(backfills.DATES[0], backfills.DATES[-1], "month")
    names = list(SEGMENTS)
    left, right = backfills.stays(backfilled, names), backfills.stays(project, names)
    assert sum(len(rows) for rows in left.values()) > 10
    assert left == right
    for day in [*backfills.DATES, backfills.DATES[0].replace(day=15)]:
        assert backfilled.members_at("recent", day) == project.members_at("recent", day)
    assert [r.run_id for r in result.runs] == backfilled.changes("recent")["run_id"].tolist()
    assert not list((tmp_path / "wh" / "segsql" / "backfill").glob("*/*"))  # staging removed


def test_an_unreachable_spark_connect_server_is_named_with_the_fix(tmp_path: Path) -> None:
    from segsql import EngineError
    from tests.pg import _free_port

    url = f"sc://127.0.0.1:{_free_port()}"  # nothing listens there
    write_files(tmp_path, {"segsql.yml": f"connection: {{type: spark, conf: {{spark.remote: '{url}'}}}}\n"
                                         "sources:\n  accounts: {path: accounts.parquet}\n"
                                         "entities:\n  account: {key: account_id, source: accounts}\n"})
    with pytest.raises(EngineError) as refused, Project.load(tmp_path).connect() as engine:
        engine.table_exists(exp.to_table("segsql.runs"))  # the first use starts the session
    assert f"cannot reach the Spark Connect server {url}" in refused.value.message
    assert "remote:" in (refused.value.hint or "")
