"""A segsql project: its config, segment files and macros, and the public API over them.

`Project` is the facade the CLI, the magics and the widgets talk to. It owns the pipeline
(load -> render -> compile/validate -> execute) and composes the stages: a `Compiler` for its
options, an engine connection per operation, and the run, measure, activate and methods
functions, each of which takes only the compiler, the engine and the values it needs.

Every stage is imported inside the methods that use it (sqlglot, Jinja, pyarrow, pandas, scipy,
scikit-learn load on first use), so `import segsql` and `segsql --help` load only the config
layer. The stages never import this module (the import contract), so these are not cycle dodges.
"""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segsql.config.inputs import check_dialect, parse_as_of
from segsql.config.models import ProjectConfig, for_profile, load_project_config
from segsql.errors import ConfigError, Location, SegsqlError, UsageError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from segsql.activate.diffreport import DiffReport
    from segsql.activate.exports import ExportResult
    from segsql.compile.compiler import CompiledSegment, Compiler
    from segsql.compile.files import Segment, SegmentFiles
    from segsql.compile.target import CompileReport
    from segsql.engines.base import Engine
    from segsql.engines.records import RunResult
    from segsql.measure.compare import Comparison, Priority
    from segsql.measure.metrics import Metric
    from segsql.measure.testing import TestResult
    from segsql.methods.clustering import Clustering, StepProgress
    from segsql.methods.cohorts import Cohorts
    from segsql.methods.design import PowerAnalysis
    from segsql.methods.propensity import Propensity
    from segsql.methods.readout import Readout
    from segsql.privacy.erasure import Erasure
    from segsql.run.backfill import BackfillResult, DateProgress
    from segsql.run.history import Moment
    from segsql.run.runner import Progress


