"""Tables for people in the terminal (rich), plain when not a terminal."""

from __future__ import annotations

import decimal
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from segsql import formats

if TYPE_CHECKING:
    import pandas as pd
    from rich.progress import Progress

    from segsql.engines.records import RunResult, SegmentRun
    from segsql.run.backfill import BackfillResult


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> None:
    from rich.console import Console  # rich costs ~0.1 s to import: only when a table is printed
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    for index, header in enumerate(headers):
        shown = [row[index] for row in cells if row[index]]
        numeric = bool(shown) and all(formats.is_number_text(cell) for cell in shown)
        table.add_column(header, overflow="fold", justify="right" if numeric else "left")
    for row in cells:
        table.add_row(*row)
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, width=200)  # files and pipes: don't wrap at 80 columns
    console.print(table)


def run_summary(result: RunResult) -> None:
    """The table printed after every run: segment, entity, size, share, duration, status."""
    rows = [[s.name, s.entity, formats.count(s.rows), percent(s.share),
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
    return formats.percent(value)


@contextmanager
def run_progress(total: int) -> Iterator[Callable[[SegmentRun], None] | None]:
    """A progress bar on stderr for interactive runs; silent when stderr is not a terminal."""
    console = _stderr_console()
    if total < 2 or not console.is_terminal:
        yield None
        return
    with _bar(console) as bar:
        task = bar.add_task("running segments", total=total)

        def advance(segment: SegmentRun) -> None:
            bar.update(task, advance=1, description=f"{segment.name} ({segment.rows:,} members)")

        yield advance


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _bar(console: Any) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


@contextmanager
def step_progress(title: str, quiet: bool = False) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress bar on stderr for a long operation's steps (demo data, clusters, propensity,
    backfill dates): the callback takes (step done, its number, how many). Nothing at all with
    --quiet or when stderr is not a terminal (CI logs, pipes): the callback is then None."""
    console = _stderr_console()
    if quiet or not console.is_terminal:
        yield None
        return
    with _bar(console) as bar:
        task = bar.add_task(title, total=None)

        def advance(label: str, number: int, count: int) -> None:
            bar.update(task, completed=number, total=count, description=f"{title}: {label}")

        yield advance


@contextmanager
def date_progress(total: int, quiet: bool = False) -> Iterator[Callable[[Any, int, int], None] | None]:
    """A progress bar per date on stderr (backfill); silent with --quiet or when not a terminal."""
    with step_progress("backfill", quiet) as advance:
        yield None if advance is None else (lambda day, number, count: advance(f"as of {day}", number, count))


def backfill_summary(result: BackfillResult) -> None:
    """One row per date: the size of every segment, and what earlier history was replaced."""
    names = [plan.name for plan in result.runs[0].segments]
    rows = [[str(run.as_of), *[f"{plan.rows:,}" for plan in run.segments]] for run in result.runs]
    print_table(["as of", *names], rows)
    click.echo(f"backfilled {len(result.dates)} date(s) x {len(names)} segment(s) in {result.seconds:.1f} s", err=True)
    for segment, points in result.replaced.items():
        click.echo(f"{segment}: replaced the history of {len(points)} earlier run(s) in the window", err=True)


# Columns holding numbers of members or rows, in any table printed: shown with separators.
COUNT_COLUMNS = frozenset({"members", "measured", "baseline_members", "remaining", "removed", "shared", "left_size",
                           "right_size", "size", "rows", "entered", "exited", "added"})


def emit(frame: pd.DataFrame, output_format: str, title: str | None = None,
          formatters: dict[str, Any] | None = None) -> None:
    """A table as csv, JSON (one array of objects), JSON lines (one object per line) or a
    terminal table: the shapes the main --help documents."""
    if output_format == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif output_format in ("json", "jsonl"):  # pandas' to_json keeps 10 decimals: p = 4e-12 became 0
        records = [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]
        emit_records(records, [str(column) for column in frame.columns], output_format)
    else:
        chosen = {c: (formatters or {}).get(c, formats.count if c in COUNT_COLUMNS else plain) for c in frame.columns}
        rows = [[chosen[c](v) for c, v in zip(frame.columns, row, strict=True)]
                for row in frame.itertuples(index=False)]
        print_table(list(frame.columns), rows, title=title)


def emit_records(records: list[dict[str, Any]], columns: list[str], output_format: str) -> None:
    """Rows as csv, JSON or JSON lines, the shapes `emit` writes, without building a DataFrame
    (for commands whose whole process should not pay pandas' import, e.g. `compare --format json`).
    NaN and NaT are null in JSON and empty in CSV, as pandas writes them; times are ISO 8601
    (with their offset when they have one); lists (DuckDB LIST columns) stay lists."""
    clean = [{column: _json_value(row.get(column)) for column in columns} for row in records]
    if output_format == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(clean)
        return
    import json

    if output_format == "json":
        sys.stdout.write(json.dumps(clean, allow_nan=False, default=str) + "\n")
    else:
        sys.stdout.writelines(json.dumps(row, allow_nan=False, default=str) + "\n" for row in clean)


def _json_value(value: Any) -> Any:
    """A cell as a JSON value: numpy scalars and arrays as Python numbers and lists, Decimal as a
    number (NaN as null), bytes as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN and NaT (a float NaN after to_dict) alike
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "isoformat"):
        return None if str(value) == "NaT" else value.isoformat()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _json_value(value.tolist())
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if value is not None and str(value) == "<NA>":  # pandas.NA
        return None
    return value


def plain(value: Any) -> str:
    """A table cell: floats without float noise or exponents, integers (keys) as they are."""
    if isinstance(value, float) and not math.isnan(value):
        return formats.number(value) if abs(value) < 1 else formats.cell(value)
    return formats.cell(value)


def number_formatter(kind: str, unit: str) -> Callable[[Any], str]:
    """A metric's values as its kind reads (formats.metric): 7.3%, 139.3%, 10,360, 4.25."""
    return lambda value: formats.metric(value, kind, unit)


def difference_formatter(kind: str, unit: str) -> Callable[[Any], str]:
    """A difference from the baseline (or a bound of its CI): +2.1 pp, +1,250."""
    return lambda value: formats.difference(value, kind, unit)


def p_value_text(value: Any) -> str:
    return formats.p_value(value)


def flag_text(value: Any) -> str:
    return {True: "*", False: "", None: "n/a"}.get(value, str(value))


