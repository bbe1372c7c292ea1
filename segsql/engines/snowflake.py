"""Snowflake through snowflake-connector-python (docs/warehouses.md).

The password comes only from the environment variable the profile names. Values are bound on
the server (`paramstyle="qmark"`: the connector sends them apart from the SQL text, it never
interpolates them). QUALIFY is native, so segments run as written.

Snowflake commits any open transaction before a DDL statement and runs the DDL on its own, so
a run keeps DDL out of its transaction: a transaction is opened lazily at its first DML
statement, DDL inside an open one is refused (it would silently split the transaction), and
the run store writes each segment's result to a staged table first and renames the staged
tables into place just before the membership transaction, undoing the renames if it rolls
back (SnowflakeRunStore).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import snowflake.connector
import sqlglot
from sqlglot import exp

from segsql.compile.catalog import Columns
from segsql.config.models import ProjectConfig, SnowflakeConnection, Source
from segsql.engines import storage
from segsql.engines.base import Capabilities, Engine, SqlRunStore
from segsql.errors import EngineError

# Statements Snowflake runs in a transaction of their own (committing the caller's first).
DDL = (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)
DML = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
TIMEOUT_ERRNOS = frozenset({604, 630})  # statement cancelled / reached its statement timeout
STAGED_PREFIX, PREVIOUS_PREFIX = "staged__", "previous__"  # never `segment__`: no clash with a segment's table


class SnowflakeEngine(Engine):
    name: ClassVar[str] = "snowflake"
    dialect: ClassVar[str] = "snowflake"
    capabilities: ClassVar[Capabilities] = Capabilities(
        transactional_ddl=False, reads_files=False, in_process=False, keeps_insertion_order=False,
        create_or_replace_table=True, approx_distinct=True, temporary_views=True, temporary_tables=True)

    def __init__(self, config: ProjectConfig, root: Path, read_only: bool = False):
        super().__init__(config, root, read_only)
        connection = config.connection
        assert isinstance(connection, SnowflakeConnection)
        self.settings = connection
        self.default_schema = connection.schema_
        self._connection: Any = None
        self._columns: dict[str, Columns] | None = None
        self._transaction = "none"  # none | pending (begin() called, no DML yet) | open

    @property
    def where(self) -> str:
        s = self.settings
        return f"{s.user}@{s.account}/{s.database}.{s.schema_}"

    def connect_arguments(self) -> dict[str, Any]:
        """What snowflake.connector.connect() is given (the password read from the environment)."""
        s = self.settings
        arguments: dict[str, Any] = {
            "account": s.account, "user": s.user, "database": s.database, "schema": s.schema_,
            "warehouse": s.warehouse, "role": s.role, "protocol": s.protocol,
            "paramstyle": "qmark",  # bound on the server; the connector's default pastes values client-side
            "autocommit": True, "application": "segsql", "login_timeout": s.login_timeout,
            "network_timeout": int(self.query_seconds) + 30,  # retries of a failing request stop too
            "session_parameters": {"QUERY_TAG": "segsql", "TIMEZONE": "UTC",
                                   "STATEMENT_TIMEOUT_IN_SECONDS": int(self.query_seconds),
                                   "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        }
        if s.host is not None:
            arguments["host"] = s.host
        if s.port is not None:
            arguments["port"] = s.port
        if s.password_env is not None:
            if s.password_env not in os.environ:
                raise EngineError(f"the environment variable {s.password_env} (connection.password_env) is not set",
                                  None, f"export {s.password_env}=... before running segsql")
            arguments["password"] = os.environ[s.password_env]
        return {key: value for key, value in arguments.items() if value is not None}

    @property
    def connection(self) -> Any:
        if self._connection is None:
            try:
                self._connection = snowflake.connector.connect(**self.connect_arguments())
            except snowflake.connector.Error as error:
                raise EngineError(f"cannot connect to Snowflake {self.where}: {self.error_text(error)}", None,
                                  "check account, user, the password variable, role and warehouse") from None
        return self._connection

    # -- catalog -----------------------------------------------------------------------------
    def describe_source(self, name: str, source: Source) -> Columns | None:
        if source.table is None:
            return None
        parts = source.table.lower().split(".")
        schema = parts[-2] if len(parts) > 1 else self.settings.schema_.lower()
        return self._catalog().get(f"{schema}.{parts[-1]}")

    def _catalog(self) -> dict[str, Columns]:
        if self._columns is None:
            self._columns = self.information_schema_catalog()
        return self._columns

    # -- execution ---------------------------------------------------------------------------
    def execute(self, statement: exp.Expr | str, params: Sequence[Any] = ()) -> None:
        self._run(statement, params).close()

    def fetchall(self, statement: exp.Expr, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self._run(statement, params)
        try:
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def fetch_arrow(self, statement: exp.Expr, params: Sequence[Any] = ()) -> pa.Table:
        cursor = self._run(statement, params)
        try:
            table = cursor.fetch_arrow_all(force_return_table=True)
        except snowflake.connector.Error as error:
            raise EngineError(f"Snowflake: {self.error_text(error, statement)}") from None
        finally:
            cursor.close()
        return table.rename_columns([_folded(name) for name in table.column_names])

    def stream(self, statement: exp.Expr, params: Sequence[Any] = (),
               batch_size: int = 10_000) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        cursor = self._run(statement, params)
        try:
            names = [_folded(column[0]) for column in cursor.description or []]
            while rows := cursor.fetchmany(batch_size):
                yield names, [tuple(row) for row in rows]
        finally:
            cursor.close()

    def _run(self, statement: exp.Expr | str, params: Sequence[Any]) -> Any:
        tree = sqlglot.parse_one(statement, read="duckdb") if isinstance(statement, str) else statement
        self._enter_transaction(tree)
        text, bound = self.bound(tree, params, "?")
        cursor = self.connection.cursor()
        try:
            cursor.execute(text, bound)
        except snowflake.connector.Error as error:
            cursor.close()
            if getattr(error, "errno", None) in TIMEOUT_ERRNOS:
                raise EngineError(f"the query ran longer than {self.query_seconds:g} s and was stopped", None,
                                  "make the segment cheaper, or raise limits.query_seconds in segsql.yml") from None
            raise EngineError(f"Snowflake: {self.error_text(error, statement)}") from None
        if isinstance(tree, exp.Create) and tree.kind == "SCHEMA":
            # CREATE SCHEMA makes the new schema the session's current one: unqualified source
            # tables would then be looked up in `segsql`
            self._send(exp.Use(kind=exp.var("SCHEMA"), this=exp.table_(self.settings.schema_,
                                                                          db=self.settings.database)))
        return cursor

    def _enter_transaction(self, statement: exp.Expr | str) -> None:
        """Open the pending transaction at its first DML; refuse DDL inside an open one."""
        if isinstance(statement, DDL) and self._transaction == "open":
            raise EngineError("Snowflake would commit the open transaction before this DDL statement", None,
                              "this is a segsql bug: report it (DDL must run before a run's first write)")
        if isinstance(statement, DML) and self._transaction == "pending":
            self._send(exp.Transaction())
            self._transaction = "open"

    def _send(self, statement: exp.Expr) -> None:
        try:
            self.connection.cursor().execute(self.sql(statement)).close()
        except snowflake.connector.Error as error:
            raise EngineError(f"Snowflake: {self.error_text(error)}") from None

    def prepare_sources(self) -> None:
        self.refuse_file_sources()

    def begin(self) -> None:
        """Writes from here on commit together; DDL before the first of them runs on its own."""
        self._transaction = "pending"

    def commit(self) -> None:
        if self._transaction == "open":
            self._send(exp.Commit())
        self._transaction = "none"

    def flush(self) -> None:
        self.commit()

    def rollback(self) -> None:
        opened, self._transaction = self._transaction == "open", "none"
        if opened and self._connection is not None:
            with contextlib.suppress(snowflake.connector.Error, EngineError):
                self._send(exp.Rollback())

    def run_store(self) -> SnowflakeRunStore:
        return SnowflakeRunStore(self)

    def rename_table(self, table: exp.Table, to: exp.Table) -> None:
        self.execute(exp.Alter(this=table.copy(), kind="TABLE", actions=[exp.AlterRename(this=to.copy())]))

    def close(self) -> None:
        self.rollback()
        if self._connection is not None:
            with contextlib.suppress(snowflake.connector.Error):
                self._connection.close()
        self._connection = None


def _folded(name: str) -> str:
    """Snowflake reports unquoted names upper-case; segsql's names are lower-case."""
    return name.lower() if name.isupper() else name


