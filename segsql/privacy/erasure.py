"""Right to erasure: remove an entity key from every table segsql manages and keep a record of
the erasure that does not contain the key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from segsql.engines import storage
from segsql.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine


def key_hash(compiler: Compiler, entity: str, key: str) -> str:
    """What an erasure record keeps instead of the key: a salted SHA-256 (salt from the env var
    named in privacy.erasure_salt_env when set, else the project name — then small integer keys
    can be recovered by trying them, so set the variable in production)."""
    salt_env = compiler.config.privacy.erasure_salt_env
    salt = os.environ.get(salt_env, "") if salt_env else compiler.config.name
    return hashlib.sha256(f"{salt}\0{entity}\0{key}".encode()).hexdigest()


def forget(compiler: Compiler, engine: Engine, entity: str, key: str, reason: str | None = None) -> int:
    """Remove an entity key from every table segsql manages (membership, history, export state
    and exported tables, each result table of that entity) in one transaction, and record the
    erasure without the key in clear (`engine` open for writing). Returns the number of rows removed."""
    if entity not in compiler.config.entities:
        raise UsageError(f"unknown entity `{entity}`", None, did_you_mean(entity, compiler.config.entities))
    key_column = compiler.config.entities[entity].key
    segments = [name for name in compiler.segments if compiler.entity_of(name) == entity]
    erase = getattr(engine, "erase", None)
    if erase is not None:  # engines without transactions (Spark) rewrite their files
        entry = {"erased_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(), "entity": entity,
                 "key_hash": key_hash(compiler, entity, key), "reason": reason}
        return int(erase(entity, key_column, key, segments, entry))
    store = engine.run_store()
    store.prepare()
    removed = 0
    engine.begin()
    try:
        keyed = ["membership", "history", "export_state", "export_memberships"]
        results = [storage.segment_table(name) for name in segments]
        exported = [storage.table(f"export_members__{name}") for name in segments]
        existing = engine.existing_tables([*[storage.table(t) for t in keyed], *results, *exported])
        for managed in keyed:
            if managed in existing:
                where = exp.and_(exp.column("entity").eq(exp.Placeholder()),
                                 exp.column("entity_key").eq(exp.Placeholder()))
                removed += _delete(engine, exp.delete(storage.table(managed), where=where), [entity, key])
        for table, column in [*[(t, key_column) for t in results], *[(t, "entity_key") for t in exported]]:
            if table.name.lower() in existing:
                match = exp.cast(exp.column(column), exp.DataType.Type.VARCHAR).eq(exp.Placeholder())
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
    return removed


def _delete(engine: Any, statement: Any, params: list[Any]) -> int:
    """Run a DELETE and return how many rows it removed (counted first: not every driver says)."""
    count = exp.select(exp.func("count", exp.Star())).from_(statement.this.copy())
    if statement.args.get("where") is not None:
        count = count.where(statement.args["where"].this.copy())
    rows = int(engine.fetchall(count, params)[0][0])
    if rows:
        engine.execute(statement, params)
    return rows
