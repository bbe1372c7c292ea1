"""`segsql` entry point: the command group and the one place errors become exit codes."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Any

import click

from segsql.errors import SegsqlError, SelectionError, UsageError, missing_dependency

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class SegsqlGroup(click.Group):
    """Turns every SegsqlError into one readable line and an exit code; no tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SegsqlError as error:
            report_error(error)
            sys.exit(EXIT_USAGE if isinstance(error, UsageError | SelectionError) else EXIT_FAILURE)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:  # `segsql show ... | head`: the reader left; stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_OK)
        except Exception as error:  # a bug in segsql: say so, keep the traceback behind --debug
            missing = missing_dependency(error) if isinstance(error, ModuleNotFoundError) else None
            if missing is not None:  # not a bug: an optional dependency is not installed
                report_error(missing)
                sys.exit(EXIT_USAGE)
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            from segsql.privacy.masking import scrub

            click.echo(click.style(f"internal error: {type(error).__name__}: {scrub(str(error))}", fg="red") +
                       " (run with --debug for the traceback)", err=True)
            sys.exit(EXIT_FAILURE)


def report_error(error: SegsqlError) -> None:
    """One line per error; anything that looks like an email or phone number is masked (an
    engine's message can quote a value it failed on)."""
    from segsql.privacy.masking import scrub

    click.echo(click.style("error: ", fg="red", bold=True) + scrub(str(error)), err=True)


@click.group(cls=SegsqlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
@click.version_option(package_name="segsql")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """segsql: customer segments as Jinja-templated SQL, validated before they run.

    \b
    Machine-readable output (--format), the same shape in every command:
      json   one JSON document: an array of objects, one per row (list, show,
             compare, overlap, waterfall, prioritize, validate-segments,
             metrics, readout, power, history); diff, which returns a report,
             prints one object {"base", "base_commit", "segments": [...],
             "dbt_changes": {node: {column: change}}, "dbt_note"}
      jsonl  one JSON object per line (NDJSON), for row streams: the same
             objects as json, e.g. `segsql show NAME --all --format jsonl`
      csv    a header and one line per row
    Dates are ISO 8601 strings, missing values null; messages go to stderr.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.getLogger("sqlglot").setLevel(logging.ERROR)


def main() -> None:
    cli(prog_name="segsql")