class Project:
    """A segsql project folder. Create with `Project.load(path)`.

    >>> project = Project.load("examples/demo")          # doctest: +SKIP
    >>> sorted(project.segments)[:2]                      # doctest: +SKIP
    ['active_accounts', 'at_risk_accounts']
    """

    def __init__(self, root: Path, config: ProjectConfig, *, vars: dict[str, Any] | None = None,
                 as_of: dt.date | str | None = None):
        self.root = root
        self.config = config
        from segsql.compile.files import SegmentFiles

        self.overrides: dict[str, Any] = dict(vars or {})
        self.as_of = parse_as_of(as_of or config.as_of)
        self.files = SegmentFiles.discover(root, config.limits.segment_bytes)
        self._compiler: Compiler | None = None
        self._shared_engine: Engine | None = None
        # What does not depend on vars (the catalog, the Jinja environment per as_of); projects
        # derived with with_options()/with_segment() share it.
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
        config = load_project_config(root, profile=target)
        if target is not None:
            if target not in config.profiles:
                raise UsageError(f"unknown target profile `{target}`", None,
                                 did_you_mean(target, config.profiles)
                                 or ("profiles: " + ", ".join(sorted(config.profiles)) if config.profiles
                                     else "declare it under profiles: in segsql.yml"))
            config = for_profile(config, target)
        return cls(root, config, vars=vars, as_of=as_of)

    def with_options(self, *, vars: dict[str, Any] | None = None,
                     as_of: dt.date | str | None = None) -> Project:
        """The same project with other var/param overrides or `as_of` (inline segments kept)."""
        other = self._derived(self.files)
        other.overrides = {**self.overrides, **(vars or {})}
        other.as_of = parse_as_of(as_of or self.as_of)
        return other

    def with_segment(self, name: str, text: str, shown_path: str) -> Project:
        """This project plus (or with a replaced) segment written inline, e.g. a notebook cell.
        Errors in it are reported at `shown_path` with the text's own lines."""
        return self._derived(self.files.with_segment(name, text, shown_path))

    def _derived(self, files: SegmentFiles) -> Project:
        other = object.__new__(Project)
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k != "metrics"})  # metrics render per options
        other.files, other._compiler = files, None  # shares the kept engine and the caches
        return other

    def rescan(self) -> None:
        """Pick up segment files added, changed or removed since loading (caches are reset)."""
        from segsql.compile.files import SegmentFiles

        self.files = SegmentFiles.discover(self.root, self.config.limits.segment_bytes)
        self._compiler = None
        self.shared_cache.clear()

    @property
    def segments(self) -> dict[str, Segment]:
        return self.files.segments

    @property
    def problems(self) -> list[SegsqlError]:
        """Problems found while listing the segment files (bad names, duplicates)."""
        return list(self.files.problems)

    def segment(self, name: str) -> Segment:
        return self.files.segment(name)

    # -- compiling -------------------------------------------------------------------------
    @property
    def compiler(self) -> Compiler:
        if self._compiler is None:
            from segsql.compile.compiler import Compiler

            self._compiler = Compiler(self.files, self.config, self.overrides, self.as_of,
                                      cache=self.shared_cache, connect=lambda: self.connect(read_only=True))
        return self._compiler

    def compile(self, name: str, dialect: str | None = None) -> str:
        """The compiled, validated SQL of segment `name` in `dialect` (default: the project's).

        Raises the segment's first error (a SegsqlError with file, line and column)."""
        self.segment(name)
        return self.compiler.to_sql(name, None if dialect is None else check_dialect(dialect))

    def compiled(self, name: str) -> CompiledSegment:
        """The validated segment with its config, refs, params and output columns."""
        self.segment(name)
        return self.compiler.compiled(name)

    def entity_of(self, name: str) -> str:
        """The entity a segment declares in config(), without parsing and validating its SQL."""
        return self.compiler.entity_of(name)

    def validate(self, select: list[str] | None = None) -> list[SegsqlError]:
        """Every error of the selected segments (all by default), one per broken segment, and
        what the connection's engine cannot run: file sources on a table-only engine, and SQL
        that does not compile for its dialect (validate --target X checks what X will run)."""
        names = self.select(select, ordered=False)
        errors = self.compiler.validate(names)
        self._warn_about_collation(names)
        return [*self._unreadable_sources(), *errors, *self._engine_errors(names, errors)]

    def _warn_about_collation(self, names: list[str]) -> None:
        """Text orders and case mappings in the segments, when the target orders text other than
        by bytes or maps only ASCII letters' case (asked of the connection when it is reachable;
        compile/collation.py)."""
        if self.config.collation == "off" or not any(self._reads_text(name) for name in names):
            return
        with self._engine_if_reachable() as engine:
            if engine is None:
                return
            found = self.compiler.collation_warnings(names, engine.name, engine.text_collation(),
                                                     engine.text_case_mapping())
            self.compiler.warnings.extend(w for w in found if w not in self.compiler.warnings)

    def _reads_text(self, name: str) -> bool:
        try:
            segment = self.compiler.compiled(name)
        except SegsqlError:
            return False
        return bool(segment.text_orders or segment.case_maps)

    def _engine_errors(self, names: list[str], errors: list[SegsqlError]) -> list[SegsqlError]:
        from segsql.engines import engine_dialect

        dialect = engine_dialect(self.config)
        if dialect == self.config.dialect:
            return []
        broken = {error.path for error in errors}
        found: list[SegsqlError] = []
        for name in names:
            if self.segments[name].shown_path in broken:
                continue
            try:
                self.compiler.to_sql(name, dialect)
            except SegsqlError as error:
                found.append(error)
        return found

    def _unreadable_sources(self) -> list[SegsqlError]:
        from segsql.config.yamlfile import read_yaml_file
        from segsql.engines import file_sources_refused

        refused = file_sources_refused(self.config)
        if not refused:
            return []
        located = read_yaml_file(self.root / "segsql.yml", "segsql.yml")
        kind = self.config.connection.type
        return [ConfigError(f"source `{name}` is files (`path:`), which a {kind} connection cannot read",
                            located.locate(("sources", name, "path")),
                            f"give it a table for this profile: sources.{name}.profiles.<profile>.table")
                for name in refused]

    @property
    def warnings(self) -> list[SegsqlError]:
        return list(self.compiler.warnings)

    def privacy_warnings(self, sample_rows: int = 20) -> list[SegsqlError]:
        """Columns that look like personal data but carry no `pii:`/`sensitive:` tag, with the
        line of their source in segsql.yml (values are sampled from the engine when reachable)."""
        from segsql.privacy.pii import untagged_columns

        with self._engine_if_reachable() as engine:  # without one: judged by column names only
            return untagged_columns(self.compiler, engine, sample_rows)

    def select(self, select: list[str] | None = None, exclude: list[str] | None = None,
               ordered: bool = True) -> list[str]:
        """Segment names matching dbt-style selectors, in dependency order (`ordered=False`:
        sorted by name, which avoids rendering every segment when no selector needs it)."""
        from segsql.compile.selection import select_segments

        return select_segments(self.compiler, select or [], exclude or [], ordered)

    def write_target(self, names: list[str], dialects: list[str], workers: int | None = None) -> CompileReport:
        """Compile `names` for `dialects` into target/ (only when every one is valid)."""
        from segsql.compile.target import write_target

        return write_target(self.compiler, names, dialects, workers)

    def write_dbt_models(self, names: list[str], out: Path | None = None) -> list[Path]:
        """Write `names` as dbt models (one .sql each, plus a schema .yml) into `out`, default
        the dbt project's models/segments/ (docs/dbt.md)."""
        from segsql.compile.dbtmodels import dbt_models_folder, write_dbt_models

        return write_dbt_models(self.compiler, names, out or dbt_models_folder(self.compiler))

    # -- connections -----------------------------------------------------------------------
    def connect(self, read_only: bool = False) -> Engine:
        """A new connection to the project's engine (the caller closes it)."""
        from segsql.engines import connect

        return connect(self.config, self.root, read_only=read_only)

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

    @contextmanager
    def _engine_if_reachable(self) -> Iterator[Engine | None]:
        """A connection for one operation, or None when the engine cannot be reached."""
        with ExitStack() as stack:
            try:
                engine: Engine | None = stack.enter_context(self.engine())
            except SegsqlError:
                engine = None
            yield engine

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

        hooks.check_hooks(self.compiler)
        names = self.select(select, exclude)
        with self.engine(write=True) as engine:
            result = run(self.compiler, names, engine, progress)
            result.hooks = hooks.fire(self.compiler, engine, result)
            return result

    def backfill(self, start: dt.date | str, end: dt.date | str, every: str = "month",
                 select: list[str] | None = None, exclude: list[str] | None = None, replace: bool = False,
                 progress: DateProgress | None = None) -> BackfillResult:
        """Replay past dates: evaluate the selected segments as of every date from `start` to
        `end` (`every` day, week or month) and write their history as if segsql had run on each
        (stamped at the end of the day, UTC), all in one transaction. Refuses to touch history
        written by real runs in that window unless `replace`; docs/backfill.md."""
        from segsql.run.backfill import backfill, schedule

        dates = schedule(parse_as_of(start), parse_as_of(end), every)
        names = self.select(select, exclude)
        with self.engine(write=True) as engine:
            return backfill(self.compiler, names, engine, dates, replace, progress)

    def audit_unmask(self, name: str, columns: list[str], via: str) -> None:
        """Record that `name`'s personal columns were shown unmasked (segsql.unmask_audit): by
        whom (the OS user), when, which columns, from where (`cli show`, `notebook`)."""
        with self.engine(write=True) as engine:
            engine.record_unmask(getpass.getuser(), name, columns, via)

    def members(self, name: str, limit: int | None = None) -> pd.DataFrame:
        """The members of `name` from its last successful run, with their trait columns."""
        return self.members_arrow(name, limit).to_pandas()

    def members_arrow(self, name: str, limit: int | None = None) -> pa.Table:
        """Members as an Arrow table (no copy through pandas)."""
        from segsql.run import results

        with self.engine() as engine:
            return results.members_arrow(self.compiler, engine, name, limit)

    def members_relation(self, name: str) -> Any:
        """Members as a lazy DuckDB relation (DuckDB projects; valid until `close()`)."""
        from segsql.engines.duckdb import DuckDBEngine
        from segsql.run import results

        if self._shared_engine is None:
            self._shared_engine = self.connect(read_only=not self._in_memory())
        engine = self._shared_engine
        if not isinstance(engine, DuckDBEngine):
            raise UsageError("members_relation() needs a DuckDB project", None, "use members_arrow()")
        return engine.relation(results.members_query(self.compiler, engine, name))

    def size(self, name: str) -> int:
        """How many members `name` had in its last successful run."""
        from segsql.run import results

        with self.engine() as engine:
            return results.size(self.compiler, engine, name)

    def changes(self, name: str, since: dt.date | str | None = None) -> pd.DataFrame:
        """Per run of `name`: members entered and exited, size after the run (from segsql.history)."""
        from segsql.run import history

        with self.engine() as engine:
            return history.changes(self.compiler, engine, name, parse_as_of(since) if since else None)

    def members_at(self, name: str, when: dt.date | dt.datetime | str) -> list[str]:
        """Who was in `name` at `when` (a date means the end of that day, UTC), from the history."""
        from segsql.run import history

        moment = when if isinstance(when, dt.date) else parse_as_of(when)
        with self.engine() as engine:
            return history.members_at(self.compiler, engine, name, moment)

    def history_at(self, name: str, when: dt.date | dt.datetime | str) -> Moment:
        """Who was in `name` at `when`, and which run (real or backfilled) that answer comes from;
        `covered` is False when `when` is before the segment's first recorded run."""
        from segsql.run import history

        moment = when if isinstance(when, dt.date) else parse_as_of(when)
        with self.engine() as engine:
            return history.at(self.compiler, engine, name, moment)

    # -- measuring ---------------------------------------------------------------------------
    @cached_property
    def metrics(self) -> dict[str, Metric]:
        """The metrics declared in metrics.yml / metrics/*.yml."""
        from segsql.measure.metrics import load_metrics

        return load_metrics(self.compiler)

    def compare(self, segments: list[str], metrics: list[str], baseline: str = "rest",
                costs: dict[str, float] | None = None, roi_metric: str | None = None) -> Comparison:
        """Each segment against `baseline` ('rest', 'all' or a segment) on every metric: value,
        difference, 95% CI, p-value and a Benjamini–Hochberg flag (one engine query)."""
        from segsql.measure.compare import compare

        with self.engine() as engine:
            return compare(self.compiler, engine, self.metrics, segments, metrics, baseline, costs, roi_metric)

    def overlap(self, segments: list[str]) -> pd.DataFrame:
        """Pairwise shared members and Jaccard index (one engine query)."""
        from segsql.measure.compare import overlap

        with self.engine() as engine:
            return overlap(self.compiler, engine, segments)

    def waterfall(self, name: str, engine: Engine | None = None, size: int | None = None) -> pd.DataFrame:
        """Members left after each top-level AND condition of the segment's WHERE; `engine` and
        the final `size` let a preview (not yet run) use its own connection."""
        from segsql.measure.compare import waterfall

        if engine is not None:
            return waterfall(self.compiler, engine, name, size)
        with self.engine() as own:
            return waterfall(self.compiler, own, name, size)

    def prioritize(self, ordered: list[str], suppress: str | None = None) -> Priority:
        """Mutually exclusive assignment to the first listed segment; `suppress` removes members."""
        from segsql.measure.compare import prioritize

        with self.engine() as engine:
            return prioritize(self.compiler, engine, ordered, suppress)

    def segment_report(self, segments: list[str] | None = None) -> pd.DataFrame:
        """Pass/warn/fail per segment on substantial, distinct, measurable, accessible, stable."""
        from segsql.measure.report import segment_report

        names = self.select(segments)
        with self.engine() as engine:
            return segment_report(self.compiler, engine, self.metrics, names)

    def unit_tests(self, name: str) -> list[TestResult]:
        """The unit tests beside segment `name` (NAME.test.yml), run offline on DuckDB."""
        from segsql.measure.testing import run_unit_tests

        return run_unit_tests(self.compiler, name)

    def data_tests(self, names: list[str]) -> list[TestResult]:
        """The data tests of config(tests=...) of `names`, on the live data."""
        from segsql.measure.testing import run_data_tests

        with self.engine() as engine:
            engine.prepare_sources()
            return [outcome for name in names for outcome in run_data_tests(self.compiler, name, engine)]

    # -- activating --------------------------------------------------------------------------
    def forget(self, entity: str, key: object, reason: str | None = None) -> Erasure:
        """Right to erasure: remove `key` of `entity` (a list of its parts, in order, for a
        composite key) from every segsql-managed table (membership, history, results, export
        state) in one transaction, rewrite the export files that held it, and compact a DuckDB
        file so its bytes are gone. `erasure.not_rewritten` lists exports segsql could not
        rewrite (they still hold the key)."""
        from segsql.privacy.erasure import forget, rewrite_exports, stored_key

        parts = [str(part) for part in key] if isinstance(key, list | tuple) else str(key)
        stored = stored_key(self.compiler, entity, parts)
        with self.engine(write=True) as engine:
            erasure = forget(self.compiler, engine, entity, parts, reason)
        rewrite_exports(erasure, stored)
        with self.engine(write=True) as engine:
            erasure.compacted = engine.compact()
        return erasure

    def export(self, name: str, to: str = "csv", path: str | Path | None = None,
               columns: list[str] | None = None, changes_only: bool = False,
               purpose: str | None = None) -> ExportResult:
        """Write the members of `name` for a CRM/reverse-ETL tool (csv, parquet or table): only
        the key and declared columns, only consented members for `purpose`, everything or only the
        changes since this destination's last export. Contract: docs/exports.md."""
        from segsql.activate.exports import export

        with self.engine(write=True) as engine:
            return export(self.compiler, engine, name, to, path, columns, changes_only, purpose)

    def diff(self, base: str | None = None, select: list[str] | None = None, samples: int = 5,
             dbt_state: Path | None = None) -> DiffReport:
        """What the working tree changes against git revision `base` (default: the merge base
        with main): members added/removed per segment on the same data, sizes, compiled SQL diff,
        and the changed dbt columns segments read (base artifacts from git or `dbt_state`)."""
        from segsql.activate.gitdiff import diff

        with self.engine() as engine:
            return diff(self.compiler, engine, base, select, samples, dbt_state)

    def build_docs(self, out: Path | None = None) -> Path:
        """The static HTML catalog in `out` (default target/docs); returns the index page. Size
        history comes from the engine when it is reachable."""
        from segsql.docs.site import build_site

        folder = out or self.root / "target" / "docs"
        with self._engine_if_reachable() as engine:  # without one: a catalog without size history
            return build_site(self.compiler, engine, folder)

    # -- methods -----------------------------------------------------------------------------
    def readout(self, name: str, metrics: list[str], column: str | None = None, control: str | None = None,
                cuped: bool = False, start: dt.date | str | None = None, pre_days: int | None = None) -> Readout:
        """An experiment readout on a segment with a split(): each group against `control` on
        every metric (lift, 95% CI, p-value, BH), the sample-ratio-mismatch test and trait balance.
        `start` (the experiment's first day): the groups are the members assigned on that day
        (point-in-time), not the last run's. `cuped=True` adjusts each metric by its own pre-period
        value: the metric as of the day before `start`, or `pre_days` before as_of."""
        from segsql.methods.readout import experiment_start, pre_period_as_of, readout

        pre_period = pre_period_as_of(self.as_of, cuped, start, pre_days)
        started = experiment_start(self.as_of, start)
        with self.engine() as engine:
            return readout(self.compiler, engine, self.metrics, name, metrics, column, control, pre_period, started)

    def power(self, name: str, metric: str, shares: dict[str, float] | None = None, alpha: float = 0.05,
              power: float = 0.8, effect: float | None = None, lift: float | None = None) -> PowerAnalysis:
        """Experiment design inside segment `name`: the minimum detectable effect on `metric` per
        treatment group at `power` and `alpha` (two-sided), from the members' own values of the
        metric, with the segment's split() shares or `shares` (default 50/50); with `effect`
        (absolute) or `lift` (relative) also the members needed."""
        from segsql.methods.design import power as power_analysis

        with self.engine() as engine:
            return power_analysis(self.compiler, engine, self.metrics, name, metric, shares, alpha, power, effect, lift)

    def cohorts(self, entity: str, source: str, at: str, period: str = "month", key: str | None = None,
                revenue: str | None = None, start_source: str | None = None, start_at: str | None = None,
                segments: list[str] | None = None, membership: str = "at_cohort") -> Cohorts:
        """Cohort retention of `entity` from activity in `source` (timestamp column `at`): cohort
        x period_index with cohort size, active entities, retention and (with `revenue`) revenue
        retention; zeros for periods without activity; split by `segments` if given, by the members
        each segment had when the cohort formed (`membership='current'`: today's members)."""
        from segsql.methods.cohorts import cohorts

        with self.engine() as engine:
            return cohorts(self.compiler, engine, entity, source, at, period, key, revenue, start_source,
                           start_at, segments, membership)

    def profile(self, name: str, traits: list[str] | None = None, top: int = 5) -> pd.DataFrame:
        """The data behind a persona: the segment's medians, means and top categories of its entity's
        traits against the rest of the population, with an over/under-representation index."""
        from segsql.methods.personas import profile

        with self.engine() as engine:
            return profile(self.compiler, engine, name, traits, top)

    def cluster(self, features: str, ks: list[int] | None = None, k: int | None = None, max_depth: int = 2,
                seed: int = 0, progress: StepProgress | None = None) -> Clustering:
        """k-means on the numeric columns of segment `features` (k chosen by silhouette from `ks`),
        each cluster explained by a short SQL rule with its precision and recall."""
        from segsql.methods.clustering import cluster

        with self.engine() as engine:
            return cluster(self.compiler, engine, features, ks, k, max_depth, seed, progress)

    def propensity(self, features: str, outcome: str, train_as_of: dt.date | str, horizon_days: int,
                   model: str = "logistic", holdout: float = 0.3, seed: int = 0,
                   progress: StepProgress | None = None) -> Propensity:
        """Fit a propensity model: features of segment `features` at `train_as_of`, label =
        membership of segment `outcome` at train_as_of + horizon_days; holdout AUC, calibration,
        lift by decile; for the logistic model a SQL score expression (`result.score_sql()`)."""
        from segsql.methods.propensity import fit

        with self.engine() as engine:
            return fit(self.compiler, engine, features, outcome, train_as_of, horizon_days, model, holdout, seed,
                       progress)
