"""Apache Spark (pyspark; `local[*]` or a cluster master from segsql.yml).

Spark on Parquet has no transactions and no UPDATE/DELETE, so runs use a file store: each
segment's result is written to a new location per run, and the run commits by atomically
replacing one pointer file (`<warehouse>/segsql/current.json`). A failed or killed run leaves
the pointer, and so every reader, on the previous results. Runs are JSON files exposed to Spark
SQL as the `segsql.runs` and `segsql.run_segments` tables of the storage contract.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import uuid
import warnings
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import sqlglot
from pyspark.sql import SparkSession
from sqlglot import exp

from segsql.compile.catalog import Columns
from segsql.compile.keys import EntityKey, entity_key
from segsql.compile.target import atomic_write
from segsql.config.models import ProjectConfig, Source, SparkConnection
from segsql.engines import storage, timeline
from segsql.engines.base import Capabilities, Engine, backfill_record, backfill_segment_rows
from segsql.engines.records import Replaced
from segsql.engines.storage import months_before
from segsql.errors import EngineError
from segsql.version import __version__

HISTORY_KEY = "__history__"  # the pointer entry of the history table (never a segment name: not an identifier start)
RUNS_SCHEMA = ("run_id STRING, started_at TIMESTAMP, finished_at TIMESTAMP, status STRING, as_of DATE, "
               "selected STRING, error STRING, segsql_version STRING")
RUN_SEGMENTS_SCHEMA = ("run_id STRING, segment STRING, entity STRING, row_count BIGINT, population BIGINT, "
                       "definition_hash STRING, status STRING, duration_ms BIGINT, error STRING")


class SparkEngine(Engine):
    name: ClassVar[str] = "spark"
    dialect: ClassVar[str] = "spark"
    capabilities: ClassVar[Capabilities] = Capabilities(
        transactional_ddl=False, reads_files=True, in_process=False, keeps_insertion_order=False,
        create_or_replace_table=False, approx_distinct=True, temporary_views=True,
        transactions=False)

    def __init__(self, config: ProjectConfig, root: Path, read_only: bool = False):
        super().__init__(config, root, read_only)
        connection = config.connection
        assert isinstance(connection, SparkConnection)
        self.settings = connection
        warehouse = Path(connection.warehouse) if connection.warehouse else Path("spark-warehouse")
        self.warehouse = (warehouse if warehouse.is_absolute() else root / warehouse).resolve()
        self.state = self.warehouse / "segsql"
        self._spark: SparkSession | None = None
        self._job_group = f"segsql-{uuid.uuid4().hex[:12]}"

    @property
    def remote(self) -> str | None:
        """The Spark Connect URL when segsql talks to a Connect server (`remote:`, or an sc://
        master / spark.remote given the classic way)."""
        given = self.settings.remote or self.settings.conf.get("spark.remote")
        return given or (self.settings.master if self.settings.master.startswith("sc://") else None)

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = self._connect() if self.remote else self._start()
            self._register_storage()
        return self._spark

    def _start(self) -> SparkSession:
        if os.environ.get("SPARK_CONNECT_MODE_ENABLED"):
            raise EngineError(f"cannot start a Spark driver ({self.settings.master}) in a process that has used "
                              "Spark Connect", None, _ONE_KIND_PER_PROCESS)
        builder = (SparkSession.builder.master(self.settings.master).appName("segsql")
                   .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
                   .config("spark.sql.warehouse.dir", str(self.warehouse))
                   .config("spark.sql.shuffle.partitions", "4"))
        for key, value in self.settings.conf.items():
            builder = builder.config(key, value)
        try:
            spark = builder.getOrCreate()
        except Exception as error:  # JVM start-up failures surface as various py4j errors
            raise EngineError(f"cannot start Spark ({self.settings.master}): {self.error_text(error)}", None,
                              "check that Java 17 is installed and spark.master is right") from None
        spark.sparkContext.setLogLevel("ERROR")
        return spark

    def _connect(self) -> SparkSession:
        """A Spark Connect session: only session settings are ours to set (the server owns the
        warehouse, UI and master); statements are cancelled by tag, not job group."""
        url = str(self.remote)
        _probe(url)  # first: a server that is not there is the problem to name, whatever else runs here
        _refuse_a_local_driver(url)
        builder = SparkSession.builder.remote(url).config("spark.sql.session.timeZone", "UTC")
        for key, value in self.settings.conf.items():
            if key != "spark.remote":
                builder = builder.config(key, value)
        try:
            with warnings.catch_warnings():  # pyspark's notice about pandas 3, on every connect
                warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
                spark = builder.getOrCreate()
                _bound_retries(spark)
                spark.sql("SELECT 1").collect()  # the session is lazy: reach the server now
        except ImportError as error:
            raise EngineError(f"Spark Connect needs its client libraries ({error.name or error})", None,
                              "pip install 'segsql[spark-connect]'") from None
        except Exception as error:  # grpc errors when the server is not there
            raise EngineError(f"cannot reach the Spark Connect server {url}: {self.error_text(error)}".split("\n")[0],
                              None, "start it (start-connect-server.sh) or fix `remote:` in segsql.yml") from None
        spark.addTag(self._job_group)
        return spark

    # -- catalog and sources --------------------------------------------------------------------
    def text_collation(self) -> str | None:
        """Spark compares text by bytes (UTF8_BINARY) unless the session default says otherwise."""
        value = self.spark.conf.get("spark.sql.session.collation.default", "UTF8_BINARY") or "UTF8_BINARY"
        return None if value.upper() == "UTF8_BINARY" else f"`{value}` (spark.sql.session.collation.default)"

    def describe_source(self, name: str, source: Source) -> Columns | None:
        try:
            if source.path is not None:
                path = self._file(source)
                if not path.exists():
                    return None
                frame = self._reader(source, path)
            else:
                assert source.table is not None
                if not self.spark.catalog.tableExists(source.table):
                    return None
                frame = self.spark.table(source.table)
        except Exception as error:
            raise EngineError(f"Spark cannot read source `{name}`: {self.error_text(error)}") from None
        return {field.name.lower(): field.dataType.simpleString() for field in frame.schema.fields}

    def _file(self, source: Source) -> Path:
        assert source.path is not None
        path = Path(source.path)
        return path if path.is_absolute() else self.root / path

    def _reader(self, source: Source, path: Path) -> Any:
        if source.file_format == "parquet":
            return self.spark.read.parquet(str(path))
        return self.spark.read.option("header", True).option("inferSchema", True).csv(str(path))

    def prepare_sources(self) -> None:
        """File sources become temporary views named after the source; a view this session
        already holds for the same unchanged file is kept (reading a file's schema is a Spark job)."""
        registered = _registered(self.spark)
        for name, source in sorted(self.config.sources.items()):
            if source.path is not None:
                path = self._file(source)
                if not path.exists():
                    raise EngineError(f"source `{name}`: file {path} does not exist", None,
                                      f"fix sources.{name}.path in segsql.yml")
                state = f"{path}|{source.file_format}|{_file_state(path)}"
                if not self.remote and registered.get(f"view:{name}") == state and self._reads(name, path):
                    continue  # (with Connect the server reads its own copy: this process cannot stat it)
                self._reader(source, path).createOrReplaceTempView(name)
                registered[f"view:{name}"] = state

    def _reads(self, name: str, path: Path) -> bool:
        """Whether `name` is still a temporary view over exactly the files of `path` (a notebook may
        have replaced or dropped it, and a table of that name would otherwise be read instead)."""
        temporary = self.spark.sql(f"SHOW TABLES LIKE '{name}'").collect()  # names are [a-z0-9_] (config)
        if not any(row["isTemporary"] and row["tableName"] == name for row in temporary):
            return False
        read = {unquote(urlsplit(f).path) for f in self.spark.table(name).inputFiles()}
        return read == {str(f.resolve()) for f in _data_files(path)}

    # -- execution ------------------------------------------------------------------------------
    def _frame(self, statement: exp.Expr | str, params: Sequence[Any]) -> Any:
        try:
            with self.deadline():
                self._own_jobs()
                return self.spark.sql(self.sql(statement), args=list(params) or None)
        except EngineError:
            raise
        except Exception as error:  # AnalysisException, ParseException, Py4JJavaError...
            raise self.timeout_error() or EngineError(f"Spark: {self.error_text(error, statement)}") from None

    def _collect(self, frame: Any, how: str = "collect") -> Any:
        try:
            with self.deadline():
                self._own_jobs()
                return getattr(frame, how)()
        except Exception as error:
            raise self.timeout_error() or EngineError(f"Spark: {self.error_text(error)}") from None

    def record_unmask(self, who: str, segment: str, columns: list[str], via: str) -> None:
        """Spark has no transactional table for it: one JSON line per audit row, appended."""
        self.state.mkdir(parents=True, exist_ok=True)
        row = {"unmasked_at": storage.now().isoformat(), "who": who, "segment": segment,
               "columns": ",".join(columns), "via": via}
        with (self.state / "unmask_audit.jsonl").open("a", encoding="utf-8") as audit:
            audit.write(json.dumps(row) + "\n")

    def _own_jobs(self) -> None:
        """This engine's jobs form one group (a tag on Spark Connect), so a deadline cancels them
        and nothing else."""
        if not self.remote:
            self.spark.sparkContext.setJobGroup(self._job_group, "segsql", interruptOnCancel=True)

    def interrupt(self) -> None:
        if self._spark is None:
            return
        if self.remote:
            self._spark.interruptTag(self._job_group)
        else:
            self._spark.sparkContext.cancelJobGroup(self._job_group)

    def execute(self, statement: exp.Expr | str, params: Sequence[Any] = ()) -> None:
        self._collect(self._frame(statement, params))

    def fetchall(self, statement: exp.Expr, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._collect(self._frame(statement, params))]

    def fetch_arrow(self, statement: exp.Expr, params: Sequence[Any] = ()) -> pa.Table:
        table: pa.Table = self._collect(self._frame(statement, params), "toArrow")
        return table

    def stream(self, statement: exp.Expr, params: Sequence[Any] = (),
               batch_size: int = 10_000) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        frame = self._frame(statement, params)
        names, batch = list(frame.columns), []
        for row in frame.toLocalIterator():
            batch.append(tuple(row))
            if len(batch) >= batch_size:
                yield names, batch
                batch = []
        if batch:
            yield names, batch

    def table_exists(self, table: exp.Table) -> bool:
        name = ".".join(p for p in (table.db, table.name) if p)
        return bool(self.spark.catalog.tableExists(name))

    def existing_tables(self, tables: list[exp.Table]) -> set[str]:
        return {t.name.lower() for t in tables if self.table_exists(t)}

    def begin(self) -> None:
        """Spark has no transactions: the run store switches a pointer at commit instead."""
    def commit(self) -> None:
        """See begin()."""
    def rollback(self) -> None:
        """See begin()."""
    def close(self) -> None:
        """The SparkSession is shared by the process (getOrCreate), so it stays up."""
        self._spark = None

    def run_store(self) -> SparkRunStore:
        return SparkRunStore(self)

    def erase(self, entity: str, key: EntityKey, parts: tuple[str, ...], segments: list[str],
              record: dict[str, Any]) -> int:
        """Right to erasure on files: every result of `entity` and the history are rewritten without
        the key to new locations, switched with one pointer rename (like a run); the erasure record
        (no key in clear) is written after. Returns the rows removed."""
        stamp = f"erase-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
        pointer = self.pointer()
        removed, replaced = 0, dict[str, str]()
        key_literal = exp.Literal.string(key.encode(parts) if key.composite else parts[0])
        matches = exp.and_(*[exp.cast(column, exp.DataType.Type.VARCHAR).eq(exp.Literal.string(part))
                             for column, part in zip(key.parts(), parts, strict=True)])
        targets: list[tuple[str, exp.Table, exp.Expr]] = [
            (name, storage.segment_table(name), matches.copy()) for name in segments if name in pointer]
        if HISTORY_KEY in pointer:
            targets.append((HISTORY_KEY, storage.table("history"), exp.and_(
                exp.column("entity").eq(exp.Literal.string(entity)), exp.column("entity_key").eq(key_literal.copy()))))
        for name, table, hit in targets:
            count = int(self.fetchall(exp.select(exp.func("count", exp.Star())).from_(table.copy()).where(hit))[0][0])
            if not count:
                continue
            removed += count
            folder = "history" if name == HISTORY_KEY else f"data/{name}"
            location = str(self.state / folder / stamp)
            staged = exp.Table(this=exp.to_identifier(f"staged__{stamp.replace('-', '_')}__{len(replaced)}"),
                               db=exp.to_identifier(storage.SCHEMA))
            keep = exp.select("*").from_(table.copy()).where(exp.Not(this=exp.Paren(this=hit.copy())))
            self.execute(_external_table(staged, location, keep))
            self.execute(exp.Drop(tables=[staged], kind="TABLE", exists=True))
            replaced[name] = location
        if replaced:
            previous = {name: pointer[name]["location"] for name in replaced}
            for name, location in replaced.items():
                pointer[name] = {**pointer[name], "location": location}
            atomic_write(self.state / "current.json", json.dumps(pointer, indent=1, sort_keys=True) + "\n")
            for name, location in replaced.items():
                if name == HISTORY_KEY:
                    self._point_history(location)
                else:
                    self._point(name, location)
                shutil.rmtree(previous[name], ignore_errors=True)
            self._membership_view()
        (self.state / "erasures").mkdir(exist_ok=True)
        atomic_write(self.state / "erasures" / f"{stamp}.json", json.dumps({**record, "rows_removed": removed}) + "\n")
        return removed

    # -- storage contract on files ---------------------------------------------------------------
    def _register_storage(self) -> None:
        """Expose the current results (from the pointer) and the run records as tables."""
        spark = self._spark
        assert spark is not None
        for folder in ("runs", "run_segments", "data"):
            (self.state / folder).mkdir(parents=True, exist_ok=True)
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {storage.SCHEMA}")
        for name, schema in (("runs", RUNS_SCHEMA), ("run_segments", RUN_SEGMENTS_SCHEMA)):
            table = storage.table(name)
            columns = sqlglot.parse_one(f"CREATE TABLE t ({schema})", read="spark").this.expressions
            location = exp.LocationProperty(this=exp.Literal.string(str(self.state / name)))
            properties = exp.Properties(expressions=[exp.FileFormatProperty(this=exp.var("JSON")), location])
            spark.sql(exp.Drop(tables=[table.copy()], kind="TABLE", exists=True).sql(dialect="spark"))
            spark.sql(exp.Create(this=exp.Schema(this=table, expressions=columns), kind="TABLE",
                                 properties=properties).sql(dialect="spark"))
        for name, entry in self.segment_pointers().items():
            self._point(name, entry["location"])
        history = self.pointer().get(HISTORY_KEY)
        if history:
            self._point_history(history["location"])
        else:  # the session may be shared with another project's engine: not its history
            spark.sql(exp.Drop(tables=[storage.table("history")], kind="TABLE", exists=True).sql(dialect="spark"))
        self._membership_view()

    def pointer(self) -> dict[str, dict[str, Any]]:
        """Segment name -> its current result location (and the history under HISTORY_KEY)."""
        try:
            loaded: dict[str, dict[str, Any]] = json.loads((self.state / "current.json").read_text(encoding="utf-8"))
            return loaded
        except (OSError, ValueError):
            return {}

    def segment_pointers(self) -> dict[str, dict[str, Any]]:
        return {name: entry for name, entry in self.pointer().items() if name != HISTORY_KEY}

    def _point_history(self, location: str) -> None:
        self._point_table(storage.table("history"), location)

    def _point(self, name: str, location: str) -> None:
        self._point_table(storage.segment_table(name), location)

    def _point_table(self, table: exp.Table, location: str) -> None:
        """Make `table` read the Parquet files at `location`. A location is written once (each
        run, erasure and backfill writes a new one), so a table the catalog already points there
        is kept: re-creating it reads its schema, one Spark job per stored segment on every new
        engine (24 of the 50 jobs a one-segment run of the starter library took)."""
        name = table.sql(dialect="spark")
        if self._location(name) == str(Path(location).resolve()):
            return
        self.spark.sql(exp.Drop(tables=[table.copy()], kind="TABLE", exists=True).sql(dialect="spark"))
        self.spark.sql(_external_table(table, location).sql(dialect="spark"))

    def _location(self, name: str) -> str | None:
        """Where the catalog's table `name` reads from (metadata only, no job), None if absent. The
        catalog, not this process, is asked: sessions can share it (newSession, a Hive metastore)."""
        if not self.spark.catalog.tableExists(name):
            return None
        rows = self.spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
        found = next((str(row[1]) for row in rows if str(row[0]) == "Location"), None)
        return unquote(urlsplit(found).path) if found else None

    def _membership_view(self) -> None:
        pointer = self.segment_pointers()
        if not pointer:
            return
        parts = [exp.select(exp.Literal.string(name).as_("segment"), exp.Literal.string(e["entity"]).as_("entity"),
                            entity_key(e["key"]).text().as_("entity_key"),
                            exp.Literal.string(e["run_id"]).as_("run_id"),
                            exp.cast(exp.Literal.string(e["as_of"]), exp.DataType.Type.DATE).as_("as_of"))
                 .from_(storage.segment_table(name)) for name, e in sorted(pointer.items())]
        union: exp.Query = parts[0]
        for part in parts[1:]:
            union = exp.union(union, part, distinct=False)
        view = exp.Create(this=storage.table("membership"), kind="VIEW", expression=union, replace=True)
        self.spark.sql(view.sql(dialect="spark"))


_REGISTERED: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()


def _registered(spark: Any) -> dict[str, str]:
    """The source views segsql made in this Spark session (view:SOURCE -> file state); temporary
    views belong to one session object, so this is kept per session object."""
    return _REGISTERED.setdefault(spark, {})


def _data_files(path: Path) -> list[Path]:
    """A source file, or the data files of a folder (a Parquet dataset: not _SUCCESS, not .crc)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))


def _file_state(path: Path) -> str:
    """Inode, size, modification and change times of a source's data files: a rewrite changes the
    change time even when it keeps the size and mtime."""
    return ";".join(f"{s.st_ino}:{s.st_size}:{s.st_mtime_ns}:{s.st_ctime_ns}"
                    for s in (p.stat() for p in _data_files(path)))


def _external_table(table: exp.Table, location: str, query: exp.Query | None = None) -> exp.Create:
    properties = exp.Properties(expressions=[exp.FileFormatProperty(this=exp.var("PARQUET")),
                                             exp.LocationProperty(this=exp.Literal.string(location))])
    return exp.Create(this=table, kind="TABLE", expression=query, properties=properties)


class SparkRunStore:
    """A run's results go to new locations; commit replaces the pointer file atomically."""
    def __init__(self, engine: SparkEngine):
        self.engine = engine
        self.staged: dict[str, dict[str, Any]] = {}
        self.pending: list[tuple[Path, str]] = []
        self.result: Any = None
        self.history: dict[str, Any] | None = None
        self.batch = ""
        self.members: list[tuple[str, int, exp.Table, str]] = []  # a backfill's staged keys
        self.backfilled: tuple[list[Any], Replaced] | None = None

    def ensure_tables(self) -> None:
        self.engine.spark  # noqa: B018 (starts the session and registers the storage tables)

    def prepare(self) -> None:
        self.ensure_tables()
        for path in sorted((self.engine.state / "runs").glob("*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("status") == storage.RUNNING:
                record.update(status=storage.FAILED, error=storage.INTERRUPTED)
                atomic_write(path, json.dumps(record) + "\n")

    def start(self, result: Any, names: list[str], version: str) -> None:
        self.result = result
        self._write_run(result, {"started_at": _stamp(), "status": storage.RUNNING, "selected": json.dumps(names),
                                 "segsql_version": version})

    def _write_run(self, result: Any, fields: dict[str, Any]) -> None:
        path = self.engine.state / "runs" / f"{result.run_id}.json"
        record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        record.update({"run_id": result.run_id, "as_of": result.as_of.isoformat(), **fields})
        atomic_write(path, json.dumps(record) + "\n")

    def begin(self) -> None:
        self.staged, self.history = {}, None

    def write_segment(self, name: str, query: exp.Query) -> exp.Table:
        location = self.engine.state / "data" / name / self.result.run_id
        staged = exp.Table(this=exp.to_identifier(f"staged__{name}__{self.result.run_id.replace('-', '_')}"),
                           db=exp.to_identifier(storage.SCHEMA))
        self.engine.execute(exp.Drop(tables=[staged.copy()], kind="TABLE", exists=True))
        self.engine.execute(_external_table(staged, str(location), query))
        self.staged[name] = {"location": str(location), "table": staged}
        return staged

    def replace_membership(self, plans: list[Any], result: Any, keys: dict[str, EntityKey]) -> None:
        for plan in plans:
            key = keys[plan.entity]  # the pointer keeps a one-column key as its name, as always
            named = list(key.columns) if key.composite else key.columns[0]
            self.staged[plan.name].update(entity=plan.entity, key=named, run_id=result.run_id,
                                          as_of=result.as_of.isoformat())
        self._stage_history(plans, result, keys)

    def _stage_history(self, plans: list[Any], result: Any, keys: dict[str, EntityKey]) -> None:
        """Parquet has no UPDATE: the whole SCD-2 history is rewritten to a new location (closed
        stays, new stays, retention applied) and switched with the results at commit."""

        now = storage.now()
        old = self.engine.pointer().get(HISTORY_KEY)
        latest = {}
        if old:
            rows = self.engine.fetchall(exp.select("segment", exp.func("max", exp.column("as_of")))
                                        .from_(storage.table("history")).group_by("segment"))
            latest = {str(r[0]): r[1] for r in rows}
        moving = []
        for plan in plans:
            if plan.name in latest and latest[plan.name] is not None and latest[plan.name] > result.as_of:
                plan.point_in_time = True
            else:
                moving.append(plan)
        query = _history_query(moving, self.staged, keys, result, now, old is not None,
                               self.engine.config.privacy.history_retention_months)
        location = self.engine.state / "history" / result.run_id
        staged = exp.Table(this=exp.to_identifier(f"staged__history__{result.run_id.replace('-', '_')}"),
                           db=exp.to_identifier(storage.SCHEMA))
        self.engine.execute(exp.Drop(tables=[staged.copy()], kind="TABLE", exists=True))
        self.engine.execute(_external_table(staged, str(location), query))
        self.history = {"location": str(location), "table": staged}

    def finish(self, result: Any, plans: list[Any]) -> None:
        rows = [{"run_id": result.run_id, "segment": p.name, "entity": p.entity, "row_count": p.rows,
                 "population": p.population, "definition_hash": p.definition_hash, "status": p.status,
                 "duration_ms": p.duration_ms, "error": p.error} for p in plans]
        segments = (self.engine.state / "run_segments" / f"{result.run_id}.json",
                    "".join(json.dumps(row) + "\n" for row in rows))
        if result.status == storage.SUCCESS:
            self.pending = [segments]  # recorded once the pointer has switched
            return
        atomic_write(*segments)
        self._write_run(result, {"finished_at": _stamp(), "status": result.status, "error": result.error})

    # -- backfill: staged keys per segment and date, then one new history switched at commit ---
    def begin_backfill(self, batch: str) -> None:
        self.ensure_tables()
        self.batch, self.staged, self.history, self.members, self.backfilled = batch, {}, None, [], None

    def stage_members(self, name: str, index: int, members: exp.Query) -> None:
        location = str(self.engine.state / "backfill" / self.batch / name / str(index))
        table = exp.Table(this=exp.to_identifier(f"staged__bf_{self.batch}__{name}__{index}"),
                          db=exp.to_identifier(storage.SCHEMA))
        self.engine.execute(exp.Drop(tables=[table.copy()], kind="TABLE", exists=True))
        self.engine.execute(_external_table(table, location, members))
        self.members.append((name, index, table, location))

    def _staged(self, name: str | None = None) -> exp.Query:
        return timeline.union_all([
            exp.select(*([exp.Literal.string(segment).as_("segment")] if name is None else []),
                       "snapshot_index", "entity_key").from_(table.copy())
            for segment, _, table, _ in self.members if name in (None, segment)])

    def staged_counts(self) -> dict[tuple[str, int], tuple[int, int, int]]:
        rows = self.engine.fetchall(storage.staged_counts(self._staged()))
        return {(str(r[0]), int(r[1])): (int(r[2]), int(r[3]), int(r[4])) for r in rows}

    def write_backfill(self, splices: list[timeline.Splice], runs: list[Any], replaced: Replaced) -> None:
        """The next history: every stay the splices leave alone, plus the rebuilt ones."""
        has_old = HISTORY_KEY in self.engine.pointer()
        parts: list[exp.Query] = []
        if has_old:
            kept = exp.Not(this=exp.Paren(this=exp.or_(*[timeline.affected(splice) for splice in splices])))
            parts.append(exp.select(*_HISTORY_COLUMNS).from_(storage.table("history")).where(kept))
        for number, splice in enumerate(splices):
            rebuilt = timeline.rebuilt(splice, self._staged(splice.segment), has_old)
            parts.append(exp.select(*_HISTORY_COLUMNS).from_(rebuilt.subquery(f"rebuilt_{number}")))
        location = self.engine.state / "history" / f"backfill-{self.batch}"
        staged = exp.Table(this=exp.to_identifier(f"staged__history__bf_{self.batch}"),
                           db=exp.to_identifier(storage.SCHEMA))
        self.engine.execute(exp.Drop(tables=[staged.copy()], kind="TABLE", exists=True))
        self.engine.execute(_external_table(staged, str(location), timeline.union_all(parts)))
        self.history = {"location": str(location), "table": staged}
        self.backfilled = (runs, replaced)

    def _commit_backfill(self, runs: list[Any], replaced: Replaced) -> None:
        """Switch the history, then write the run records (like a run's, after the pointer)."""
        self.commit_history()
        self._drop_members()
        state = self.engine.state
        for run_id, segment in [*replaced.dropped, *replaced.superseded]:
            path = state / "run_segments" / f"{run_id}.json"
            if not path.exists():
                continue
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            if (run_id, segment) in replaced.dropped:
                rows = [row for row in rows if row["segment"] != segment]
            else:
                rows = [{**row, "status": storage.SUPERSEDED} if row["segment"] == segment else row for row in rows]
            if rows:
                atomic_write(path, "".join(json.dumps(row) + "\n" for row in rows))
            else:  # every segment of that backfilled run was replaced: the run goes
                path.unlink()
                (state / "runs" / f"{run_id}.json").unlink(missing_ok=True)
        names = ["run_id", "segment", "entity", "row_count", "population", "definition_hash", "status",
                 "duration_ms", "error"]
        for run in runs:
            rows = [dict(zip(names, row, strict=True)) for row in backfill_segment_rows(run)]
            atomic_write(state / "run_segments" / f"{run.run_id}.json", "".join(json.dumps(r) + "\n" for r in rows))
            record = {k: v.isoformat() if isinstance(v, dt.date) else v
                      for k, v in backfill_record(run, __version__).items()}
            atomic_write(state / "runs" / f"{run.run_id}.json", json.dumps(record) + "\n")

    def _drop_members(self) -> None:
        for _, _, table, _ in self.members:
            with contextlib.suppress(EngineError):
                self.engine.execute(exp.Drop(tables=[table.copy()], kind="TABLE", exists=True))
        shutil.rmtree(self.engine.state / "backfill" / self.batch, ignore_errors=True)
        self.members = []

    def commit_history(self) -> None:
        """Point the history table at the staged history (after the pointer file says so)."""
        pointer = self.engine.pointer()
        previous = pointer.get(HISTORY_KEY, {}).get("location")
        assert self.history is not None
        pointer[HISTORY_KEY] = {"location": self.history["location"]}
        atomic_write(self.engine.state / "current.json", json.dumps(pointer, indent=1, sort_keys=True) + "\n")
        self.engine.execute(exp.Drop(tables=[self.history["table"].copy()], kind="TABLE", exists=True))
        self.engine._point_history(self.history["location"])
        if previous:
            shutil.rmtree(previous, ignore_errors=True)

    def commit(self) -> None:
        """The commit point: one atomic rename of the pointer file."""
        if self.backfilled is not None:
            self._commit_backfill(*self.backfilled)
            self.backfilled = None
            return
        pointer = self.engine.pointer()
        previous = {name: pointer.get(name, {}).get("location") for name in [*self.staged, HISTORY_KEY]}
        for name, entry in self.staged.items():
            pointer[name] = {k: v for k, v in entry.items() if k != "table"}
        if self.history:
            pointer[HISTORY_KEY] = {"location": self.history["location"]}
        atomic_write(self.engine.state / "current.json", json.dumps(pointer, indent=1, sort_keys=True) + "\n")
        for name, entry in self.staged.items():
            self.engine.execute(exp.Drop(tables=[entry["table"].copy()], kind="TABLE", exists=True))
            self.engine._point(name, entry["location"])
            old = previous[name]
            if old and old != entry["location"]:
                shutil.rmtree(old, ignore_errors=True)
        if self.history:
            self.engine.execute(exp.Drop(tables=[self.history["table"].copy()], kind="TABLE", exists=True))
            self.engine._point_history(self.history["location"])
            old_history = previous[HISTORY_KEY]
            if old_history:
                shutil.rmtree(old_history, ignore_errors=True)
        self.engine._membership_view()
        for path, text in self.pending:
            atomic_write(path, text)
        self._write_run(self.result, {"finished_at": _stamp(), "status": storage.SUCCESS, "error": None})

    def rollback(self) -> None:
        if self.members:
            self._drop_members()
        self.backfilled = None
        for entry in [*self.staged.values(), *([self.history] if self.history else [])]:
            with contextlib.suppress(EngineError):
                self.engine.execute(exp.Drop(tables=[entry["table"].copy()], kind="TABLE", exists=True))
            shutil.rmtree(entry["location"], ignore_errors=True)
        self.staged, self.history = {}, None


def _history_query(plans: list[Any], staged: dict[str, dict[str, Any]], keys: dict[str, EntityKey], result: Any,
                   now: dt.datetime, has_old: bool, retention_months: int | None) -> exp.Query:
    """The next history: old rows (stays of members who left closed, expired stays dropped) plus
    a new open stay for every member without one. Only equi-joins on (segment, entity_key), so
    Spark plans hash or sort-merge joins: no `NOT IN` subquery, which under an OR across segments
    became a BroadcastNestedLoopJoin costing history size x members on every run."""
    history = storage.table("history")
    stamp = exp.cast(exp.Literal.string(now.isoformat(sep=" ")), exp.DataType.Type.TIMESTAMP)
    run_id = exp.Literal.string(result.run_id)

    def key_text(plan: Any) -> exp.Expr:
        return keys[plan.entity].text("s")

    parts: list[exp.Query] = []
    if has_old:
        old = exp.select(*[exp.column(c, "h") for c in _HISTORY_COLUMNS[:4]]).from_(history.as_("h"))
        if plans:  # members now, per moving segment: an open stay without one is closed
            now_members = _union_all([exp.select(exp.Literal.string(p.name).as_("segment"),
                                                 key_text(p).as_("entity_key"))
                                      .from_(staged[p.name]["table"].copy().as_("s")) for p in plans])
            old = old.join(now_members.subquery("k"), join_type="left", on=exp.and_(
                exp.column("segment", "k").eq(exp.column("segment", "h")),
                exp.column("entity_key", "k").eq(exp.column("entity_key", "h"))))
            leaving: exp.Expr = exp.and_(
                exp.column("valid_to", "h").is_(exp.null()),
                exp.column("segment", "h").isin(*[exp.Literal.string(p.name) for p in plans]),
                exp.column("entity_key", "k").is_(exp.null()))
        else:
            leaving = exp.false()
        old = old.select(
            exp.If(this=leaving.copy(), true=stamp.copy(), false=exp.column("valid_to", "h")).as_("valid_to"),
            exp.column("run_id", "h"),
            exp.If(this=leaving.copy(), true=run_id.copy(), false=exp.column("closed_by_run", "h"))
            .as_("closed_by_run"), exp.column("definition_hash", "h"), exp.column("as_of", "h"))
        if retention_months is not None:
            cutoff = exp.cast(exp.Literal.string(months_before(now, retention_months).isoformat(sep=" ")),
                              exp.DataType.Type.TIMESTAMP)
            old = old.where(exp.or_(exp.column("valid_to", "h").is_(exp.null()),
                                    exp.GTE(this=exp.column("valid_to", "h"), expression=cutoff)))
        parts.append(old)
    for plan in plans:
        opened = exp.select(exp.Literal.string(plan.name).as_("segment"),
                            exp.Literal.string(plan.entity).as_("entity"), key_text(plan).as_("entity_key"),
                            stamp.copy().as_("valid_from"),
                            exp.cast(exp.null(), exp.DataType.Type.TIMESTAMP).as_("valid_to"),
                            run_id.copy().as_("run_id"),
                            exp.cast(exp.null(), exp.DataType.Type.VARCHAR).as_("closed_by_run"),
                            exp.Literal.string(plan.definition_hash).as_("definition_hash"),
                            exp.cast(exp.Literal.string(result.as_of.isoformat()), exp.DataType.Type.DATE).as_("as_of")
                            ).from_(staged[plan.name]["table"].copy().as_("s"))
        if has_old:  # members without an open stay: an anti-join on the key
            open_keys = exp.select("entity_key").from_(history.copy()).where(exp.and_(
                exp.column("segment").eq(exp.Literal.string(plan.name)), exp.column("valid_to").is_(exp.null())))
            opened = opened.join(open_keys.subquery("o"), join_type="left anti",
                                 on=exp.column("entity_key", "o").eq(key_text(plan)))
        parts.append(opened)
    if not parts:  # nothing to write yet: an empty, typed history
        return exp.select(*[exp.cast(exp.null(), _HISTORY_TYPES[c]).as_(c) for c in _HISTORY_COLUMNS]).where(
            exp.false())
    return _union_all(parts)


_union_all, _HISTORY_COLUMNS = timeline.union_all, timeline.COLUMNS
_HISTORY_TYPES = {"segment": exp.DataType.Type.VARCHAR, "entity": exp.DataType.Type.VARCHAR,
                  "entity_key": exp.DataType.Type.VARCHAR, "valid_from": exp.DataType.Type.TIMESTAMP,
                  "valid_to": exp.DataType.Type.TIMESTAMP, "run_id": exp.DataType.Type.VARCHAR,
                  "closed_by_run": exp.DataType.Type.VARCHAR, "definition_hash": exp.DataType.Type.VARCHAR,
                  "as_of": exp.DataType.Type.DATE}


def _stamp() -> str:
    return storage.now().isoformat()  # the clock of every store's records


# -- Spark Connect -------------------------------------------------------------------------------
CONNECT_PROBE_SECONDS = 10.0  # how long the server's port may take to accept a connection
_ONE_KIND_PER_PROCESS = ("PySpark cannot mix a local driver and Spark Connect in one Python process: run "
                         "the other target in another process (a separate `segsql` command or kernel)")


def _probe(url: str) -> None:
    """Fail within seconds, naming the server, when nothing listens at the Connect URL (the
    client itself would retry for minutes)."""
    parts = urlsplit(url.split(";", 1)[0])
    host, port = parts.hostname or "localhost", parts.port or 15002
    try:
        with socket.create_connection((host, port), timeout=CONNECT_PROBE_SECONDS):
            pass
    except OSError as error:
        raise EngineError(f"cannot reach the Spark Connect server {url}: {error.strerror or error}", None,
                          "start it (start-connect-server.sh) or fix `remote:` in segsql.yml") from None


def _refuse_a_local_driver(url: str) -> None:
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:
        raise EngineError(f"cannot use Spark Connect ({url}) in a process that runs a local Spark driver", None,
                          _ONE_KIND_PER_PROCESS)


def _bound_retries(spark: SparkSession) -> None:
    """The client's default policy retries an unavailable server for about ten minutes; a few
    short retries cover a server restart without leaving a command hanging."""
    client = getattr(spark, "client", None)
    if client is None or not hasattr(client, "set_retry_policies"):
        return  # PySpark 3.5's client has no policies to set
    from pyspark.sql.connect.client.retries import DefaultPolicy

    client.set_retry_policies([DefaultPolicy(max_retries=4, initial_backoff=250, backoff_multiplier=2.0,
                                             max_backoff=2000, max_server_retry_delay=5000)])
