"""Read what runs produced: members, sizes, samples; the LIMIT always runs in the engine."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from segsql.compile.keys import EntityKey, entity_key
from segsql.engines import storage
from segsql.errors import EngineError, UsageError
from segsql.privacy.masking import mask_table
from segsql.privacy.pii import pii_columns
from segsql.starter.salt import project_salt

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine


def result_table(compiler: Compiler, engine: Engine, name: str) -> exp.Table:
    compiler.segment(name)
    table = storage.segment_table(name)
    if not engine.table_exists(table):
        raise UsageError(f"segment `{name}` has no results yet", None, f"run `segsql run --select {name}` first")
    return table


def result_tables(compiler: Compiler, engine: Engine, names: list[str]) -> dict[str, exp.Table]:
    """The result tables of several segments, checked with one catalog query."""
    for name in names:
        compiler.segment(name)
    tables = {name: storage.segment_table(name) for name in names}
    existing = engine.existing_tables(list(tables.values()))
    missing = [name for name, table in tables.items() if table.name.lower() not in existing]
    if missing:
        raise UsageError(f"segment `{missing[0]}` has no results yet", None,
                         f"run `segsql run --select {' '.join(missing)}` first")
    return tables


def last_run_date(compiler: Compiler, engine: Engine, name: str) -> dt.date | None:
    """The as_of of the segment's last successful run (None when it never ran)."""
    result_table(compiler, engine, name)
    rows = engine.fetchall(storage.last_success(name, ("r.as_of",)), [name])
    return dt.date.fromisoformat(str(rows[0][0])[:10]) if rows else None


def members_as_of(compiler: Compiler, engine: Engine, names: list[str]) -> dict[str, exp.Expr]:
    """Where each segment's members as of `compiler.as_of` are: its result table when its last
    successful run was for that date, else the segment evaluated now for that date (with the
    point-in-time reads of its sources). A segment never run is an error, as for results."""
    tables = result_tables(compiler, engine, names)
    ran_for = {segment: str(as_of)[:10] for segment, as_of in engine.fetchall(storage.last_success_dates(names))}
    return {name: tables[name] if ran_for.get(name) == compiler.as_of.isoformat()
            else _live_members(compiler, name) for name in names}


def _live_members(compiler: Compiler, name: str) -> exp.Expr:
    """The segment's member keys evaluated now: one row per non-NULL key, as a run keeps them."""
    key = _key(compiler, name)
    return (exp.select(*key.parts()).distinct().from_(compiler.tree(name).subquery("live"))
            .where(key.any_null().not_()).subquery(name))


def _key(compiler: Compiler, name: str) -> EntityKey:
    return entity_key(compiler.config.entities[compiler.compiled(name).entity].key_columns)


def members_query(compiler: Compiler, engine: Engine, name: str, limit: int | None = None,
                  offset: int = 0) -> exp.Select:
    """Members ordered by key (a deterministic page); LIMIT/OFFSET go to the engine. Result tables
    are written sorted by key, so engines that keep insertion order need no ORDER BY (and no scan
    of the whole table) for a page."""
    query = exp.select("*").from_(result_table(compiler, engine, name))
    if not engine.capabilities.keeps_insertion_order:
        query = query.order_by(*_key(compiler, name).parts())
    if limit is not None:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    return query


def members_arrow(compiler: Compiler, engine: Engine, name: str, limit: int | None = None) -> pa.Table:
    return engine.fetch_arrow(members_query(compiler, engine, name, limit))


def size(compiler: Compiler, engine: Engine, name: str) -> int:
    query = exp.select(exp.func("count", exp.Star())).from_(result_table(compiler, engine, name))
    return int(engine.fetchall(query)[0][0])


def population(compiler: Compiler, engine: Engine, entity: str) -> int | None:
    """Distinct keys in the entity's population source, or None when it has no source."""
    declared = compiler.config.entities[entity]
    if declared.source is None:
        return None
    table = compiler.source_relation(declared.source)
    key = entity_key(declared.key_columns)
    query = exp.select(exp.Count(this=exp.Distinct(expressions=[key.value()]))).from_(table)
    try:
        return int(engine.fetchall(query)[0][0])
    except EngineError:
        return None


