"""A segsql project: its config, segment files and macros, and the public API over them.

`Project` is the one object the CLI, the magics and the widgets talk to. It owns the pipeline
(load -> render -> compile/validate -> execute) through a `Compiler` for its options.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segsql.config.models import NAME_PATTERN, ProjectConfig, load_project_config
from segsql.errors import ConfigError, Location, SegsqlError, TemplateError, UsageError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from segsql.activate.exports import ExportResult
    from segsql.activate.gitdiff import DiffReport
    from segsql.compile.compiler import CompiledSegment, Compiler
    from segsql.compile.templating import SegmentEnvironment
    from segsql.engines.base import Engine
    from segsql.measure.compare import Comparison, Priority
    from segsql.measure.metrics import Metric
    from segsql.methods.clustering import Clustering
    from segsql.methods.cohorts import Cohorts
    from segsql.methods.propensity import Propensity
    from segsql.methods.readout import Readout
    from segsql.run.runner import Progress, RunResult

SEGMENTS_DIR = "segments_sql"
MACROS_DIR = "macros"
MAX_SEGMENT_BYTES = 1_000_000


@dataclass
class Segment:
    """One segment file: its name (the file name without .sql) and where it lives."""

    name: str
    path: Path
    shown_path: str
    _text: str | None = field(default=None, repr=False)
    inline: bool = False  # written in a notebook cell, not (yet) a file

    def read(self) -> str:
        """The template text; unreadable, non-UTF-8, huge or empty files raise TemplateError."""
        if self._text is None:
            self._text = read_template(self.path, self.shown_path)
        return self._text


def read_template(path: Path, shown: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_SEGMENT_BYTES:
            raise TemplateError(f"the file is {size:,} bytes; segments are limited to "
                                f"{MAX_SEGMENT_BYTES:,}", Location(shown, 1, 1),
                                "a segment is one SELECT: move data into a source")
        raw = path.read_bytes()
    except OSError as error:
        raise TemplateError(f"cannot read the file: {error.strerror}", Location(shown)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        col = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise TemplateError(f"not valid UTF-8 (byte 0x{raw[error.start]:02x})", Location(shown, line, col),
                            "save the file as UTF-8") from None
    return check_template(text, shown)


def check_template(text: str, shown: str) -> str:
    """Refuse empty templates and the characters reserved for position markers."""
    if not text.strip():
        raise TemplateError("the file is empty", Location(shown, 1, 1),
                            "a segment is {{ config(entity=...) }} followed by one SELECT")
    if "\ue000" in text or "\ue001" in text:
        raise TemplateError("the file contains reserved characters U+E000/U+E001", Location(shown, 1, 1))
    return unicodedata.normalize("NFC", text)


class Project:
    """A segsql project folder. Create with `Project.load(path)`.

    >>> project = Project.load("examples/demo")          # doctest: +SKIP
    >>> sorted(project.segments)[:2]                      # doctest: +SKIP
    ['active_accounts', 'at_risk_accounts']
    """

    def __init__(self, root: Path, config: ProjectConfig, *, vars: dict[str, Any] | None = None,
                 as_of: dt.date | str | None = None):
        self.root = root
        self.data_root = root  # where relative data paths resolve (a diff's base revision reads the head's data)
        self.config = config
        self.overrides: dict[str, Any] = dict(vars or {})
        self.as_of = parse_as_of(as_of)
        self.problems: list[SegsqlError] = []
        self.segments: dict[str, Segment] = self._discover()
        self._compiler: Compiler | None = None
        self._shared_engine: Engine | None = None
        # Caches that do not depend on vars: the catalog, and the Jinja environment per as_of.
        # Projects derived with with_options()/with_segment() share them.
        self.shared_cache: dict[Any, Any] = {}

    @classmethod
    def load(cls, path: str | Path = ".", *, vars: dict[str, Any] | None = None,
             as_of: dt.date | str | None = None, target: str | None = None) -> Project:
        """Load the project in `path` (the folder holding segsql.yml); `target` picks a connection
        from `profiles:` (e.g. run the same segments on Postgres or Spark)."""
        root = Path(path)
        if not root.exists():
            raise ConfigError(f"project folder {root} does not exist", Location(str(root)),
                              "pass --project DIR, or run `segsql init DIR` first")
        if not root.is_dir():
            raise ConfigError(f"{root} is not a folder", Location(str(root)), "pass the project folder")
        config = load_project_config(root)
        if target is not None:
            if target not in config.profiles:
                raise UsageError(f"unknown target profile `{target}`", None,
                                 did_you_mean(target, config.profiles)
                                 or ("profiles: " + ", ".join(sorted(config.profiles)) if config.profiles
                                     else "declare it under profiles: in segsql.yml"))
            config = config.model_copy(update={"connection": config.profiles[target]})
        return cls(root, config, vars=vars, as_of=as_of)

    def with_options(self, *, vars: dict[str, Any] | None = None,
                     as_of: dt.date | str | None = None) -> Project:
        """The same project with other var/param overrides or `as_of` (inline segments kept)."""
        other = copy.copy(self)  # shares the kept engine and the caches; everything else is replaced
        other.overrides = {**self.overrides, **(vars or {})}
        other.as_of = parse_as_of(as_of or self.as_of)
        other.problems, other.segments = list(self.problems), dict(self.segments)
        other._compiler = None
        other.__dict__.pop("metrics", None)  # cached_property: metrics render with the new options
        return other

    def rescan(self) -> None:
        """Pick up segment files added, changed or removed since loading (caches are reset)."""
        self.problems = []
        self.segments = self._discover()
        self._compiler = None
        self.shared_cache.clear()

    def with_segment(self, name: str, text: str, shown_path: str) -> Project:
        """This project plus (or with a replaced) segment written inline, e.g. a notebook cell.
        Errors in it are reported at `shown_path` with the text's own lines."""
        if not NAME_PATTERN.match(name):
            raise UsageError(f"segment name `{name}` is not a plain identifier", None,
                             "use letters, digits and _ (not starting with a digit)")
        other = self.with_options()
        path = self.root / SEGMENTS_DIR / f"{name}.sql"
        existing = self.segments.get(name)
        if existing is not None and not existing.inline:
            path = existing.path
        other.segments[name] = Segment(name, path, shown_path, check_template(text, shown_path), inline=True)
        return other

    # -- segment files ---------------------------------------------------------------------
    def _discover(self) -> dict[str, Segment]:
        folder = self.root / SEGMENTS_DIR
        found: dict[str, Segment] = {}
        if not folder.is_dir():
            return found
        for path in sorted(folder.rglob("*.sql")):
            if any(part.startswith(".") for part in path.relative_to(folder).parts):
                continue
            shown = str(path.relative_to(self.root))
            name = path.stem
            if not NAME_PATTERN.match(name):
                self.problems.append(ConfigError(
                    f"segment name `{name}` is not a plain identifier", Location(shown),
                    "rename the file using letters, digits and _ (not starting with a digit)"))
                continue
            if name in found:
                self.problems.append(ConfigError(
                    f"segment `{name}` is defined twice: {found[name].shown_path} and {shown}",
                    Location(shown), "segment names must be unique across folders"))
                continue
            found[name] = Segment(name, path, shown)
        return found

    def segment(self, name: str) -> Segment:
        if name not in self.segments:
            raise UsageError(f"unknown segment `{name}`", None,
                             did_you_mean(name, self.segments) or "run `segsql list` to see them")
        return self.segments[name]

    def load_macros(self, env: SegmentEnvironment, as_of: dt.date) -> dict[str, Any]:
        """Macros from macros/*.sql, exported to segment templates by name."""
        from segsql.compile.templating import compile_template

        folder = self.root / MACROS_DIR
        macros: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for path in sorted(folder.rglob("*.sql")) if folder.is_dir() else []:
            shown = str(path.relative_to(self.root))
            template = compile_template(env, read_template(path, shown), shown, instrumented=False)
            module = template.make_module({"as_of": as_of})
            for name in dir(module):
                if name.startswith("_"):
                    continue
                if name in env.globals or name in macros:
                    where = origin.get(name, "a segsql built-in")
                    raise TemplateError(f"macro `{name}` is already defined by {where}", Location(shown))
                macros[name] = getattr(module, name)
                origin[name] = shown
        return macros

    # -- compiling -------------------------------------------------------------------------
    @property
    def compiler(self) -> Compiler:
        if self._compiler is None:
            from segsql.compile.compiler import Compiler

            self._compiler = Compiler(self, self.overrides, self.as_of)
        return self._compiler

    def compile(self, name: str, dialect: str | None = None) -> str:
        """The compiled, validated SQL of segment `name` in `dialect` (default: the project's).

        Raises the segment's first error (a SegsqlError with file, line and column)."""
        self.segment(name)
        if dialect is not None:
            check_dialect(dialect)
        return self.compiler.to_sql(name, dialect)

    def compiled(self, name: str) -> CompiledSegment:
        """The validated segment with its config, refs, params and output columns."""
        self.segment(name)
        return self.compiler.compiled(name)

    def entity_of(self, name: str) -> str:
        """The entity a segment declares in config(), without parsing and validating its SQL."""
        self.segment(name)
        config = self.compiler.rendered(name).state.config
        assert config is not None
        return str(config["entity"])

    def validate(self, select: list[str] | None = None) -> list[SegsqlError]:
        """Every error of the selected segments (all by default), one per broken segment."""
        errors = list(self.problems)
        for name in self.select(select, ordered=False):
            try:
                self.compiler.compiled(name)
            except SegsqlError as error:
                errors.append(error)
        return errors

    @property
    def warnings(self) -> list[SegsqlError]:
        return list(self.compiler.warnings)

    def privacy_warnings(self, sample_rows: int = 20) -> list[SegsqlError]:
        """Columns that look like personal data but carry no `pii:`/`sensitive:` tag, with the
        line of their source in segsql.yml (values are sampled from the engine when reachable)."""
        from sqlglot import exp

        from segsql.compile.builtins import table_for_source
        from segsql.config.yamlfile import read_yaml_file
        from segsql.privacy.pii import untagged_pii

        samples: dict[str, dict[str, list[Any]]] = {}
        try:
            with self.engine() as engine:
                engine.prepare_sources()
                for name, source in self.config.sources.items():
                    table = table_for_source(name, source.table, self.config.dialect)
                    try:
                        arrow = engine.fetch_arrow(exp.select("*").from_(table).limit(sample_rows))
                    except SegsqlError:
                        continue
                    samples[name] = {c.lower(): arrow.column(c).to_pylist() for c in arrow.column_names}
        except SegsqlError:
            pass  # no engine: names only
        located = read_yaml_file(self.root / "segsql.yml", "segsql.yml")
        return [SegsqlError(f"source `{source}` column `{column}` is not tagged as personal data, but {why}",
                            located.locate(("sources", source)),
                            f"tag it under sources.{source}.pii (e.g. {column}: email) or sensitive:")
                for source, column, why in untagged_pii(self, samples)]

    def select(self, select: list[str] | None = None, exclude: list[str] | None = None,
               ordered: bool = True) -> list[str]:
        """Segment names matching dbt-style selectors, in dependency order (`ordered=False`:
        sorted by name, which avoids rendering every segment when no selector needs it)."""
        from segsql.compile.selection import select_segments

        return select_segments(self, select or [], exclude or [], ordered)

    def connect(self, read_only: bool = False) -> Engine:
        """A new connection to the project's engine (the caller closes it)."""
        from segsql.engines import connect

        return connect(self.config, self.data_root, read_only=read_only)

    @contextmanager
    def engine(self, write: bool = False) -> Iterator[Engine]:
        """A connection for one operation; an in-memory DuckDB is kept for the project's life
        (closing it would lose the data). File databases are not held open between calls, so
        other processes can write in between."""
        if self._in_memory():
            if self._shared_engine is None:
                self._shared_engine = self.connect()
            yield self._shared_engine
            return
        engine = self.connect(read_only=not write)
        try:
            yield engine
        finally:
            engine.close()

    def _in_memory(self) -> bool:
        return getattr(self.config.connection, "path", None) == ":memory:"

    def close(self) -> None:
        """Release a kept connection (in-memory projects)."""
        if self._shared_engine is not None:
            self._shared_engine.close()
            self._shared_engine = None

    # -- running and results -----------------------------------------------------------------
    def run(self, select: list[str] | None = None, exclude: list[str] | None = None,
            progress: Progress | None = None) -> RunResult:
        """Validate, then evaluate the selected segments in dependency order and replace their
        membership in one transaction. Raises ValidationFailed (nothing ran) or RunError
        (membership unchanged, run recorded as failed). Hooks (segsql.yml `hooks:`) are called
        after the commit; their outcomes are in `result.hooks` and never undo the run."""
        from segsql.activate import hooks
        from segsql.run.runner import run

        hooks.check_hooks(self)
        names = self.select(select, exclude)
        with self.engine(write=True) as engine:
            result = run(self, names, engine, progress)
            result.hooks = hooks.fire(self, engine, result)
            return result

    def members(self, name: str, limit: int | None = None) -> pd.DataFrame:
        """The members of `name` from its last successful run, with their trait columns."""
        return self.members_arrow(name, limit).to_pandas()

    def members_arrow(self, name: str, limit: int | None = None) -> pa.Table:
        """Members as an Arrow table (no copy through pandas)."""
        from segsql.run import results

        with self.engine() as engine:
            return results.members_arrow(self, engine, name, limit)

    def members_relation(self, name: str) -> Any:
        """Members as a lazy DuckDB relation (DuckDB projects; valid until `close()`)."""
        from segsql.engines.duckdb import DuckDBEngine
        from segsql.run import results

        if self._shared_engine is None:
            self._shared_engine = self.connect(read_only=not self._in_memory())
        engine = self._shared_engine
        if not isinstance(engine, DuckDBEngine):
            raise UsageError("members_relation() needs a DuckDB project", None, "use members_arrow()")
        return engine.relation(results.members_query(self, engine, name))

    def compare(self, segments: list[str], metrics: list[str], baseline: str = "rest",
                costs: dict[str, float] | None = None, roi_metric: str | None = None) -> Comparison:
        """Each segment against `baseline` ('rest', 'all' or a segment) on every metric: value,
        difference, 95% CI, p-value and a Benjamini–Hochberg flag (one engine query)."""
        from segsql.measure.compare import compare

        return compare(self, segments, metrics, baseline, costs, roi_metric)

    def overlap(self, segments: list[str]) -> pd.DataFrame:
        """Pairwise shared members and Jaccard index (one engine query)."""
        from segsql.measure.compare import overlap

        return overlap(self, segments)

    def waterfall(self, name: str, engine: Engine | None = None, size: int | None = None) -> pd.DataFrame:
        """Members left after each top-level AND condition of the segment's WHERE."""
        from segsql.measure.compare import waterfall

        return waterfall(self, name, engine, size)

    def prioritize(self, ordered: list[str], suppress: str | None = None) -> Priority:
        """Mutually exclusive assignment to the first listed segment; `suppress` removes members."""
        from segsql.measure.compare import prioritize

        return prioritize(self, ordered, suppress)

    def segment_report(self, segments: list[str] | None = None) -> pd.DataFrame:
        """Pass/warn/fail per segment on substantial, distinct, measurable, accessible, stable."""
        from segsql.measure.report import segment_report

        return segment_report(self, self.select(segments))

    def changes(self, name: str, since: dt.date | str | None = None) -> pd.DataFrame:
        """Per run of `name`: members entered and exited, size after the run (from segsql.history)."""
        from segsql.run import history

        with self.engine() as engine:
            return history.changes(self, engine, name, parse_as_of(since) if since else None)

    def members_at(self, name: str, when: dt.date | dt.datetime | str) -> list[str]:
        """Who was in `name` at `when` (a date means the end of that day, UTC), from the history."""
        from segsql.run import history

        moment = when if isinstance(when, dt.date) else parse_as_of(when)
        with self.engine() as engine:
            return history.members_at(self, engine, name, moment)

    def forget(self, entity: str, key: str, reason: str | None = None) -> int:
        """Right to erasure: remove `key` of `entity` from every segsql-managed table (membership,
        history, result tables) in one transaction; returns the rows removed."""
        from segsql.privacy.pii import forget

        return forget(self, entity, str(key), reason)

    def export(self, name: str, to: str = "csv", path: str | Path | None = None,
               columns: list[str] | None = None, changes_only: bool = False,
               purpose: str | None = None) -> ExportResult:
        """Write the members of `name` for a CRM/reverse-ETL tool (csv, parquet or table): only
        the key and declared columns, only consented members for `purpose`, everything or only the
        changes since this destination's last export. Contract: docs/exports.md."""
        from segsql.activate.exports import export

        return export(self, name, to, path, columns, changes_only, purpose)

    def diff(self, base: str | None = None, select: list[str] | None = None, samples: int = 5) -> DiffReport:
        """What the working tree changes against git revision `base` (default: the merge base
        with main): members added/removed per segment on the same data, sizes, compiled SQL diff."""
        from segsql.activate.gitdiff import diff

        return diff(self, base, select, samples)

    def readout(self, name: str, metrics: list[str], column: str | None = None,
                control: str | None = None) -> Readout:
        """An experiment readout on a segment with a split(): each group against `control` on
        every metric (lift, 95% CI, p-value, BH), the sample-ratio-mismatch test and trait balance."""
        from segsql.methods.readout import readout

        return readout(self, name, metrics, column, control)

    def cohorts(self, entity: str, source: str, at: str, period: str = "month", key: str | None = None,
                revenue: str | None = None, start_source: str | None = None, start_at: str | None = None,
                segments: list[str] | None = None) -> Cohorts:
        """Cohort retention of `entity` from activity in `source` (timestamp column `at`): cohort
        x period_index with cohort size, active entities, retention and (with `revenue`) revenue
        retention; zeros for periods without activity; split by `segments` if given."""
        from segsql.methods.cohorts import cohorts

        return cohorts(self, entity, source, at, period, key, revenue, start_source, start_at, segments)

    def profile(self, name: str, traits: list[str] | None = None, top: int = 5) -> pd.DataFrame:
        """The data behind a persona: the segment's medians, means and top categories of its entity's
        traits against the rest of the population, with an over/under-representation index."""
        from segsql.methods.personas import profile

        return profile(self, name, traits, top)

    def cluster(self, features: str, ks: list[int] | None = None, k: int | None = None, max_depth: int = 2,
                seed: int = 0) -> Clustering:
        """k-means on the numeric columns of segment `features` (k chosen by silhouette from `ks`),
        each cluster explained by a short SQL rule with its precision and recall."""
        from segsql.methods.clustering import cluster

        return cluster(self, features, ks, k, max_depth, seed)

    def propensity(self, features: str, outcome: str, train_as_of: dt.date | str, horizon_days: int,
                   model: str = "logistic", holdout: float = 0.3, seed: int = 0) -> Propensity:
        """Fit a propensity model: features of segment `features` at `train_as_of`, label =
        membership of segment `outcome` at train_as_of + horizon_days; holdout AUC, calibration,
        lift by decile; for the logistic model a SQL score expression (`result.score_sql()`)."""
        from segsql.methods.propensity import fit

        return fit(self, features, outcome, train_as_of, horizon_days, model, holdout, seed)

    def size(self, name: str) -> int:
        """How many members `name` had in its last successful run."""
        from segsql.run import results

        with self.engine() as engine:
            return results.size(self, engine, name)


    @cached_property
    def metrics(self) -> dict[str, Metric]:
        """The metrics declared in metrics.yml / metrics/*.yml."""
        from segsql.measure.metrics import load_metrics

        return load_metrics(self)

    @cached_property
    def config_text(self) -> str:
        return (self.root / "segsql.yml").read_text(encoding="utf-8")


