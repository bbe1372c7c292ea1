"""init, compile, validate, list: each parses arguments, calls Project, prints."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from segsql.cli.main import EXIT_FAILURE, cli, report_error
from segsql.cli.options import (
    TABLE_FORMATS,
    engine_options,
    open_project,
    project_options,
    selection_options,
    target_option,
)
from segsql.errors import SegsqlError, UsageError

if TYPE_CHECKING:
    from segsql.project import Project


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Write into a folder that is not empty (rewrites starter files).")
@click.option("--empty", is_flag=True, help="No starter library, sources or SaaS targets: a project for other data.")
def init(directory: Path, force: bool, empty: bool) -> None:
    """Create a project in DIRECTORY: segsql.yml, starter segments, macros."""
    from segsql.starter.scaffold import create_project, next_steps

    written = create_project(directory, force=force, empty=empty)
    click.echo(f"created {directory} ({len(written)} files)")
    click.echo(next_steps(directory, empty), err=True)


@cli.command(name="compile")
@project_options
@selection_options
@target_option
@click.option("--format", "output_format", type=click.Choice(["sql", "dbt"]), default="sql", show_default=True,
              help="`dbt`: write each segment as a dbt model (NAME.sql + _segsql_segments.yml) into --out; "
                   "with --target PROFILE, for the dbt target that profile reads (dbt.profiles).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for --format dbt (default: models/segments/ of the dbt project in segsql.yml).")
def compile_(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None,
             as_of: str | None, select: tuple[str, ...], exclude: tuple[str, ...],
             targets: tuple[str, ...], output_format: str = "sql", out: Path | None = None) -> None:
    """Render, validate and write compiled SQL to target/compiled/ plus target/manifest.json."""
    if output_format == "dbt":
        if len(targets) > 1:
            raise UsageError("--format dbt writes the models of one dbt target", None,
                             "give at most one --target PROFILE")
        project = open_project(project_dir, var_pairs, vars_json, as_of, targets[0] if targets else None)
        _compile_dbt(project, project.select(list(select), list(exclude), ordered=False), out)
        return
    project = open_project(project_dir, var_pairs, vars_json, as_of)
    names = project.select(list(select), list(exclude), ordered=False)
    dialects = [project.config.dialect, *[d for d in (_dialect_of(project, t) for t in targets)
                                          if d != project.config.dialect]]
    report = project.write_target(names, list(dict.fromkeys(dialects)))
    if report.errors:
        _fail(report.errors)
    click.echo(f"compiled {len(names)} segment(s) for {', '.join(dict.fromkeys(dialects))} "
               f"({report.reused} unchanged) into {project.root / 'target'}")


def _compile_dbt(project: Project, names: list[str], out: Path | None) -> None:
    errors = project.validate(names)
    if errors:
        _fail(errors)
    written = project.write_dbt_models(names, out)
    click.echo(f"wrote {len(written) - 1} dbt model(s) and {written[-1].name} into {written[-1].parent}")


@cli.command()
@engine_options
@selection_options
def validate(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None,
             as_of: str | None, select: tuple[str, ...], exclude: tuple[str, ...], target: str | None = None) -> None:
    """Check every selected segment; print `path:line:col: message` per error, exit 1 if any."""
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    names = project.select(list(select), list(exclude))
    errors = project.validate(names) if names else list(project.problems)
    for warning in [*project.warnings, *project.privacy_warnings()]:
        click.echo(click.style("warning: ", fg="yellow") + str(warning), err=True)
    if errors:
        _fail(errors)
    click.echo(f"{len(names)} segment(s) valid")
    _print_personal_data(project, names)


def _print_personal_data(project: Project, names: list[str]) -> None:
    """Column lineage of tagged columns: which segments read and output personal data."""
    from segsql.compile.lineage import segment_lineage

    lines = []
    for name in names:
        lineage = segment_lineage(project.compiler, name)
        read, output = lineage.pii_read(project.compiler), lineage.pii_output(project.compiler)
        if read:
            described = ", ".join(f"{column} ({category})" for column, category in read.items())
            outputs = ", ".join(f"{column} ({category})" for column, category in output.items()) or "nothing"
            lines.append(f"  {name}: reads {described}; outputs {outputs}")
    if lines:
        click.echo("personal data (column lineage):")
        click.echo("\n".join(lines))


@cli.command(name="list")
@engine_options
@selection_options
@click.option("--format", "output_format", type=click.Choice(["table", "json", "jsonl"]), default="table",
              show_default=True)
def list_(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None,
          select: tuple[str, ...], exclude: tuple[str, ...], output_format: str, target: str | None = None) -> None:
    """List segments with entity, tags, refs (segments and dbt nodes read) and description (broken ones marked)."""
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    rows: list[dict[str, Any]] = []
    for name in project.select(list(select), list(exclude)):
        try:
            segment = project.compiled(name)
            rows.append({"name": name, "entity": segment.entity, "tags": segment.config.tags,
                         "refs": segment.refs, "dbt": [s for s in segment.sources if s.startswith("dbt:")],
                         "path": segment.path, "description": segment.config.description, "status": "ok"})
        except SegsqlError as error:
            rows.append({"name": name, "entity": None, "tags": [], "refs": [], "dbt": [],
                         "path": project.segments[name].shown_path, "description": "",
                         "status": f"error: {error.message}"})
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if output_format == "jsonl":
        for row in rows:
            click.echo(json.dumps(row))
        return
    from segsql.cli.render import print_table

    print_table(["name", "entity", "tags", "refs", "description", "status"],
                [[r["name"], r["entity"] or "", ",".join(r["tags"]), ",".join([*r["refs"], *r["dbt"]]),
                  r["description"], r["status"]] for r in rows])


def _dialect_of(project: Project, target: str) -> str:
    """A --target of compile: a dialect, or a profile meaning its engine's dialect."""
    from segsql.config import DIALECTS
    from segsql.errors import UsageError, did_you_mean

    if target in DIALECTS:
        return target
    if target in project.config.profiles:
        return project.config.profiles[target].type
    raise UsageError(f"--target `{target}` is neither a dialect nor a profile", None,
                     did_you_mean(target, [*DIALECTS, *project.config.profiles]) or f"dialects: {', '.join(DIALECTS)}")


