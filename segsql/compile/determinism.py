"""Membership that can change between reruns on unchanged data, or between engines.

Found on the parsed tree, each at its place in the template:
- a tie-sensitive window (ROW_NUMBER, NTILE, FIRST_VALUE/LAST_VALUE/NTH_VALUE, LAG/LEAD, or an
  aggregate over a ROWS frame) whose PARTITION BY + ORDER BY is not a total order: it does not
  include a unique key of every table it orders (entity keys of population sources, a source's
  declared `unique:` columns, a ref's entity key) or, after GROUP BY, every group column;
- LIMIT without such a total ORDER BY;
- ANY_VALUE / FIRST / LAST / ARG_MIN / ARG_MAX aggregates (they pick one of several rows);
- values that change by themselves: random() and the clock (use `as_of` helpers instead).
Engines break ties differently (and DuckDB differently between runs), so members would flap and
history, hooks and changes-only exports would report changes that did not happen.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from segsql.compile.checks import offset_of

TIE_SENSITIVE = (exp.RowNumber, exp.Ntile, exp.FirstValue, exp.LastValue, exp.NthValue, exp.Lag, exp.Lead)
PICK_ONE = (exp.AnyValue, exp.First, exp.Last, exp.ArgMax, exp.ArgMin)
CHANGING = (exp.Rand, exp.Randn, exp.CurrentTimestamp, exp.CurrentDate, exp.CurrentTime, exp.CurrentDatetime,
            exp.Uuid)
CHANGING_NAMES = frozenset({"now", "today", "current_localtimestamp", "random", "uuid", "gen_random_uuid"})


@dataclass(frozen=True)
class Finding:
    message: str
    offset: int
    hint: str


def findings(all_scopes: list[Scope], unique_keys: dict[str, set[str]]) -> list[Finding]:
    """Every construct of the segment whose result can differ between reruns or engines.
    `unique_keys`: lower-case table name -> columns known to be unique in it."""
    found: list[Finding] = []
    for scope in all_scopes:
        keys = _scope_keys(scope, unique_keys)
        for node in scope.expression.find_all(exp.Window):
            if _in_scope(node, scope) and _tie_sensitive(node) and not _total(node, scope, keys):
                found.append(Finding(f"{_name(node)} orders rows that can tie, so members may differ between "
                                     "reruns and engines", offset_of(node), _tie_hint(scope, keys)))
        select = scope.expression
        if isinstance(select, exp.Select) and select.args.get("limit") is not None:
            order = select.args.get("order")
            terms = _columns(order.expressions if order else [])
            if order is None or not _covers(terms, scope, keys):
                found.append(Finding("LIMIT without a total ORDER BY keeps an arbitrary subset of tied rows",
                                     offset_of(select.args["limit"]), _tie_hint(scope, keys)))
        found.extend(_local_findings(scope))
    return found


def _local_findings(scope: Scope) -> list[Finding]:
    found = []
    for node in scope.expression.find_all(exp.Func):
        if not _in_scope(node, scope):
            continue
        if isinstance(node, PICK_ONE) and not isinstance(node.parent, exp.Window):
            found.append(Finding(f"{node.sql_name()} picks one of several rows; which one is up to the engine",
                                 offset_of(node), "aggregate explicitly (MIN, MAX) or pick with a total ORDER BY"))
        elif isinstance(node, CHANGING) or (isinstance(node, exp.Anonymous) and str(node.this).lower()
                                            in CHANGING_NAMES):
            found.append(Finding(f"{_name(node)} changes by itself, so members change without the data",
                                 _offset(node), "use as_of and the date helpers (days_ago, month_start) for time; "
                                 "split() for random-looking assignment"))
    return found


def _offset(node: exp.Expr) -> int:
    """Where `node` starts; keyword-like nodes (CURRENT_DATE) carry no position: use the nearest
    enclosing expression's."""
    current: exp.Expr | None = node
    while current is not None:
        if any(n.meta and "start" in n.meta for n in current.walk()):
            return offset_of(current)
        current = current.parent
    return 0


