"""A segment's SCD-2 timeline with backfilled snapshots spliced in (`segsql backfill`).

A timeline is the segment's stays in `segsql.history`. Its *change points* are the instants a run
opened or closed a stay (`valid_from`, `valid_to`). A backfill evaluates the segment at dates
D1..Dn, each snapshot stamped at the last microsecond of its day (UTC, `stamp()`), and replaces
the timeline inside the window [D1 00:00, stamp(Dn)] with those snapshots:

    P (state at p, the last change point before the window)  B1 .. Bn  Q (state at q, the first after)

Stays are rebuilt as islands of consecutive snapshots a key belongs to (gaps and islands); an
island that starts at P keeps the old stay's start and opening run, one that ends at Q keeps the
old stay's end, so the timeline outside the window answers exactly as before. Stays that touch
(p, q) are deleted and replaced by the rebuilt ones; every other stay is left alone. Everything
here is a sqlglot tree; the engines' run stores execute it in their own way (DELETE + INSERT in a
transaction, or a rewrite to a new Parquet location).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from segsql.compile.keys import EntityKey
from segsql.engines import storage

END_OF_DAY = dt.time(23, 59, 59, 999999)
COLUMNS = ["segment", "entity", "entity_key", "valid_from", "valid_to", "run_id", "closed_by_run",
           "definition_hash", "as_of"]


def stamp(day: dt.date) -> dt.datetime:
    """When a backfilled run for `day` is recorded: the day's last microsecond, UTC (naive, like
    every storage timestamp). `history --at DAY` and rows with event time <= the end of DAY agree."""
    return dt.datetime.combine(day, END_OF_DAY)


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


@dataclass(frozen=True)
class Snapshot:
    """One backfilled run of a segment: its position (1..n), when, which run, what definition."""
    index: int
    at: dt.datetime
    run_id: str
    definition_hash: str
    as_of: dt.date


@dataclass
class Splice:
    """Where the backfill of one segment goes into its timeline. `before` (p) and `after` (q) are
    the nearest change points outside the window; `after_run` is the run at q, as a snapshot with
    index n + 1 (None when nothing follows the window)."""
    segment: str
    entity: str
    snapshots: list[Snapshot]
    before: dt.datetime | None = None
    after: dt.datetime | None = None
    after_run: Snapshot | None = None
    replaced: list[dt.datetime] = field(default_factory=list)  # change points inside the window

    @property
    def last(self) -> int:
        return len(self.snapshots)


def _ts(moment: dt.datetime) -> exp.Expr:
    return exp.cast(exp.Literal.string(moment.isoformat(sep=" ")), exp.DataType.Type.TIMESTAMP)


def _date(day: dt.date) -> exp.Expr:
    return exp.cast(exp.Literal.string(day.isoformat()), exp.DataType.Type.DATE)


def _segment_is(segment: str) -> exp.Condition:
    return exp.column("segment").eq(exp.Literal.string(segment))


def change_points(segment: str) -> exp.Query:
    """(instant, run) of every change in the segment's timeline: stays opened and closed."""
    history = storage.table("history")
    opened = exp.select(exp.column("valid_from").as_("changed_at"), exp.column("run_id").as_("run_id")).from_(
        history).where(_segment_is(segment))
    closed = exp.select(exp.column("valid_to").as_("changed_at"), exp.column("closed_by_run").as_("run_id")).from_(
        history.copy()).where(exp.and_(_segment_is(segment), exp.column("valid_to").is_(exp.null()).not_()))
    both = exp.union(opened, closed, distinct=False).subquery("c")
    return (exp.select(exp.column("changed_at"), exp.column("run_id")).from_(both)
            .group_by(exp.column("changed_at"), exp.column("run_id")))


def _covering(moment: dt.datetime) -> exp.Condition:
    """Stays that hold at `moment` (half-open: [valid_from, valid_to))."""
    return exp.and_(exp.LTE(this=exp.column("valid_from"), expression=_ts(moment)),
                    exp.or_(exp.column("valid_to").is_(exp.null()),
                            exp.GT(this=exp.column("valid_to"), expression=_ts(moment))))


def affected(splice: Splice) -> exp.Condition:
    """The stays of the segment the backfill replaces: those alive somewhere in (p, q]."""
    conditions: list[exp.Expr] = [_segment_is(splice.segment)]
    if splice.before is not None:
        conditions.append(exp.or_(exp.column("valid_to").is_(exp.null()),
                                  exp.GT(this=exp.column("valid_to"), expression=_ts(splice.before))))
    if splice.after is not None:
        conditions.append(exp.LTE(this=exp.column("valid_from"), expression=_ts(splice.after)))
    return exp.and_(*conditions)


_T, _V, _D = exp.DataType.Type.TIMESTAMP, exp.DataType.Type.VARCHAR, exp.DataType.Type.DATE


