"""Point-in-time reads: a segment evaluated as of D sees only what was known at the end of D.

A source that declares `time:` in segsql.yml is read, as of D, through a filtered subquery put in
place of its table on the validated tree (so it holds on every engine and dialect):

event       rows whose event time is before D + 1 day (UTC midnight); NULL times are kept
valid_from/ the version valid at the end of D: valid_from < D + 1 and (valid_to IS NULL or
valid_to    valid_to >= D + 1); NULL valid_from means "since always"
snapshot    the rows of the last snapshot on or before D
known_at    a column whose value became known later reads NULL before then

`findings` lists what cannot be made point-in-time here: sources with no declaration, open-ended
date windows on them, and columns declared `current` (latest value) read as of a past date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from segsql.compile.catalog import Catalog, Columns, table_key
from segsql.compile.checks import offset_of
from segsql.config.models import Source, SourceTime

LOWER = (exp.GT, exp.GTE)
UPPER = (exp.LT, exp.LTE)


@dataclass(frozen=True)
class Cut:
    """The end of `as_of` (the next midnight, UTC) as a literal of each time column's type:
    a TIMESTAMP for timestamp columns (BigQuery compares no TIMESTAMP with a DATE), else a DATE."""

    as_of: dt.date
    columns: Columns | None = None

    def bound(self, column: str) -> exp.Expr:
        day = self.as_of + dt.timedelta(days=1)
        kind = (self.columns or {}).get(column.lower()) or ""
        if "TIMESTAMP" in kind.upper() or "DATETIME" in kind.upper():
            return exp.cast(exp.Literal.string(f"{day.isoformat()} 00:00:00"), exp.DataType.Type.TIMESTAMP)
        return exp.cast(exp.Literal.string(day.isoformat()), exp.DataType.Type.DATE)

    def before(self, column: str) -> exp.Expr:
        return exp.column(column) < self.bound(column)


def _null_or(column: str, condition: exp.Expr) -> exp.Expr:
    return exp.or_(exp.column(column).is_(exp.null()), condition)


def known_rows(time: SourceTime, table: exp.Table, cut: Cut) -> exp.Expr:
    """The condition selecting the rows of `table` known at `cut`."""
    if time.event is not None:
        return _null_or(time.event, cut.before(time.event))
    if time.snapshot is not None:
        last = exp.select(exp.func("max", exp.column(time.snapshot))).from_(table.copy()).where(
            cut.before(time.snapshot))
        return exp.EQ(this=exp.column(time.snapshot), expression=exp.Subquery(this=last))
    assert time.valid_from is not None and time.valid_to is not None
    started = _null_or(time.valid_from, cut.before(time.valid_from))
    not_ended = _null_or(time.valid_to, exp.column(time.valid_to) >= cut.bound(time.valid_to))
    return exp.and_(started, not_ended)


def _projection(time: SourceTime, columns: Columns | None, cut: Cut) -> list[exp.Expr] | None:
    """SELECT * unless some columns become known later: then each column, those NULL until known."""
    if not time.known_at:
        return None
    assert columns is not None  # ensured by the caller (`KnownAtColumnsUnknownError`)
    later = {column.lower(): known for column, known in time.known_at.items()}
    # the column saying when a value became known is itself only known from then on
    later.update({known.lower(): known for known in time.known_at.values()})
    projection: list[exp.Expr] = []
    for column in columns:
        if column in later:
            value = exp.Case(ifs=[exp.If(this=cut.before(later[column]), true=exp.column(column))])
            projection.append(exp.alias_(value, column))
        else:
            projection.append(exp.column(column))
    return projection


class KnownAtColumnsUnknownError(Exception):
    """`known_at` needs the source's columns (declared or read from the connection)."""


def relation(table: exp.Table, source: Source, as_of: dt.date, columns: Columns | None,
             alias: str) -> exp.Expr:
    """What to read instead of `table` as of `as_of`: the table itself, or a subquery aliased
    `alias` returning its known rows (and columns)."""
    if source.time is None:
        return table
    if source.time.known_at and columns is None:
        raise KnownAtColumnsUnknownError(alias)
    cut = Cut(as_of, columns)
    projection = _projection(source.time, columns, cut)
    inner = exp.select(*(projection or [exp.Star()])).from_(table.copy()).where(
        known_rows(source.time, table, cut))
    return exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(alias)))


@dataclass(frozen=True)
class SourceTables:
    """Which source a table reference is: table key -> source name."""

    by_key: dict[tuple[str, ...], str]
    refs: frozenset[str] = frozenset()  # segments the query refs (their names are tables too)

    def with_refs(self, refs: list[str]) -> SourceTables:
        return SourceTables(self.by_key, frozenset(ref.lower() for ref in refs))

    def name_of(self, table: exp.Table) -> str | None:
        key = table_key(table)
        if key in self.by_key:
            return self.by_key[key]
        matches = [name for k, name in self.by_key.items() if k[-len(key):] == key]
        return matches[0] if len(matches) == 1 else None


