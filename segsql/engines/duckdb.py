"""DuckDB, the embedded default engine: a database file or `:memory:`."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
from sqlglot import exp

from segsql.compile.catalog import Columns
from segsql.config.models import DuckDBConnection, ProjectConfig, Source
from segsql.engines.base import Capabilities, Engine
from segsql.errors import EngineError

COMPACTED = "segsql_compacted"  # the database name of the copy while compacting


class DuckDBEngine(Engine):
    name: ClassVar[str] = "duckdb"
    dialect: ClassVar[str] = "duckdb"
    capabilities: ClassVar[Capabilities] = Capabilities(
        transactional_ddl=True, reads_files=True, in_process=True, keeps_insertion_order=True)

    def __init__(self, config: ProjectConfig, root: Path, read_only: bool = False):
        super().__init__(config, root, read_only)
        connection = config.connection
        assert isinstance(connection, DuckDBConnection)
        self.database = self._database_path(connection.path)
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._borrowed = False
        self._running: duckdb.DuckDBPyConnection | None = None
        self._table_columns: dict[tuple[str, ...], Columns] | None = None

    @classmethod
    def borrow(cls, config: ProjectConfig, root: Path, connection: duckdb.DuckDBPyConnection) -> DuckDBEngine:
        """An engine over a connection the caller owns (a notebook's); close() leaves it open."""
        engine = cls(config, root)
        engine._connection = connection
        engine._borrowed = True
        return engine

    @property
    def borrowed(self) -> bool:
        """The connection belongs to the caller (a notebook's): this engine never closes it."""
        return self._borrowed

    def _database_path(self, path: str) -> str:
        if path == ":memory:":
            return path
        resolved = Path(path) if Path(path).is_absolute() else self.root / path
        return str(resolved)

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _open(self) -> duckdb.DuckDBPyConnection:
        read_only = self.read_only and self.database != ":memory:"
        if read_only and not Path(self.database).exists():
            return duckdb.connect(":memory:")  # nothing to read yet: an empty catalog
        return connect_file(self.database, read_only)

    def file_path(self, source: Source) -> Path:
        assert source.path is not None
        path = Path(source.path)
        return path if path.is_absolute() else self.root / path

    def text_collation(self) -> str | None:
        """DuckDB compares text by bytes unless `default_collation` is set (e.g. nocase)."""
        setting = self.fetchall(exp.select(exp.func("current_setting", exp.Literal.string("default_collation"))))
        value = str(setting[0][0] or "") if setting else ""
        return f"`{value}` (DuckDB default_collation)" if value else None

    def describe_source(self, name: str, source: Source) -> Columns | None:
        if source.path is not None:
            return self._describe_file(source)
        assert source.table is not None
        key = tuple(p.lower() for p in source.table.split("."))
        tables = self._tables()
        matches = [cols for k, cols in tables.items() if k[-len(key):] == key]
        return matches[0] if len(matches) == 1 else None

    def _describe_file(self, source: Source) -> Columns | None:
        path = self.file_path(source)
        if not path.exists():
            return None
        reader = "read_parquet" if source.file_format == "parquet" else "read_csv"
        query = exp.Describe(this=exp.select("*").from_(
            exp.Table(this=exp.func(reader, exp.Literal.string(str(path))))))
        try:
            rows = self.connection.execute(query.sql(dialect="duckdb")).fetchall()
        except duckdb.Error as error:
            raise EngineError(f"cannot read {path}: {error}") from None
        return {str(row[0]).lower(): str(row[1]) for row in rows}

    def _tables(self) -> dict[tuple[str, ...], Columns]:
        if self._table_columns is None:
            rows = self.connection.execute(
                "SELECT table_catalog, table_schema, table_name, column_name, data_type "
                "FROM information_schema.columns ORDER BY ordinal_position").fetchall()
            tables: dict[tuple[str, ...], Columns] = {}
            for catalog, schema, table, column, data_type in rows:
                key = (str(catalog).lower(), str(schema).lower(), str(table).lower())
                tables.setdefault(key, {})[str(column).lower()] = str(data_type)
            self._table_columns = tables
        return self._table_columns

    # -- execution ---------------------------------------------------------------------------
    def execute(self, statement: exp.Expr | str, params: Sequence[Any] = ()) -> None:
        self._run(statement, params)

    def fetchall(self, statement: exp.Expr, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._run(statement, params).fetchall()

    def fetch_arrow(self, statement: exp.Expr, params: Sequence[Any] = ()) -> pa.Table:
        try:
            with self.deadline():
                return self.connection.sql(self.sql(statement), params=list(params)).to_arrow_table()
        except duckdb.Error as error:
            raise self.timeout_error() or self.statement_error(error, statement) from None

    def relation(self, statement: exp.Expr) -> duckdb.DuckDBPyRelation:
        """A lazy DuckDB relation over a query (no rows fetched until asked)."""
        return self.connection.sql(self.sql(statement))

    def stream(self, statement: exp.Expr, params: Sequence[Any] = (),
               batch_size: int = 10_000) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        cursor = self.connection.cursor()
        self._running = cursor  # the deadline interrupts the cursor, not the connection it came from
        try:
            with self.deadline():
                result = cursor.execute(self.sql(statement), list(params))
            names = [column[0] for column in result.description or []]
            while rows := result.fetchmany(batch_size):
                yield names, rows
        except duckdb.Error as error:
            raise self.timeout_error() or self.statement_error(error, statement) from None
        finally:
            self._running = None
            cursor.close()

    def _run(self, statement: exp.Expr | str, params: Sequence[Any]) -> duckdb.DuckDBPyConnection:
        try:
            with self.deadline():
                return self.connection.execute(self.sql(statement), list(params))
        except duckdb.Error as error:
            raise self.timeout_error() or self.statement_error(error, statement) from None

    def compact(self) -> bool:
        """Copy the database into a new file and swap it in: DuckDB keeps deleted rows' bytes in
        free blocks and column statistics, so an erased key would stay readable in the file. Row
        counts of every table are compared before the swap; on any difference the original stays.
        Closes this connection (the swap needs the file to itself)."""
        if self.database == ":memory:" or self._borrowed:
            return False
        path = Path(self.database)
        fresh = path.with_name(f".{path.name}.compact")
        fresh.unlink(missing_ok=True)
        source = self.connection.execute(exp.select(exp.func("current_database")).sql("duckdb")).fetchall()[0][0]
        try:
            attach = exp.Attach(this=exp.alias_(exp.Literal.string(str(fresh)), COMPACTED), exists=False)
            self.connection.execute(attach.sql("duckdb"))
            # sqlglot has no node for DuckDB's COPY FROM DATABASE; both names are quoted identifiers
            self.connection.execute(f"COPY FROM DATABASE {_identifier(source)} TO {_identifier(COMPACTED)}")
            same = _row_counts(self.connection, source) == _row_counts(self.connection, COMPACTED)
            self.connection.execute(exp.Detach(this=exp.var(COMPACTED), exists=False).sql("duckdb"))
        except duckdb.Error as error:
            fresh.unlink(missing_ok=True)
            raise EngineError(f"cannot compact {path}: {self.error_text(error)}", None,
                              "the erasure itself is committed; run `segsql forget` again to retry") from None
        self.close()
        if not same:
            fresh.unlink(missing_ok=True)
            raise EngineError(f"compacting {path} gave other row counts; the database was left as it was")
        os.chmod(fresh, stat.S_IMODE(path.stat().st_mode))  # the database keeps its permissions
        os.replace(fresh, path)
        Path(f"{path}.wal").unlink(missing_ok=True)
        return True

    def interrupt(self) -> None:
        running = self._running or self._connection
        if running is not None:
            running.interrupt()

    def prepare_sources(self) -> None:
        """File sources become temporary views named after the source."""
        for name, source in sorted(self.config.sources.items()):
            if source.path is None:
                continue
            path = self.file_path(source)
            if not path.exists():
                raise EngineError(f"source `{name}`: file {path} does not exist", None,
                                  f"fix sources.{name}.path in segsql.yml")
            reader = "read_parquet" if source.file_format == "parquet" else "read_csv"
            query = exp.select("*").from_(exp.Table(this=exp.func(reader, exp.Literal.string(str(path)))))
            view = exp.Create(this=exp.to_table(name), kind="VIEW", expression=query,
                              replace=True, properties=exp.Properties(expressions=[exp.TemporaryProperty()]))
            self.execute(view)

    def begin(self) -> None:
        self.connection.execute("BEGIN TRANSACTION")

    def commit(self) -> None:
        self.connection.execute("COMMIT")

    def rollback(self) -> None:
        with contextlib.suppress(duckdb.Error):  # no transaction was open
            self.connection.execute("ROLLBACK")

    def close(self) -> None:
        if self._connection is not None and not self._borrowed:
            self._connection.close()
        self._connection = None


def connect_file(database: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB database file; a file another connection holds is an EngineError saying
    who holds it and how to let go (DuckDB's own text suggests its CLI's -readonly flag).

    >>> connect_file("/nonexistent/folder/x.duckdb")  # doctest: +SKIP
    EngineError: cannot open DuckDB database /nonexistent/folder/x.duckdb: ...
    """
    try:
        return duckdb.connect(database, read_only=read_only)
    except duckdb.IOException as error:
        holder = LOCK_HOLDER.search(str(error))
        if holder is None:
            raise EngineError(f"cannot open DuckDB database {database}: {error}", None,
                              "check `connection.path` in segsql.yml; its folder must exist") from None
        program, pid = holder.groups()
        raise EngineError(f"DuckDB database {database} is in use by another process (PID {pid}, {program})", None,
                          RELEASE_HINT) from None
    except duckdb.ConnectionException:  # this process has it open with other settings (read-only or not)
        raise EngineError(f"DuckDB database {database} is already open in this process with other settings "
                          f"({'read-write' if read_only else 'read-only'})", None,
                          "close that connection first: `%segsql close` in a notebook, or `.close()` on a "
                          "duckdb connection of your own") from None
    except duckdb.Error as error:
        raise EngineError(f"cannot open DuckDB database {database}: {error}", None,
                          "check `connection.path` in segsql.yml; its folder must exist") from None


LOCK_HOLDER = re.compile(r"Conflicting lock is held in (.+?) \(PID (\d+)\)")
RELEASE_HINT = ("if it is a notebook, run `%segsql close` there (or stop its kernel); if it is a `segsql` command, "
                "wait for it to finish; then try again")


def _identifier(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect="duckdb")


def _row_counts(connection: duckdb.DuckDBPyConnection, database: str) -> dict[str, int]:
    base_tables = exp.column("table_type").eq(exp.Literal.string("BASE TABLE"))
    listing = exp.select("table_schema", "table_name").from_("information_schema.tables").where(
        exp.and_(exp.column("table_catalog").eq(exp.Placeholder()), base_tables))
    counts = {}
    for schema, table in connection.execute(listing.sql("duckdb"), [database]).fetchall():
        location = exp.table_(table, db=schema, catalog=database, quoted=True)
        count = exp.select(exp.func("count", exp.Star())).from_(location)
        counts[f"{schema}.{table}"] = connection.execute(count.sql("duckdb")).fetchall()[0][0]
    return counts
