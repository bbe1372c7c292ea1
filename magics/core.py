"""The magics: %segsql, %%segment, %segment_compare, %segment_overlap, %segment_report, %segment_diff,
%segment_cohorts.

Each one parses its line, calls segsql.Project, and returns a view. Errors become IPython
UsageErrors: one clean message (file/cell line and column), no traceback, the cell fails.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import itertools
import keyword
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from segsql import SegsqlError, UsageError, formats
from segsql.compile.target import atomic_write
from segsql.config.inputs import parse_as_of, parse_vars
from segsql.config.models import for_profile
from segsql.errors import EngineError, missing_dependency
from segsql.privacy.masking import scrub
from segsql.privacy.pii import pii_columns
from segsql.run import results

from . import arguments
from .session import NotebookSession
from .widgets import charts
from .widgets import html as render
from .widgets.views import CompareView, PreviewView, StaticView, StepsShown, View

log = logging.getLogger("segsql.magics")
CELL_PATH = "cell"


def clean_errors(function: Callable[..., Any]) -> Callable[..., Any]:
    """segsql errors as IPython UsageErrors: shown as one message, the cell marked failed."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except SegsqlError as error:
            details = getattr(error, "errors", None)
            lines = [str(e) for e in details] if details else [str(error)]
            raise IPythonUsageError(scrub("\n".join(lines))) from None
        except ModuleNotFoundError as error:
            missing = missing_dependency(error)
            if missing is None:
                raise
            raise IPythonUsageError(str(missing)) from None

    return wrapper


def fresh(function: Callable[..., Any]) -> Callable[..., Any]:
    """Each magic sees the segment files as they are now (edited, added or deleted outside the
    notebook) and leaves an embedded database file free for the notebook's other cells."""

    @functools.wraps(function)
    def wrapper(self: SegsqlMagics, *args: Any, **kwargs: Any) -> Any:
        self.session.refresh()
        try:
            return function(self, *args, **kwargs)
        finally:
            self.session.release()

    return wrapper


