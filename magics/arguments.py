"""Argument parsers of the magics, built from the CLI's own option definitions (click)."""

from __future__ import annotations

import shlex
from typing import Any

import click

from segsql.cli.options import input_options, selection_options
from segsql.config import DIALECTS
from segsql.errors import UsageError


def parse(command: click.Command, line: str) -> dict[str, Any]:
    """Parse a magic's line like a command line; usage problems become UsageError."""
    try:
        args = shlex.split(line)
    except ValueError as error:
        raise UsageError(f"cannot read the magic's arguments: {error}", None, "check the quotes") from None
    if "--help" in args:  # shown once, as the magic's message (click would also print it itself)
        raise UsageError(command.get_help(click.Context(command, info_name=command.name)), None)
    try:
        with command.make_context(command.name or "magic", args) as context:
            return dict(context.params)
    except click.ClickException as error:
        raise UsageError(error.format_message(), None, f"see `{command.name} --help`") from None


@click.command(name="%%segment")
@click.argument("name")
@click.option("--entity", help="The entity, when the cell has no config() call.")
@click.option("--save", is_flag=True, help="Write the cell to segments_sql/NAME.sql.")
@click.option("--force", is_flag=True, help="With --save: overwrite a file changed outside this notebook.")
@click.option("--preview", "page_size", type=click.IntRange(min=1, max=1000), default=10, show_default=True,
              help="Members per page in the preview.")
@click.option("--no-run", "no_run", is_flag=True, help="Validate (and save) only; show the compiled SQL.")
@click.option("--target", type=click.Choice(DIALECTS), help="Show the compiled SQL for this dialect.")
@click.option("--param", "params", multiple=True, metavar="NAME=VARIABLE",
              help="Bind a notebook variable to param()/var() NAME, as a literal.")
@click.option("--unmask", is_flag=True, help="Show declared PII columns in clear (logged).")
@input_options
def segment_command(**kwargs: Any) -> dict[str, Any]:
    """Author a segment in a cell: validate, preview, optionally save."""
    return kwargs


@click.command(name="%segment_compare")
@click.argument("segments", nargs=-1, required=True)
@click.option("--metrics", "-m", "metric_list", required=True, metavar="M1,M2")
@click.option("--baseline", default="rest", show_default=True)
@input_options
def compare_command(**kwargs: Any) -> dict[str, Any]:
    """Compare segments on metrics against a baseline."""
    return kwargs


@click.command(name="%segment_overlap")
@click.argument("segments", nargs=-1, required=True)
@input_options
def overlap_command(**kwargs: Any) -> dict[str, Any]:
    """Pairwise overlap of segments."""
    return kwargs


@click.command(name="%segment_report")
@selection_options
@input_options
def report_command(**kwargs: Any) -> dict[str, Any]:
    """The segment validation report."""
    return kwargs


@click.command(name="%segment_diff")
@click.option("--base", metavar="REV", help="Git revision to compare with (default: merge base with main).")
@click.option("--samples", type=click.IntRange(min=0, max=1000), default=5, show_default=True)
@selection_options
@input_options
def diff_command(**kwargs: Any) -> dict[str, Any]:
    """What the working tree changes against a git revision, on the same data."""
    return kwargs


@click.command(name="%segment_cohorts")
@click.argument("entity")
@click.argument("source")
@click.argument("at")
@click.option("--period", type=click.Choice(["month", "week", "day"]), default="month", show_default=True)
@click.option("--key", help="Column of SOURCE holding the entity key (default: the entity's key).")
@click.option("--revenue", help="Revenue column of SOURCE (adds revenue retention).")
@click.option("--start", "start", metavar="SOURCE.COLUMN", help="Cohort by a start date instead of first activity.")
@click.option("--segments", metavar="A,B", help="Split every cohort by these segments.")
@click.option("--value", type=click.Choice(["retention", "revenue_retention", "active", "revenue"]),
              default="retention", show_default=True)
@input_options
def cohorts_command(**kwargs: Any) -> dict[str, Any]:
    """Cohort retention triangle and curves."""
    return kwargs


@click.command(name="%segsql run")
@selection_options
@input_options
def run_command(**kwargs: Any) -> dict[str, Any]:
    """Run segments from the notebook (closes the preview connection first)."""
    return kwargs
