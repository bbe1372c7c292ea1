"""Where a run's results go, per kind of engine.

`SqlRunStore` (DuckDB, Postgres): the storage tables of segsql/engines/storage.py, written in one
transaction. Engines without transactions or UPDATE (Spark on Parquet) provide their own store
that writes new locations and switches a pointer at commit (engines/spark.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from sqlglot import exp

from segsql.engines import storage

if TYPE_CHECKING:
    from segsql.engines.base import Engine
    from segsql.run.runner import RunResult, SegmentRun


class RunStore(Protocol):
    def prepare(self) -> None:
        """Create what is missing and record runs a killed process left `running` as failed."""

    def start(self, result: RunResult, names: list[str], version: str) -> None: ...

    def begin(self) -> None: ...

    def write_segment(self, name: str, query: exp.Query) -> exp.Table:
        """Materialise a segment's result (not yet visible to readers); return where it is."""

    def replace_membership(self, plans: list[SegmentRun], result: RunResult, keys: dict[str, str]) -> None: ...

    def finish(self, result: RunResult, plans: list[SegmentRun]) -> None:
        """Record the run's outcome (inside the transaction on success, after rollback on failure)."""

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class SqlRunStore:
    """The storage tables, all writes of a run in one transaction."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def prepare(self) -> None:
        wanted = [storage.table(name) for name in storage.MANAGED_TABLES]
        if len(self.engine.existing_tables(wanted)) < len(wanted):
            for statement in storage.DDL:  # all IF NOT EXISTS: fills in what a database lacks
                self.engine.execute(statement)
        self.engine.execute(storage.mark_interrupted())

    def start(self, result: RunResult, names: list[str], version: str) -> None:
        from segsql.run.runner import _now

        self.engine.execute(storage.insert_run(), [result.run_id, _now(), storage.RUNNING, result.as_of,
                                                   json.dumps(names), version])
        self.engine.flush()  # the `running` record must survive a kill

    def begin(self) -> None:
        self.engine.begin()

    def write_segment(self, name: str, query: exp.Query) -> exp.Table:
        target = storage.segment_table(name)
        self.engine.replace_table(target, query)
        return target

    def replace_membership(self, plans: list[SegmentRun], result: RunResult, keys: dict[str, str]) -> None:
        from segsql.run.runner import _now

        names = [plan.name for plan in plans]
        self.engine.execute(storage.delete_membership(names), names)
        now = _now()
        for plan in plans:
            key = keys[plan.entity]
            self.engine.execute(storage.insert_membership(plan.name, plan.entity, key), [result.run_id, result.as_of])
            latest = self.engine.fetchall(storage.latest_history_as_of(plan.name), [plan.name])[0][0]
            if latest is not None and _as_date(latest) > result.as_of:
                plan.point_in_time = True  # an earlier as_of: the current timeline is left alone
                continue
            self.engine.execute(storage.close_history(plan.name, key), [now, result.run_id])
            self.engine.execute(storage.open_history(plan.name, plan.entity, key),
                                [now, result.run_id, plan.definition_hash, result.as_of])
        months = self.config_retention()
        if months is not None:
            cutoff = storage.months_before(now, months)
            count = exp.select(exp.func("count", exp.Star())).from_(storage.table("history")).where(
                exp.and_(exp.column("valid_to").is_(exp.null()).not_(),
                         exp.LT(this=exp.column("valid_to"), expression=exp.Placeholder())))
            result.history_purged = int(self.engine.fetchall(count, [cutoff])[0][0])
            if result.history_purged:
                self.engine.execute(storage.purge_history(), [cutoff])

    def config_retention(self) -> int | None:
        return self.engine.config.privacy.history_retention_months

    def finish(self, result: RunResult, plans: list[SegmentRun]) -> None:
        from segsql.run.runner import _now

        for plan in plans:
            self.engine.execute(storage.insert_run_segment(), _segment_row(result, plan))
        self.engine.execute(storage.finish_run(), [_now(), result.status, result.error, result.run_id])
        if result.status == storage.FAILED:
            self.engine.flush()  # after a rollback, the failure record is its own transaction

    def commit(self) -> None:
        self.engine.commit()

    def rollback(self) -> None:
        self.engine.rollback()


def _as_date(value: Any) -> Any:
    import datetime as dt

    return value.date() if isinstance(value, dt.datetime) else value


def _segment_row(result: RunResult, plan: SegmentRun) -> list[Any]:
    status = "success (point-in-time)" if plan.point_in_time and plan.status == storage.SUCCESS else plan.status
    return [result.run_id, plan.name, plan.entity, plan.rows, plan.population, plan.definition_hash,
            status, plan.duration_ms, plan.error]