@magics_class
class SegsqlMagics(Magics):
    def __init__(self, shell: Any):
        super().__init__(shell)
        self.session = NotebookSession()

    @property
    def _namespace(self) -> dict[str, Any]:
        assert self.shell is not None
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    # -- %segsql ---------------------------------------------------------------------------
    @line_magic
    @clean_errors
    @fresh
    def segsql(self, line: str) -> Any:
        """%segsql [status] | project PATH | connect VARIABLE|PROFILE|PATH | list | set KEY=VALUE ... |
        as_of DATE | run [--select ...] | close"""
        command, _, rest = line.strip().partition(" ")
        handlers: dict[str, Callable[[str], Any]] = {
            "": self._status, "status": self._status, "project": self._project, "connect": self._connect,
            "list": self._list, "set": self._set, "as_of": self._as_of, "run": self._run, "close": self._close,
        }
        if command not in handlers:
            raise UsageError(f"unknown %segsql command `{command}`", None,
                             "use project, connect, list, set, as_of, run, close or status")
        return handlers[command](rest.strip())

    def _status(self, _: str) -> View:
        text = self.session.banner()
        if self.session.project is not None:
            text += f" · {len(self.session.current().segments)} segment(s)"
        return StaticView(render.wrap("segsql", text), text)

    def _project(self, path: str) -> View:
        if not path:
            raise UsageError("%segsql project needs a folder", None, "e.g. %segsql project segsql-demo")
        self.session.open_project(path)
        return self._status("")

    def _connect(self, target: str) -> View:
        if not target:
            raise UsageError("%segsql connect needs a DuckDB connection variable, a profile name or a database path",
                             None)
        value = self._namespace.get(target)
        project = self.session.current()
        if value is not None and type(value).__module__.startswith(("duckdb", "_duckdb")):
            self.session.use_connection(value, f"duckdb: notebook connection `{target}`")
        elif target in project.config.profiles:  # a profile from segsql.yml
            self.session.close()
            config = for_profile(project.config, target)
            self.session.project = type(project)(project.root, config, vars=self.session.overrides,
                                                 as_of=self.session.as_of)
        else:
            project = self.session.current()
            connection = project.config.connection.model_copy(update={"path": target})
            self.session.close()
            config = project.config.model_copy(update={"connection": connection})
            self.session.project = type(project)(project.root, config, vars=self.session.overrides,
                                                 as_of=self.session.as_of)
        return self._status("")

    def _list(self, _: str) -> View:
        project = self.session.current()
        rows = []
        for name in project.select(ordered=False):
            try:
                compiled = project.compiled(name)
                rows.append([name, compiled.entity, ", ".join(compiled.config.tags), compiled.config.description, "ok"])
            except SegsqlError as error:
                rows.append([name, "", "", "", f"error: {error.message}"])
        headers = ["segment", "entity", "tags", "description", "status"]
        body = render.table(headers, rows)
        text = "\n".join(" | ".join(str(c) for c in row) for row in rows)
        return StaticView(render.wrap("segments", self.session.banner(), body), text)

    def _set(self, rest: str) -> View:
        if rest == "--clear":
            self.session.overrides.clear()
        else:
            self.session.overrides.update(parse_vars(rest.split(), None))
        return self._status("")

    def _as_of(self, value: str) -> View:
        self.session.as_of = None if value in ("", "today") else parse_as_of(value)
        return self._status("")

    def _run(self, rest: str) -> View:
        options = arguments.parse(arguments.run_command, rest)
        project = self._project_with(options)
        self.session.close()  # the run writes; the preview connection is read-only
        names = project.select(list(options["select"]) or None, list(options["exclude"]) or None)
        shown, ran = StepsShown("running segments"), itertools.count(1)
        try:
            result = project.run(names, progress=lambda segment: shown(
                f"{segment.name} ({formats.count(segment.rows)} members)", next(ran), len(names)))
        finally:
            shown.done()
        rows = [[s.name, s.entity, formats.count(s.rows), formats.percent(s.share), s.status] for s in result.segments]
        body = render.table(["segment", "entity", "size", "share", "status"], rows)
        text = "\n".join(f"{s.name}: {formats.count(s.rows)} ({s.status})" for s in result.segments)
        return StaticView(render.wrap(f"run {result.run_id}: {result.status}", self.session.banner(), body), text)

    def _close(self, _: str) -> View:
        self.session.close()
        return self._status("")

    def _project_with(self, options: dict[str, Any], extra: dict[str, Any] | None = None) -> Any:
        overrides = {**parse_vars(list(options.get("var_pairs") or ()), options.get("vars_json")), **(extra or {})}
        project = self.session.current()
        return project.with_options(vars=overrides, as_of=options.get("as_of") or project.as_of)

    # -- %%segment -------------------------------------------------------------------------
    @cell_magic
    @clean_errors
    @fresh
    def segment(self, line: str, cell: str) -> Any:
        """%%segment [VARIABLE <<] NAME [--entity E] [--save [--force]] [--preview N] [--no-run]
        [--target DIALECT] [--param NAME=VARIABLE] [--var K=V] [--as-of DATE] [--unmask]"""
        variable, line = _assignment(line)
        options = arguments.parse(arguments.segment_command, line)
        name = options["name"]
        template = self._template(cell, options["entity"])
        shown = f"{CELL_PATH} {name}"
        project = self._project_with(options, self._bound_params(options["params"]))
        project = project.with_segment(name, template.cell_text, shown)
        errors = project.validate([name])
        if errors:
            raise IPythonUsageError("\n".join(str(e) for e in errors))
        if options["save"]:
            self._save(project, name, template.file_text, options["force"])
        sql = project.compile(name, dialect=options["target"])
        if options["no_run"]:
            body = f"<pre>{render.esc(sql)}</pre>"
            return StaticView(render.wrap(f"segment {name} (validated, not run)", self.session.banner(), body), sql)
        return self._preview(project, name, sql, options, variable)

    def _template(self, cell: str, entity: str | None) -> _Template:
        body = cell.rstrip("\n") + "\n"
        if entity and "config(" not in body:
            header = f"{{{{ config(entity={entity!r}) }}}}"
            return _Template(cell_text=header + "\n" + body, file_text=header + "\n" + body)
        # The magic's own line is line 1 of the cell: a leading newline keeps line numbers equal.
        return _Template(cell_text="\n" + body, file_text=body)

    def _bound_params(self, pairs: tuple[str, ...]) -> dict[str, Any]:
        """--param NAME=VARIABLE: the notebook variable's value, later printed as a literal."""
        bound: dict[str, Any] = {}
        for pair in pairs:
            name, sep, variable = pair.partition("=")
            if not sep or not name.isidentifier() or not variable.isidentifier():
                raise UsageError(f"--param `{pair}` is not NAME=VARIABLE", None, "e.g. --param min_mrr=threshold")
            if variable not in self._namespace:
                raise UsageError(f"--param {name}: the notebook has no variable `{variable}`", None)
            bound[name] = self._namespace[variable]
        return bound

    def _save(self, project: Any, name: str, text: str, force: bool) -> None:
        path: Path = project.segments[name].path
        self.session.check_save(path, text, force)
        atomic_write(path, text)
        self.session.record_save(path, text)
        self.session.refresh()  # the saved file is part of the project now
        log.info("saved %s", path)
        print(f"saved {path.relative_to(project.root)}")

    def _preview(self, project: Any, name: str, sql: str, options: dict[str, Any], variable: str | None) -> View:
        unmask = options["unmask"]
        if unmask:
            columns = sorted(pii_columns(project.compiler, name))
            log.warning("unmasked preview of %s requested (columns %s)", name, ", ".join(columns))
            self.session.audit_unmask(project, name, columns)
        engine = self.session.engine()
        with _at_the_cell_line(project, name):
            result = results.preview(project.compiler, engine, name)

        def pager(offset: int, limit: int) -> Any:
            # The session's connection of the moment (`%segsql run` may have replaced it), let go after.
            try:
                with _at_the_cell_line(project, name):
                    return results.page(project.compiler, self.session.engine(), result, offset, limit,
                                        unmask).to_pandas()
            finally:
                self.session.release()

        try:
            waterfall = project.waterfall(name, engine=engine, size=result.size)
        except SegsqlError:
            waterfall = None
        view = PreviewView(result, pager, waterfall, sql, self.session.banner(), options["page_size"])
        if variable:
            self._namespace[variable] = pager(0, max(result.size, 1))
        return view

    # -- comparisons -----------------------------------------------------------------------
    @line_magic
    @clean_errors
    @fresh
    def segment_compare(self, line: str) -> Any:
        """%segment_compare A B ... --metrics m1,m2 [--baseline rest|all|SEGMENT]"""
        options = arguments.parse(arguments.compare_command, line)
        project = self._project_with(options)
        segments = list(options["segments"])
        metrics = [m.strip() for m in options["metric_list"].split(",") if m.strip()]
        kinds = {m: (project.metrics[m].kind, project.metrics[m].spec.unit) for m in metrics if m in project.metrics}
        return CompareView(lambda baseline: project.compare(segments, metrics, baseline), segments, kinds,
                           options["baseline"], self.session.banner())

    @line_magic
    @clean_errors
    @fresh
    def segment_overlap(self, line: str) -> Any:
        """%segment_overlap A B C ..."""
        options = arguments.parse(arguments.overlap_command, line)
        frame = self._project_with(options).overlap(list(options["segments"]))
        return StaticView(render.overlap(frame, self.session.banner()), render.overlap_text(frame),
                          [charts.overlap(frame)])

    @line_magic
    @clean_errors
    @fresh
    def segment_report(self, line: str) -> Any:
        """%segment_report [--select ...]: substantial, distinct, measurable, accessible, stable."""
        options = arguments.parse(arguments.report_command, line)
        project = self._project_with(options)
        frame = project.segment_report(project.select(list(options["select"]) or None,
                                                      list(options["exclude"]) or None))
        return StaticView(render.report(frame, self.session.banner()), render.plain_table(frame, len(frame)))

    @line_magic
    @clean_errors
    @fresh
    def segment_diff(self, line: str) -> Any:
        """%segment_diff [--base REV] [--select ...]: members added/removed per segment by the
        working tree's changes against a git revision (segsql diff)."""
        options = arguments.parse(arguments.diff_command, line)
        project = self._project_with(options)
        chosen = (project.select(list(options["select"]), list(options["exclude"]), ordered=False)
                  if options["select"] or options["exclude"] else None)
        report = project.diff(options["base"], chosen, options["samples"])
        return StaticView(render.git_diff(report, self.session.banner()), report.to_text())

    @line_magic
    @clean_errors
    @fresh
    def segment_cohorts(self, line: str) -> Any:
        """%segment_cohorts [VARIABLE <<] ENTITY SOURCE AT [--period month] [--revenue COL] [--segments A,B]
        [--value retention|revenue_retention|active|revenue]: the cohort heat map and retention curves;
        `VARIABLE <<` assigns the Cohorts (its .frame is a DataFrame), no variable is written otherwise."""
        variable, line = _assignment(line, "%segment_cohorts retention << account events occurred_at")
        options = arguments.parse(arguments.cohorts_command, line)
        project = self._project_with(options)
        start_source, start_at = (options["start"].split(".", 1) if options["start"] else (None, None))
        segments = [s.strip() for s in options["segments"].split(",") if s.strip()] if options["segments"] else None
        result = project.cohorts(options["entity"], options["source"], options["at"], options["period"],
                                 options["key"], options["revenue"], start_source, start_at, segments)
        if variable:
            self._namespace[variable] = result
        value = options["value"]
        if value in ("revenue", "revenue_retention") and value not in result.frame:
            raise UsageError(f"--value {value} needs revenue", None, "add --revenue COLUMN (e.g. --revenue mrr)")
        drawn = []
        by_segment = "segment" in result.frame
        for segment in sorted(result.frame["segment"].unique()) if by_segment else [None]:
            frame = result.frame if segment is None else result.frame[result.frame["segment"] == segment]
            if len(frame):
                drawn += [charts.cohort_heatmap(frame, value, result.period, segment),
                          charts.retention_curves(frame, value, result.period, segment)]
        return StaticView(render.cohorts(result, value, self.session.banner()), render.cohorts_text(result, value),
                          drawn)


