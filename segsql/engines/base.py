"""The interface every engine adapter implements, with capability flags as data, and where a
run's results go: `RunStore`, and `SqlRunStore` for engines with transactions (DuckDB, Postgres,
DB-API) — the storage tables of engines/storage.py written in one transaction; `StagedRunStore`
and `DeferredTransaction` for warehouses whose DDL cannot join a transaction (Snowflake, BigQuery). Engines without
transactions or UPDATE (Spark on Parquet) provide their own store (engines/spark.py)."""

from __future__ import annotations

import contextlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pyarrow as pa
import sqlglot
from sqlglot import exp

from segsql.compile.catalog import Columns
from segsql.compile.keys import EntityKey
from segsql.compile.literals import get_dialect
from segsql.compile.portability import for_dialect
from segsql.config.models import ProjectConfig, Source
from segsql.engines import storage, timeline
from segsql.engines.watchdog import Watchdog
from segsql.errors import EngineError, hide_quoted_values
from segsql.version import __version__

if TYPE_CHECKING:
    from segsql.engines.records import Replaced, RunResult, SegmentRun


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do; callers branch on these flags, never on the engine's name."""

    transactional_ddl: bool
    reads_files: bool
    in_process: bool
    keeps_insertion_order: bool  # a table written sorted is read back in that order without ORDER BY
    create_or_replace_table: bool = True  # CREATE OR REPLACE TABLE ... AS (else DROP + CREATE)
    approx_distinct: bool = True  # APPROX_COUNT_DISTINCT (HyperLogLog) is available
    temporary_views: bool = True
    temporary_tables: bool = True  # CREATE TEMPORARY TABLE (a backfill's staging)
    transactions: bool = True  # writes of several statements commit together (Snowflake: DML; its DDL commits alone)

PARAMETER_MARK = "segsql_bound_value_7d1f"  # a placeholder name no segment uses; counted before it is replaced


