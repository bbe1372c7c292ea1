"""Run segments: compute each one's members in the engine and replace membership atomically.

Order of work: validate every selected segment (nothing runs otherwise) -> record the run as
`running` -> in one transaction, per segment in DAG order, materialise its typed result table
and check its keys (no NULLs, no duplicates unless the segment asks to dedupe) -> swap its rows
in segsql.membership -> record success and commit. Any failure rolls the transaction back, so
the previous membership stays exactly as it was, and the run is recorded as failed. A run
killed outright is recorded as failed (interrupted) by the next run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from segsql import formats
from segsql.compile.keys import EntityKey, entity_key
from segsql.engines import storage
from segsql.engines.records import RunResult, SegmentRun
from segsql.errors import EngineError, Location, SegsqlError
from segsql.privacy.masking import scrub
from segsql.version import __version__

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine, RunStore


class RunError(SegsqlError):
    """A run failed; membership is unchanged."""


class ValidationFailed(SegsqlError):  # noqa: N818 (it carries the validation errors)
    """Some selected segments do not validate, so nothing ran."""
    def __init__(self, errors: list[SegsqlError]):
        super().__init__(f"{len(errors)} segment(s) failed validation; nothing ran")
        self.errors = errors


Progress = Callable[[SegmentRun], None]


def run(compiler: Compiler, names: list[str], engine: Engine, progress: Progress | None = None) -> RunResult:
    """Run `names` (in dependency order) on `engine`; raises RunError after recording a failure."""
    errors = compiler.validate(names)
    if errors:
        raise ValidationFailed(errors)
    plans = [_plan(compiler, name) for name in names]
    engine.prepare_sources()
    store = engine.run_store()
    store.prepare()
    result = RunResult(run_id=_new_run_id(), status=storage.RUNNING, as_of=compiler.as_of, segments=plans)
    store.start(result, names, __version__)
    keys = {plan.entity: entity_key_of(compiler, plan.entity) for plan in plans}
    try:
        populations = _populations(compiler, engine, {p.entity for p in plans})
        store.begin()
        for plan in plans:
            _materialise(compiler, engine, store, plan, populations, progress)
        store.replace_membership(plans, result, keys)
        result.status = storage.SUCCESS
        store.finish(result, plans)
        store.commit()
    except BaseException as error:
        store.rollback()
        # stored in segsql.runs and shown: engine errors already hide row values; emails and phones too
        message = scrub(error.message if isinstance(error, SegsqlError) else f"{type(error).__name__}: {error}")
        for plan in plans:
            if plan.status in ("pending", "running", storage.SUCCESS):
                plan.status = "rolled back" if plan.status == storage.SUCCESS else "not run"
        result.status, result.error = storage.FAILED, message
        store.finish(result, plans)
        if isinstance(error, KeyboardInterrupt):
            raise
        raise RunError(f"run {result.run_id} failed: {message}", getattr(error, "location", None),
                       _failure_hint(compiler, engine, names, error)) from None
    return result


def _failure_hint(compiler: Compiler, engine: Engine, names: list[str], error: BaseException) -> str:
    """Membership is unchanged; and when source tables are missing (a new `segsql init` project,
    a wrong connection), where the data should come from."""
    missing = _missing_sources(compiler, engine, names) if isinstance(error, EngineError) else []
    if not missing:
        return "membership is unchanged"
    return (f"membership is unchanged; the connection has no table for source(s) {', '.join(missing)}: "
            "load your data into it, or point `connection:` (and `sources.NAME.table`) in segsql.yml at it; "
            "`segsql demo DIR` builds a project with sample data")


def _missing_sources(compiler: Compiler, engine: Engine, names: list[str]) -> list[str]:
    """Table sources the run reads (segments, their refs, entity populations) the engine cannot find."""
    wanted: set[str] = set()
    for name in names:
        compiled = compiler.compiled(name)
        population = compiler.config.entities[compiled.entity].source
        wanted.update([population] if population else [])
        for segment in [name, *compiled.upstream]:
            wanted.update(compiler.compiled(segment).sources)
    try:
        return [name for name in sorted(wanted) if compiler.config.sources[name].table is not None
                and engine.describe_source(name, compiler.config.sources[name]) is None]
    except SegsqlError:  # only a hint: the run's own error is the one to report
        return []


def _plan(compiler: Compiler, name: str) -> SegmentRun:
    compiled = compiler.compiled(name)
    definition = compiler.to_sql(name)
    return SegmentRun(name=name, entity=compiled.entity,
                      definition_hash=hashlib.sha256(definition.encode()).hexdigest()[:16])


def _new_run_id() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _populations(compiler: Compiler, engine: Engine, entities: set[str]) -> dict[str, int | None]:
    """Distinct keys of each entity's population source (for shares)."""
    sizes: dict[str, int | None] = {}
    for entity in sorted(entities):
        declared = compiler.config.entities[entity]
        if declared.source is None:
            sizes[entity] = None
            continue
        table = compiler.source_relation(declared.source)
        key = entity_key(declared.key_columns)
        query = exp.select(exp.Count(this=exp.Distinct(expressions=[key.value()]))).from_(table)
        sizes[entity] = int(engine.fetchall(query)[0][0])
    return sizes