def _fail(errors: list[SegsqlError]) -> None:
    for error in errors:
        report_error(error)
    click.echo(f"{len(errors)} error(s)", err=True)
    sys.exit(EXIT_FAILURE)


@cli.command(name="run")
@engine_options
@selection_options
def run_(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None,
         select: tuple[str, ...], exclude: tuple[str, ...], target: str | None = None) -> None:
    """Validate, then evaluate the selected segments in dependency order and replace their
    membership atomically; print a summary table. Exit 1 if validation or the run fails."""
    from segsql.cli.render import run_progress, run_summary
    from segsql.run.runner import ValidationFailed

    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    names = project.select(list(select), list(exclude))
    try:
        with run_progress(len(names)) as progress:
            result = project.run(names, progress=progress)
    except ValidationFailed as failed:
        _fail([*failed.errors, failed])
    run_summary(result)


@cli.command()
@engine_options
@selection_options
@click.option("--from", "start", metavar="DATE", required=True, help="First date to replay (YYYY-MM-DD).")
@click.option("--to", "end", metavar="DATE", required=True,
              help="Last date (included when it falls on the schedule); must be before today (UTC).")
@click.option("--every", type=click.Choice(["day", "week", "month"]), default="month", show_default=True,
              help="Schedule from --from: daily, every 7 days, or the same day each month.")