def last_run_size(compiler: Compiler, engine: Engine, name: str) -> tuple[int, int | None]:
    """(size, population) recorded by the segment's last successful run: no scan of the data."""
    result_table(compiler, engine, name)
    rows = engine.fetchall(storage.last_success(name), [name])
    if not rows:
        return size(compiler, engine, name), None
    return int(rows[0][0]), None if rows[0][1] is None else int(rows[0][1])


def preview_population(compiler: Compiler, engine: Engine, entity: str) -> tuple[int | None, bool]:
    """(population, exact) without an exact COUNT(DISTINCT), whose hash table grows with the
    population: the count recorded by the entity's latest run, else a HyperLogLog estimate."""
    if engine.table_exists(storage.table("run_segments")):
        rows = engine.fetchall(storage.last_population(entity), [entity])
        if rows and str(rows[0][1])[:10] == compiler.as_of.isoformat():  # a count for this very date
            return int(rows[0][0]), True
    declared = compiler.config.entities[entity]
    if declared.source is None:
        return None, True
    if not engine.capabilities.approx_distinct:
        return population(compiler, engine, entity), True
    table = compiler.source_relation(declared.source)
    key = entity_key(declared.key_columns)
    estimate = engine.fetchall(exp.select(exp.ApproxDistinct(this=key.value())).from_(table))[0][0]
    return int(estimate), False


def stream_members(compiler: Compiler, engine: Engine, name: str,
                   batch_size: int = 10_000) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    """Every member in batches, never all in memory."""
    yield from engine.stream(members_query(compiler, engine, name), batch_size=batch_size)


@dataclass
class Preview:
    """A segment's size and how to read it a page at a time; nothing is materialised, so memory
    stays flat however many members it has (each page re-runs the query with LIMIT/OFFSET)."""

    name: str
    entity: str
    key: EntityKey
    size: int
    population: int | None
    columns: list[str]
    sql: str
    elapsed_ms: float
    engine: str
    query: exp.Query
    pii: dict[str, str]
    population_exact: bool = True
    key_problem: str | None = None  # NULL or duplicate keys: the run will refuse the segment

    @property
    def share(self) -> float | None:
        return self.size / self.population if self.population else None


def preview(compiler: Compiler, engine: Engine, name: str) -> Preview:
    """Size and share of segment `name` (validated), with the key checks a run makes (NULL and
    duplicate keys, after config(duplicates='dedupe') if set): counted in one engine query."""
    from segsql.run.runner import deduplicated, key_counts, key_problem

    compiled = compiler.compiled(name)
    key = _key(compiler, name)
    query = compiler.tree(name)
    if compiled.config.duplicates == "dedupe":
        query = deduplicated(query, key, list(compiled.columns))
    started = time.perf_counter()
    count, non_null, distinct = (int(v) for v in engine.fetchall(key_counts(query.subquery("result"), key))[0])
    elapsed = (time.perf_counter() - started) * 1000
    total, exact = preview_population(compiler, engine, compiled.entity)
    return Preview(name=name, entity=compiled.entity, key=key, size=count, population=total,
                   columns=list(compiled.columns), sql=compiler.to_sql(name), elapsed_ms=elapsed,
                   engine=engine.name, query=query, pii=pii_columns(compiler, name), population_exact=exact,
                   key_problem=key_problem(name, key, count, non_null, distinct))


def page(compiler: Compiler, engine: Engine, result: Preview, offset: int, limit: int,
         unmask: bool = False) -> pa.Table:
    """One page of a preview, ordered by key, PII masked unless `unmask`; LIMIT/OFFSET run in the
    engine (a top-N, so only offset + limit rows are ever held)."""
    query = (exp.select("*").from_(result.query.subquery("result"))
             .order_by(*result.key.parts()).limit(limit).offset(offset))
    table = engine.fetch_arrow(query)
    return table if unmask else mask_table(table, result.pii, project_salt(compiler.root))
