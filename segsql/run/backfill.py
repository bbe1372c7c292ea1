"""Replay: membership of past dates written to the SCD-2 history as if segsql had run then.

`backfill(compiler, names, engine, dates)` evaluates every selected segment as of each date
(the normal compile path with `as_of=D`: `Compiler.with_options(as_of=D)`), checks its keys like
a run does, and splices the snapshots into each segment's timeline (engines/timeline.py) in one
transaction: all dates of all segments, or nothing. A backfilled run for D is stamped at D's
last microsecond (23:59:59.999999 UTC), recorded in `segsql.runs` with status `backfill` and in
`segsql.run_segments` as `success (backfill)`. Current membership and the `segment__*` tables
are not touched: they stay the last real run's.

History written by `segsql run` inside the window [D1 00:00, end of Dn] is not overwritten: the
backfill is refused with the segments and dates in the way, unless `replace=True`. Backfilled
history in the window (an earlier backfill) is replaced without asking.
"""

from __future__ import annotations

import calendar
import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from segsql.compile.keys import EntityKey
from segsql.engines import storage, timeline
from segsql.engines.records import Replaced, RunResult
from segsql.errors import EngineError, Location, SegsqlError, UsageError
from segsql.run.runner import RunError, ValidationFailed, _plan, _populations, deduplicated, entity_key_of, key_problem

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine

EVERY = ("day", "week", "month")
DateProgress = Callable[[dt.date, int, int], None]  # (date done, its 1-based number, how many)


class BackfillConflictError(UsageError):
    """The backfill would overwrite or interleave with history written by real runs."""


@dataclass
class BackfillResult:
    """What a backfill wrote: one run record per date, and per segment the change points of
    earlier history it replaced."""
    dates: list[dt.date]
    runs: list[RunResult]
    replaced: dict[str, list[dt.datetime]] = field(default_factory=dict)
    seconds: float = 0.0


def schedule(start: dt.date, end: dt.date, every: str) -> list[dt.date]:
    """The dates from `start` to `end` (inclusive when it falls on the schedule), every day, week
    (7 days) or month (the same day of the month as `start`, clamped to shorter months: from
    2026-01-31 the next are 2026-02-28 and 2026-03-31).

    >>> schedule(dt.date(2026, 1, 31), dt.date(2026, 4, 1), "month")
    [datetime.date(2026, 1, 31), datetime.date(2026, 2, 28), datetime.date(2026, 3, 31)]
    """
    if every not in EVERY:
        raise UsageError(f"--every `{every}` is not one of {', '.join(EVERY)}", None, "e.g. --every month")
    if end < start:
        raise UsageError(f"--to {end} is before --from {start}", None, "swap them")
    dates: list[dt.date] = []
    index = 0
    while True:
        if every == "day":
            day = start + dt.timedelta(days=index)
        elif every == "week":
            day = start + dt.timedelta(weeks=index)
        else:
            year, month = divmod(start.year * 12 + start.month - 1 + index, 12)
            day = start.replace(year=year, month=month + 1,
                                day=min(start.day, calendar.monthrange(year, month + 1)[1]))
        if day > end:
            return dates
        dates.append(day)
        index += 1


def check_dates(dates: list[dt.date], retention_months: int | None, today: dt.date | None = None) -> None:
    """Only days that are over (UTC) can be replayed, and none older than the history kept."""
    today = today or storage.now().date()
    if not dates:
        raise UsageError("the schedule has no dates", None, "check --from, --to and --every")
    if dates[-1] >= today:
        raise UsageError(f"--to {dates[-1]} is not in the past: only days that are over (UTC) can be backfilled",
                         None, f"end at {today - dt.timedelta(days=1)} at the latest; `segsql run` records today")
    if retention_months is not None:
        cutoff = storage.months_before(dt.datetime.combine(today, dt.time()), retention_months).date()
        if dates[0] < cutoff:
            raise UsageError(f"--from {dates[0]} is older than the history kept (privacy.history_retention_months: "
                             f"{retention_months}, so nothing before {cutoff})", None,
                             f"backfill from {cutoff} or later")


