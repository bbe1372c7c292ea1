"""Constructs that some engines cannot run, as data. sqlglot transpiles most differences
(division, NULL ordering, QUALIFY, dates); for these it would emit SQL the target rejects or
reads differently, so validation for that target refuses them with a clear message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp


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


def for_dialect(tree: exp.Expr, dialect: str) -> exp.Expr:
    """`tree` as `dialect` can run it (a rewritten copy when needed, else `tree` itself)."""
    if dialect in QUALIFY_DIALECTS or tree.find(exp.Qualify) is None:
        return tree
    rewritten = tree.copy()
    while True:
        selects = [s for s in rewritten.find_all(exp.Select) if s.args.get("qualify") is not None]
        if not selects:
            return rewritten
        deepest = max(selects, key=_depth)  # inner queries first: their rewrite is inside the outer one
        replacement = _without_qualify(deepest)
        if replacement is None:  # SELECT * with QUALIFY: leave it to sqlglot's rewrite
            return rewritten
        if deepest is rewritten:
            rewritten = replacement
        else:
            deepest.replace(replacement)


def _depth(node: exp.Expr) -> int:
    depth = 0
    while node.parent is not None:
        node, depth = node.parent, depth + 1
    return depth


def _without_qualify(select: exp.Select) -> exp.Select | None:
    """SELECT cols FROM (SELECT ..., <windows and columns QUALIFY/ORDER BY need>) WHERE condition,
    then DISTINCT, ORDER BY and LIMIT outside, where QUALIFY puts them in the order of evaluation."""
    if any(isinstance(p, exp.Star) or isinstance(getattr(p, "this", None), exp.Star) for p in select.expressions):
        return None
    outputs = [projection.alias_or_name for projection in select.expressions]
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
    outer = exp.select(*[exp.column(name) for name in outputs]).from_(inner.subquery(SUBQUERY)).where(condition)
    for clause in ("order", "limit", "offset", "distinct"):
        value = order if clause == "order" else select.args.get(clause)
        if value is not None:
            outer.set(clause, value if clause == "order" else value.copy())
    return outer


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