class Engine(ABC):
    """One connection to one engine, for one project."""

    name: ClassVar[str]
    dialect: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def __init__(self, config: ProjectConfig, root: Path, read_only: bool = False):
        self.config = config
        self.root = root
        self.read_only = read_only

    @abstractmethod
    def describe_source(self, name: str, source: Source) -> Columns | None:
        """Columns (lower-case name -> type) of a source, or None when it cannot be found."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def text_collation(self) -> str | None:
        """How this connection orders text when it is not byte order (e.g. "`en-US` (ICU) of
        database shop"), else None; engines that cannot tell say None (compile/collation.py)."""
        return None

    def text_case_mapping(self) -> str | None:
        """How this connection maps letter case when LOWER/UPPER change ASCII letters only (e.g.
        "LC_CTYPE `C` of database shop"), else None (every letter, or cannot tell)."""
        return None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


    # -- execution (used by the runner and the read API) ------------------------------------
    @abstractmethod
    def execute(self, statement: exp.Expr | str, params: Sequence[Any] = ()) -> None:
        """Run one statement (a tree, or constant DDL in DuckDB's dialect)."""

    @abstractmethod
    def fetchall(self, statement: exp.Expr, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return every row (use only for small results)."""

    @abstractmethod
    def fetch_arrow(self, statement: exp.Expr, params: Sequence[Any] = ()) -> pa.Table:
        """Run a query and return an Arrow table."""

    @abstractmethod
    def stream(self, statement: exp.Expr, params: Sequence[Any] = (),
               batch_size: int = 10_000) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        """Run a query and yield (column names, rows) batches without holding every row."""

    @abstractmethod
    def prepare_sources(self) -> None:
        """Make every source readable under the name segments use (e.g. views over files)."""

    default_schema: str = "main"

    def table_exists(self, table: exp.Table) -> bool:
        return table.name.lower() in self.existing_tables([table])

    def existing_tables(self, tables: list[exp.Table]) -> set[str]:
        """Lower-case names of the given tables (all in one schema) that exist: one query to
        information_schema, which DuckDB, Postgres and most warehouses have."""
        if not tables:
            return set()
        query = exp.select(exp.column("table_name")).from_("information_schema.tables").where(exp.and_(
            exp.func("lower", exp.column("table_schema")).eq(exp.Placeholder()),
            exp.func("lower", exp.column("table_name")).isin(*[exp.Placeholder() for _ in tables])))
        schema = (tables[0].db or self.default_schema).lower()
        return {str(row[0]).lower() for row in self.fetchall(query, [schema, *[t.name.lower() for t in tables]])}

    def information_schema_catalog(self) -> dict[str, Columns]:
        """`schema.table` -> columns (lower-case name -> type) of every table information_schema lists."""
        rows = self.fetchall(exp.select("table_schema", "table_name", "column_name", "data_type")
                             .from_("information_schema.columns")
                             .order_by("table_schema", "table_name", "ordinal_position"))
        columns: dict[str, Columns] = {}
        for schema, table, column, data_type in rows:
            columns.setdefault(f"{schema}.{table}".lower(), {})[str(column).lower()] = str(data_type)
        return columns

    def refuse_file_sources(self) -> None:
        """For engines that read only tables: file sources are a configuration error."""
        files = sorted(name for name, source in self.config.sources.items() if source.path is not None)
        if files:
            raise EngineError(f"{self.name} cannot read file sources ({', '.join(files)})", None,
                              "load the files into tables and declare them with `table:`")

    @abstractmethod
    def begin(self) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None: ...

    def flush(self) -> None:  # noqa: B027 (a hook: engines in autocommit have nothing to do)
        """Make writes outside a run's transaction durable."""

    def run_store(self) -> RunStore:
        """Where runs write: the transactional storage tables unless the engine says otherwise."""
        return SqlRunStore(self)

    def replace_table(self, table: exp.Table, query: exp.Query) -> None:
        """Create `table` from `query`, replacing it (inside the caller's transaction)."""
        if self.capabilities.create_or_replace_table:
            self.execute(exp.Create(this=table, kind="TABLE", expression=query, replace=True))
        else:
            self.execute(exp.Drop(tables=[table.copy()], kind="TABLE", exists=True))
            self.execute(exp.Create(this=table, kind="TABLE", expression=query))

    def rename_table(self, table: exp.Table, to: exp.Table) -> None:
        """ALTER TABLE ... RENAME TO (DDL: outside the caller's transaction on warehouses)."""
        self.execute(exp.Alter(this=table.copy(), kind="TABLE", actions=[exp.AlterRename(this=to.copy())]))

    @property
    def query_seconds(self) -> float:
        """The statement timeout (segsql.yml limits.query_seconds)."""
        return float(self.config.limits.query_seconds)

    @contextmanager
    def deadline(self) -> Iterator[None]:
        """Interrupt the statement run inside this block when it takes longer than query_seconds
        (for engines without a server-side statement timeout); the engine's error then says so."""
        if getattr(self, "_watchdog", None) is None:
            self._watchdog = Watchdog(self._on_deadline)
        self._deadline_hit = False
        with self._watchdog.watch(self.query_seconds):
            yield

    def _on_deadline(self) -> None:
        self._deadline_hit = True
        self.interrupt()

    def record_unmask(self, who: str, segment: str, columns: list[str], via: str) -> None:
        """An audit row: who saw which segment's personal columns unmasked, when, from where."""
        self.run_store().ensure_tables()
        self.execute(storage.insert_unmask_audit(), [storage.now(), who, segment, ",".join(columns), via])
        self.flush()

    def compact(self) -> bool:
        """Rewrite the storage so bytes of deleted rows are gone (after an erasure); True if done.
        Engines whose storage the DBA maintains (Postgres VACUUM) do nothing here."""
        return False

    def interrupt(self) -> None:  # noqa: B027 (engines that can cancel a running statement override it)
        """Cancel the statement running on this connection, from another thread."""

    def timeout_error(self) -> EngineError | None:
        """The error to raise instead of the engine's own when the deadline interrupted a statement."""
        if not getattr(self, "_deadline_hit", False):
            return None
        self._deadline_hit = False
        return EngineError(f"the query ran longer than {self.query_seconds:g} s and was stopped", None,
                           "make the segment cheaper, or raise limits.query_seconds in segsql.yml")

    def error_text(self, error: Exception, statement: exp.Expr | str | None = None) -> str:
        """The first line of a driver's error, with quoted row values hidden (names and literals
        of the statement and of the project's sources stay readable)."""
        text = str(error).strip()
        first = text.splitlines()[0] if text else type(error).__name__
        return hide_quoted_values(first, self._known_names(statement))

    def statement_error(self, error: Exception, statement: exp.Expr | str | None = None) -> EngineError:
        """An error running `statement`: the driver's first line (values hidden), and the part of
        the statement it points at when it gives a position (DuckDB and Postgres print
        `LINE n: <text>` and carets under the offending part): Compiler.locate maps that back to
        the template's line."""
        engine_error = EngineError(f"{self.engine_label}: {self.error_text(error, statement)}")
        engine_error.pointed_at = pointed_at(str(error))
        return engine_error

    @property
    def engine_label(self) -> str:
        return {"duckdb": "DuckDB", "postgres": "Postgres"}.get(self.name, self.name)

    def _known_names(self, statement: exp.Expr | str | None) -> set[str]:
        known = {storage.SCHEMA}
        for name, source in self.config.sources.items():
            known.update([name, *(source.table or "").split("."), *(source.columns or {})])
        known.update(column for entity in self.config.entities.values() for column in entity.key_columns)
        tree = statement if isinstance(statement, exp.Expr) else None
        if isinstance(statement, str):
            known.update(statement.replace('"', " ").replace("'", " ").split())
        for node in tree.walk() if tree is not None else ():
            if isinstance(node, exp.Identifier | exp.Literal):
                known.add(str(node.this))
        return {name.lower() for name in known}

    def bound(self, statement: exp.Expr | str, params: Sequence[Any], style: str = "{}",
              escape_percent: bool = False) -> tuple[str, list[Any] | None]:
        """SQL text and parameters for drivers whose placeholders are plain text (`%s`, `:1`): every
        placeholder of the tree becomes `style` (formatted with its 1-based number) and nothing
        else, so `?`, `%`, `:name` or `$1` inside literals stay literals. No parameters: the text
        goes to the driver as it is, with None for the parameters (call execute(text) then: with
        no parameters, drivers do not parse placeholders)."""
        if not params:
            return self.sql(statement), None
        if not isinstance(statement, exp.Expr):
            raise EngineError("parameters need a statement tree")
        tree = statement.copy()
        for node in list(tree.find_all(exp.Placeholder)):
            node.replace(exp.Placeholder(this=PARAMETER_MARK))
        parts = self.sql(tree).split(exp.Placeholder(this=PARAMETER_MARK).sql(dialect=get_dialect(self.dialect)))
        if len(parts) - 1 != len(params):
            raise EngineError(f"{len(params)} parameter(s) for {len(parts) - 1} placeholder(s)")
        if escape_percent:
            parts = [part.replace("%", "%%") for part in parts]
        return parts[0] + "".join(style.format(i + 1) + part for i, part in enumerate(parts[1:])), list(params)

    def sql(self, statement: exp.Expr | str) -> str:
        """Text for this engine: trees are generated, constant DDL is transpiled from DuckDB."""
        tree = sqlglot.parse_one(statement, read="duckdb") if isinstance(statement, str) else statement
        return for_dialect(tree, self.dialect).sql(dialect=get_dialect(self.dialect))


class RunStore(Protocol):
    def prepare(self) -> None:
        """Before a run: create what is missing and record runs a killed process left `running`
        as failed."""

    def ensure_tables(self) -> None:
        """Create what is missing, touching no run (for exports, erasure and audit rows, which may
        happen while another process runs)."""

    def start(self, result: RunResult, names: list[str], version: str) -> None: ...

    def begin(self) -> None: ...

    def write_segment(self, name: str, query: exp.Query) -> exp.Table:
        """Materialise a segment's result (not yet visible to readers); return where it is."""
    def replace_membership(self, plans: list[SegmentRun], result: RunResult, keys: dict[str, EntityKey]) -> None: ...

    def finish(self, result: RunResult, plans: list[SegmentRun]) -> None:
        """Record the run's outcome (inside the transaction on success, after rollback on failure)."""
    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    # -- backfill (run/backfill.py): every date of every segment staged, then spliced in at once --
    def begin_backfill(self, batch: str) -> None:
        """Start the backfill's transaction (or its staging area)."""

    def stage_members(self, name: str, index: int, members: exp.Query) -> None:
        """Keep the (snapshot_index, entity_key) rows of `name` at the index-th date."""

    def staged_counts(self) -> dict[tuple[str, int], tuple[int, int, int]]:
        """(segment, index) -> rows, non-NULL keys, distinct keys of what was staged."""

    def write_backfill(self, splices: list[timeline.Splice], runs: list[RunResult], replaced: Replaced) -> None:
        """Replace the affected stays by the rebuilt ones, record the runs, drop or mark the
        records of the runs replaced; visible at commit()."""


class SqlRunStore:
    """The storage tables, all writes of a run in one transaction."""
    def __init__(self, engine: Engine):
        self.engine = engine

    def prepare(self) -> None:
        self.ensure_tables()
        self.engine.execute(storage.mark_interrupted())

    def ensure_tables(self) -> None:
        wanted = [storage.table(name) for name in storage.MANAGED_TABLES]
        if len(self.engine.existing_tables(wanted)) < len(wanted):
            for statement in storage.DDL:  # all IF NOT EXISTS: fills in what a database lacks
                self.engine.execute(statement)

    def start(self, result: RunResult, names: list[str], version: str) -> None:

        self.engine.execute(storage.insert_run(), [result.run_id, storage.now(), storage.RUNNING, result.as_of,
                                                   json.dumps(names), version])
        self.engine.flush()  # the `running` record must survive a kill

    def begin(self) -> None:
        self.engine.begin()

    def write_segment(self, name: str, query: exp.Query) -> exp.Table:
        target = storage.segment_table(name)
        self.engine.replace_table(target, query)
        return target

    def replace_membership(self, plans: list[SegmentRun], result: RunResult, keys: dict[str, EntityKey]) -> None:

        names = [plan.name for plan in plans]
        self.engine.execute(storage.delete_membership(names), names)
        now = storage.now()
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

        for plan in plans:
            self.engine.execute(storage.insert_run_segment(), _segment_row(result, plan))
        self.engine.execute(storage.finish_run(), [storage.now(), result.status, result.error, result.run_id])
        if result.status == storage.FAILED:
            self.engine.flush()  # after a rollback, the failure record is its own transaction

    def commit(self) -> None:
        self.engine.commit()

    def rollback(self) -> None:
        self.engine.rollback()

    def begin_backfill(self, batch: str) -> None:
        temporary = self.engine.capabilities.temporary_tables
        self.staged_keys = storage.staged_members(batch, temporary)
        self.staged_stays = storage.staged_history(batch, temporary)
        self.engine.begin()
        self.engine.execute(storage.create_staging(self.staged_keys, temporary))

    def stage_members(self, name: str, index: int, members: exp.Query) -> None:
        self.engine.execute(storage.stage_members(self.staged_keys, name, members))

    def staged_counts(self) -> dict[tuple[str, int], tuple[int, int, int]]:
        rows = self.engine.fetchall(storage.staged_counts(self.staged_keys.copy()))
        return {(str(r[0]), int(r[1])): (int(r[2]), int(r[3]), int(r[4])) for r in rows}

    def write_backfill(self, splices: list[timeline.Splice], runs: list[RunResult], replaced: Replaced) -> None:
        staged, history = self.staged_stays, storage.table("history")
        temporary = self.engine.capabilities.temporary_tables
        for number, splice in enumerate(splices):
            members = exp.select("snapshot_index", "entity_key").from_(self.staged_keys.copy()).where(
                exp.column("segment").eq(exp.Literal.string(splice.segment)))
            query = timeline.rebuilt(splice, members, has_history=True)
            self.engine.execute(storage.create_staging(staged.copy(), temporary, query) if number == 0 else
                                exp.insert(query, staged.copy(), columns=timeline.COLUMNS))
        for splice in splices:
            self.engine.execute(exp.delete(history.copy(), where=timeline.affected(splice)))
        self.engine.execute(exp.insert(exp.select(*timeline.COLUMNS).from_(staged.copy()), history.copy(),
                                       columns=timeline.COLUMNS))
        for run_id, segment in replaced.dropped:
            self.engine.execute(storage.delete_run_segment(), [run_id, segment])
        for run_id, segment in replaced.superseded:
            self.engine.execute(storage.supersede_run_segment(), [run_id, segment])
        self.engine.execute(storage.delete_empty_backfill_runs())
        for run in runs:
            record = backfill_record(run, __version__)
            self.engine.execute(storage.insert_finished_run(), list(record.values()))
            for row in backfill_segment_rows(run):
                self.engine.execute(storage.insert_run_segment(), row)
        for table in (staged, self.staged_keys):
            self.engine.execute(exp.Drop(tables=[table.copy()], kind="TABLE", exists=True))


# Statements a warehouse runs outside any transaction (Snowflake commits the open one first;
# BigQuery refuses them inside one), and the writes a transaction holds.
DDL_STATEMENTS = (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)
DML_STATEMENTS = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
STAGED_PREFIX, PREVIOUS_PREFIX = "staged__", "previous__"  # never `segment__`: no clash with a segment's table


class DeferredTransaction:
    """A transaction for engines whose DDL is not transactional: begin() only marks it pending, the
    first DML statement opens it (`send(BEGIN)`), and DDL while it is open is refused (it would
    commit or fail the transaction instead of joining it)."""

    def __init__(self, engine: str, send: Callable[[exp.Expr], None]):
        self.engine, self.send, self.state = engine, send, "none"  # none | pending | open

    def before(self, statement: exp.Expr) -> None:
        if isinstance(statement, DDL_STATEMENTS) and self.state == "open":
            raise EngineError(f"{self.engine} would commit the open transaction before this DDL statement", None,
                              "this is a segsql bug: report it (DDL must run before a run's first write)")
        if isinstance(statement, DML_STATEMENTS) and self.state == "pending":
            self.send(exp.Transaction())
            self.state = "open"

    def begin(self) -> None:
        self.state = "pending"

    def commit(self) -> None:
        if self.state == "open":
            self.send(exp.Commit())
        self.state = "none"

    def rollback(self) -> None:
        opened, self.state = self.state == "open", "none"
        if opened:
            with contextlib.suppress(EngineError):
                self.send(exp.Rollback())


class StagedRunStore(SqlRunStore):
    """For engines whose DDL cannot be part of a transaction (Snowflake, BigQuery): segment results
    are staged in `segsql.staged__NAME` (DDL, before the transaction), renamed into
    `segsql.segment__NAME` right before the DML-only membership transaction, and renamed back when
    it rolls back; the previous results are dropped once it commits (docs/warehouses.md)."""

    def __init__(self, engine: Engine):
        super().__init__(engine)
        self.staged: list[str] = []
        self.renamed: list[tuple[str, bool]] = []  # (segment, whether it had a previous table)

    def write_segment(self, name: str, query: exp.Query) -> exp.Table:
        target = storage.table(f"{STAGED_PREFIX}{name}")
        self.engine.replace_table(target, query)
        self.staged.append(name)
        return target

    def replace_membership(self, plans: list[Any], result: Any, keys: dict[str, EntityKey]) -> None:
        current = storage.segment_table
        existing = self.engine.existing_tables([current(name) for name in self.staged])
        for name in self.staged:
            had_previous = current(name).name.lower() in existing
            if had_previous:
                self.engine.execute(exp.Drop(tables=[_previous(name)], kind="TABLE", exists=True))
                self.engine.rename_table(current(name), _previous(name))
            self.engine.rename_table(_staged(name), current(name))
            self.renamed.append((name, had_previous))
        super().replace_membership(plans, result, keys)

    def commit(self) -> None:
        self.engine.commit()
        for name, had_previous in self.renamed:
            if had_previous:
                self.engine.execute(exp.Drop(tables=[_previous(name)], kind="TABLE", exists=True))
        self.staged, self.renamed = [], []

    def rollback(self) -> None:
        self.engine.rollback()
        with contextlib.suppress(EngineError):  # best effort: the run's own error is the one to report
            for name, had_previous in reversed(self.renamed):
                self.engine.rename_table(storage.segment_table(name), _staged(name))
                if had_previous:
                    self.engine.rename_table(_previous(name), storage.segment_table(name))
            for name in self.staged:
                self.engine.execute(exp.Drop(tables=[_staged(name)], kind="TABLE", exists=True))
        self.staged, self.renamed = [], []

    def begin_backfill(self, batch: str) -> None:
        raise EngineError(f"backfill does not run on {self.engine.name} yet (its staging mixes DDL into the "
                          "transaction)", None,
                          "backfill on a DuckDB or Postgres profile (--target) with the same data")


def _staged(name: str) -> exp.Table:
    return storage.table(f"{STAGED_PREFIX}{name}")


def _previous(name: str) -> exp.Table:
    return storage.table(f"{PREVIOUS_PREFIX}{name}")


class WarehouseEngine(Engine):
    """An engine whose DDL cannot join a transaction (Snowflake, BigQuery): a DeferredTransaction
    (`self.transaction`, sending through the adapter) and the StagedRunStore; only tables as sources."""

    transaction: DeferredTransaction

    @abstractmethod
    def connected(self) -> bool:
        """Whether a connection (or client) is open: nothing to roll back otherwise."""

    def prepare_sources(self) -> None:
        self.refuse_file_sources()

    def begin(self) -> None:
        """Writes from here on commit together; DDL before the first of them runs on its own."""
        self.transaction.begin()

    def commit(self) -> None:
        self.transaction.commit()

    def flush(self) -> None:
        self.commit()

    def rollback(self) -> None:
        if self.connected():
            self.transaction.rollback()
        self.transaction.state = "none"

    def run_store(self) -> StagedRunStore:
        return StagedRunStore(self)


def backfill_record(run: RunResult, version: str) -> dict[str, Any]:
    """The segsql.runs row of a backfilled run (columns in storage.insert_finished_run's order):
    started and finished at its stamp, the last microsecond of its as_of day."""
    at = timeline.stamp(run.as_of)
    return {"run_id": run.run_id, "started_at": at, "finished_at": at, "status": storage.BACKFILL,
            "as_of": run.as_of, "selected": json.dumps([plan.name for plan in run.segments]), "error": None,
            "segsql_version": version}


def backfill_segment_rows(run: RunResult) -> list[list[Any]]:
    return [_segment_row(run, plan) for plan in run.segments]


def _as_date(value: Any) -> Any:
    import datetime as dt

    return value.date() if isinstance(value, dt.datetime) else value


def _segment_row(result: RunResult, plan: SegmentRun) -> list[Any]:
    status = "success (point-in-time)" if plan.point_in_time and plan.status == storage.SUCCESS else plan.status
    return [result.run_id, plan.name, plan.entity, plan.rows, plan.population, plan.definition_hash,
            status, plan.duration_ms, plan.error]


CARETS = re.compile(r"^LINE \d+: (?P<text>.*)\n(?P<pad> *)(?P<carets>\^+)", re.M)


def pointed_at(message: str) -> tuple[str, str] | None:
    """(text before, text under the carets) of a `LINE n: ...` / `   ^^^` error (one caret: the
    token starting there), or None when the message gives no position.

    >>> pointed_at("Binder Error: ...\\n\\nLINE 3: WHERE a.d > 5) SELECT 1\\n              ^^^^^^^")
    ('WHERE ', 'a.d > 5')
    """
    match = CARETS.search(message)
    if match is None:
        return None
    start = len(match.group("pad")) - (match.start("text") - match.start(0))  # the carets align under "LINE n: "
    text = match.group("text")
    if not 0 <= start < len(text):
        return None
    if len(match.group("carets")) > 1:
        part = text[start:start + len(match.group("carets"))]
    else:
        token = re.match(r"[\w.\"]+|\S", text[start:])
        part = token.group(0) if token else ""
    return (text[:start].removeprefix("..."), part) if part.strip() else None