def backfill(compiler: Compiler, names: list[str], engine: Engine, dates: list[dt.date], replace: bool = False,
             progress: DateProgress | None = None) -> BackfillResult:
    """Evaluate `names` as of each of `dates` and write their history; see the module docstring."""
    started = time.perf_counter()
    check_dates(dates, compiler.config.privacy.history_retention_months)
    compilers = [compiler.with_options(as_of=day) for day in dates]
    errors = [error for dated in compilers for error in dated.validate(names)]
    if errors:
        raise ValidationFailed(_first_per_segment(errors))
    engine.prepare_sources()
    store = engine.run_store()
    store.prepare()
    batch = uuid.uuid4().hex[:8]
    runs = [RunResult(run_id=f"backfill-{day:%Y%m%d}-{batch}", status=storage.BACKFILL, as_of=day,
                      segments=[_plan(dated, name) for name in names]) for day, dated in zip(dates, compilers,
                                                                                               strict=True)]
    splices, replaced = _plan_splices(engine, names, runs, replace)
    keys = {name: entity_key_of(compiler, compilers[0].compiled(name).entity) for name in names}
    store.begin_backfill(batch)
    try:
        for number, (run, dated) in enumerate(zip(runs, compilers, strict=True), start=1):
            _evaluate(dated, engine, store, run, number, keys)
            if progress:
                progress(run.as_of, number, len(runs))
        _check_keys(compilers[0], store.staged_counts(), runs, keys)
        for run in runs:
            for plan in run.segments:
                plan.status = storage.BACKFILLED
        store.write_backfill(splices, runs, replaced)
        store.commit()
    except BaseException:
        store.rollback()
        raise
    return BackfillResult(dates=dates, runs=runs, replaced={s.segment: s.replaced for s in splices if s.replaced},
                          seconds=time.perf_counter() - started)


def _first_per_segment(errors: list[SegsqlError]) -> list[SegsqlError]:
    """A broken segment fails the same way on every date: report it once."""
    seen: dict[str, SegsqlError] = {}
    for error in errors:
        seen.setdefault(f"{error.path}:{error.message}", error)
    return list(seen.values())


def _evaluate(compiler: Compiler, engine: Engine, store: Any, run: RunResult, number: int,
              keys: dict[str, EntityKey]) -> None:
    populations = _populations(compiler, engine, {plan.entity for plan in run.segments})
    for plan in run.segments:
        began = time.perf_counter()
        compiled = compiler.compiled(plan.name)
        query = compiler.tree(plan.name)
        if compiled.config.duplicates == "dedupe":
            query = deduplicated(query, keys[plan.name], list(compiled.columns))
        try:
            store.stage_members(plan.name, number, timeline.members_query(query, keys[plan.name], number))
        except EngineError as error:
            raise EngineError(f"segment `{plan.name}` as of {run.as_of}: {error.message}; nothing was backfilled",
                              Location(compiled.path)) from None
        plan.population = populations.get(plan.entity)
        plan.duration_ms = int((time.perf_counter() - began) * 1000)


def _check_keys(compiler: Compiler, counts: dict[tuple[str, int], tuple[int, int, int]], runs: list[RunResult],
                keys: dict[str, EntityKey]) -> None:
    """The run's key rules, per date: no NULL keys, no duplicates (unless the segment dedupes)."""
    for number, run in enumerate(runs, start=1):
        for plan in run.segments:
            total, non_null, distinct = counts.get((plan.name, number), (0, 0, 0))
            problem = key_problem(plan.name, keys[plan.name], total, non_null, distinct)
            if problem:
                raise RunError(f"{problem} as of {run.as_of}; nothing was backfilled",
                               Location(compiler.compiled(plan.name).path),
                               "fix the query, or set config(duplicates='dedupe') to keep one row per key")
            plan.rows = total


