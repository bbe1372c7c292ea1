"""Cohort retention: entities grouped by the period of their first activity (or a start date),
then counted (and their revenue summed) in each later period.

Definitions (documented in docs/methods.md):
- period: calendar `month` (default), ISO `week` (Monday) or `day`; only activity on or before
  `as_of` counts;
- cohort: the period of the entity's first activity in the activity source, or of its start date
  when `start_source`/`start_at` are given (e.g. accounts.signup_date); activity before the
  start is ignored;
- period_index: whole periods between cohort and activity (0 = the cohort's own period);
- active: distinct entities with activity in that period; retention = active / cohort size;
- revenue (optional): sum of the revenue column in that period; revenue_retention = revenue /
  the cohort's period-0 revenue (NRR by cohort when the source is MRR);
- gaps: every period from the cohort up to `as_of` appears, with 0 when nobody was active;
- by segment: with `segments`, each cohort is split by the members each segment had when the
  cohort formed: the segment evaluated as of the last day of the cohort's period (as_of for the
  current period), through the point-in-time reads of docs/point-in-time.md. Splitting by
  today's members instead would keep only the survivors of each cohort (a segment such as
  `high_mrr_accounts` would show ~100% retention everywhere); `membership='current'` gives that
  split from the segments' last runs, for comparison.
The counting runs in the engine (one query per step); the zero-filling grid is built in pandas.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
from sqlglot import exp

from segsql import formats
from segsql.engines import storage
from segsql.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine

PERIODS = ("month", "week", "day")
MEMBERSHIPS = ("at_cohort", "current")


@dataclass
class Cohorts:
    frame: pd.DataFrame  # [segment,] cohort, period_index, cohort_size, active, retention[, revenue, ...]
    period: str

    def triangle(self, value: str = "retention", segment: str | None = None) -> pd.DataFrame:
        """Cohorts as rows, period_index as columns (the classic triangle)."""
        frame = self.frame if segment is None else self.frame[self.frame["segment"] == segment]
        return frame.pivot_table(index="cohort", columns="period_index", values=value, aggfunc="sum")

    def _repr_html_(self) -> str:
        return triangle_html(self)


def cohorts(compiler: Compiler, engine: Engine, entity: str, source: str, at: str, period: str = "month",
            key: str | None = None, revenue: str | None = None, start_source: str | None = None,
            start_at: str | None = None, segments: list[str] | None = None,
            membership: str = "at_cohort") -> Cohorts:
    if membership not in MEMBERSHIPS:
        raise UsageError(f"unknown membership `{membership}`", None, f"choose one of {', '.join(MEMBERSHIPS)}")
    if period not in PERIODS:
        raise UsageError(f"unknown period `{period}`", None, f"choose one of {', '.join(PERIODS)}")
    if entity not in compiler.config.entities:
        raise UsageError(f"unknown entity `{entity}`", None, did_you_mean(entity, compiler.config.entities))
    for name in [source, *([start_source] if start_source else [])]:
        if name not in compiler.config.sources:
            raise UsageError(f"unknown source `{name}`", None, did_you_mean(name, compiler.config.sources))
    if (start_source is None) != (start_at is None):
        raise UsageError("give both start_source and start_at, or neither", None, "e.g. accounts / signup_date")
    key = key or compiler.config.entities[entity].single_key(entity, "cohorts")

    def table(name: str) -> exp.Expr:
        return compiler.source_relation(name)

    as_of = exp.cast(exp.Literal.string(compiler.as_of.isoformat()), exp.DataType.Type.DATE)
    day = exp.cast(exp.column(at), exp.DataType.Type.DATE)
    values = [exp.column(key).as_("k"), _truncate(day, period).as_("p")]
    if revenue:
        values.append(exp.column(revenue).as_("revenue"))
    activity = exp.select(*values).from_(table(source)).where(
        exp.and_(day.copy() <= as_of, exp.column(key).is_(exp.null()).not_()))
    if start_source and start_at:
        start_day = exp.cast(exp.column(start_at), exp.DataType.Type.DATE)
        starts = exp.select(exp.column(key).as_("k"), _truncate(start_day, period).as_("c")).from_(
            table(start_source)).where(exp.and_(start_day.copy() <= as_of.copy(),
                                                exp.column(key).is_(exp.null()).not_()))
    else:
        starts = exp.select("k", exp.func("min", exp.column("p")).as_("c")).from_(
            activity.copy().subquery("a")).group_by("k")
    engine.prepare_sources()
    for name in segments or []:
        if compiler.entity_of(name) != entity:
            raise UsageError(f"segment `{name}` is about {compiler.entity_of(name)}s, not {entity}s", None)
    if segments and membership == "current":
        groups = _current_groups(compiler, engine, segments, entity)
    elif segments:
        cohort_starts = [row[0] for row in engine.fetchall(exp.select("c").distinct().from_(starts.subquery("s")))]
        groups = _groups_at_cohort(compiler, segments, entity, cohort_starts, period)
    else:
        groups = None
    query = _counts(activity, starts, groups, period, bool(revenue))
    sizes_query, counts_query = query
    sizes = pd.DataFrame(engine.fetchall(sizes_query), columns=["segment", "cohort", "cohort_size"])
    counts = pd.DataFrame(engine.fetchall(counts_query),
                          columns=["segment", "cohort", "period_index", "active", "revenue"])
    return Cohorts(_grid(sizes, counts, compiler.as_of, period, bool(revenue), bool(segments)), period)


def _truncate(day: exp.Expr, period: str) -> exp.Expr:
    if period == "day":
        return day
    truncated = exp.DateTrunc(this=day, unit=exp.var(period.upper()))  # type: ignore[no-untyped-call]
    return exp.cast(truncated, exp.DataType.Type.DATE)


def _index(cohort: exp.Expr, when: exp.Expr, period: str) -> exp.Expr:
    if period == "month":
        def months(d: exp.Expr) -> exp.Expr:
            return exp.Add(this=exp.Mul(this=exp.Extract(this=exp.var("YEAR"), expression=d),
                                        expression=exp.Literal.number(12)),
                           expression=exp.Extract(this=exp.var("MONTH"), expression=d.copy()))
        return exp.Sub(this=months(when), expression=exp.Paren(this=months(cohort)))
    days = exp.DateDiff(this=when, expression=cohort, unit=exp.var("DAY"))
    if period == "day":
        return days
    return exp.cast(exp.func("floor", exp.Div(this=exp.cast(days, exp.DataType.Type.DOUBLE),
                                              expression=exp.Literal.number(7))), exp.DataType.Type.INT)


def _union(parts: list[exp.Query]) -> exp.Query:
    union = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    return union


def _member_rows(name: str, key: str, relation: exp.Expr, cohort: exp.Expr) -> exp.Select:
    return exp.select(exp.Literal.string(name).as_("segment"), cohort.as_("gc"),
                      exp.cast(exp.column(key), exp.DataType.Type.VARCHAR).as_("sk")).from_(relation)


def _current_groups(compiler: Compiler, engine: Engine, segments: list[str], entity: str) -> exp.Query:
    """(segment, NULL, key) rows from the segments' last runs (today's members)."""
    key = compiler.config.entities[entity].single_key(entity, "cohorts")
    missing = [s for s in segments if not engine.table_exists(storage.segment_table(s))]
    if missing:
        raise UsageError(f"segment `{missing[0]}` has no results yet", None,
                         f"run it first: segsql run -s {missing[0]}")
    no_cohort = exp.cast(exp.null(), exp.DataType.Type.DATE)
    return _union([_member_rows(name, key, storage.segment_table(name), no_cohort.copy()) for name in segments])


def period_end(start: dt.date, period: str) -> dt.date:
    """The last day of the period that starts on `start`."""
    if period == "day":
        return start
    if period == "week":
        return start + dt.timedelta(days=6)
    first_of_next = (start.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return first_of_next - dt.timedelta(days=1)


def _groups_at_cohort(compiler: Compiler, segments: list[str], entity: str, cohort_starts: list[object],
                      period: str) -> exp.Query:
    """(segment, cohort, key) rows: each segment's members as of the end of each cohort's period."""
    key = compiler.config.entities[entity].single_key(entity, "cohorts")
    parts: list[exp.Query] = []
    for value in sorted(cohort_starts, key=str):
        start = value if isinstance(value, dt.date) and not isinstance(value, dt.datetime) else \
            pd.Timestamp(value).date()  # type: ignore[arg-type]
        formed = compiler.with_options(as_of=min(period_end(start, period), compiler.as_of))
        literal = exp.cast(exp.Literal.string(start.isoformat()), exp.DataType.Type.DATE)
        parts.extend(_member_rows(name, key, formed.tree(name).subquery("seg"), literal.copy()) for name in segments)
    if not parts:  # no activity at all: an empty relation of the same shape
        empty = exp.select(exp.Literal.string("").as_("segment"),
                           exp.cast(exp.null(), exp.DataType.Type.DATE).as_("gc"),
                           exp.cast(exp.null(), exp.DataType.Type.VARCHAR).as_("sk")).where(exp.false())
        return empty
    return _union(parts)


def _counts(activity: exp.Select, starts: exp.Select, groups: exp.Query | None, period: str,
            with_revenue: bool) -> tuple[exp.Select, exp.Select]:
    cohort_rows = exp.select(exp.column("k", "s"), exp.column("c", "s")).from_(starts.subquery("s"))
    segment: exp.Expr = exp.Literal.string("")
    if groups is not None:
        same_cohort = exp.or_(exp.column("gc", "g").is_(exp.null()),
                              exp.column("gc", "g").eq(exp.column("c", "s")))
        cohort_rows = cohort_rows.join(groups.subquery("g"), on=exp.and_(exp.column("sk", "g").eq(
            exp.cast(exp.column("k", "s"), exp.DataType.Type.VARCHAR)), same_cohort))
        segment = exp.column("segment", "g")
    members = cohort_rows.select(segment.as_("segment"), append=True).subquery("m")
    sizes = (exp.select(exp.column("segment", "m"), exp.column("c", "m"), exp.func("count", exp.Star()))
             .from_(members.copy()).group_by(exp.column("segment", "m"), exp.column("c", "m")))
    index = _index(exp.column("c", "m"), exp.column("p", "a"), period)
    revenue = exp.func("sum", exp.column("revenue", "a")) if with_revenue else exp.cast(exp.null(),
                                                                                          exp.DataType.Type.DOUBLE)
    counts = (exp.select(exp.column("segment", "m"), exp.column("c", "m"), index.as_("period_index"),
                         exp.Count(this=exp.Distinct(expressions=[exp.column("k", "a")])), revenue)
              .from_(members).join(activity.subquery("a"), on=exp.and_(
                  exp.column("k", "a").eq(exp.column("k", "m")),
                  exp.GTE(this=exp.column("p", "a"), expression=exp.column("c", "m"))))
              .group_by(exp.column("segment", "m"), exp.column("c", "m"), index.copy()))
    return sizes, counts


def _periods_between(cohort: dt.date, as_of: dt.date, period: str) -> int:
    if period == "month":
        return (as_of.year * 12 + as_of.month) - (cohort.year * 12 + cohort.month)
    if period == "day":
        return (as_of - cohort).days
    return (as_of - dt.timedelta(days=as_of.weekday()) - cohort).days // 7  # cohorts start on Mondays


def _grid(sizes: pd.DataFrame, counts: pd.DataFrame, as_of: dt.date, period: str, with_revenue: bool,
          by_segment: bool) -> pd.DataFrame:
    """Every (cohort, period_index) from the cohort to as_of, zeros where nobody was active."""
    if sizes.empty:  # e.g. no member of the segments when any cohort formed
        columns = ["segment", "cohort", "period_index", "cohort_size", "active", "retention"]
        columns += ["revenue", "revenue_retention"] if with_revenue else []
        empty = pd.DataFrame(columns=columns)
        return empty if by_segment else empty.drop(columns=["segment"])
    rows = []
    for segment, cohort, size in sizes.itertuples(index=False):
        start = cohort if isinstance(cohort, dt.date) else pd.Timestamp(cohort).date()
        for index in range(_periods_between(start, as_of, period) + 1):
            rows.append((segment, start, index, int(size)))
    grid = pd.DataFrame(rows, columns=["segment", "cohort", "period_index", "cohort_size"])
    counts = counts.assign(cohort=[c if isinstance(c, dt.date) and not isinstance(c, dt.datetime)
                                   else pd.Timestamp(c).date() for c in counts["cohort"]],
                           period_index=counts["period_index"].astype(int))
    frame = grid.merge(counts, on=["segment", "cohort", "period_index"], how="left")
    frame["active"] = frame["active"].fillna(0).astype(int)
    frame["retention"] = frame["active"] / frame["cohort_size"]
    if with_revenue:
        frame["revenue"] = frame["revenue"].astype(float).fillna(0.0)
        base = frame[frame["period_index"] == 0].set_index(["segment", "cohort"])["revenue"]
        start = frame.set_index(["segment", "cohort"]).index.map(base)
        frame["revenue_retention"] = (frame["revenue"] / pd.Series(start, index=frame.index)).where(
            pd.Series(start, index=frame.index) > 0)
    else:
        frame = frame.drop(columns=["revenue"])
    frame = frame.sort_values(["segment", "cohort", "period_index"]).reset_index(drop=True)
    return frame if by_segment else frame.drop(columns=["segment"])


VALUE_KINDS = {"retention": formats.PERCENT, "revenue_retention": formats.PERCENT, "active": formats.COUNT,
               "revenue": formats.CURRENCY}
RATIO_CAP = 2.0  # shading stops at 200%: a 452% cell is marked, not allowed to pale every other cell


def _shade(value: float, kind: str, top: float) -> str:
    """Cell colours: ratios diverge around 100% (red below, blue above, white at 100%), capped at
    RATIO_CAP and outlined past it; counts and revenue shade from white up to the column's top."""
    if kind != formats.PERCENT:
        strength = min(max(value / top, 0.0), 1.0) if top > 0 else 0.0
        return f"background:rgba(33,102,172,{0.85 * strength:.2f});color:{'#fff' if strength > 0.6 else '#111'}"
    capped = min(max(value, 0.0), RATIO_CAP)
    strength = min(abs(capped - 1.0), 1.0)
    colour = "33,102,172" if capped >= 1 else "178,24,43"
    outline = ";outline:2px solid #24292f;outline-offset:-2px;font-weight:bold" if value > RATIO_CAP else ""
    return (f"background:rgba({colour},{0.85 * strength:.2f});color:{'#fff' if strength > 0.6 else '#111'}"
            + outline)


