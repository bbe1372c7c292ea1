"""Membership over time, from the SCD-2 table segsql.history: who entered and left per run, and
who was a member at a given moment."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlglot import exp

from segsql.engines import storage
from segsql.errors import UsageError

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine


def _require(engine: Engine, name: str) -> None:
    if not engine.table_exists(storage.table("history")):
        raise UsageError(f"segment `{name}` has no history yet", None, f"run `segsql run --select {name}` first")


def changes(compiler: Compiler, engine: Engine, name: str, since: dt.date | None = None) -> pd.DataFrame:
    """One row per run of `name`: when, as_of, members entered and exited, size after the run."""
    compiler.segment(name)
    _require(engine, name)
    history = storage.table("history")
    entered = (exp.select(exp.column("run_id"), exp.func("count", exp.Star()).as_("entered"),
                          exp.Literal.number(0).as_("exited"))
               .from_(history).where(exp.column("segment").eq(exp.Placeholder())).group_by("run_id"))
    exited = (exp.select(exp.column("closed_by_run").as_("run_id"), exp.Literal.number(0).as_("entered"),
                         exp.func("count", exp.Star()).as_("exited"))
              .from_(history.copy()).where(exp.and_(exp.column("segment").eq(exp.Placeholder()),
                                                    exp.column("closed_by_run").is_(exp.null()).not_()))
              .group_by("closed_by_run"))
    moves = exp.union(entered, exited, distinct=False).subquery("m")
    query = (exp.select(exp.column("run_id", "s"), exp.column("started_at", "r"), exp.column("as_of", "r"),
                        exp.func("coalesce", exp.func("sum", exp.column("entered", "m")), 0).as_("entered"),
                        exp.func("coalesce", exp.func("sum", exp.column("exited", "m")), 0).as_("exited"),
                        exp.column("row_count", "s").as_("size"), exp.column("status", "s"))
             .from_(storage.table("run_segments").as_("s"))
             .join(storage.table("runs").as_("r"), on=exp.column("run_id", "r").eq(exp.column("run_id", "s")))
             .join(moves, on=exp.column("run_id", "m").eq(exp.column("run_id", "s")), join_type="left")
             .where(exp.and_(exp.column("segment", "s").eq(exp.Placeholder()),
                             exp.column("status", "s").like(exp.Literal.string("success%"))))
             .group_by(exp.column("run_id", "s"), exp.column("started_at", "r"), exp.column("as_of", "r"),
                       exp.column("row_count", "s"), exp.column("status", "s"))
             .order_by(exp.column("started_at", "r")))
    rows = engine.fetchall(query, [name, name, name])
    frame = pd.DataFrame(rows, columns=["run_id", "started_at", "as_of", "entered", "exited", "size", "status"])
    if since is not None:
        frame = frame[pd.to_datetime(frame["started_at"]) >= pd.Timestamp(since)]
    return frame.reset_index(drop=True)


def _moment(when: dt.date | dt.datetime) -> tuple[dt.datetime, bool]:
    """The instant asked about, and whether it is the end of a day (just before its next midnight)."""
    if isinstance(when, dt.datetime):
        return when, False
    return dt.datetime.combine(when + dt.timedelta(days=1), dt.time()), True


def _until(column: str, moment: dt.datetime, end_of_day: bool) -> exp.Expr:
    """`column` at or before the instant (strictly before the next midnight for a date)."""
    cls = exp.LT if end_of_day else exp.LTE
    return cls(this=exp.column(column), expression=exp.Placeholder())


def members_at(compiler: Compiler, engine: Engine, name: str, when: dt.date | dt.datetime) -> list[str]:
    """Keys (as text) of the members of `name` at `when`. Stays are half-open [valid_from,
    valid_to): at the instant of a run, its result counts. A date means the end of that day
    (UTC): everything that happened during the day counts, including a run backfilled for it."""
    compiler.segment(name)
    _require(engine, name)
    moment, end_of_day = _moment(when)
    not_ended = (exp.GTE if end_of_day else exp.GT)(this=exp.column("valid_to"), expression=exp.Placeholder())
    query = (exp.select("entity_key").from_(storage.table("history"))
             .where(exp.and_(exp.column("segment").eq(exp.Placeholder()), _until("valid_from", moment, end_of_day),
                             exp.or_(exp.column("valid_to").is_(exp.null()), not_ended)))
             .order_by("entity_key"))
    return [str(row[0]) for row in engine.fetchall(query, [name, moment, moment])]


@dataclass
class Moment:
    """The answer of `history --at`: the members, and the run they come from (the latest run of
    the segment at or before the moment, real or backfilled). `covered` is False when the moment
    is before the segment's first run: nothing is known then, which is not the same as empty."""
    members: list[str]
    run_id: str | None
    as_of: dt.date | None
    backfilled: bool
    first_run_as_of: dt.date | None

    @property
    def covered(self) -> bool:
        return self.run_id is not None


def at(compiler: Compiler, engine: Engine, name: str, when: dt.date | dt.datetime) -> Moment:
    """Members of `name` at `when` and the run that answers (see Moment)."""
    members = members_at(compiler, engine, name, when)
    moment, end_of_day = _moment(when)
    runs = (exp.select(exp.column("run_id", "r"), exp.column("as_of", "r"), exp.column("status", "r"),
                       exp.column("started_at", "r"))
            .from_(storage.table("run_segments").as_("s"))
            .join(storage.table("runs").as_("r"), on=exp.column("run_id", "r").eq(exp.column("run_id", "s")))
            .where(exp.and_(exp.column("segment", "s").eq(exp.Placeholder()),
                            exp.column("status", "s").like(exp.Literal.string("success%"))))
            .order_by(exp.column("started_at", "r")))
    rows: list[tuple[Any, ...]] = engine.fetchall(runs, [name])
    limit = moment.replace(tzinfo=None)
    earlier = [r for r in rows if (r[3] < limit if end_of_day else r[3] <= limit)]
    first = _day(rows[0][1]) if rows else None
    if not earlier:
        return Moment(members, None, None, False, first)
    run_id, as_of, status, _ = earlier[-1]
    return Moment(members, str(run_id), _day(as_of), status == storage.BACKFILL, first)


def _day(value: Any) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value if isinstance(value, dt.date) \
        else dt.date.fromisoformat(str(value)[:10])