def _plan_splices(engine: Engine, names: list[str], runs: list[RunResult],
                  replace: bool) -> tuple[list[timeline.Splice], Replaced]:
    """Where each segment's snapshots go, the records of the runs whose history they replace
    (earlier backfills: dropped; real runs, with `replace`: kept, marked), and a BackfillConflictError
    when real runs' history is in the window (unless `replace`)."""
    has_history = engine.table_exists(storage.table("history"))
    backfilled = _backfill_runs(engine)
    window = (timeline.day_start(runs[0].as_of), timeline.stamp(runs[-1].as_of))
    splices: list[timeline.Splice] = []
    obsolete: list[tuple[str, str]] = []
    superseded: list[tuple[str, str]] = []
    conflicts: dict[str, list[dt.date]] = {}
    for position, name in enumerate(names):
        points = [(_moment(at), str(run)) for at, run in engine.fetchall(timeline.change_points(name))] \
            if has_history else []
        inside = sorted({at for at, _ in points if window[0] <= at <= window[1]})
        real_runs = _real_runs(engine, name, window) if has_history else {}
        real = sorted({at.date() for at, run in points if window[0] <= at <= window[1] and run not in backfilled}
                      | {at.date() for at in real_runs.values()})  # runs that changed nothing count too
        if real and not replace:
            conflicts[name] = real
        before = max((at for at, _ in points if at < window[0]), default=None)
        after = min((at for at, _ in points if at > window[1]), default=None)
        snapshots = [timeline.Snapshot(number, timeline.stamp(run.as_of), run.run_id,
                                       run.segments[position].definition_hash, run.as_of)
                     for number, run in enumerate(runs, start=1)]
        after_run = None
        if after is not None:
            run_id = next(run for at, run in points if at == after)
            after_run = timeline.Snapshot(len(runs) + 1, after, run_id, *_run_details(engine, run_id, name, after))
        splices.append(timeline.Splice(name, runs[0].segments[position].entity, snapshots, before, after,
                                       after_run, inside))
        obsolete.extend((run_id, name) for run_id in backfilled
                        if window[0].date() <= backfilled[run_id] <= window[1].date())
        if replace:
            superseded.extend((run_id, name) for run_id in real_runs)
    if conflicts:
        described = "; ".join(f"`{name}` on {', '.join(map(str, days))}" for name, days in conflicts.items())
        raise BackfillConflictError(f"the backfill would interleave with history written by `segsql run`: {described}",
                               None, "backfill dates outside those, or pass --replace to replace that history "
                                     "with the backfill's (the runs' records stay in segsql.runs)")
    return splices, Replaced(obsolete, superseded)


def _real_runs(engine: Engine, name: str, window: tuple[dt.datetime, dt.datetime]) -> dict[str, dt.datetime]:
    """Successful real runs of `name` started inside the window, with when they started."""
    query = (exp.select(exp.column("run_id", "r"), exp.column("started_at", "r"))
             .from_(storage.table("run_segments").as_("s"))
             .join(storage.table("runs").as_("r"), on=exp.column("run_id", "r").eq(exp.column("run_id", "s")))
             .where(exp.and_(exp.column("segment", "s").eq(exp.Literal.string(name)),
                             exp.column("status", "r").eq(exp.Literal.string(storage.SUCCESS)))))
    started = {str(run_id): _moment(at) for run_id, at in engine.fetchall(query)}
    return {run_id: at for run_id, at in started.items() if window[0] <= at <= window[1]}


def _backfill_runs(engine: Engine) -> dict[str, dt.date]:
    """run_id -> as_of of every backfilled run on record."""
    if not engine.table_exists(storage.table("runs")):
        return {}
    query = exp.select("run_id", "as_of").from_(storage.table("runs")).where(
        exp.column("status").eq(exp.Literal.string(storage.BACKFILL)))
    return {str(run_id): _day(as_of) for run_id, as_of in engine.fetchall(query)}


def _run_details(engine: Engine, run_id: str, name: str, at: dt.datetime) -> tuple[str, dt.date]:
    """definition_hash and as_of of the run at a change point (for stays it opens there)."""
    query = (exp.select(exp.column("definition_hash", "s"), exp.column("as_of", "r"))
             .from_(storage.table("run_segments").as_("s"))
             .join(storage.table("runs").as_("r"), on=exp.column("run_id", "r").eq(exp.column("run_id", "s")))
             .where(exp.and_(exp.column("run_id", "s").eq(exp.Literal.string(run_id)),
                             exp.column("segment", "s").eq(exp.Literal.string(name)))))
    rows = engine.fetchall(query)
    return (str(rows[0][0]), _day(rows[0][1])) if rows else ("", at.date())


def _moment(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.fromisoformat(str(value))


def _day(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])