def _materialise(compiler: Compiler, engine: Engine, store: RunStore, plan: SegmentRun,
                 populations: dict[str, int | None], progress: Progress | None) -> None:
    started = time.perf_counter()
    plan.status = "running"
    compiled = compiler.compiled(plan.name)
    key = entity_key_of(compiler, plan.entity)
    query = compiler.tree(plan.name)
    if compiled.config.duplicates == "dedupe":
        query = deduplicated(query, key, list(compiled.columns))
    # Stored sorted by key, so a page of members is read without sorting or scanning everything.
    ordered = exp.select("*").from_(query.subquery("result")).order_by(*key.parts())
    try:
        target = store.write_segment(plan.name, ordered)
        total, non_null, distinct = engine.fetchall(key_counts(target, key))[0]
    except EngineError as error:
        plan.status, plan.error = "error", scrub(error.message)
        raise EngineError(f"segment `{plan.name}`: {error.message}", Location(compiled.path)) from None
    problem = key_problem(plan.name, key, int(total), int(non_null), int(distinct))
    if problem:
        plan.status, plan.error = "error", problem
        raise RunError(problem, Location(compiled.path), KEY_FIX)
    plan.rows = int(total)
    plan.population = populations.get(plan.entity)
    plan.duration_ms = int((time.perf_counter() - started) * 1000)
    plan.status = storage.SUCCESS
    if progress:
        progress(plan)


KEY_FIX = "fix the query, or set config(duplicates='dedupe') to keep one row per key"


def entity_key_of(compiler: Compiler, entity: str) -> EntityKey:
    return entity_key(compiler.config.entities[entity].key_columns)


def key_counts(rows: exp.Expr, key: str | EntityKey) -> exp.Select:
    """Rows, non-NULL keys and distinct keys of `rows` (a table or subquery), in one query: what
    the key checks of a run, and of a preview, read. A composite key counts as NULL when any
    part is (its stored text is NULL then)."""
    value = entity_key(key).value()
    return exp.select(exp.func("count", exp.Star()), exp.func("count", value),
                      exp.Count(this=exp.Distinct(expressions=[value.copy()]))).from_(rows)


def key_problem(name: str, key: str | EntityKey, total: int, non_null: int, distinct: int) -> str | None:
    """Why a run refuses these rows (NULL or duplicate keys), naming the count; None when none."""
    nulls, duplicates = total - non_null, non_null - distinct
    key = entity_key(key)
    if nulls:
        null = f"NULL in a part of the key `{key}`" if key.composite else f"NULL `{key}`"
        return f"segment `{name}` returned {formats.count(nulls)} row(s) with a {null}"
    if duplicates:
        return (f"segment `{name}` returned {formats.count(duplicates)} duplicate `{key}` value(s); "
                "members would count twice")
    return None


def deduplicated(query: exp.Query, key: str | EntityKey, columns: list[str]) -> exp.Query:
    """One row per key with no NULL part; ties broken by every output column, so reruns agree."""
    key = entity_key(key)
    rank = exp.Window(this=exp.func("row_number"), partition_by=key.parts(),
                      order=exp.Order(expressions=[exp.Ordered(this=exp.column(c)) for c in columns]))
    ranked = exp.select("*", rank.as_("__segsql_rank")).from_(query.subquery("d")).where(
        key.any_null().not_())
    return exp.select(*[exp.column(c) for c in columns]).from_(ranked.subquery("r")).where(
        exp.column("__segsql_rank").eq(1))


def runs_table(engine: Engine, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first."""
    query = exp.select("*").from_(storage.table("runs")).order_by(
        exp.Ordered(this=exp.column("started_at"), desc=True)).limit(limit)
    names = ["run_id", "started_at", "finished_at", "status", "as_of", "selected", "error", "segsql_version"]
    return [dict(zip(names, row, strict=False)) for row in engine.fetchall(query)]
