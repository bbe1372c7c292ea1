"""render -> parse -> check -> assemble -> transpile, for every segment of a project.

`Compiler` is created by `Project` for one set of options (vars, as_of). It renders segments
lazily and memoises results, so `ref()` can ask for another segment's entity while rendering,
and cycles are caught with their path. After Jinja, SQL is only handled as sqlglot trees.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, OptimizeError, ParseError, SqlglotError, UnsupportedError
from sqlglot.optimizer.qualify import qualify

from segsql.compile import checks, collation, determinism, pointintime, portability
from segsql.compile.budget import Budget, RenderLimits
from segsql.compile.builtins import BUILTINS, table_for_source
from segsql.compile.catalog import Catalog, Columns, table_key
from segsql.compile.files import Segment, load_macros
from segsql.compile.literals import get_dialect
from segsql.compile.sourcemap import find_pointed
from segsql.compile.templating import (
    CallSite,
    HelperError,
    Rendered,
    RenderState,
    SegmentEnvironment,
    compile_template,
    line_location,
    make_environment,
    render,
    template_code_cache,
)
from segsql.config.models import SegmentConfig
from segsql.errors import (
    EngineError,
    Location,
    SegsqlError,
    SqlError,
    TemplateError,
    ValidationError,
    did_you_mean,
)

if TYPE_CHECKING:
    from segsql.compile.catalog import SourceDescriber
    from segsql.compile.files import SegmentFiles
    from segsql.config.models import ProjectConfig


@dataclass
class CompiledSegment:
    """A validated segment: its own tree (refs as table names) and what it declared."""

    name: str
    path: str
    config: SegmentConfig
    tree: exp.Query
    refs: list[str]
    sources: list[str]
    params: dict[str, Any]
    vars: dict[str, Any]
    columns: Columns
    rendered_sql: str
    upstream: list[str] = field(default_factory=list)  # every ref, transitively, in DAG order
    splits: list[Any] = field(default_factory=list)  # split() calls: salt and groups
    text_orders: list[tuple[str, Location]] = field(default_factory=list)  # compile/collation.py sites
    case_maps: list[tuple[str, Location]] = field(default_factory=list)  # LOWER/UPPER/ILIKE of text

    @property
    def entity(self) -> str:
        return self.config.entity


class Compiler:
    """Compiles the segments of one project for one set of vars, params and `as_of`.

    It is what every stage after compiling reads segments through: their config, validated trees,
    self-contained SQL and the catalog. `cache` holds what does not depend on vars (the catalog,
    the Jinja environment per as_of) and is shared by compilers derived with `with_options`;
    `connect` opens a connection that can describe sources (for columns not declared)."""
    def __init__(self, files: SegmentFiles, config: ProjectConfig, overrides: dict[str, Any], as_of: dt.date,
                 *, cache: dict[Any, Any] | None = None, connect: Callable[[], SourceDescriber] | None = None):
        self.files = files
        self.config = config
        self.overrides = overrides
        self.as_of = as_of
        self.cache: dict[Any, Any] = {} if cache is None else cache
        self.connect = connect
        self.dialect: str = config.dialect
        self._udfs = frozenset(name.lower() for name in config.udfs)
        self.warnings: list[SegsqlError] = []
        self.lineage: dict[str, Any] = {}  # segment -> lineage.Lineage, for these options
        self._env: SegmentEnvironment | None = None
        self._catalog: Catalog | None = None
        self._rendered: dict[str, Rendered | SegsqlError] = {}
        self._compiled: dict[str, CompiledSegment | SegsqlError] = {}
        self._rendering: list[str] = []
        self._undeclared_warned: set[str] = set()
        self.code_cache = template_code_cache()

    def with_options(self, vars: dict[str, Any] | None = None, as_of: dt.date | None = None) -> Compiler:
        """The same segments compiled with more var/param overrides or another `as_of`."""
        return Compiler(self.files, self.config, {**self.overrides, **(vars or {})}, as_of or self.as_of,
                        cache=self.cache, connect=self.connect)

    def with_segment(self, name: str, text: str, shown_path: str) -> Compiler:
        """These segments plus (or with a replaced) segment written inline, e.g. a notebook cell."""
        return Compiler(self.files.with_segment(name, text, shown_path), self.config, self.overrides, self.as_of,
                        cache=self.cache, connect=self.connect)

    @property
    def root(self) -> Path:
        return self.files.root

    @property
    def segments(self) -> dict[str, Segment]:
        return self.files.segments

    def segment(self, name: str) -> Segment:
        return self.files.segment(name)

    def entity_of(self, name: str) -> str:
        """The entity a segment declares in config(), without parsing and validating its SQL."""
        config = self.rendered(self.segment(name).name).state.config
        assert config is not None
        return str(config["entity"])

    def validate(self, names: list[str]) -> list[SegsqlError]:
        """The problems of the segment files, then the first error of each named segment."""
        errors = list(self.files.problems)
        for name in names:
            try:
                self.compiled(name)
            except SegsqlError as error:
                errors.append(error)
        return errors

    def collation_warnings(self, names: list[str], target: str, order: str | None,
                           case_mapping: str | None) -> list[SegsqlError]:
        """Where the named (valid) segments order text on a `target` whose text `order` is a
        collation rather than byte order (none with `collation: binary`, which compiles byte
        order), and change letter case where its `case_mapping` maps ASCII letters only."""
        if self.config.collation == "off":
            return []
        found: list[SegsqlError] = []
        for name in names:
            try:
                segment = self.compiled(name)
            except SegsqlError:
                continue
            if order is not None and self.config.collation == "warn":
                for description, location in segment.text_orders:
                    message, hint = collation.warning(description, target, order)
                    found.append(ValidationError(message, location, hint))
            if case_mapping is not None:
                for description, location in segment.case_maps:
                    message, hint = collation.case_warning(description, target, case_mapping)
                    found.append(ValidationError(message, location, hint))
        return found

    # -- rendering -------------------------------------------------------------------------
    @property
    def env(self) -> SegmentEnvironment:
        if self._env is None:
            key = ("env", self.as_of)
            if key not in self.cache:
                env = make_environment(BUILTINS)
                env.globals.update(load_macros(self.root, env, self.as_of))
                self.cache[key] = env
            self._env = self.cache[key]
        return self._env

    def rendered(self, name: str) -> Rendered:
        """Render segment `name` once; later calls return (or re-raise) the first result."""
        if name not in self._rendered:
            self._rendering.append(name)
            try:
                self._rendered[name] = self._render(name)
            except SegsqlError as error:
                self._rendered[name] = error
            finally:
                self._rendering.pop()
        result = self._rendered[name]
        if isinstance(result, SegsqlError):
            raise result
        return result

    def locate(self, name: str, before: str, part: str) -> Location | None:
        """Where in segment `name`'s template the text an engine pointed at is (an EngineError's
        `pointed_at`): found in the rendered SQL, else the first column of it the tree has."""
        rendered = self.rendered(name)
        offset = find_pointed(rendered.sql, before, part)
        if offset is None:
            named = {column.sql().lower() for column in _columns_in(part)}
            columns = [c for c in self.compiled(name).tree.find_all(exp.Column) if c.sql().lower() in named]
            starts = [c.this.meta["start"] for c in columns if "start" in c.this.meta]
            offset = min(starts) if starts else None
        return None if offset is None else rendered.template_location(offset)

    def _budget(self) -> Budget:
        limits = self.config.limits
        return Budget(RenderLimits(limits.render_seconds, limits.rendered_bytes, limits.template_value_bytes,
                                   limits.loop_iterations))

    def _render(self, name: str) -> Rendered:
        segment = self.segment(name)
        source = segment.read()
        template = compile_template(self.env, source, segment.shown_path, code_cache=self.code_cache)
        state = RenderState(name=name, path=segment.shown_path, session=self, budget=self._budget())
        result = render(template, source, state, {"as_of": self.as_of})
        if state.config is None:
            raise TemplateError("the segment has no config() call", Location(segment.shown_path, 1, 1),
                                "start it with {{ config(entity='account', description='...') }}")
        return result

    def render_snippet(self, text: str, label: str, where: Location) -> str:
        """Render a Jinja snippet (a metric expression) with the segment helpers; errors are
        reported at `where` (the file and key that holds the snippet)."""
        template = compile_template(self.env, text, label)
        state = RenderState(name=label, path=label, session=self, budget=self._budget())
        try:
            rendered = render(template, text, state, {"as_of": self.as_of})
        except SegsqlError as error:
            raise TemplateError(f"{label.rsplit(':', maxsplit=1)[-1]}: {error.message}", where, error.hint) from None
        if state.refs:
            raise TemplateError(f"{label.rsplit(':', maxsplit=1)[-1]}: ref() is not allowed here", where)
        return rendered.sql

    def segment_entity(self, name: str, call: CallSite) -> str:
        """The entity of segment `name`, for ref() and the set helpers (renders it first)."""
        if name not in self.segments:
            raise HelperError(f"unknown segment `{name}` in {call.function}()", call,
                              did_you_mean(name, self.segments))
        if name in self._rendering:
            cycle = [*self._rendering[self._rendering.index(name):], name]
            raise HelperError(f"reference cycle: {' -> '.join(cycle)}", call,
                              "a segment cannot depend on itself through refs")
        try:
            rendered = self.rendered(name)
        except SegsqlError:
            raise HelperError(f"segment `{name}` is broken, so {call.function}() cannot use it",
                              call, f"fix {self.segment(name).shown_path} first") from None
        assert rendered.state.config is not None
        return str(rendered.state.config["entity"])

    # -- compiling -------------------------------------------------------------------------
    def compiled(self, name: str) -> CompiledSegment:
        """Render, parse and validate segment `name` (and, first, what it refs)."""
        if name not in self._compiled:
            try:
                self._compiled[name] = self._compile(name)
            except SegsqlError as error:
                self._compiled[name] = error
        result = self._compiled[name]
        if isinstance(result, SegsqlError):
            raise result
        return result

    def _compile(self, name: str) -> CompiledSegment:
        rendered = self.rendered(name)
        state = rendered.state
        refs = sorted(state.refs)
        upstream: list[str] = []
        for ref in refs:
            try:
                dependency = self.compiled(ref)
            except SegsqlError:
                call = state.refs[ref]
                raise self._at_call(rendered, call, f"segment `{ref}` is broken, so this one cannot be checked",
                                    f"fix {self.segment(ref).shown_path} first") from None
            upstream.extend(u for u in [*dependency.upstream, ref] if u not in upstream)
        config = SegmentConfig.model_validate(state.config)
        tree, columns, known_rows, (text_sites, case_sites) = self._parse_and_check(rendered, config, refs)
        text_orders = [(site.description, rendered.template_location(site.offset)) for site in text_sites]
        case_maps = [(site.description, rendered.template_location(site.offset)) for site in case_sites]
        _drop_positions(tree)
        pointintime.rewrite(known_rows)
        if self.config.collation == "binary":
            collation.mark_byte_order(text_sites)
        return CompiledSegment(
            name=name, path=state.path, config=config, tree=tree, refs=refs,
            sources=sorted(state.sources), params=dict(state.params), vars=dict(state.vars),
            columns=columns, rendered_sql=rendered.sql, upstream=upstream, splits=list(state.splits),
            text_orders=text_orders, case_maps=case_maps,
        )

    def _at_call(self, rendered: Rendered, call: CallSite, message: str, hint: str) -> SegsqlError:
        source = self.segment(rendered.state.name).read()
        return ValidationError(message, line_location(rendered.state.path, source, call.line, call), hint)

    def _parse_and_check(self, rendered: Rendered, config: SegmentConfig, refs: list[str]
                         ) -> tuple[exp.Query, Columns, list[pointintime.Replacement],
                                    tuple[list[collation.Site], list[collation.Site]]]:
        entity = self.config.entities[config.entity]
        try:
            tokens = checks.tokenize(rendered.sql, self.dialect)
            checks.check_single_statement(tokens)
            checks.check_nesting(tokens, self.config.limits.nesting_depth)
            checks.check_split_operators(tokens)
            tree = self._parse(rendered, tokens)
            checks.check_read_only(tree, tokens[0].start, self.dialect, self._udfs, tokens)
            assert isinstance(tree, exp.Query)
            catalog = self.catalog.with_tables(self._ref_tables(refs))
            self._check_no_cte_shadowing(tree, refs)
            all_scopes = checks.scopes(tree)
            checks.check_tables(all_scopes, catalog)
            checks.check_columns(all_scopes, catalog)
            columns = checks.check_output(tree, all_scopes[-1], catalog, entity.key_columns, config.entity)
            self._check_protected(rendered, config, all_scopes, catalog)
            self._check_determinism(rendered, all_scopes, refs)
            self._check_time(rendered, all_scopes, catalog, refs)
            known_rows = self._known_rows(all_scopes, catalog, refs)
            text_sites = [] if self.config.collation == "off" else collation.sites(all_scopes, catalog, self.dialect)
            case_sites = [] if self.config.collation == "off" else collation.case_sites(all_scopes, catalog,
                                                                                          self.dialect)
        except checks.RuleError as problem:
            kind = SqlError if isinstance(problem, checks.SqlRuleError) else ValidationError
            raise kind(problem.message, rendered.template_location(problem.offset), problem.hint) from None
        except RecursionError:  # nesting without parentheses (e.g. CASE in CASE) can still be too deep
            raise SqlError("the SQL is nested too deeply to analyse", Location(rendered.state.path, 1, 1),
                           "flatten the expression (CTEs, IN lists)") from None
        return tree, columns, known_rows, (text_sites, case_sites)

    def _check_determinism(self, rendered: Rendered, all_scopes: list[Any], refs: list[str]) -> None:
        """Ties and self-changing values (compile/determinism.py): warnings, or errors with
        `determinism: error` in segsql.yml; with `break_ties: true` ties are broken on the tree
        by the key columns instead, where they are known."""
        if self.config.determinism == "off" and not self.config.break_ties:
            return
        for finding in determinism.findings(all_scopes, self._unique_keys(refs)):
            if (self.config.break_ties and determinism.break_ties(finding)) or self.config.determinism == "off":
                continue
            problem = ValidationError(finding.message, rendered.template_location(finding.offset), finding.hint)
            if self.config.determinism == "error":
                raise problem
            self.warnings.append(problem)

    def _check_time(self, rendered: Rendered, all_scopes: list[Any], catalog: Catalog, refs: list[str]) -> None:
        """What the point-in-time filters cannot cover (compile/pointintime.py): a warning once per
        source and place, or an error with `point_in_time: error`."""
        if self.config.point_in_time == "off":
            return
        # "now" for the data is the project's pinned as_of (a project on historical data) or today
        now = self.config.as_of or dt.datetime.now(dt.UTC).date()
        past = self.as_of < now
        tables = self._source_tables.with_refs(refs)
        for finding in pointintime.findings(all_scopes, tables, self.config.sources, catalog, past):
            problem = ValidationError(finding.message, rendered.template_location(finding.offset), finding.hint)
            if self.config.point_in_time == "error":
                raise problem
            if finding.kind == "undeclared":
                if finding.source in self._undeclared_warned:
                    continue
                self._undeclared_warned.add(finding.source)
            if problem not in self.warnings:
                self.warnings.append(problem)

    def _known_rows(self, all_scopes: list[Any], catalog: Catalog,
                    refs: list[str]) -> list[pointintime.Replacement]:
        """What to put in place of each read of a source with time semantics (its known rows)."""
        try:
            return pointintime.replacements(all_scopes, self._source_tables.with_refs(refs), self.config.sources,
                                            catalog, self.as_of)
        except pointintime.KnownAtColumnsUnknownError as missing:
            raise checks.RuleError(f"source `{missing}` declares time.known_at, which needs its columns", 0,
                                   "declare its columns in segsql.yml or load the data first") from None

    def read_as_of(self, query: exp.Query) -> exp.Query:
        """`query` (validated, over source tables) with every read of a source with time semantics
        replaced by its known rows as of this compiler's date, in place: e.g. a metric whose
        expression reads another source in a subquery."""
        try:
            pairs = pointintime.replacements(checks.scopes(query), self._source_tables, self.config.sources,
                                             self.catalog, self.as_of)
        except (pointintime.KnownAtColumnsUnknownError, checks.RuleError) as problem:
            raise ValidationError(f"cannot read the sources as of {self.as_of}: {problem}", Location("segsql.yml"),
                                  "declare the columns of sources with time.known_at") from None
        pointintime.rewrite(pairs)
        return query

    def source_relation(self, name: str, alias: str | None = None) -> exp.Expr:
        """What reads source `name` as of this compiler's date: its table, or a subquery of its
        known rows aliased `alias` (default: the table's name). For stages that query sources
        themselves (population counts, metrics, exports)."""
        source = self.config.sources[name]
        table = _table_of(source, name, self.dialect)
        found = self.catalog.find(table)
        try:
            relation = pointintime.relation(table, source, self.as_of, found[1] if found else None,
                                            alias or table.name)
        except pointintime.KnownAtColumnsUnknownError:
            raise ValidationError(f"source `{name}` declares time.known_at, which needs its columns",
                                  Location("segsql.yml"), "declare its columns in segsql.yml") from None
        if relation is table and alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
        return relation

    @cached_property
    def _source_tables(self) -> pointintime.SourceTables:
        return pointintime.SourceTables({table_key(_table_of(source, name, self.dialect)): name
                                         for name, source in self.config.sources.items()})

    def _unique_keys(self, refs: list[str]) -> dict[str, set[determinism.Key]]:
        """Table name -> its keys (columns unique together): the sources' (computed once) and
        each ref's entity key."""
        keys = {table: set(found) for table, found in self._source_keys.items()}
        for ref in refs:
            key = self.config.entities[self.compiled(ref).entity].key_columns
            keys.setdefault(ref.lower(), set()).add(frozenset(column.lower() for column in key))
        return keys

    @cached_property
    def _source_keys(self) -> dict[str, set[determinism.Key]]:
        """Entity keys of population sources and declared `unique:` keys, by table name."""
        keys: dict[str, set[determinism.Key]] = {}
        for name, source in self.config.sources.items():
            table = _table_of(source, name, self.dialect).name.lower()
            keys.setdefault(table, set()).update(
                frozenset(c.lower() for c in ([key] if isinstance(key, str) else key)) for key in source.unique)
        for entity in self.config.entities.values():
            if entity.source is not None:
                table = _table_of(self.config.sources[entity.source], entity.source, self.dialect).name.lower()
                keys.setdefault(table, set()).add(frozenset(column.lower() for column in entity.key_columns))
        return keys

    def _check_protected(self, rendered: Rendered, config: SegmentConfig, all_scopes: list[Any],
                         catalog: Catalog) -> None:
        """Filtering on a protected attribute is a conscious, documented decision: a warning
        (an error in strict mode) unless config(protected_use='why') justifies it."""
        privacy = self.config.privacy
        protected = {name.lower(): name for name in privacy.protected_attributes}
        for source in self.config.sources.values():
            protected.update({column.lower(): category for column, category in source.sensitive.items()})
        if config.protected_use.strip():
            return
        for column, category, offset in checks.protected_uses(all_scopes, catalog, protected):
            location = rendered.template_location(offset)
            hint = "if this is intended, say why in config(protected_use='...')"
            message = f"filters on the protected attribute `{column}` ({category})"
            if privacy.strict:
                raise ValidationError(message, location, hint)
            self.warnings.append(ValidationError(message, location, hint))

    def _parse(self, rendered: Rendered, tokens: list[Any]) -> exp.Expr:
        try:
            parser = get_dialect(self.dialect).parser(error_level=ErrorLevel.RAISE)
            tree = parser.parse(tokens, rendered.sql)[0]
        except ParseError as error:
            first = error.errors[0] if error.errors else {}
            line, col = first.get("line") or 1, first.get("col") or 1
            highlight = first.get("highlight") or ""
            # sqlglot's col is the end of the offending token; point at its start.
            start_col = max(1, col - len(highlight) + 1) if highlight else col
            message = readable_parse_error(str(first.get("description") or error).split("\n")[0])
            raise SqlError(f"SQL syntax error: {message}", rendered.location_at(line, start_col),
                           f"near `{highlight}`" if highlight else None) from None
        if tree is None:
            raise SqlError("the segment has no SQL", Location(rendered.state.path, 1, 1))
        return tree

    def _check_no_cte_shadowing(self, tree: exp.Query, refs: list[str]) -> None:
        with_ = tree.args.get("with_") or tree.args.get("with")
        names = {cte.alias_or_name.lower(): cte for cte in (with_.expressions if with_ else [])}
        for ref in refs:
            if ref.lower() in names:
                raise checks.RuleError(f"CTE `{ref}` has the same name as the segment it refs",
                                     checks.offset_of(names[ref.lower()]), "rename the CTE")

    def _ref_tables(self, refs: list[str]) -> dict[tuple[str, ...], tuple[Columns | None, str]]:
        return {(ref.lower(),): (self.compiled(ref).columns, f"segment {ref}") for ref in refs}

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            if "catalog" not in self.cache:
                self.cache["catalog"] = (self._build_catalog(), list(self.warnings))
            self._catalog, warnings = self.cache["catalog"]
            self.warnings.extend(w for w in warnings if w not in self.warnings)
        return self._catalog

    def _build_catalog(self) -> Catalog:
        """Source tables with their columns: declared in segsql.yml (or dbt's catalog.json), else
        read from the engine. Every source is in it also when the engine cannot be reached: then
        the columns of those that declare none are unknown (not checked), and one warning says why."""
        catalog = Catalog()
        engine: SourceDescriber | None = None
        reachable = self.connect is not None
        try:
            for name, source in sorted(self.config.sources.items()):
                columns: Columns | None = None
                if source.columns is not None:
                    columns = {k.lower(): v for k, v in source.columns.items()}
                elif reachable:
                    try:
                        engine = engine or self.connect()  # type: ignore[misc]  # reachable: connect is set
                        columns = engine.describe_source(name, source)
                    except EngineError as error:
                        self.warnings.append(error)
                        reachable = False  # the other sources are not asked for either
                    else:
                        if columns is None:
                            self.warnings.append(SegsqlError(
                                f"source `{name}` was not found in the connection and declares no columns; "
                                "its columns are not checked", Location("segsql.yml"),
                                f"load the data, or list its columns under sources.{name}.columns"))
                catalog.add(table_key(_table_of(source, name, self.dialect)), columns, f"source {name}")
        finally:
            if engine is not None:
                engine.close()
        return catalog

    # -- assembling and transpiling --------------------------------------------------------
    def tree(self, name: str) -> exp.Query:
        """The self-contained query for `name`: every upstream ref inlined as a CTE."""
        segment = self.compiled(name)
        tree = segment.tree.copy()
        ctes = [exp.CTE(this=self.compiled(ref).tree.copy(), alias=exp.TableAlias(this=exp.to_identifier(ref)))
                for ref in segment.upstream]
        if ctes:
            with_ = tree.args.get("with_") or tree.args.get("with")
            existing = list(with_.expressions) if with_ else []
            key = "with_" if "with_" in type(tree).arg_types else "with"
            tree.set(key, exp.With(expressions=ctes + existing))
        return tree

    def to_sql(self, name: str, dialect: str | None = None, pretty: bool = True) -> str:
        """The compiled SQL of `name` in `dialect` (default: the project's); a construct the
        target cannot run is a ValidationError rather than SQL that reads other rows."""
        target = dialect or self.dialect
        path = self.compiled(name).path
        tree = self.tree(name)
        if target != self.dialect:
            problem = portability.check(tree, target)
            if problem:
                raise ValidationError(problem[0], Location(path), problem[1])
        try:
            runnable = portability.for_dialect(tree, target)
        except portability.UnrewritableQualifyError as error:
            raise ValidationError(error.message, Location(path), error.hint) from None
        try:
            # tree() returns a fresh copy, so the generator may work on it in place.
            sql = runnable.sql(dialect=get_dialect(target), pretty=pretty, copy=False,
                               unsupported_level=ErrorLevel.RAISE)
        except UnsupportedError as error:
            raise ValidationError(f"cannot compile for {target}: {error}", Location(path),
                                  "this construct has no equivalent in the target dialect") from None
        if target != self.dialect:
            try:
                compiled = sqlglot.parse_one(sql, dialect=target)
            except (ParseError, sqlglot.errors.TokenError) as error:
                raise ValidationError(f"the SQL compiled for {target} does not parse there: {error}".split("\n")[0],
                                      Location(path)) from None
            self._check_target_scopes(compiled, target, path)
        return sql

    def _check_target_scopes(self, compiled: exp.Expr, target: str, path: str) -> None:
        """The SQL a target will run must resolve there: every column in a scope of its own (a
        transpiler rewrite can leave a column outside the subquery it moved). Checked when the
        columns of every table read are known."""
        schema: dict[str, object] = {}
        ctes = {cte.alias_or_name.lower() for cte in compiled.find_all(exp.CTE)}
        for table in compiled.find_all(exp.Table):
            if table.name.lower() in ctes:
                continue
            found = self.catalog.find(table)
            if found is None or not found[1]:
                return
            schema[table.name] = {column: kind or "UNKNOWN" for column, kind in found[1].items()}
        try:
            qualify(compiled, schema=schema, dialect=get_dialect(target), validate_qualify_columns=True,
                    identify=False)
        except (OptimizeError, sqlglot.errors.SqlglotError) as error:
            raise ValidationError(f"the SQL compiled for {target} does not resolve there: {error}".split("\n")[0],
                                  Location(path), "report it: segsql should have rewritten this construct") from None


def _drop_positions(tree: exp.Expr) -> None:
    """Token positions served validation; without them every later tree copy is ~2x cheaper."""
    for node in tree.walk():
        if node._meta:
            node._meta = None


def readable_parse_error(message: str) -> str:
    """sqlglot's 'Required keyword: 'x' missing for <class '...Add'>' in an analyst's words."""
    match = re.match(r"Required keyword: '(\w+)' missing for <class '[\w.]*\.(\w+)'>", message)
    if match:
        return f"incomplete {match.group(2).upper()} expression: its `{match.group(1)}` part is missing"
    return message


def _table_of(source: Any, name: str, dialect_name: str) -> exp.Table:
    return table_for_source(name, source.table, dialect_name)


def _columns_in(text: str) -> list[exp.Column]:
    """The column references in a fragment of SQL an engine quoted (none if it does not parse)."""
    try:
        return list(sqlglot.parse_one(text).find_all(exp.Column))
    except SqlglotError:
        return []
