"""Tables for people in the terminal (rich), plain when not a terminal."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd

    from segsql.engines.records import RunResult, SegmentRun
    from segsql.run.backfill import BackfillResult


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> None:
    table = Table(title=title, show_lines=False, header_style="bold")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, width=200)  # files and pipes: don't wrap at 80 columns
    console.print(table)


def run_summary(result: RunResult) -> None:
    """The table printed after every run: segment, entity, size, share, duration, status."""
    rows = [[s.name, s.entity, "" if s.rows is None else f"{s.rows:,}", percent(s.share),
             "" if s.duration_ms is None else f"{s.duration_ms / 1000:.2f} s", s.status]
            for s in result.segments]
    print_table(["segment", "entity", "size", "share", "duration", "status"], rows,
                title=f"run {result.run_id} (as of {result.as_of}): {result.status}")
    if result.history_purged:
        click.echo(f"history: purged {result.history_purged:,} stay(s) older than the retention period", err=True)
    for hook in result.hooks:
        if hook.status == "failed":
            click.echo(click.style("warning: ", fg="yellow") + f"hook {hook.hook} failed after {hook.attempts} "
                       f"attempt(s): {hook.error} (the run is committed; rerun the hook's job by hand)", err=True)
        else:
            click.echo(f"hook {hook.hook}: {hook.status}", err=True)


def percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


@contextmanager
def run_progress(total: int) -> Iterator[Callable[[SegmentRun], None] | None]:
    """A progress bar on stderr for interactive runs; silent when stderr is not a terminal."""
    console = Console(stderr=True)
    if total < 2 or not console.is_terminal:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("running segments", total=total)

        def advance(segment: SegmentRun) -> None:
            bar.update(task, advance=1, description=f"{segment.name} ({segment.rows:,} members)")

        yield advance


@contextmanager
def date_progress(total: int, quiet: bool = False) -> Iterator[Callable[[Any, int, int], None] | None]:
    """A progress bar per date on stderr (backfill); silent with --quiet or when not a terminal."""
    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("evaluating dates", total=total)

        def advance(day: Any, number: int, count: int) -> None:
            bar.update(task, completed=number, description=f"as of {day}")

        yield advance


def backfill_summary(result: BackfillResult) -> None:
    """One row per date: the size of every segment, and what earlier history was replaced."""
    names = [plan.name for plan in result.runs[0].segments]
    rows = [[str(run.as_of), *[f"{plan.rows:,}" for plan in run.segments]] for run in result.runs]
    print_table(["as of", *names], rows)
    click.echo(f"backfilled {len(result.dates)} date(s) x {len(names)} segment(s) in {result.seconds:.1f} s", err=True)
    for segment, points in result.replaced.items():
        click.echo(f"{segment}: replaced the history of {len(points)} earlier run(s) in the window", err=True)


def emit(frame: pd.DataFrame, output_format: str, title: str | None = None,
          formatters: dict[str, Any] | None = None) -> None:
    """A table as csv, NDJSON (`--format json`: one object per line) or a terminal table."""
    if output_format == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif output_format == "json":
        sys.stdout.write(frame.to_json(orient="records", lines=True, date_format="iso"))
    else:
        formatters = formatters or {}
        rows = [[formatters.get(c, plain)(v) for c, v in zip(frame.columns, row, strict=True)]
                for row in frame.itertuples(index=False)]
        print_table(list(frame.columns), rows, title=title)


def plain(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def number_formatter(kind: str, unit: str) -> Any:
    def show(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if kind == "proportion" or (kind == "ratio" and unit == "" and abs(float(value)) <= 5):
            return f"{float(value):.1%}" if kind == "proportion" else f"{float(value):.3f}"
        if unit == "currency":
            return f"{float(value):,.2f}"
        return plain(float(value))
    return show


def p_value_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.2g}" if value >= 1e-4 else "<1e-4"


def flag_text(value: Any) -> str:
    return {True: "*", False: "", None: "n/a"}.get(value, str(value))