def rebuilt(splice: Splice, members: exp.Query, has_history: bool) -> exp.Select:
    """The stays that replace the affected ones. `members` yields (snapshot_index, entity_key):
    the keys of each backfilled snapshot, one row per key and snapshot."""
    history, last = storage.table("history"), splice.last
    ctes: dict[str, exp.Query] = {}
    states: list[exp.Query] = [exp.select("snapshot_index", "entity_key").from_(members.subquery("m"))]
    if has_history and splice.before is not None:  # P = index 0: the stays alive at p
        ctes["before_window"] = exp.select("entity_key", "valid_from", "run_id", "definition_hash", "as_of").from_(
            history.copy()).where(exp.and_(_segment_is(splice.segment), _covering(splice.before)))
        states.append(exp.select(exp.Literal.number(0).as_("snapshot_index"), "entity_key").from_("before_window"))
    if has_history and splice.after is not None:  # Q = index n + 1: the stays alive at q
        ctes["after_window"] = exp.select("entity_key", "valid_to", "closed_by_run").from_(history.copy()).where(
            exp.and_(_segment_is(splice.segment), _covering(splice.after)))
        states.append(exp.select(exp.Literal.number(last + 1).as_("snapshot_index"), "entity_key")
                      .from_("after_window"))
    runs = [*splice.snapshots, *([splice.after_run] if splice.after_run else [])]
    ctes["snapshot_runs"] = union_all([exp.select(
        exp.Literal.number(r.index).as_("snapshot_index"), _ts(r.at).as_("at"), exp.Literal.string(r.run_id)
        .as_("run_id"), exp.Literal.string(r.definition_hash).as_("definition_hash"), _date(r.as_of).as_("as_of"))
        for r in runs])
    # consecutive snapshots of one key share index - row_number(): one island, one stay
    order = exp.Window(this=exp.func("row_number"), partition_by=[exp.column("entity_key")],
                       order=exp.Order(expressions=[exp.Ordered(this=exp.column("snapshot_index"))]))
    grouped = exp.select("entity_key", "snapshot_index", exp.Sub(this=exp.column("snapshot_index"), expression=order)
                         .as_("island")).from_(union_all(states).subquery("s"))
    ctes["islands"] = (exp.select("entity_key", exp.func("min", exp.column("snapshot_index")).as_("first_index"),
                                  exp.func("max", exp.column("snapshot_index")).as_("last_index"))
                       .from_(grouped.subquery("g")).group_by("entity_key", "island"))
    starts_before = exp.column("first_index", "i").eq(0)  # keeps the old stay's start
    ends_after = exp.column("last_index", "i").eq(last + 1)  # keeps the old stay's end

    def pick(keep: exp.Expr, alias: str, column: str, kind: Any, new: exp.Expr) -> exp.Expr:
        window = "before_window" if alias == "b" else "after_window"
        old = exp.column(column, alias) if window in ctes else exp.cast(exp.null(), kind)
        return exp.Case(ifs=[exp.If(this=keep.copy(), true=old)], default=new)

    query = exp.select(
        exp.Literal.string(splice.segment).as_("segment"), exp.Literal.string(splice.entity).as_("entity"),
        exp.column("entity_key", "i").as_("entity_key"),
        pick(starts_before, "b", "valid_from", _T, exp.column("at", "o")).as_("valid_from"),
        pick(ends_after, "a", "valid_to", _T, exp.column("at", "c")).as_("valid_to"),
        pick(starts_before, "b", "run_id", _V, exp.column("run_id", "o")).as_("run_id"),
        pick(ends_after, "a", "closed_by_run", _V, exp.column("run_id", "c")).as_("closed_by_run"),
        pick(starts_before, "b", "definition_hash", _V, exp.column("definition_hash", "o")).as_("definition_hash"),
        pick(starts_before, "b", "as_of", _D, exp.column("as_of", "o")).as_("as_of"),
    ).from_(exp.to_table("islands").as_("i"))
    for window, alias in (("before_window", "b"), ("after_window", "a")):
        if window in ctes:
            query = query.join(exp.to_table(window).as_(alias), join_type="left",
                               on=exp.column("entity_key", alias).eq(exp.column("entity_key", "i")))
    next_index = exp.Add(this=exp.column("last_index", "i"), expression=exp.Literal.number(1))
    query = (query.join(exp.to_table("snapshot_runs").as_("o"), join_type="left",
                        on=exp.column("snapshot_index", "o").eq(exp.column("first_index", "i")))
             .join(exp.to_table("snapshot_runs").as_("c"), join_type="left",
                   on=exp.column("snapshot_index", "c").eq(next_index)))
    for name, cte in ctes.items():
        query = query.with_(name, as_=cte)
    return query


def union_all(parts: list[exp.Query]) -> exp.Query:
    """UNION ALL of the parts, left to right."""
    query = parts[0]
    for part in parts[1:]:
        query = exp.union(query, part, distinct=False)
    return query


def members_query(query: exp.Query, key: EntityKey, index: int) -> exp.Select:
    """(snapshot_index, entity_key) of one evaluated segment: what a run store stages per date."""
    return exp.select(exp.Literal.number(index).as_("snapshot_index"), key.text().as_("entity_key")).from_(
        query.subquery("result"))