@contextlib.contextmanager
def _at_the_cell_line(project: Any, name: str) -> Iterator[None]:
    """An engine error that points at part of the statement (DuckDB's `LINE n` and carets) is
    reported at that part's line and column in the cell (or file), found through the source map."""
    try:
        yield
    except EngineError as error:
        location = project.compiler.locate(name, *error.pointed_at) if error.pointed_at else None
        if location is None:
            raise
        raise EngineError(error.message, location, error.hint) from None


class _Template:
    def __init__(self, cell_text: str, file_text: str):
        self.cell_text, self.file_text = cell_text, file_text


def _assignment(line: str, example: str = "%%segment members << power_users") -> tuple[str | None, str]:
    """`members << NAME ...` assigns the magic's result (the members DataFrame of %%segment) to `members`."""
    if "<<" not in line:
        return None, line
    variable, _, rest = line.partition("<<")
    variable = variable.strip()
    if not variable.isidentifier():
        raise UsageError(f"`{variable}` is not a variable name", None, f"e.g. {example}")
    if keyword.iskeyword(variable) or variable in vars(builtins) or variable.startswith("__"):
        raise UsageError(f"`{variable}` is a Python keyword, builtin or special name; assigning it would break "
                         "the notebook", None, f"choose another name, e.g. {example}")
    return variable, rest
