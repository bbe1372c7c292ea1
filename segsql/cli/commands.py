"""init, compile, validate, list: each parses arguments, calls Project, prints."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from segsql.cli.main import EXIT_FAILURE, cli, report_error
from segsql.cli.options import open_project, project_options, selection_options, target_option
from segsql.errors import SegsqlError


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Write into a folder that is not empty (rewrites starter files).")
def init(directory: Path, force: bool) -> None:
    """Create a project in DIRECTORY: segsql.yml, starter segments, macros."""
    from segsql.scaffold import create_project

    written = create_project(directory, force=force)
    click.echo(f"created {directory} ({len(written)} files); next: segsql validate --project {directory}")


@cli.command(name="compile")
@project_options
@selection_options
@target_option
def compile_(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None,
             as_of: str | None, select: tuple[str, ...], exclude: tuple[str, ...],
             targets: tuple[str, ...]) -> None:
    """Render, validate and write compiled SQL to target/compiled/ plus target/manifest.json."""
    from segsql.target import write_target

    project = open_project(project_dir, var_pairs, vars_json, as_of)
    names = project.select(list(select), list(exclude), ordered=False)
    dialects = [project.config.dialect, *[t for t in targets if t != project.config.dialect]]
    report = write_target(project, names, list(dict.fromkeys(dialects)))
    if report.errors:
        _fail(report.errors)
    click.echo(f"compiled {len(names)} segment(s) for {', '.join(dict.fromkeys(dialects))} "
               f"({report.reused} unchanged) into {project.root / 'target'}")


@cli.command()
@project_options
@selection_options
def validate(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None,
             as_of: str | None, select: tuple[str, ...], exclude: tuple[str, ...]) -> None:
    """Check every selected segment; print `path:line:col: message` per error, exit 1 if any."""
    project = open_project(project_dir, var_pairs, vars_json, as_of)
    names = project.select(list(select), list(exclude))
    errors = project.validate(names) if names else list(project.problems)
    for warning in project.warnings:
        click.echo(click.style("warning: ", fg="yellow") + str(warning), err=True)
    if errors:
        _fail(errors)
    click.echo(f"{len(names)} segment(s) valid")


@cli.command(name="list")
@project_options
@selection_options
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def list_(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None,
          select: tuple[str, ...], exclude: tuple[str, ...], output_format: str) -> None:
    """List segments with entity, tags, refs and description (broken ones marked)."""
    project = open_project(project_dir, var_pairs, vars_json, as_of)
    rows: list[dict[str, Any]] = []
    for name in project.select(list(select), list(exclude)):
        try:
            segment = project.compiled(name)
            rows.append({"name": name, "entity": segment.entity, "tags": segment.config.tags,
                         "refs": segment.refs, "path": segment.path,
                         "description": segment.config.description, "status": "ok"})
        except SegsqlError as error:
            rows.append({"name": name, "entity": None, "tags": [], "refs": [],
                         "path": project.segments[name].shown_path, "description": "",
                         "status": f"error: {error.message}"})
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    from segsql.cli.render import print_table

    print_table(["name", "entity", "tags", "refs", "description", "status"],
                [[r["name"], r["entity"] or "", ",".join(r["tags"]), ",".join(r["refs"]),
                  r["description"], r["status"]] for r in rows])


def _fail(errors: list[SegsqlError]) -> None:
    for error in errors:
        report_error(error)
    click.echo(f"{len(errors)} error(s)", err=True)
    sys.exit(EXIT_FAILURE)