def _in_scope(node: exp.Expr, scope: Scope) -> bool:
    """`node` belongs to this scope, not to a subquery nested in it."""
    parent = node.parent
    while parent is not None and parent is not scope.expression:
        if isinstance(parent, exp.Query):
            return False
        parent = parent.parent
    return True


def _tie_sensitive(window: exp.Window) -> bool:
    if window.args.get("order") is None and not isinstance(window.this, exp.RowNumber | exp.Ntile):
        return False  # an aggregate over the whole partition does not depend on order
    spec = window.args.get("spec")
    rows_frame = spec is not None and str(spec.args.get("kind") or "").upper() == "ROWS"
    return isinstance(window.this, TIE_SENSITIVE) or rows_frame


def _name(node: exp.Expr) -> str:
    inner = node.this if isinstance(node, exp.Window) else node
    if isinstance(inner, exp.Anonymous):
        return f"{str(inner.this).upper()}()"
    return f"{inner.sql_name()}()" if isinstance(inner, exp.Func) else inner.key.upper()


def _total(window: exp.Window, scope: Scope, keys: dict[str, set[str]]) -> bool:
    order = window.args.get("order")
    terms = _columns([*(window.args.get("partition_by") or []), *(order.expressions if order else [])])
    return _covers(terms, scope, keys)


def _columns(expressions: list[exp.Expr]) -> set[tuple[str, str]]:
    """(table alias, column) of the plain column terms (`o.id`, `id DESC`), lower case."""
    terms = set()
    for expression in expressions:
        node = expression.this if isinstance(expression, exp.Ordered) else expression
        if isinstance(node, exp.Column):
            terms.add((node.table.lower(), node.name.lower()))
    return terms


def _covers(terms: set[tuple[str, str]], scope: Scope, keys: dict[str, set[str]]) -> bool:
    """The terms include a unique key of every source of the scope (or every group column)."""
    select = scope.expression
    group = select.args.get("group") if isinstance(select, exp.Select) else None
    if group is not None:
        grouped = _columns(list(group.expressions))
        return bool(grouped) and len(grouped) == len(group.expressions) and all(
            _term_in((table, column), terms, scope) for table, column in grouped)
    if not scope.selected_sources:
        return True
    return all(any(_term_in((alias, key), terms, scope) for key in keys.get(alias, set()))
               for alias in scope.selected_sources)


def _term_in(term: tuple[str, str], terms: set[tuple[str, str]], scope: Scope) -> bool:
    alias, column = term
    if term in terms:
        return True
    single = len(scope.selected_sources) == 1
    return ("", column) in terms and (single or alias == "")


def _scope_keys(scope: Scope, unique_keys: dict[str, set[str]]) -> dict[str, set[str]]:
    """Source alias (lower case) -> its unique columns, for the FROM items of a scope."""
    keys: dict[str, set[str]] = {}
    for alias, (_node, source) in scope.selected_sources.items():
        if isinstance(source, exp.Table):
            keys[alias.lower()] = unique_keys.get(source.name.lower(), set())
        elif isinstance(source, Scope):
            keys[alias.lower()] = _output_keys(source)
    return keys


def _output_keys(scope: Scope) -> set[str]:
    """Columns a derived table (subquery, CTE) outputs that are unique: its group columns."""
    select = scope.expression
    if not isinstance(select, exp.Select) or select.args.get("group") is None:
        return set()
    grouped = {expression.sql().lower() for expression in select.args["group"].expressions}
    names = {projection.alias_or_name.lower() for projection in select.expressions
             if (projection.this if isinstance(projection, exp.Alias) else projection).sql().lower() in grouped}
    return names if len(names) == len(grouped) else set()


def _tie_hint(scope: Scope, keys: dict[str, set[str]]) -> str:
    suggestions = [f"{alias}.{sorted(columns)[0]}" for alias, columns in sorted(keys.items()) if columns]
    if suggestions:
        return f"add {', '.join(suggestions)} as the last ORDER BY term(s) to break ties"
    return "order by columns that are unique together (declare them under sources.NAME.unique in segsql.yml)"