@click.option("--replace", is_flag=True,
              help="Replace history written by `segsql run` between --from and --to (refused otherwise).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def backfill(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None,
             select: tuple[str, ...], exclude: tuple[str, ...], start: str, end: str, every: str, replace: bool,
             quiet: bool, target: str | None = None) -> None:
    """Replay past dates: evaluate the selected segments as of each date and write the membership
    history as if segsql had run then (each date stamped at 23:59:59.999999 UTC), all dates in one
    transaction. Current membership is unchanged. `segsql history NAME --at DATE` reads it back."""
    from segsql.cli.render import backfill_summary, date_progress
    from segsql.run.backfill import schedule
    from segsql.run.runner import ValidationFailed

    if as_of:
        raise UsageError("backfill evaluates every date of --from/--to; --as-of would change nothing", None,
                         "leave out --as-of")
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    dates = schedule(_date_option(start, "--from"), _date_option(end, "--to"), every)
    try:
        with date_progress(len(dates), quiet) as progress:
            result = project.backfill(dates[0], dates[-1], every, list(select), list(exclude), replace, progress)
    except ValidationFailed as failed:
        _fail([*failed.errors, failed])
    backfill_summary(result)


def _date_option(value: str, option: str) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} `{value}` is not a date", None, "use YYYY-MM-DD, e.g. 2026-01-31") from None


@cli.command()
@click.argument("name")
@engine_options
@click.option("--limit", "-n", type=click.IntRange(min=0), default=20, show_default=True,
              help="How many members to show (the LIMIT runs in the engine).")
@click.option("--all", "show_all", is_flag=True, help="Stream every member instead of a sample.")
@click.option("--format", "output_format", type=TABLE_FORMATS, default="table",
              show_default=True)
@click.option("--unmask", is_flag=True, help="Print declared PII columns in clear (logged).")
def show(name: str, project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None,
         as_of: str | None, limit: int, show_all: bool, output_format: str, unmask: bool,
         target: str | None = None) -> None:
    """Size, share of the entity population and a sample of members (with trait columns) from
    the segment's last successful run."""
    from segsql.cli.show import show_segment

    if var_pairs or vars_json:
        raise UsageError("show prints the members of the last run; --var/--vars would change nothing", None,
                         f"run it with the vars first: segsql run -s {name} --var ...")
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    show_segment(project, name, None if show_all else limit, output_format, unmask, check_as_of=bool(as_of))


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path), default="segsql-demo")
@click.option("--scale", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Data size: 1 = 2,000 accounts (~0.37M events over a year); 30 gives ~12M events.")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed (same seed, same data).")
@click.option("--as-of", "as_of", metavar="DATE", help="The demo's 'today' (YYYY-MM-DD); default today.")
def demo(directory: Path, scale: float, seed: int, as_of: str | None) -> None:
    """Create (or refresh) a demo project in DIRECTORY: synthetic B2B SaaS data in DuckDB, the
    starter segments, then run them all and print the summary."""
    from segsql.cli.render import run_progress, run_summary, step_progress
    from segsql.demo.project import prepare_demo

    with step_progress("demo data") as progress:
        project, stats = prepare_demo(directory, scale=scale, seed=seed, as_of=as_of, progress=progress)
    click.echo(f"demo data: {stats.accounts:,} accounts, {stats.users:,} users, {stats.events:,} events "
               f"in {project.root / 'data' / 'demo.duckdb'}", err=True)
    names = project.select()
    with run_progress(len(names)) as progress:
        result = project.run(names, progress=progress)
    run_summary(result)
    click.echo(f"next: segsql show power_users --project {directory}", err=True)


