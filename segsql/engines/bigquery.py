"""BigQuery through google-cloud-bigquery (docs/warehouses.md).

Credentials come from the environment only (Application Default Credentials). Every statement is
one query job whose configuration carries the values as positional `ScalarQueryParameter`s, the
labels `tool=segsql`, `job_timeout_ms` from limits.query_seconds and `maximum_bytes_billed` from
the profile's budget; a segment's materialisation is dry-run first when a budget is set, so a
segment over it is refused by name before anything is billed.

BigQuery has no transactions in its plain job API and refuses DDL of permanent tables inside a
multi-statement transaction, so a run uses a *session*: the deferred transaction opens with
`BEGIN TRANSACTION` in a new session at the run's first DML statement, every later job joins the
session, `COMMIT TRANSACTION` ends it. Segment results are staged and renamed before it, as on
Snowflake (base.StagedRunStore).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import sqlglot
from google.cloud import bigquery
from sqlglot import exp

from segsql.compile.catalog import Columns
from segsql.config.models import BigQueryConnection, ProjectConfig, Source
from segsql.engines.base import Capabilities, DeferredTransaction, WarehouseEngine
from segsql.errors import EngineError

LABELS = {"tool": "segsql"}
# Python type -> BigQuery parameter type (bool before int: True is an int too)
PARAMETER_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "BOOL"), (int, "INT64"), (float, "FLOAT64"), (decimal.Decimal, "NUMERIC"), (str, "STRING"),
    (bytes, "BYTES"), (dt.datetime, "DATETIME"), (dt.date, "DATE"), (dt.time, "TIME"))
ABORT_SESSION = exp.Command(this="CALL", expression=exp.Literal.string(" BQ.ABORT_SESSION()"))  # sqlglot has no CALL


class BigQueryEngine(WarehouseEngine):
    name: ClassVar[str] = "bigquery"
    dialect: ClassVar[str] = "bigquery"
    capabilities: ClassVar[Capabilities] = Capabilities(
        transactional_ddl=False, reads_files=False, in_process=False, keeps_insertion_order=False,
        create_or_replace_table=True, approx_distinct=True, temporary_views=False, temporary_tables=False)

    def __init__(self, config: ProjectConfig, root: Path, read_only: bool = False):
        super().__init__(config, root, read_only)
        connection = config.connection
        assert isinstance(connection, BigQueryConnection)
        self.settings = connection
        self.default_schema = connection.dataset
        self._client: Any = None
        self._session: str | None = None
        self._columns: dict[str, dict[str, Columns]] = {}
        self.transaction = DeferredTransaction("BigQuery", self._send)

    def make_client(self) -> Any:
        """The client (Application Default Credentials); tests replace this method."""
        return bigquery.Client(project=self.settings.project, location=self.settings.location)

    @property
    def client(self) -> Any:
        if self._client is None:
            import google.auth.exceptions

            try:
                self._client = self.make_client()
            except google.auth.exceptions.DefaultCredentialsError:
                raise EngineError(f"no Google credentials for BigQuery project {self.settings.project}", None,
                                  "set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or run "
                                  "`gcloud auth application-default login`") from None
        return self._client

    # -- jobs --------------------------------------------------------------------------------
    def job_config(self, params: Sequence[Any] = (), dry_run: bool = False,
                   new_session: bool = False) -> bigquery.QueryJobConfig:
        """The configuration of one job: its parameters, labels, budget, timeout and session."""
        config = bigquery.QueryJobConfig(
            labels=dict(LABELS), use_legacy_sql=False, dry_run=dry_run, use_query_cache=not dry_run,
            job_timeout_ms=int(self.query_seconds * 1000),
            query_parameters=[parameter(value) for value in params])
        if self.settings.maximum_bytes_billed is not None:
            config.maximum_bytes_billed = self.settings.maximum_bytes_billed
        if new_session:
            config.create_session = True
        elif self._session is not None:
            config.connection_properties = [bigquery.ConnectionProperty("session_id", self._session)]
        return config

    def sql(self, statement: exp.Expr | str) -> str:
        """BigQuery takes key constraints only as NOT ENFORCED: the storage tables' are dropped."""
        tree = sqlglot.parse_one(statement, read="duckdb") if isinstance(statement, str) else statement
        if isinstance(tree, exp.Create) and tree.find(exp.PrimaryKeyColumnConstraint):
            tree = tree.copy()
            for constraint in list(tree.find_all(exp.PrimaryKeyColumnConstraint)):
                constraint.parent.pop() if isinstance(constraint.parent, exp.ColumnConstraint) else constraint.pop()
        return super().sql(tree)

    def _job(self, statement: exp.Expr | str, params: Sequence[Any] = (), dry_run: bool = False) -> Any:
        tree = sqlglot.parse_one(statement, read="duckdb") if isinstance(statement, str) else statement
        if not dry_run:
            self.transaction.before(tree)
            self._check_budget(tree, params)
        tree, values = _nulls_inlined(tree, params)
        text, bound = self.bound(tree, values, "?")
        opening = isinstance(tree, exp.Transaction) and self._session is None
        client = self.client
        try:
            job = client.query(text, job_config=self.job_config(bound or (), dry_run, new_session=opening))
            if dry_run:
                return job
            result = job.result(timeout=self.query_seconds + 30)
        except Exception as error:  # google.api_core's errors, and the client's timeouts
            raise self._error(error, statement) from None
        if opening:
            self._session = job.session_info.session_id
        return result

    def _check_budget(self, tree: exp.Expr, params: Sequence[Any]) -> None:
        """A materialisation (CREATE TABLE ... AS) over the budget is refused before it is billed."""
        budget = self.settings.maximum_bytes_billed
        if budget is None or not (isinstance(tree, exp.Create) and tree.expression is not None):
            return
        scanned = int(self._job(tree, params, dry_run=True).total_bytes_processed or 0)
        if scanned > budget:
            target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
            raise EngineError(f"writing {target.sql(dialect='bigquery')} would scan {scanned:,} bytes, over the "
                              f"budget of {budget:,} (connection.maximum_bytes_billed)", None,
                              "filter on the tables' partition or cluster columns, or raise the budget")

    def _error(self, error: Exception, statement: exp.Expr | str) -> EngineError:
        text = self.error_text(error, statement)
        if "bytes billed" in text.lower():
            return EngineError(f"BigQuery: {text}", None, "raise connection.maximum_bytes_billed, or scan less")
        if isinstance(error, TimeoutError) or "timeout" in type(error).__name__.lower():
            return EngineError(f"the query ran longer than {self.query_seconds:g} s and was stopped", None,
                               "make the segment cheaper, or raise limits.query_seconds in segsql.yml")
        return EngineError(f"BigQuery: {text}")

    def dry_run(self, statement: exp.Expr, params: Sequence[Any] = ()) -> int:
        """The bytes `statement` would scan (a dry run: free, nothing runs)."""
        return int(self._job(statement, params, dry_run=True).total_bytes_processed or 0)

    def _send(self, statement: exp.Expr) -> None:
        self._job(statement)

    # -- catalog -----------------------------------------------------------------------------
    def describe_source(self, name: str, source: Source) -> Columns | None:
        if source.table is None:
            return None
        parts = source.table.lower().split(".")
        dataset = parts[-2] if len(parts) > 1 else self.settings.dataset.lower()
        if dataset not in self._columns:
            query = exp.select("table_name", "column_name", "data_type").from_(_information_schema(dataset, "COLUMNS"))
            columns: dict[str, Columns] = {}
            for table, column, data_type in self.fetchall(query.order_by("table_name", "ordinal_position")):
                columns.setdefault(str(table).lower(), {})[str(column).lower()] = str(data_type)
            self._columns[dataset] = columns
        return self._columns[dataset].get(parts[-1])

    def existing_tables(self, tables: list[exp.Table]) -> set[str]:
        """The dataset's own INFORMATION_SCHEMA (BigQuery has no project-wide one per region here)."""
        if not tables:
            return set()
        dataset = (tables[0].db or self.default_schema).lower()
        query = exp.select(exp.column("table_name")).from_(_information_schema(dataset, "TABLES")).where(
            exp.func("lower", exp.column("table_name")).isin(*[exp.Placeholder() for _ in tables]))
        return {str(row[0]).lower() for row in self.fetchall(query, [t.name.lower() for t in tables])}

    # -- execution ---------------------------------------------------------------------------
    def execute(self, statement: exp.Expr | str, params: Sequence[Any] = ()) -> None:
        self._job(statement, params)

    def fetchall(self, statement: exp.Expr, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in self._job(statement, params)]

    def fetch_arrow(self, statement: exp.Expr, params: Sequence[Any] = ()) -> pa.Table:
        table: pa.Table = self._job(statement, params).to_arrow(create_bqstorage_client=False)
        return table

    def stream(self, statement: exp.Expr, params: Sequence[Any] = (),
               batch_size: int = 10_000) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        result = self._job(statement, params)
        names = [field.name for field in result.schema]
        batch: list[tuple[Any, ...]] = []
        for row in result:
            batch.append(tuple(row.values()))
            if len(batch) == batch_size:
                yield names, batch
                batch = []
        if batch:
            yield names, batch

    def connected(self) -> bool:
        return self._client is not None

    def close(self) -> None:
        self.rollback()
        if self._session is not None:
            with contextlib.suppress(EngineError):
                self._job(ABORT_SESSION)
        self._session = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._client = None


