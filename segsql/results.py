"""Read what runs produced: members, sizes, samples; the LIMIT always runs in the engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from segsql import storage
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
    missing = [name for name, table in tables.items() if table.name not in existing]
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
    from segsql.builtins import table_for_source

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


def stream_members(project: Project, engine: Engine, name: str,
                   batch_size: int = 10_000) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    """Every member in batches, never all in memory."""
    yield from engine.stream(members_query(project, engine, name), batch_size=batch_size)