@cli.command(name="test")
@engine_options
@selection_options
@click.option("--unit/--no-unit", "unit", default=True, help="Run unit tests (<name>.test.yml, offline).")
@click.option("--data/--no-data", "data", default=True, help="Run data tests from config(tests=...) on live data.")
def test_(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None,
          select: tuple[str, ...], exclude: tuple[str, ...], unit: bool, data: bool, target: str | None = None) -> None:
    """Run segment tests: unit tests show missing and unexpected members; data tests check
    size, share, unique, not_null and custom conditions. Exit 1 if any test fails."""
    from segsql.cli.render import print_table
    from segsql.measure.testing import PASS

    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    names = project.select(list(select), list(exclude))
    errors = project.validate(names)
    if errors:
        _fail(errors)
    outcomes = []
    for name in names if unit else []:
        outcomes.extend(project.unit_tests(name))
    if data:
        outcomes.extend(project.data_tests(names))
    print_table(["segment", "kind", "test", "status", "details"],
                [[o.segment, o.kind, o.test, o.status, o.details] for o in outcomes])
    failed = [o for o in outcomes if o.status != PASS]
    for outcome in failed:
        click.echo(click.style("error: ", fg="red", bold=True) +
                   f"{outcome.location or outcome.segment}: {outcome.kind} test `{outcome.test}` of "
                   f"`{outcome.segment}` {outcome.status}ed: {outcome.details}", err=True)
    click.echo(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed", err=True)
    if failed:
        sys.exit(EXIT_FAILURE)


@cli.command()
@click.argument("name")
@engine_options
@click.option("--since", metavar="DATE", help="Only runs started on or after this date.")
@click.option("--at", "at", metavar="DATE", help="List who was a member at the end of this date instead "
              "(from the runs and backfills recorded up to then).")
@click.option("--format", "output_format", type=TABLE_FORMATS, default="table", show_default=True)
def history(name: str, project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None,
            since: str | None, at: str | None, output_format: str, target: str | None = None) -> None:
    """Membership over time: members entered and exited per run, or who was a member on a date."""
    import pandas as pd  # only this command's tables need it

    from segsql.cli.render import emit

    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    if at:
        answer = project.history_at(name, _date_option(at, "--at"))
        if not answer.covered:
            since = f"its first run is as of {answer.first_run_as_of}" if answer.first_run_as_of else "it has no run"
            click.echo(click.style("warning: ", fg="yellow") + f"nothing is recorded for {name} at the end of {at}: "
                       f"{since}; backfill earlier dates with `segsql backfill --select {name} --from ...`", err=True)
        if output_format == "table":
            source = (f" (from the {'backfilled ' if answer.backfilled else ''}run {answer.run_id}, as of "
                      f"{answer.as_of})" if answer.covered else "")
            click.echo(f"{name} at the end of {at}: {len(answer.members):,} member(s){source}")
            for key in answer.members:
                click.echo(key)
        else:
            emit(pd.DataFrame({"entity_key": answer.members}), output_format)
        return
    emit(project.changes(name, since), output_format, title=f"history of {name}")


@cli.command()
@engine_options
@click.option("--entity", "entity", required=True, help="The entity of the key (e.g. user).")
@click.option("--key", "key", required=True, multiple=True,
              help="The entity key to erase; for a composite key, once per key column, in order.")
@click.option("--reason", help="Why (e.g. the request's reference); stored with the erasure record.")
@click.option("--keep-exported", is_flag=True,
              help="Exit 0 even when export files that may hold the key could not be rewritten (they are listed).")
def forget(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None, entity: str,
           key: tuple[str, ...], reason: str | None, keep_exported: bool, target: str | None = None) -> None:
    """Right to erasure: remove an entity key from membership, history, result tables, export
    state and export files, compact a DuckDB file so the key's bytes are gone, and record the
    erasure without the key in clear. Source data is not touched (it is not segsql's)."""
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    erasure = project.forget(entity, key[0] if len(key) == 1 else list(key), reason)
    click.echo(f"removed {erasure.rows_removed:,} row(s) for one {entity}; the erasure is recorded in "
               "segsql.erasures" + ("; the database file was compacted" if erasure.compacted else ""))
    for path in erasure.files_rewritten:
        click.echo(f"rewrote {path} without the key")
    for path in erasure.not_rewritten:
        click.echo(click.style("warning: ", fg="yellow") + f"{path} may hold the key and could not be rewritten "
                   "(moved, deleted or already delivered): erase it at its destination", err=True)
    if erasure.not_rewritten and not keep_exported:
        sys.exit(EXIT_FAILURE)


@cli.command()
@click.argument("name")
@engine_options
@click.option("--to", "to", type=click.Choice(["csv", "parquet", "table"]), default="csv", show_default=True,
              help="Files in a folder, or tables segsql.export_* in the connection.")
@click.option("--path", "path", type=click.Path(path_type=Path), help="Folder for csv/parquet (default exports/NAME).")
@click.option("--columns", "columns", metavar="COL,COL", help="Output columns to send besides the key "
              "(default: config(export_columns=...)); nothing else leaves.")
@click.option("--changes-only", is_flag=True,
              help="Only members added and removed since this destination's last export.")
@click.option("--purpose", metavar="PURPOSE",
              help="Consent purpose (privacy.consent): members without consent are dropped.")
def export(name: str, project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None,
           to: str, path: Path | None, columns: str | None, changes_only: bool, purpose: str | None,
           target: str | None = None) -> None:
    """Export a segment's members for CRM / reverse ETL: segments, members and memberships with
    stable columns (docs/exports.md), written atomically."""
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns is not None else None
    result = project.export(name, to, path, chosen, changes_only, purpose)
    what = f"{result.added:,} added, {result.removed:,} removed" if changes_only else f"{result.members:,} member(s)"
    click.echo(f"exported {name}: {what}" + (f"; {result.dropped_no_consent:,} dropped without `{purpose}` consent"
                                               if purpose else ""))
    if result.personal_data:
        click.echo("personal data sent: " + ", ".join(f"{c} ({k})" for c, k in result.personal_data.items()))
    for written in result.written:
        click.echo(f"  {written}")


@cli.command()
@engine_options
@selection_options
@click.option("--base", "base", metavar="REV", help="Git revision to compare with (default: merge base with main).")
@click.option("--format", "output_format", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True, help="markdown suits a pull-request comment.")
@click.option("--samples", type=click.IntRange(min=0, max=1000), default=5, show_default=True,
              help="Example keys shown per segment for added and removed members.")
@click.option("--dbt-state", "dbt_state", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder with the base revision's dbt manifest.json and catalog.json (when they are not in git).")
def diff(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None,
         select: tuple[str, ...], exclude: tuple[str, ...], base: str | None, output_format: str, samples: int,
         target: str | None = None, dbt_state: Path | None = None) -> None:
    """What would this change do? Runs the segments at a git revision and in the working tree on
    the same data (read only) and reports members added and removed, size change and SQL diff.
    Exit 1 if a segment of the working tree does not validate."""
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    chosen = project.select(list(select), list(exclude), ordered=False) if select or exclude else None
    report = project.diff(base, chosen, samples, dbt_state)
    rendered = {"text": report.to_text, "markdown": report.to_markdown, "json": report.to_json}[output_format]()
    click.echo(rendered, nl=not rendered.endswith("\n"))
    if report.invalid:
        sys.exit(EXIT_FAILURE)


@cli.command()
@engine_options
@click.option("--out", "out", type=click.Path(path_type=Path), help="Folder for the site (default target/docs).")
@click.option("--serve", is_flag=True, help="Serve the site on 127.0.0.1 after building it (Ctrl-C stops).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8080, show_default=True,
              help="Port for --serve (0 picks a free one).")
def docs(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None,
         out: Path | None, serve: bool, port: int, target: str | None = None) -> None:
    """Build a static HTML catalog: every segment with description, owner, tags, SQL (template and
    compiled), lineage graph, source columns read (personal data marked), size history and tests."""
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    index = project.build_docs(out)
    click.echo(f"wrote {index}")
    if serve:
        _serve(index.parent, port)


def _serve(folder: Path, port: int) -> None:
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from segsql.errors import UsageError

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=str(folder)))
    except OSError as error:
        raise UsageError(f"cannot serve on port {port}: {error.strerror}", None, "pick another --port, or 0") from None
    click.echo(f"serving http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", err=False)
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