def triangle_html(result: Cohorts, value: str = "retention") -> str:
    """A heat-map triangle: cohorts down, periods across. Ratios on a diverging scale centred at
    100% and capped at 200% (cells beyond are outlined, their value printed); counts and revenue
    on a sequential one. Values read as segsql.formats prints them."""
    kind = VALUE_KINDS.get(value, formats.NUMBER)
    segments = sorted(result.frame["segment"].unique()) if "segment" in result.frame else [None]
    parts = []
    for segment in segments:
        table = result.triangle(value, segment)
        sizes = (result.frame if segment is None else result.frame[result.frame["segment"] == segment]) \
            .groupby("cohort")["cohort_size"].first()
        top = float(table.max().max()) if table.size else 0.0
        head = "".join(f"<th>{int(c)}</th>" for c in table.columns)
        body = []
        for cohort, row in table.iterrows():
            cells = "".join(
                "<td></td>" if pd.isna(v) else
                f"<td style='{_shade(float(v), kind, top)}' title='{html.escape(str(cohort))}, period {int(p)}'>"
                f"{html.escape(formats.metric(v, 'mean', kind))}</td>" for p, v in row.items())
            body.append(f"<tr><th>{html.escape(str(cohort))}</th><td>{formats.count(sizes[cohort])}</td>{cells}</tr>")
        title = f"<h4>{html.escape(segment)}</h4>" if segment else ""
        parts.append(f"{title}<table class='segsql-cohorts'><tr><th>cohort ({result.period})</th><th>size</th>"
                     f"{head}</tr>{''.join(body)}</table>")
    legend = ("<p style='font-size:11px;color:#57606a'>red below 100%, blue above; shading stops at 200% "
              "(outlined cells are above)</p>" if kind == formats.PERCENT else "")
    return "<div class='segsql-cohorts'>" + "".join(parts) + legend + "</div>"