class SnowflakeRunStore(SqlRunStore):
    """Segment results are staged in `segsql.staged__NAME` (DDL, outside the transaction), renamed
    into `segsql.segment__NAME` right before the membership transaction, and renamed back when it
    rolls back; the previous results are dropped once it commits."""

    engine: SnowflakeEngine

    def __init__(self, engine: SnowflakeEngine):
        super().__init__(engine)
        self.staged: list[str] = []
        self.renamed: list[tuple[str, bool]] = []  # (segment, whether it had a previous table)

    def write_segment(self, name: str, query: exp.Query) -> exp.Table:
        target = storage.table(f"{STAGED_PREFIX}{name}")
        self.engine.replace_table(target, query)
        self.staged.append(name)
        return target

    def replace_membership(self, plans: list[Any], result: Any, keys: dict[str, str]) -> None:
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
        raise EngineError("backfill does not run on Snowflake yet (its staging mixes DDL into the transaction, "
                          "which Snowflake would commit early)", None,
                          "backfill on a DuckDB or Postgres profile (--target) with the same data")


def _staged(name: str) -> exp.Table:
    return storage.table(f"{STAGED_PREFIX}{name}")


def _previous(name: str) -> exp.Table:
    return storage.table(f"{PREVIOUS_PREFIX}{name}")
