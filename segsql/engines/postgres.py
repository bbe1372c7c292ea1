"""PostgreSQL through psycopg 3. The password comes only from the environment variable named
in segsql.yml; reads run in read-only sessions; membership is swapped in one transaction."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pyarrow as pa
import sqlglot
from sqlglot import exp

from segsql.compile.catalog import Columns
from segsql.config.models import PostgresConnection, ProjectConfig, Source
from segsql.engines.base import Capabilities, Engine
from segsql.errors import EngineError

# The database's default collation; `daticulocale` (15, 16) and `datlocale` (17+) read through
# to_jsonb so one query works on every version.
DATABASE_LOCALE = sqlglot.parse_one(
    "SELECT d.datcollate, d.datlocprovider, d.datctype, TO_JSONB(d) ->> 'daticulocale', TO_JSONB(d) ->> 'datlocale' "
    "FROM pg_database AS d WHERE d.datname = CURRENT_DATABASE()", read="postgres")
BYTE_ORDER_LOCALES = frozenset({"C", "POSIX", "C.UTF-8", "C.utf8"})
PERCENT_PLACEHOLDERS = re.compile(r"%[%s]")


def as_sent(text: str) -> str:
    """The statement as the server gets it: psycopg sends `%%` as `%` and the n-th `%s` as `$n`.

    >>> as_sent("SELECT 1 WHERE a LIKE '%%x' AND b = %s")
    "SELECT 1 WHERE a LIKE '%x' AND b = $1"
    """
    numbers = itertools.count(1)
    return PERCENT_PLACEHOLDERS.sub(lambda m: "%" if m.group(0) == "%%" else f"${next(numbers)}", text)


def pointed_at_position(sent: str, position: str | None) -> tuple[str, str] | None:
    """Postgres' error position (1-based, in characters of the statement sent) as DuckDB's carets
    read (base.pointed_at): the text before it on its line and the token there, which
    Compiler.locate maps back to the template. The position is exact where the `LINE n:` excerpt
    of the message is cut to a window around it.

    >>> pointed_at_position("SELECT a.d FROM a WHERE a.d > 5", "25")
    ('SELECT a.d FROM a WHERE ', 'a.d')
    """
    offset = int(position) - 1 if position and position.isdigit() else -1
    if not 0 <= offset < len(sent):
        return None
    before = sent[:offset].rsplit("\n", 1)[-1]
    token = re.match(r"[\w.\"]+|\S", sent[offset:])
    return (before, token.group(0)) if token else None


class PostgresEngine(Engine):
    name: ClassVar[str] = "postgres"
    dialect: ClassVar[str] = "postgres"
    capabilities: ClassVar[Capabilities] = Capabilities(
        transactional_ddl=True, reads_files=False, in_process=False, keeps_insertion_order=False,
        create_or_replace_table=False, approx_distinct=False, temporary_views=True)

    def __init__(self, config: ProjectConfig, root: Path, read_only: bool = False):
        super().__init__(config, root, read_only)
        connection = config.connection
        assert isinstance(connection, PostgresConnection)
        self.settings = connection
        self.default_schema = connection.schema_
        self._connection: psycopg.Connection[Any] | None = None
        self._columns: dict[str, Columns] | None = None
        self._locale: tuple[Any, ...] | None = None

    @property
    def where(self) -> str:
        s = self.settings
        return f"{s.user}@{s.host}:{s.port}/{s.dbname}"

    def _password(self) -> str | None:
        variable = self.settings.password_env
        if variable is None:
            return None
        if variable not in os.environ:
            raise EngineError(f"the environment variable {variable} (connection.password_env) is not set", None,
                              f"export {variable}=... before running segsql")
        return os.environ[variable]

    @property
    def connection(self) -> psycopg.Connection[Any]:
        if self._connection is None:
            s = self.settings
            try:
                self._connection = psycopg.connect(host=s.host, port=s.port, dbname=s.dbname, user=s.user,
                                                   password=self._password(), connect_timeout=10, autocommit=True,
                                                   application_name="segsql")
            except psycopg.OperationalError as error:
                raise EngineError(f"cannot connect to Postgres {self.where}: {self.error_text(error)}", None,
                                  "check the server, the connection settings and the password variable") from None
            # Server-side guards: every statement is bounded in time, and reads cannot write.
            self._connection.execute(exp.Set(expressions=[exp.EQ(
                this=exp.column("statement_timeout"),
                expression=exp.Literal.number(int(self.query_seconds * 1000)))]).sql(dialect="postgres"))
            if self.read_only:
                self._connection.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        return self._connection

    # -- catalog -----------------------------------------------------------------------------
    def text_collation(self) -> str | None:
        """The database's default collation unless it is byte order (C/POSIX, or C.UTF-8 of the
        builtin provider). Column-level COLLATE clauses are not looked at."""
        row = self._database_locale()
        if row is None:
            return None
        collate, provider, _ctype, icu, builtin = row
        locale = icu or builtin or collate
        if provider == "i":
            return f"`{locale}` (ICU) of database {self.settings.dbname}"
        if locale in BYTE_ORDER_LOCALES:
            return None
        return f"`{locale}` of database {self.settings.dbname}"

    def _database_locale(self) -> tuple[Any, ...] | None:
        """(datcollate, datlocprovider, datctype, ICU locale, builtin locale), read once."""
        if self._locale is None:
            rows = self.fetchall(DATABASE_LOCALE)
            self._locale = rows[0] if rows else ()
        return self._locale or None

    def text_case_mapping(self) -> str | None:
        """LC_CTYPE C/POSIX of the libc provider maps ASCII letters only (ICU and the builtin
        C.UTF-8 map every letter)."""
        row = self._database_locale()
        if row is None:
            return None
        _collate, provider, ctype, *_ = row
        if provider == "c" and ctype in ("C", "POSIX"):
            return f"LC_CTYPE `{ctype}` of database {self.settings.dbname}"
        return None

    def describe_source(self, name: str, source: Source) -> Columns | None:
        if source.table is None:
            return None
        parts = source.table.lower().split(".")
        schema, table = (parts[-2], parts[-1]) if len(parts) > 1 else (self.settings.schema_, parts[-1])
        return self._catalog().get(f"{schema}.{table}")

    def _catalog(self) -> dict[str, Columns]:
        if self._columns is None:
            self._columns = self.information_schema_catalog()
        return self._columns

    # -- execution ---------------------------------------------------------------------------
    def execute(self, statement: exp.Expr | str, params: Sequence[Any] = ()) -> None:
        self._run(statement, params)

    def fetchall(self, statement: exp.Expr, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._run(statement, params).fetchall())

    def fetch_arrow(self, statement: exp.Expr, params: Sequence[Any] = ()) -> pa.Table:
        cursor = self._run(statement, params)
        names = [column.name for column in cursor.description or []]
        rows = cursor.fetchall()
        return pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})

    def stream(self, statement: exp.Expr, params: Sequence[Any] = (),
               batch_size: int = 10_000) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        """A server-side cursor: rows arrive in batches, never all at once."""
        with self.connection.transaction(), self.connection.cursor(name=f"segsql_{uuid.uuid4().hex[:8]}") as cursor:
            try:
                cursor.execute(*self.bound(statement, params, "%s", escape_percent=True))
                while rows := cursor.fetchmany(batch_size):
                    yield [column.name for column in cursor.description or []], list(rows)
            except psycopg.Error as error:
                raise EngineError(f"Postgres: {self.error_text(error, statement)}") from None

    def _run(self, statement: exp.Expr | str, params: Sequence[Any]) -> psycopg.Cursor[Any]:
        text, bound = self.bound(statement, params, "%s", escape_percent=True)
        try:
            return self.connection.execute(text, bound)  # type: ignore[arg-type]
        except psycopg.errors.QueryCanceled:
            raise EngineError(f"the query ran longer than {self.query_seconds:g} s and was stopped", None,
                              "make the segment cheaper, or raise limits.query_seconds in segsql.yml") from None
        except psycopg.errors.ReadOnlySqlTransaction as error:
            raise EngineError(f"Postgres refused to write in a read-only session: {self.error_text(error)}") from None
        except psycopg.OperationalError as error:
            raise EngineError(f"lost the Postgres connection {self.where}: {self.error_text(error)}") from None
        except psycopg.Error as error:
            engine_error = EngineError(f"Postgres: {self.error_text(error, statement)}")
            engine_error.pointed_at = pointed_at_position(text if bound is None else as_sent(text),
                                                          error.diag.statement_position)
            raise engine_error from None

    def prepare_sources(self) -> None:
        self.refuse_file_sources()

    def begin(self) -> None:
        self.execute("BEGIN")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        if self._connection is None or self._connection.closed:
            return
        with contextlib.suppress(psycopg.Error, EngineError):
            self._connection.execute("ROLLBACK")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None