def source_tables_in(all_scopes: list[Scope], tables: SourceTables) -> Iterator[tuple[exp.Table, str]]:
    """Every FROM/JOIN table of the query that is a source (not a CTE or a ref), with its name."""
    for scope in all_scopes:
        for _alias, (node, source) in scope.selected_sources.items():
            if not (isinstance(source, exp.Table) and isinstance(node, exp.Table)):
                continue  # a CTE or subquery
            if not source.db and source.name.lower() in tables.refs:
                continue  # ref('x') reads the segment x, even when a source table is also called x
            name = tables.name_of(source)
            if name is not None:
                yield node, name


MARK = "segsql_known_rows"  # meta flag on the subqueries `rewrite` puts in; `unwrap` undoes them


@dataclass
class Replacement:
    """A source read to replace by its known rows, and the columns that name it with its schema
    (`analytics.events.col`), which must name the subquery's alias instead."""

    node: exp.Table
    relation: exp.Expr
    qualified: list[exp.Column]


def replacements(all_scopes: list[Scope], tables: SourceTables, sources: dict[str, Source], catalog: Catalog,
                 as_of: dt.date) -> list[Replacement]:
    """What reads the known rows of each source with time semantics, for every read of one."""
    found: list[Replacement] = []
    for scope in all_scopes:
        for node, name in source_tables_in([scope], tables):
            source = sources[name]
            if source.time is None:
                continue
            entry = catalog.find(node)
            relation_ = relation(node.copy(), source, as_of, entry[1] if entry else None, node.alias_or_name)
            qualified = [column for column in scope.columns
                         if column.args.get("db") is not None and column.table == node.alias_or_name]
            found.append(Replacement(node, relation_, qualified))
    return found


def rewrite(pairs: list[Replacement]) -> None:
    """Put each replacement in place of its table (in the tree the nodes belong to), marked."""
    for replacement in pairs:
        replacement.relation.meta[MARK] = True
        replacement.node.replace(replacement.relation)
        for column in replacement.qualified:
            column.set("db", None)
            column.set("catalog", None)


def unwrap(tree: exp.Expr) -> exp.Expr:
    """The tree as written: each known-rows subquery back to its table (for lineage)."""
    for subquery in list(tree.find_all(exp.Subquery)):
        if subquery.meta.get(MARK):
            inner = subquery.this
            table = (inner.args.get("from_") or inner.args.get("from")).this.copy()
            if table.name != subquery.alias:
                table.set("alias", exp.TableAlias(this=exp.to_identifier(subquery.alias)))
            subquery.replace(table)
    return tree


@dataclass(frozen=True)
class Finding:
    """Something about time the compiler reports (a warning, or an error when strict)."""

    source: str
    message: str
    offset: int
    hint: str
    kind: str = "undeclared"  # undeclared | window | current


def _declare_time_hint(name: str) -> str:
    if name.startswith("dbt:"):  # a dbt node: declared in the dbt project (docs/dbt.md)
        return ("add `meta: {segsql: {static: true}}` or `meta: {segsql: {time: {event: COLUMN}}}` to the dbt node, "
                "then `dbt docs generate` (docs/dbt.md)")
    return (f"declare sources.{name}.time (event, valid_from/valid_to or snapshot) or "
            "`static: true` in segsql.yml (docs/point-in-time.md)")


def findings(all_scopes: list[Scope], tables: SourceTables, sources: dict[str, Source], catalog: Catalog,
             past: bool) -> list[Finding]:
    """Undeclared sources read, open-ended date windows on them, and `current` columns read when
    `past` (the evaluation date is before today)."""
    found: list[Finding] = []
    for node, name in source_tables_in(all_scopes, tables):
        if sources[name].timeless:
            found.append(Finding(name, f"source `{name}` declares no time semantics, so as of a past date this "
                                 "segment may read rows from after that date", offset_of(node),
                                 _declare_time_hint(name)))
    for scope in all_scopes:
        found.extend(_open_windows(scope, tables, sources, catalog))
        if past:
            found.extend(_current_reads(scope, tables, sources, catalog))
    return found


def _resolve(column: exp.Column, scope: Scope, tables: SourceTables,
             catalog: Catalog) -> tuple[str, exp.Table] | None:
    """The source (name, table) a column of this scope reads, when it is one."""
    candidates = scope.selected_sources
    if column.table:
        entry = candidates.get(column.table)
        pairs = [entry] if entry else []
    else:
        pairs = [pair for pair in candidates.values() if _has_column(pair[1], column.name, catalog)]
        if len(pairs) != 1:
            return None
    for _node, source in pairs:
        if isinstance(source, exp.Table):
            name = tables.name_of(source)
            return (name, source) if name else None
    return None


def _has_column(source: object, name: str, catalog: Catalog) -> bool:
    if not isinstance(source, exp.Table):
        return False
    found = catalog.find(source)
    return bool(found and found[1] and name.lower() in found[1])


