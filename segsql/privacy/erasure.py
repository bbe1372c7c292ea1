"""Right to erasure: remove an entity key from every table and export file segsql manages and
keep a record of the erasure that does not contain the key.

The record keeps a salted SHA-256 of the key. The salt is random per project: the environment
variable named by privacy.erasure_salt_env, else `.segsql/erasure_salt` in the project folder
(created with mode 0600 by `segsql init` or the first erasure; keep it out of git and back it up
with the database). Never the project name: small integer keys would be found by trying them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlglot import exp

from segsql.compile.keys import EntityKey
from segsql.engines import storage
from segsql.errors import UsageError, did_you_mean
from segsql.starter.salt import project_salt

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine


@dataclass
class Erasure:
    """What `forget` removed, and the export destinations that held the key."""

    rows_removed: int
    destinations: list[str] = field(default_factory=list)  # "csv:/folder" of file exports that held the key
    files_rewritten: list[str] = field(default_factory=list)
    not_rewritten: list[str] = field(default_factory=list)  # hold the key still: segsql could not rewrite them
    compacted: bool = False  # the database file was rewritten without the deleted bytes


def key_hash(compiler: Compiler, entity: str, key: str) -> str:
    """What an erasure record keeps instead of the key: a salted SHA-256 (module docstring)."""
    salt_env = compiler.config.privacy.erasure_salt_env
    if salt_env:
        if not os.environ.get(salt_env):
            raise UsageError(f"the environment variable {salt_env} (privacy.erasure_salt_env) is not set", None,
                             f"export {salt_env}=<a long random secret> before erasing")
        salt = os.environ[salt_env]
    else:
        salt = project_salt(compiler.root)
    return hashlib.sha256(f"{salt}\0{entity}\0{key}".encode()).hexdigest()


def stored_key(compiler: Compiler, entity: str, parts: str | Sequence[str]) -> str:
    """The `entity_key` segsql stores for a key given as its parts (one for a one-column key,
    one per column, in order, for a composite key)."""
    if entity not in compiler.config.entities:
        raise UsageError(f"unknown entity `{entity}`", None, did_you_mean(entity, compiler.config.entities))
    key = EntityKey(compiler.config.entities[entity].key_columns)
    given = [parts] if isinstance(parts, str) else [str(part) for part in parts]
    if len(given) != len(key.columns):
        raise UsageError(f"entity `{entity}` is keyed by {key}: give {len(key.columns)} key value(s), "
                         f"got {len(given)}", None,
                         "repeat --key once per key column, in order" if key.composite else "give one --key")
    return key.encode(given) if key.composite else given[0]


def forget(compiler: Compiler, engine: Engine, entity: str, parts: str | Sequence[str],
           reason: str | None = None) -> Erasure:
    """Remove an entity key (its parts, for a composite key) from every table segsql manages
    (membership, history, export state and exported tables, each result table of that entity) in
    one transaction, and record the erasure without the key in clear (`engine` open for writing).
    Returns the number of rows removed."""
    key = stored_key(compiler, entity, parts)
    columns = EntityKey(compiler.config.entities[entity].key_columns)
    given = columns.decode(key)
    segments = [name for name in compiler.segments if compiler.entity_of(name) == entity]
    erase = getattr(engine, "erase", None)
    if erase is not None:  # engines without transactions (Spark) rewrite their files
        entry = {"erased_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(), "entity": entity,
                 "key_hash": key_hash(compiler, entity, key), "reason": reason}
        return Erasure(int(erase(entity, columns, given, segments, entry)))
    store = engine.run_store()
    store.ensure_tables()
    removed = 0
    engine.begin()
    try:
        keyed = ["membership", "history", "export_state", "export_memberships"]
        results = [storage.segment_table(name) for name in segments]
        exported = [storage.table(f"export_members__{name}") for name in segments]
        existing = engine.existing_tables([*[storage.table(t) for t in keyed], *results, *exported])
        destinations = _file_destinations(engine, entity, segments)
        for managed in keyed:
            if managed in existing:
                where = exp.and_(exp.column("entity").eq(exp.Placeholder()),
                                 exp.column("entity_key").eq(exp.Placeholder()))
                removed += _delete(engine, exp.delete(storage.table(managed), where=where), [entity, key])
        for table in results:
            if table.name.lower() in existing:
                removed += _delete(engine, exp.delete(table, where=parts_match(columns)), list(given))
        for table in exported:
            if table.name.lower() in existing:
                match = exp.cast(exp.column("entity_key"), exp.DataType.Type.VARCHAR).eq(exp.Placeholder())
                removed += _delete(engine, exp.delete(table, where=match), [key])
        record = exp.insert(exp.Values(expressions=[exp.tuple_(*[exp.Placeholder() for _ in range(5)])]),
                            storage.table("erasures"),
                            columns=["erased_at", "entity", "key_hash", "reason", "rows_removed"])
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        engine.execute(record, [now, entity, key_hash(compiler, entity, key), reason, removed])
        engine.commit()
    except BaseException:
        engine.rollback()
        raise
    return Erasure(removed, destinations)


def parts_match(key: EntityKey) -> exp.Condition:
    """Rows of a result table whose key parts, as text, equal the bound values (one per part)."""
    return exp.and_(*[exp.cast(part, exp.DataType.Type.VARCHAR).eq(exp.Placeholder()) for part in key.parts()])


def _file_destinations(engine: Engine, entity: str, segments: list[str]) -> list[str]:
    """Every file destination (`csv:/folder`, `parquet:/folder`) that segsql exported the entity's
    segments to: from the export log, since a changes-only file also lists removed keys, which
    the state no longer holds."""
    if not segments or "exports" not in engine.existing_tables([storage.table("exports")]):
        return []
    query = exp.select("destination").distinct().from_(storage.table("exports")).where(exp.and_(
        exp.column("entity").eq(exp.Placeholder()),
        exp.column("segment").isin(*[exp.Literal.string(name) for name in segments]),
        exp.column("destination").like(exp.Literal.string("csv:%")).or_(
            exp.column("destination").like(exp.Literal.string("parquet:%")))))
    return sorted(str(row[0]) for row in engine.fetchall(query, [entity]))


def rewrite_exports(erasure: Erasure, key: str) -> None:
    """Rewrite the member files of every destination that held the key without its rows (each file
    replaced atomically); destinations whose files are gone or unreadable are listed as not rewritten."""
    for destination in erasure.destinations:
        to, _, folder = destination.partition(":")
        for dataset in ("members", "memberships"):
            path = Path(folder) / f"{dataset}.{to}"
            try:
                if _rewrite_without(path, to, key):
                    erasure.files_rewritten.append(str(path))
            except (OSError, pa.ArrowException):
                erasure.not_rewritten.append(str(path))


def _rewrite_without(path: Path, to: str, key: str) -> bool:
    if not path.exists():
        raise FileNotFoundError(path)
    table = pq.read_table(path) if to == "parquet" else pacsv.read_csv(
        path, convert_options=pacsv.ConvertOptions(column_types={"entity_key": pa.string()}))
    keys = table.column("entity_key").cast(pa.string())
    keep = pc.invert(pc.fill_null(pc.equal(keys, key), False))
    if pc.all(keep).as_py():
        return False
    temporary = path.with_name(f".{path.name}.erasure.tmp")
    kept = table.filter(keep)
    if to == "parquet":
        pq.write_table(kept, temporary)
    else:
        pacsv.write_csv(kept, temporary)
    os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))  # the file keeps its permissions
    os.replace(temporary, path)
    return True


def _delete(engine: Any, statement: Any, params: list[Any]) -> int:
    """Run a DELETE and return how many rows it removed (counted first: not every driver says)."""
    count = exp.select(exp.func("count", exp.Star())).from_(statement.this.copy())
    if statement.args.get("where") is not None:
        count = count.where(statement.args["where"].this.copy())
    rows = int(engine.fetchall(count, params)[0][0])
    if rows:
        engine.execute(statement, params)
    return rows
