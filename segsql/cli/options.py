"""Options shared by every command and, with the same meaning, by the notebook magics
(magics/arguments.py builds its parsers from these same decorators)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from segsql.config import DIALECTS

if TYPE_CHECKING:
    from segsql.project import Project

F = Callable[..., Any]

project_dir_option = click.option("--project", "project_dir", type=click.Path(path_type=Path), default=".",
                                  show_default=True, help="The project folder (holding segsql.yml).")
var_option = click.option("--var", "var_pairs", multiple=True, metavar="KEY=VALUE",
                          help="Override a var() or param() value; repeatable.")
vars_option = click.option("--vars", "vars_json", metavar="JSON",
                           help="Override var()/param() values from a JSON object.")
as_of_option = click.option("--as-of", "as_of", metavar="DATE",
                            help="Evaluation date (YYYY-MM-DD); default `as_of:` in segsql.yml, else today.")
select_option = click.option("--select", "-s", "select", multiple=True, metavar="SELECTOR",
                             help="Segments to include: name, tag:x, path:dir, +name (with upstream), "
                                  "name+ (with downstream).")
profile_option = click.option("--target", "target", metavar="PROFILE",
                              help="Run on this connection from `profiles:` in segsql.yml (default: `connection:`).")
exclude_option = click.option("--exclude", "exclude", multiple=True, metavar="SELECTOR", help="Segments to leave out.")


def _apply(function: F, decorators: list[Callable[[F], F]]) -> F:
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def project_options(function: F) -> F:
    """--project, --var, --vars, --as-of: which project and with which inputs."""
    return _apply(function, [project_dir_option, var_option, vars_option, as_of_option])


def engine_options(function: F) -> F:
    """--project, --target PROFILE, --var, --vars, --as-of: for commands that touch data."""
    return _apply(function, [project_dir_option, profile_option, var_option, vars_option, as_of_option])


def input_options(function: F) -> F:
    """--var, --vars, --as-of (the magics take the project from the session)."""
    return _apply(function, [var_option, vars_option, as_of_option])


def selection_options(function: F) -> F:
    """--select and --exclude, dbt style."""
    return _apply(function, [select_option, exclude_option])


def target_option(function: F) -> F:
    return click.option("--target", "-t", "targets", multiple=True, metavar="DIALECT|PROFILE",
                        help=f"Also compile for this dialect ({', '.join(DIALECTS)}) or the dialect of a "
                             "profile; repeatable.")(function)


def open_project(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None,
                 as_of: str | None, target: str | None = None) -> Project:
    from segsql.config.inputs import parse_vars  # the project's modules load when a command runs, not for --help
    from segsql.project import Project

    return Project.load(project_dir, vars=parse_vars(list(var_pairs), vars_json), as_of=as_of, target=target)


# --format of every command that prints a table: json is one document (an array of objects),
# jsonl one object per line (the main --help states it, docs/cli.md with it).
TABLE_FORMATS = click.Choice(["table", "csv", "json", "jsonl"])
