"""Spark (local mode): the history rewrite is planned as hash/sort-merge joins whatever the
history's size (no nested loop from `NOT IN` under an OR), and a backfill writes the history
that runs `--as-of` each date write."""

from __future__ import annotations

import datetime as dt
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


def test_a_second_run_in_the_session_keeps_unchanged_tables_and_views(tmp_path: Path) -> None:
    """A new engine on a session that already points a stored segment at its (write-once)
    location, or holds a source view of an unchanged file, re-creates neither (each was a Spark
    job reading a schema); a changed file, a moved result and a table dropped behind segsql's back
    are registered again, and members stay right."""
    require_spark()
    from pyspark.sql import SparkSession

    project = spark_project(tmp_path / "p")
    project.run()
    statements: list[str] = []
    original_sql = SparkSession.sql

    def recording(self: SparkSession, text: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(text)
        return original_sql(self, text, *args, **kwargs)

    def created() -> set[str]:
        return {m.group(1) for s in statements if (m := re.match(r"CREATE TABLE (\S+) USING PARQUET", s))
                and "staged__" not in m.group(1)}  # a run's own staging tables are written, not pointed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SparkSession, "sql", recording)
        project.run(select=["recent_even"])
        # the run re-points what it wrote (recent_even and the history) and nothing else
        assert created() == {"segsql.segment__recent_even", "segsql.history"}, statements
        statements.clear()
        spark = SparkSession.getActiveSession()
        assert spark is not None
        original_sql(spark, "DROP TABLE segsql.segment__recent")  # behind segsql's back
        connection = duckdb.connect()  # a changed source file: read again
        connection.execute(f"COPY (SELECT range AS account_id, DATE '2026-01-01' + CAST(range * 7 AS INT) AS signup_date "
                           f"FROM range(1, 80)) TO '{tmp_path / 'p' / 'accounts.parquet'}' (FORMAT parquet)")
        connection.close()
        result = project.run(select=["recent"])
    assert "segsql.segment__recent" in created()
    members = {row[0] for row in project.members("recent").itertuples(index=False)}
    signup = {i: dt.date(2026, 1, 1) + dt.timedelta(days=7 * i) for i in range(1, 80)}
    as_of = project.as_of if isinstance(project.as_of, dt.date) else dt.date.fromisoformat(str(project.as_of)[:10])
    expected = {i for i, day in signup.items() if as_of - dt.timedelta(days=60) < day <= as_of}
    assert result.status == "success" and members == expected
    statements.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SparkSession, "sql", recording)
        # another session on the same catalog re-points the table elsewhere; the user replaces a
        # source view in this one: both are noticed, not trusted from memory
        other = spark.newSession()
        original_sql(other, "DROP TABLE segsql.segment__recent_even")
        original_sql(other, "CREATE TABLE segsql.segment__recent_even USING PARQUET LOCATION "
                            f"'{tmp_path / 'p' / 'accounts.parquet'}'")
        spark.range(3).createOrReplaceTempView("accounts")
        result = project.run(select=["recent"])
    assert "segsql.segment__recent_even" in created() and result.status == "success"
    assert {row[0] for row in project.members("recent").itertuples(index=False)} == members
