"""Shared checks for backfill on every engine: a backfill of N dates must write the history that N
runs `--as-of D` (recorded at the same instants) write, member for member."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlglot import exp

from segsql import Project
from segsql.engines import storage, timeline

DATES = [dt.date(2026, 7, 31), dt.date(2026, 8, 31), dt.date(2026, 9, 30)]


@contextmanager
def clock(monkeypatch: pytest.MonkeyPatch, moment: dt.datetime) -> Iterator[None]:
    """Runs record their history at `moment` (as if `segsql run` had been started then)."""
    with monkeypatch.context() as patch:
        patch.setattr(storage, "now", lambda: moment)
        yield


def run_on_dates(project: Project, dates: list[dt.date], select: list[str],
                 monkeypatch: pytest.MonkeyPatch) -> None:
    """One real run per date, as of that date and recorded at the date's backfill stamp."""
    for day in dates:
        with clock(monkeypatch, timeline.stamp(day)):
            assert project.with_options(as_of=day).run(select).ok


def stays(project: Project, names: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    """segment -> its stays as (key, valid_from, valid_to, as_of of the opening run, definition)."""
    query = (exp.select("segment", "entity_key", "valid_from", "valid_to", "as_of", "definition_hash")
             .from_(storage.table("history")).where(exp.column("segment").isin(*[exp.Literal.string(n) for n in names])))
    with project.engine() as engine:
        rows = engine.fetchall(query)
    found: dict[str, list[tuple[Any, ...]]] = {name: [] for name in names}
    for segment, key, start, end, as_of, definition in rows:
        day = as_of.date() if isinstance(as_of, dt.datetime) else as_of
        found[str(segment)].append((str(key), start, end, day, definition))
    return {name: sorted(rows, key=lambda r: (r[0], r[1])) for name, rows in found.items()}


def assert_backfill_equals_runs(backfilled: Project, ran: Project, names: list[str],
                                monkeypatch: pytest.MonkeyPatch, dates: list[dt.date] = DATES) -> None:
    """Backfill `names` on `backfilled`, run them date by date on `ran`, compare the stays and
    the members each history gives at every date and between dates."""
    result = backfilled.backfill(dates[0], dates[-1], "month", select=names)
    assert [run.as_of for run in result.runs] == dates
    run_on_dates(ran, dates, names, monkeypatch)
    left, right = stays(backfilled, names), stays(ran, names)
    assert sum(len(rows) for rows in left.values()) > 20  # not vacuous
    for name in names:
        assert left[name] == right[name], name
    for day in [*dates, dates[0] + dt.timedelta(days=10)]:
        for name in names:
            assert backfilled.members_at(name, day) == ran.members_at(name, day), (name, day)


def clear_history(project: Project, names: list[str]) -> None:
    with project.engine(write=True) as engine:
        engine.execute(exp.delete(storage.table("history"), where=exp.column("segment").isin(
            *[exp.Literal.string(n) for n in names])))
        engine.flush()


def assert_backfill_equals_runs_on_one_store(project: Project, names: list[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The same comparison on one database (a shared server): backfill, read, clear, run, read."""
    answers = {}
    for side in ("backfill", "runs"):
        clear_history(project, names)
        if side == "backfill":
            project.backfill(DATES[0], DATES[-1], "month", select=names)
        else:
            run_on_dates(project, DATES, names, monkeypatch)
        at = {(name, day): project.members_at(name, day) for name in names
              for day in [*DATES, DATES[0] + dt.timedelta(days=10)]}
        answers[side] = (stays(project, names), at)
    assert sum(len(rows) for rows in answers["backfill"][0].values()) > 20
    assert answers["backfill"] == answers["runs"]
