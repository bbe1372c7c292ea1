"""Read what runs produced: members, sizes, samples; the LIMIT always runs in the engine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from segsql.engines import storage
from segsql.errors import EngineError, UsageError

if TYPE_CHECKING:
    from segsql.engines.base import Engine
    from segsql.project import Project


def _result_table(project: Project, engine: Engine, name: str) -> exp.Table:
    project.segment(name)
    table = storage.segment_table(name)
    if not engine.table_exists(table):
        raise UsageError(f"segment `{name}` has no results yet", None, f"run `segsql run --select {name}` first")
    return table


def result_tables(project: Project, engine: Engine, names: list[str]) -> dict[str, exp.Table]:
    """The result tables of several segments, checked with one catalog query."""
    for name in names:
        project.segment(name)
    tables = {name: storage.segment_table(name) for name in names}
    existing = engine.existing_tables(list(tables.values()))
    missing = [name for name, table in tables.items() if table.name.lower() not in existing]
    if missing:
        raise UsageError(f"segment `{missing[0]}` has no results yet", None,
                         f"run `segsql run --select {' '.join(missing)}` first")
    return tables


def _key(project: Project, name: str) -> str:
    return project.config.entities[project.compiled(name).entity].key


def members_query(project: Project, engine: Engine, name: str, limit: int | None = None,
                  offset: int = 0) -> exp.Select:
    """Members ordered by key (a deterministic page); LIMIT/OFFSET go to the engine. Result tables
    are written sorted by key, so engines that keep insertion order need no ORDER BY (and no scan
    of the whole table) for a page."""
    query = exp.select("*").from_(_result_table(project, engine, name))
    if not engine.capabilities.keeps_insertion_order:
        query = query.order_by(exp.column(_key(project, name)))
    if limit is not None:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    return query


def members_arrow(project: Project, engine: Engine, name: str, limit: int | None = None) -> pa.Table:
    return engine.fetch_arrow(members_query(project, engine, name, limit))


def size(project: Project, engine: Engine, name: str) -> int:
    query = exp.select(exp.func("count", exp.Star())).from_(_result_table(project, engine, name))
    return int(engine.fetchall(query)[0][0])


def population(project: Project, engine: Engine, entity: str) -> int | None:
    """Distinct keys in the entity's population source, or None when it has no source."""
    from segsql.compile.builtins import table_for_source

    declared = project.config.entities[entity]
    if declared.source is None:
        return None
    source = project.config.sources[declared.source]
    table = table_for_source(declared.source, source.table, project.config.dialect)
    query = exp.select(exp.Count(this=exp.Distinct(expressions=[exp.column(declared.key)]))).from_(table)
    try:
        return int(engine.fetchall(query)[0][0])
    except EngineError:
        return None


def last_run_size(project: Project, engine: Engine, name: str) -> tuple[int, int | None]:
    """(size, population) recorded by the segment's last successful run: no scan of the data."""
    _result_table(project, engine, name)
    rows = engine.fetchall(storage.last_success(name), [name])
    if not rows:
        return size(project, engine, name), None
    return int(rows[0][0]), None if rows[0][1] is None else int(rows[0][1])


def preview_population(project: Project, engine: Engine, entity: str) -> tuple[int | None, bool]:
    """(population, exact) without an exact COUNT(DISTINCT), whose hash table grows with the
    population: the count recorded by the entity's latest run, else a HyperLogLog estimate."""
    from segsql.compile.builtins import table_for_source

    if engine.table_exists(storage.table("run_segments")):
        rows = engine.fetchall(storage.last_population(entity), [entity])
        if rows:
            return int(rows[0][0]), True
    declared = project.config.entities[entity]
    if declared.source is None:
        return None, True
    if not engine.capabilities.approx_distinct:
        return population(project, engine, entity), True
    source = project.config.sources[declared.source]
    table = table_for_source(declared.source, source.table, project.config.dialect)
    estimate = engine.fetchall(exp.select(exp.ApproxDistinct(this=exp.column(declared.key))).from_(table))[0][0]
    return int(estimate), False


def stream_members(project: Project, engine: Engine, name: str,
                   batch_size: int = 10_000) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    """Every member in batches, never all in memory."""
    yield from engine.stream(members_query(project, engine, name), batch_size=batch_size)


@dataclass
class Preview:
    """A segment's size and how to read it a page at a time; nothing is materialised, so memory
    stays flat however many members it has (each page re-runs the query with LIMIT/OFFSET)."""

    name: str
    entity: str
    key: str
    size: int
    population: int | None
    columns: list[str]
    sql: str
    elapsed_ms: float
    engine: str
    query: exp.Query
    pii: dict[str, str]
    population_exact: bool = True

    @property
    def share(self) -> float | None:
        return self.size / self.population if self.population else None


def preview(project: Project, engine: Engine, name: str) -> Preview:
    """Size (a streaming COUNT in the engine) and share of segment `name`, which is validated."""
    from segsql.privacy.pii import pii_columns

    compiled = project.compiled(name)
    key = project.config.entities[compiled.entity].key
    query = project.compiler.tree(name)
    started = time.perf_counter()
    count = int(engine.fetchall(exp.select(exp.func("count", exp.Star())).from_(query.subquery("result")))[0][0])
    elapsed = (time.perf_counter() - started) * 1000
    total, exact = preview_population(project, engine, compiled.entity)
    return Preview(name=name, entity=compiled.entity, key=key, size=count, population=total,
                   columns=list(compiled.columns), sql=project.compile(name), elapsed_ms=elapsed,
                   engine=engine.name, query=query, pii=pii_columns(project, name), population_exact=exact)


def page(project: Project, engine: Engine, result: Preview, offset: int, limit: int, unmask: bool = False) -> pa.Table:
    """One page of a preview, ordered by key, PII masked unless `unmask`; LIMIT/OFFSET run in the
    engine (a top-N, so only offset + limit rows are ever held)."""
    from segsql.privacy.pii import mask_table

    query = (exp.select("*").from_(result.query.subquery("result"))
             .order_by(exp.column(result.key)).limit(limit).offset(offset))
    table = engine.fetch_arrow(query)
    return table if unmask else mask_table(table, result.pii, project.config.name)
