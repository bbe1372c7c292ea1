"""Text comparisons whose answer depends on the engine's collation.

`name >= 'A'`, `BETWEEN 'a' AND 'm'`, `MIN(name)`, `GREATEST(a, b)` and a ranking window ordered
by a text column compare strings. DuckDB, Spark, Snowflake and BigQuery compare them by their
bytes (code points) by default, and so does Postgres with the `C` collation; a Postgres database
created with a linguistic collation (ICU `en-US`, libc `en_US.UTF-8`) sorts `a` next to `A`, so
the same segment keeps other rows. Byte order is the reference: it is the only order every engine
can produce. Found on the parsed tree (each place at its template offset); with `collation:
binary` the text operands are compiled with the target's byte-order collation (`COLLATE "C"`).
Equality is not affected: the collations engines create by default are deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from segsql.compile.catalog import Catalog
from segsql.compile.checks import ColumnResolver, offset_of
from segsql.compile.determinism import in_scope

TEXT_WORDS = ("CHAR", "TEXT", "STRING", "NAME")  # VARCHAR, NVARCHAR, BPCHAR contain CHAR
TEXT_FUNCTIONS = (exp.Lower, exp.Upper, exp.Concat, exp.DPipe, exp.Substring, exp.Trim, exp.Initcap,
                  exp.Left, exp.Right, exp.Pad, exp.RegexpReplace, exp.ConcatWs)
CASE_FUNCTIONS = (exp.Lower, exp.Upper, exp.Initcap)
COMPARISONS = (exp.GT, exp.GTE, exp.LT, exp.LTE)
ORDERED_PICKS = (exp.Min, exp.Max, exp.Greatest, exp.Least, exp.ArgMin, exp.ArgMax)
# What forces byte order on a target whose default may be linguistic (only Postgres lets a
# database default to one among the engines segsql runs on); differences as data.
MARK = "segsql_byte_order"
BYTE_ORDER = {"postgres": exp.Identifier(this="C", quoted=True), "redshift": exp.Identifier(this="C", quoted=True)}


@dataclass(frozen=True)
class Site:
    """One place whose result depends on how text is ordered."""

    description: str  # e.g. "`a.name >= 'A'`"
    offset: int
    operands: tuple[exp.Expr, ...]  # the text expressions to compile in byte order


def is_text(kind: str | None) -> bool:
    """Whether a column type (as the catalog reports it) holds text."""
    return kind is not None and any(word in kind.upper() for word in TEXT_WORDS)


def sites(all_scopes: list[Scope], catalog: Catalog, dialect: str = "duckdb") -> list[Site]:
    """Every comparison, pick, ordered window and ORDER BY before LIMIT that orders text
    (described in `dialect`)."""
    typing = _Types(catalog)
    found: list[Site] = []
    for scope in all_scopes:
        for node in scope.expression.walk():
            if not in_scope(node, scope):
                continue
            operands = _text_operands(node, scope, typing)
            if operands:
                found.append(Site(_describe(node, dialect), offset_of(node), operands))
    return found


def case_sites(all_scopes: list[Scope], catalog: Catalog, dialect: str = "duckdb") -> list[Site]:
    """LOWER/UPPER/INITCAP of text and ILIKE: a Postgres database with LC_CTYPE `C` maps only
    ASCII letters (LOWER('ÄRGER') is 'Ärger' there, 'ärger' on DuckDB and Spark)."""
    typing = _Types(catalog)
    found: list[Site] = []
    for scope in all_scopes:
        for node in scope.expression.walk():
            if not in_scope(node, scope) or not isinstance(node, (*CASE_FUNCTIONS, exp.ILike)):
                continue
            if typing.kind(node.this, scope) == "text" and not isinstance(node.this, exp.Literal):
                found.append(Site(_describe(node, dialect), offset_of(node), (node.this,)))
    return found


def mark_byte_order(found: list[Site]) -> None:
    """Wrap every text operand of `found` in a byte-order COLLATE, in place, marked so that
    `for_dialect` keeps it only for targets that need it (`collation: binary`)."""
    for site in found:
        for operand in site.operands:
            if isinstance(operand, exp.Collate) or isinstance(operand.parent, exp.Collate):
                continue  # the analyst chose a collation
            collate = exp.Collate(this=operand.copy(), expression=BYTE_ORDER["postgres"].copy())
            collate.meta[MARK] = True
            operand.replace(collate)


def for_dialect(tree: exp.Expr, dialect: str) -> exp.Expr:
    """`tree` with the marked COLLATEs as `dialect` needs them: its byte-order collation where
    the default may be linguistic, none where the default is byte order (a copy when changed)."""
    marks = [node for node in tree.find_all(exp.Collate) if node.meta.get(MARK)]
    if not marks:
        return tree
    collation = BYTE_ORDER.get(dialect)
    copied = tree.copy()
    for node in [n for n in copied.find_all(exp.Collate) if n.meta.get(MARK)]:
        if collation is None:
            node.replace(node.this)
        else:
            node.set("expression", collation.copy())
    return copied


def _text_operands(node: exp.Expr, scope: Scope, typing: _Types) -> tuple[exp.Expr, ...]:
    if isinstance(node, COMPARISONS):
        return _compared(node.this, node.expression, scope=scope, typing=typing)
    if isinstance(node, exp.Between):
        return _compared(node.this, node.args["low"], node.args["high"], scope=scope, typing=typing)
    if isinstance(node, ORDERED_PICKS) and not isinstance(node.parent, exp.Window):
        values = [node.this, *node.expressions] if isinstance(node, exp.Greatest | exp.Least) else [node.this]
        return _compared(*values, scope=scope, typing=typing)
    if isinstance(node, exp.Window) and node.args.get("order") is not None:
        return _text_terms(node.args["order"], scope, typing)  # a rank or a running total by text
    if isinstance(node, exp.Order) and isinstance(node.parent, exp.Select) and node.parent.args.get("limit"):
        return _text_terms(node, scope, typing)  # which rows LIMIT keeps
    return ()


def _text_terms(order: exp.Order, scope: Scope, typing: _Types) -> tuple[exp.Expr, ...]:
    terms = [o.this if isinstance(o, exp.Ordered) else o for o in order.expressions]
    return tuple(term for term in terms if typing.kind(term, scope) == "text")


def _compared(*values: exp.Expr, scope: Scope, typing: _Types) -> tuple[exp.Expr, ...]:
    """The text values among `values` when they are compared as text: one is known to be text
    and none is known to be something else (`date_col >= '2024-01-01'` compares dates)."""
    kinds = [typing.kind(value, scope) for value in values]
    if "other" in kinds or not any(kind == "text" and not isinstance(value, exp.Literal)
                                    for value, kind in zip(values, kinds, strict=True)):
        return ()
    return tuple(value for value, kind in zip(values, kinds, strict=True)
                 if kind == "text" and not isinstance(value, exp.Literal))


class _Types:
    """Whether an expression of a scope is text ("text"), known not to be ("other") or unknown."""

    def __init__(self, catalog: Catalog):
        self.resolver = ColumnResolver(catalog)

    def kind(self, node: exp.Expr, scope: Scope) -> str | None:
        if isinstance(node, exp.Paren | exp.Alias | exp.Collate):
            return self.kind(node.this, scope)
        if isinstance(node, exp.Literal):
            return "text" if node.is_string else "other"
        if isinstance(node, exp.Cast):
            return "text" if is_text(node.to.sql()) else "other"
        if isinstance(node, TEXT_FUNCTIONS):
            return "text"
        if isinstance(node, exp.Coalesce):
            return self.kind(node.this, scope)
        if isinstance(node, exp.Column):
            return self._column(node, scope)
        if isinstance(node, exp.Func | exp.Binary | exp.Unary):
            return "other" if isinstance(node, exp.AggFunc | exp.Binary) and not isinstance(
                node, exp.Min | exp.Max | exp.DPipe) else None
        return None

    def _column(self, column: exp.Column, scope: Scope) -> str | None:
        for source in self._sources(column, scope):
            if isinstance(source, exp.Table):
                found = self.resolver.catalog.find(source)
                kind = found[1].get(column.name.lower()) if found and found[1] else None
                if kind is not None:
                    return "text" if is_text(kind) else "other"
            elif isinstance(source, Scope):
                projection = _projection(source, column.name)
                if projection is not None:
                    return self.kind(projection, source)
        return None

    def _sources(self, column: exp.Column, scope: Scope) -> Iterator[object]:
        if column.table:
            entry = scope.selected_sources.get(column.table)
            if entry is not None:
                yield entry[1]
            return
        for _node, source in scope.selected_sources.values():
            columns = self.resolver.source_columns(source)
            if columns is not None and column.name.lower() in columns:
                yield source


def _projection(scope: Scope, name: str) -> exp.Expr | None:
    expression = scope.expression
    while isinstance(expression, exp.SetOperation):
        expression = expression.left
    if not isinstance(expression, exp.Select):
        return None
    found: list[exp.Expr] = [p for p in expression.expressions if p.alias_or_name.lower() == name.lower()]
    return found[0] if found else None


def warning(description: str, target: str, order: str) -> tuple[str, str]:
    """(message, hint) for a site on a target whose text order is `order`, not byte order."""
    return (f"{description} orders text by the {target} collation {order}, not by byte order as DuckDB and "
            "Spark do: members can differ between engines",
            'set `collation: binary` in segsql.yml to compile it with COLLATE "C" on this target, or use a '
            "C-collation database (CREATE DATABASE ... LC_COLLATE 'C')")


def case_warning(description: str, target: str, mapping: str) -> tuple[str, str]:
    """(message, hint) for a case mapping on a target that maps only some letters."""
    return (f"{description} maps letter case by the {target} {mapping}, which changes ASCII letters only "
            "(DuckDB and Spark map every letter): members can differ for names like 'Ärger'",
            "create the database with an ICU or UTF-8 locale for LC_CTYPE, or compare without changing case")


def _describe(node: exp.Expr, dialect: str) -> str:
    text = " ".join(node.sql(dialect=dialect).split())
    return f"`{text if len(text) <= 60 else text[:57] + '...'}`"