def parameter(value: Any) -> bigquery.ScalarQueryParameter:
    """A positional query parameter typed after the Python value (an aware datetime is a TIMESTAMP)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return bigquery.ScalarQueryParameter(None, "TIMESTAMP", value)
    for kind, name in PARAMETER_TYPES:
        if isinstance(value, kind):
            bound: Any = value
            return bigquery.ScalarQueryParameter(None, name, bound)
    raise EngineError(f"cannot bind a {type(value).__name__} value for BigQuery")


def _nulls_inlined(tree: exp.Expr, params: Sequence[Any]) -> tuple[exp.Expr, list[Any]]:
    """A NULL parameter has no type for BigQuery to check against its column: it is written as a
    NULL literal instead (every other value stays bound)."""
    if not any(value is None for value in params):
        return tree, list(params)
    tree = tree.copy()
    placeholders = list(tree.find_all(exp.Placeholder, bfs=False))  # in the order the SQL text has them
    if len(placeholders) != len(params):
        raise EngineError(f"{len(params)} parameter(s) for {len(placeholders)} placeholder(s)")
    for node, value in zip(placeholders, params, strict=True):
        if value is None:
            node.replace(exp.null())
    return tree, [value for value in params if value is not None]


def _information_schema(dataset: str, view: str) -> exp.Table:
    """`dataset.INFORMATION_SCHEMA.VIEW`."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", dataset):
        raise EngineError(f"`{dataset}` is not a BigQuery dataset name", None, "use letters, digits and _")
    return exp.Table(this=exp.to_identifier(view), db=exp.to_identifier("INFORMATION_SCHEMA"),
                     catalog=exp.to_identifier(dataset))