def _conditions(scope: Scope) -> list[exp.Expr]:
    expression = scope.expression
    parts = [expression.args.get(key) for key in ("where", "having", "qualify")]
    parts += [join.args.get("on") for join in expression.args.get("joins") or []]
    return [part for part in parts if part is not None]


def _bounds(condition: exp.Expr) -> Iterator[tuple[exp.Column, str, exp.Expr]]:
    """(column, 'lower'|'upper'|'both', comparison) for comparisons of a column with a constant."""
    for node in condition.find_all(exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.Between):
        if isinstance(node, exp.Between):
            bare = _bare(node.this)
            if isinstance(bare, exp.Column) and not _has_columns(node.args["low"], node.args["high"]):
                yield bare, "both", node
            continue
        left, right = _bare(node.this), _bare(node.expression)
        if isinstance(left, exp.Column) and not _has_columns(right):
            column, flipped = left, False
        elif isinstance(right, exp.Column) and not _has_columns(left):
            column, flipped = right, True
        else:
            continue
        if isinstance(node, exp.EQ):
            yield column, "both", node
        elif isinstance(node, LOWER) != flipped:
            yield column, "lower", node
        else:
            yield column, "upper", node


DAY_OF = (exp.Cast, exp.TryCast, exp.TsOrDsToDate, exp.Date, exp.DateTrunc, exp.TimestampTrunc)


def _bare(node: exp.Expr) -> exp.Expr:
    """The column under CAST(col AS DATE), DATE(col) or DATE_TRUNC(unit, col): the same bound."""
    while isinstance(node, DAY_OF) and isinstance(node.this, exp.Expr):
        node = node.this
    return node


def _has_columns(*nodes: exp.Expr) -> bool:
    return any(node.find(exp.Column) is not None for node in nodes)


def _is_time(kind: str | None) -> bool:
    return kind is not None and any(word in kind.upper() for word in ("DATE", "TIME"))


def _open_windows(scope: Scope, tables: SourceTables, sources: dict[str, Source],
                  catalog: Catalog) -> Iterator[Finding]:
    lower: dict[tuple[str, str], tuple[exp.Column, exp.Expr]] = {}
    upper: set[tuple[str, str]] = set()
    for condition in _conditions(scope):
        for column, side, node in _bounds(condition):
            resolved = _resolve(column, scope, tables, catalog)
            if resolved is None or not sources[resolved[0]].timeless:
                continue
            found = catalog.find(resolved[1])
            if not (found and found[1] and _is_time(found[1].get(column.name.lower()))):
                continue
            key = (resolved[0], column.name.lower())
            if side in ("upper", "both"):
                upper.add(key)
            if side in ("lower", "both"):
                lower.setdefault(key, (column, node))
    for key, (column, node) in lower.items():
        if key not in upper:
            yield Finding(key[0], f"`{column.sql()}` has a lower bound but no upper bound: as of a past date the "
                          "window includes rows from after that date", offset_of(node),
                          f"use last_n_days('{column.sql()}', N) or between_days(...), which end at as_of, or "
                          f"declare sources.{key[0]}.time in segsql.yml", "window")


def _current_reads(scope: Scope, tables: SourceTables, sources: dict[str, Source],
                   catalog: Catalog) -> Iterator[Finding]:
    for column in scope.columns:
        resolved = _resolve(column, scope, tables, catalog)
        if resolved is None:
            continue
        name, time = resolved[0], sources[resolved[0]].time
        if time and column.name.lower() in {c.lower() for c in time.current}:
            yield Finding(name, f"`{column.sql()}` holds the latest value of {name}.{column.name}, not its value "
                          "at the evaluation date", offset_of(column),
                          "read it from a source with history instead: an event time or valid_from/valid_to", "current")
    yield from _current_in_stars(scope, tables, sources)


def _current_in_stars(scope: Scope, tables: SourceTables, sources: dict[str, Source]) -> Iterator[Finding]:
    """`SELECT *` (or `t.*`) over a source outputs its `current` columns too."""
    expression = scope.expression
    if not isinstance(expression, exp.Select):
        return
    for projection in expression.expressions:
        star = projection if isinstance(projection, exp.Star) else None
        qualifier = projection.table if isinstance(projection, exp.Column) and \
            isinstance(projection.this, exp.Star) else None
        if star is None and qualifier is None:
            continue
        for alias, (_node, source) in scope.selected_sources.items():
            if qualifier not in (None, alias) or not isinstance(source, exp.Table):
                continue
            name = tables.name_of(source)
            time = sources[name].time if name else None
            if name and time and time.current:
                yield Finding(name, f"`{projection.sql()}` outputs {', '.join(time.current)} of {name}, which hold "
                              "the latest value, not the value at the evaluation date", offset_of(projection),
                              "list the columns you need instead of *", "current")
