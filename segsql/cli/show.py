"""`segsql show`: size, share and members, as a table, CSV or JSON (streamed for --all)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

import click

from segsql import formats
from segsql.cli.render import percent, print_table
from segsql.errors import UsageError
from segsql.run import results
from segsql.starter.salt import project_salt

if TYPE_CHECKING:
    from segsql.project import Project

log = logging.getLogger("segsql.privacy")


def show_segment(project: Project, name: str, limit: int | None, output_format: str, unmask: bool = False,
                 check_as_of: bool = False) -> None:
    from segsql.privacy.masking import mask_table
    from segsql.privacy.pii import pii_columns

    pii = pii_columns(project.compiler, name)
    if unmask:
        log.warning("show %s --unmask: declared PII columns printed in clear", name)
        project.audit_unmask(name, sorted(pii), "cli show")
        pii = {}
    salt = project_salt(project.root)
    entity = project.compiled(name).entity
    with project.engine() as engine:
        if check_as_of:
            ran_for = results.last_run_date(project.compiler, engine, name)
            if ran_for != project.compiler.as_of:
                raise UsageError(f"the last run of {name} was for {ran_for}, not {project.compiler.as_of}: show "
                                 "prints the members of the last run", None,
                                 f"evaluate the date first: segsql run -s {name} --as-of {project.compiler.as_of}")
        size, population = results.last_run_size(project.compiler, engine, name)
        share = size / population if population else None
        header = (f"{name}: {formats.count(size)} {entity}(s)"
                  + (f", {percent(share)} of {formats.count(population)}" if population else ""))
        rows_shown = 0
        if output_format == "table":
            click.echo(header)
            arrow = mask_table(results.members_arrow(project.compiler, engine, name, limit), pii, salt)
            print_table(arrow.column_names, [[formats.cell(v) for v in row.values()] for row in arrow.to_pylist()])
            rows_shown = arrow.num_rows
        else:
            click.echo(header, err=True)
            rows_shown = _write_rows(project, engine, name, limit, output_format, pii)
    if limit is not None and rows_shown < size:
        click.echo(f"showing {rows_shown:,} of {size:,}; --all streams every member", err=True)


def _write_rows(project: Project, engine: Any, name: str, limit: int | None, output_format: str,
                pii: dict[str, str]) -> int:
    """Members as csv, one JSON array or JSON lines, streamed batch by batch (--all may not fit
    in memory): the array is written a row at a time too."""
    from segsql.privacy.masking import mask

    query = results.members_query(project.compiler, engine, name, limit)
    written = 0
    writer = None
    for columns, batch in engine.stream(query):
        masked = {columns.index(c): category for c, category in pii.items() if c in columns}
        rows = [tuple(mask(v, masked[i], project_salt(project.root)) if i in masked else v for i, v in enumerate(row))
                for row in batch] if masked else batch
        if output_format == "csv":
            if writer is None:
                writer = csv.writer(sys.stdout, lineterminator="\n")
                writer.writerow(columns)
            writer.writerows(rows)
        for row in rows if output_format != "csv" else ():
            if output_format == "json":
                sys.stdout.write(",\n" if written else "[")
            sys.stdout.write(json.dumps(dict(zip(columns, row, strict=True)), default=_json_value))
            if output_format == "jsonl":
                sys.stdout.write("\n")
            written += 1
        written += len(rows) if output_format == "csv" else 0
    if output_format == "json":
        sys.stdout.write("]\n" if written else "[]\n")
    return written


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)