def parse_as_of(value: dt.date | str | None) -> dt.date:
    """`as_of` from an API or CLI value; default today."""
    if value is None:
        return dt.date.today()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise UsageError(f"as_of `{value}` is not a date", None, "use YYYY-MM-DD, e.g. 2026-01-31") from None


def check_dialect(dialect: str) -> str:
    from segsql.config.models import DIALECTS

    if dialect not in DIALECTS:
        raise UsageError(f"unknown dialect `{dialect}`", None,
                         did_you_mean(dialect, DIALECTS) or f"choose one of {', '.join(DIALECTS)}")
    return dialect


def parse_vars(pairs: list[str], json_text: str | None) -> dict[str, Any]:
    """`--var key=value` pairs and a `--vars JSON` object into one override mapping."""
    result: dict[str, Any] = {}
    if json_text:
        try:
            loaded = json.loads(json_text)
        except json.JSONDecodeError as error:
            raise UsageError(f"--vars is not valid JSON: {error.msg} at column {error.colno}", None,
                             'e.g. --vars \'{"min_mrr": 500}\'') from None
        if not isinstance(loaded, dict):
            raise UsageError("--vars must be a JSON object", None, 'e.g. --vars \'{"min_mrr": 500}\'')
        result.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--var `{pair}` is not key=value", None, "e.g. --var min_mrr=500")
        result[key.strip()] = value
    return result
