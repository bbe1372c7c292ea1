"""Constructs that some engines cannot run, as data. sqlglot transpiles most differences
(division, NULL ordering, QUALIFY, dates); for these it would emit SQL the target rejects or
reads differently, so validation for that target refuses them with a clear message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from segsql.compile import collation
from segsql.errors import SegsqlError


@dataclass(frozen=True)
class Unportable:
    description: str
    matches: Callable[[exp.Expr], bool]
    runs_on: frozenset[str]  # the dialects that can run it
    hint: str


def _asof_join(node: exp.Expr) -> bool:
    return isinstance(node, exp.Join) and str(node.args.get("method") or "").upper() == "ASOF"


RULES = [
    Unportable("ASOF JOIN", _asof_join,
               frozenset({"duckdb", "snowflake"}),
               "rewrite it as a join on the nearest earlier row (e.g. a window with ROW_NUMBER)"),
    # Postgres has it from version 16 only; the value it picks is arbitrary anyway (determinism.py)
    Unportable("ANY_VALUE", lambda node: isinstance(node, exp.AnyValue),
               frozenset({"duckdb", "spark", "databricks", "bigquery", "trino", "snowflake", "redshift"}),
               "use MIN or MAX, which pick the same value on every engine"),
    Unportable("struct literals", lambda node: isinstance(node, exp.Struct),
               frozenset({"duckdb", "spark", "databricks", "bigquery", "trino", "snowflake"}),
               "return the fields as separate columns"),
]


def check(tree: exp.Expr, dialect: str) -> tuple[str, str] | None:
    """(message, hint) for the first construct `dialect` cannot run, or None."""
    for node in tree.walk():
        for rule in RULES:
            if dialect not in rule.runs_on and rule.matches(node):
                return f"{rule.description} cannot run on {dialect}", rule.hint
    return None


# Dialects that run QUALIFY; for the others segsql rewrites it on the tree before generating SQL.
# sqlglot's own rewrite moves the query into a subquery `_t` but leaves table-qualified columns of
# the QUALIFY condition (`o.priority`) outside their scope, which Postgres, Spark and Trino reject.
QUALIFY_DIALECTS = frozenset({"duckdb", "snowflake", "bigquery", "databricks", "redshift"})
WINDOW_PREFIX, COLUMN_PREFIX, SUBQUERY = "_segsql_w", "_segsql_c", "_segsql_q"


class UnrewritableQualifyError(SegsqlError):
    """A QUALIFY this target cannot run and segsql does not rewrite (the rewrite would guess)."""


def for_dialect(tree: exp.Expr, dialect: str) -> exp.Expr:
    """`tree` as `dialect` can run it (a rewritten copy when needed, else `tree` itself). A
    QUALIFY whose rewrite could change its meaning raises UnrewritableQualifyError."""
    tree = collation.for_dialect(tree, dialect)
    if dialect in QUALIFY_DIALECTS or tree.find(exp.Qualify) is None:
        return tree
    rewritten = tree.copy()
    while True:
        selects = [s for s in rewritten.find_all(exp.Select) if s.args.get("qualify") is not None]
        if not selects:
            return rewritten
        deepest = max(selects, key=_depth)  # inner queries first: their rewrite is inside the outer one
        reason = _unrewritable(deepest)
        if reason is not None:
            raise UnrewritableQualifyError(f"QUALIFY with {reason} cannot run on {dialect}", None,
                                      "write it as a subquery: SELECT ... FROM (SELECT ..., ROW_NUMBER() OVER (...) "
                                      "AS rn FROM ...) AS t WHERE t.rn = 1")
        replacement = _without_qualify(deepest)
        if deepest is rewritten:
            rewritten = replacement
        else:
            deepest.replace(replacement)


def _depth(node: exp.Expr) -> int:
    depth = 0
    while node.parent is not None:
        node, depth = node.parent, depth + 1
    return depth


def _unrewritable(select: exp.Select) -> str | None:
    """Why lifting this QUALIFY into a subquery could change its meaning, or None. Only plain
    shapes are rewritten; the rest are refused rather than guessed."""
    condition, order = select.args["qualify"].this, select.args.get("order")
    parts = [condition, *([order] if order is not None else [])]
    projections = select.expressions
    names = [projection.alias_or_name for projection in projections]
    checks = [
        (any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
             for p in projections), "SELECT *"),
        (select.args.get("group") is not None or any(not isinstance(aggregate.parent, exp.Window)
                                                     for part in parts for aggregate in part.find_all(exp.AggFunc)),
         "GROUP BY or aggregates"),
        (bool(select.args.get("distinct") and select.args["distinct"].args.get("on")), "DISTINCT ON"),
        (any(node is not part and isinstance(node, exp.Query) for part in parts for node in part.walk()),
         "a subquery"),
        (select.args.get("windows") is not None, "a named WINDOW"),
        (len(set(names)) != len(names) or not all(names), "unnamed or repeated output columns"),
        (any(name.startswith(("_segsql_w", "_segsql_c", "_segsql_q")) for name in names), "reserved names"),
        (_alias_reference(select, parts), "a name that is both an output alias and a column"),
    ]
    return next((reason for failed, reason in checks if failed), None)


def _alias_reference(select: exp.Select, parts: list[exp.Expr]) -> bool:
    """An unqualified column of QUALIFY/ORDER BY (or of a window in them) that names a computed
    output: engines disagree whether it means the alias or the source column."""
    computed = {p.alias.lower() for p in select.expressions
                if isinstance(p, exp.Alias) and not (isinstance(p.this, exp.Column) and p.this.name == p.alias)}
    return any(not column.table and column.name.lower() in computed
               for part in parts for column in part.find_all(exp.Column))


def _without_qualify(select: exp.Select) -> exp.Select:
    """SELECT cols FROM (SELECT ..., <windows and columns QUALIFY/ORDER BY need>) WHERE condition,
    then DISTINCT, ORDER BY and LIMIT outside, where QUALIFY puts them in the order of evaluation."""
    outputs = [projection.alias_or_name for projection in select.expressions]
    quoted = [_output_identifier(projection) for projection in select.expressions]
    inner = select.copy()
    for clause in ("qualify", "order", "limit", "offset", "distinct"):
        inner.set(clause, None)
    condition = select.args["qualify"].this.copy()
    original_order = select.args.get("order")
    order = original_order.copy() if original_order is not None else None
    extra: list[exp.Expr] = []
    for part in (condition, order):
        if part is not None:
            _lift(part, outputs, extra)
    inner.set("expressions", [*inner.expressions, *extra])
    outer = exp.select(*[exp.column(identifier) for identifier in quoted]).from_(inner.subquery(SUBQUERY)).where(
        condition)
    for clause in ("order", "limit", "offset", "distinct"):
        value = order if clause == "order" else select.args.get(clause)
        if value is not None:
            outer.set(clause, value if clause == "order" else value.copy())
    return outer


def _output_identifier(projection: exp.Expr) -> exp.Identifier:
    """The output column's identifier as written (a quoted alias stays quoted)."""
    written = projection.args.get("alias") if isinstance(projection, exp.Alias) else \
        projection.this if isinstance(projection, exp.Column) else None
    if isinstance(written, exp.Identifier):
        return written.copy()
    return exp.to_identifier(projection.alias_or_name)


def _lift(part: exp.Expr, outputs: list[str], extra: list[exp.Expr]) -> None:
    """Windows and columns of `part` become projections of the inner query, referenced by name."""
    for window in list(part.find_all(exp.Window)):
        name = f"{WINDOW_PREFIX}{len(extra)}"
        extra.append(window.copy().as_(name))
        window.replace(exp.column(name))
    for column in list(part.find_all(exp.Column)):
        if not column.table and (column.name in outputs or column.name.startswith(WINDOW_PREFIX)):
            continue  # an output name, or a window lifted above: both exist outside
        name = f"{COLUMN_PREFIX}{len(extra)}"
        extra.append(column.copy().as_(name))
        column.replace(exp.column(name))
