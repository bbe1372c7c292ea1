"""Snowflake through snowflake-connector-python (docs/warehouses.md).

The password comes only from the environment variable the profile names. Values are bound on
the server (`paramstyle="qmark"`: the connector sends them apart from the SQL text, it never
interpolates them). QUALIFY is native, so segments run as written.

Snowflake commits any open transaction before a DDL statement and runs the DDL on its own, so
a run keeps DDL out of its transaction: a transaction is opened lazily at its first DML
statement, DDL inside an open one is refused (it would silently split the transaction), and
the run store writes each segment's result to a staged table first and renames the staged
tables into place just before the membership transaction, undoing the renames if it rolls
back (base.StagedRunStore).
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
from segsql.engines.base import Capabilities, DeferredTransaction, WarehouseEngine
from segsql.errors import EngineError

TIMEOUT_ERRNOS = frozenset({604, 630})  # statement cancelled / reached its statement timeout


class SnowflakeEngine(WarehouseEngine):
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
        self.transaction = DeferredTransaction("Snowflake", self._send)

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
        self.transaction.before(tree)
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

    def _send(self, statement: exp.Expr) -> None:
        try:
            self.connection.cursor().execute(self.sql(statement)).close()
        except snowflake.connector.Error as error:
            raise EngineError(f"Snowflake: {self.error_text(error)}") from None

    def connected(self) -> bool:
        return self._connection is not None

    def close(self) -> None:
        self.rollback()
        if self._connection is not None:
            with contextlib.suppress(snowflake.connector.Error):
                self._connection.close()
        self._connection = None


def _folded(name: str) -> str:
    """Snowflake reports unquoted names upper-case; segsql's names are lower-case."""
    return name.lower() if name.isupper() else name
