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
            exp.Uuid, exp.Localtimestamp, exp.Localtime)
Key = frozenset[str]  # columns that are unique together
CHANGING_NAMES = frozenset({"now", "today", "current_localtimestamp", "random", "uuid", "gen_random_uuid"})


@dataclass(frozen=True)
class Finding:
    message: str
    offset: int
    hint: str
    owner: exp.Expr | None = None  # the window or query whose ORDER BY is not total
    tie_breakers: tuple[exp.Expr, ...] = ()  # terms that make it total (empty: none known)


def findings(all_scopes: list[Scope], unique_keys: dict[str, set[Key]]) -> list[Finding]:
    """Every construct of the segment whose result can differ between reruns or engines.
    `unique_keys`: lower-case table name -> its keys (sets of columns unique together)."""
    found: list[Finding] = []
    for scope in all_scopes:
        keys = _scope_keys(scope, unique_keys)
        for node in scope.expression.find_all(exp.Window):
            if in_scope(node, scope) and _tie_sensitive(node) and not _total(node, scope, keys):
                found.append(Finding(f"{_name(node)} orders rows that can tie, so members may differ between "
                                     "reruns and engines", offset_of(node), _tie_hint(scope, keys), node,
                                     _tie_breakers(scope, keys)))
        found.extend(_limit_findings(scope, keys))
        found.extend(_local_findings(scope))
    return found


def _limit_findings(scope: Scope, keys: dict[str, set[Key]]) -> list[Finding]:
    query = scope.expression
    cut = query.args.get("limit") or query.args.get("offset")
    if cut is None or isinstance(query.parent, exp.Exists) or _one_row(query):
        return []
    order = query.args.get("order")
    if order is not None and isinstance(query, exp.Select) and _covers(_columns(order.expressions), scope, keys):
        return []
    return [Finding("LIMIT/OFFSET without a total ORDER BY keeps an arbitrary subset of tied rows",
                    offset_of(cut), _tie_hint(scope, keys), query,
                    _tie_breakers(scope, keys) if isinstance(query, exp.Select) else ())]


def break_ties(finding: Finding) -> bool:
    """Append the finding's tie-breakers as the last ORDER BY terms of its window or query, in
    place (`break_ties: true`); False when none are known."""
    if finding.owner is None or not finding.tie_breakers:
        return False
    order = finding.owner.args.get("order")
    terms = [exp.Ordered(this=term.copy(), nulls_first=False) for term in finding.tie_breakers]
    if order is None:
        finding.owner.set("order", exp.Order(expressions=terms))
    else:
        order.set("expressions", [*order.expressions, *terms])
    return True


def _tie_breakers(scope: Scope, keys: dict[str, set[Key]]) -> tuple[exp.Expr, ...]:
    """Terms that make any order of this scope's rows total: every GROUP BY item, else a key of
    every source not joined on its whole key; () when a source has no known key."""
    select = scope.expression
    if isinstance(select, exp.Select) and select.args.get("group") is not None:
        return tuple(_group_expressions(select))
    looked_up = _looked_up(scope, keys)
    terms: list[exp.Expr] = []
    for alias in sorted(scope.selected_sources):
        if alias.lower() in looked_up:
            continue
        options = keys.get(alias.lower(), set())
        if not options:
            return ()
        terms.extend(exp.column(column, table=alias) for column in sorted(min(options, key=sorted)))
    return tuple(terms)


def _one_row(query: exp.Expr) -> bool:
    """An aggregate without GROUP BY returns one row: LIMIT cannot choose among ties there."""
    return isinstance(query, exp.Select) and query.args.get("group") is None and bool(query.expressions) and all(
        (p.this if isinstance(p, exp.Alias) else p).find(exp.AggFunc) is not None for p in query.expressions)


def _local_findings(scope: Scope) -> list[Finding]:
    found = []
    for node in scope.expression.find_all(exp.Func):
        if not in_scope(node, scope):
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


def in_scope(node: exp.Expr, scope: Scope) -> bool:
    """`node` belongs to this scope, not to a subquery nested in it."""
    parent = node.parent
    while parent is not None and parent is not scope.expression:
        if isinstance(parent, exp.Query):
            return False
        parent = parent.parent
    return True


def window_function(window: exp.Window) -> exp.Expr:
    inner: exp.Expr = window.this
    if isinstance(inner, exp.IgnoreNulls | exp.RespectNulls):
        unwrapped: exp.Expr = inner.this
        return unwrapped
    return inner


def _tie_sensitive(window: exp.Window) -> bool:
    function = window_function(window)
    if window.args.get("order") is None and not isinstance(function, exp.RowNumber | exp.Ntile):
        return False  # an aggregate over the whole partition does not depend on order
    if isinstance(function, (*TIE_SENSITIVE, exp.First, exp.Last)):
        return True
    spec = window.args.get("spec")
    if spec is None or str(spec.args.get("kind") or "").upper() != "ROWS":
        return False
    whole = str(spec.args.get("start")).upper() == "UNBOUNDED" and str(spec.args.get("end")).upper() == "UNBOUNDED"
    return not whole  # an aggregate over a sliding ROWS frame depends on which tied row comes first


def _name(node: exp.Expr) -> str:
    inner = window_function(node) if isinstance(node, exp.Window) else node
    if isinstance(inner, exp.Anonymous):
        return f"{str(inner.this).upper()}()"
    return f"{inner.sql_name()}()" if isinstance(inner, exp.Func) else inner.key.upper()


def _total(window: exp.Window, scope: Scope, keys: dict[str, set[Key]]) -> bool:
    order = window.args.get("order")
    terms = _columns([*(window.args.get("partition_by") or []), *(order.expressions if order else [])])
    return _covers(terms, scope, keys)


def _columns(expressions: list[exp.Expr]) -> set[tuple[str, str]]:
    """(table alias, column) of the plain column terms (`o.id`, `id DESC`), lower case; other
    terms as ("", their SQL) so a GROUP BY expression can be matched."""
    terms = set()
    for expression in expressions:
        node = expression.this if isinstance(expression, exp.Ordered) else expression
        if isinstance(node, exp.Column):
            terms.add((node.table.lower(), node.name.lower()))
        else:
            terms.add(("", node.sql().lower()))
    return terms


def _covers(terms: set[tuple[str, str]], scope: Scope, keys: dict[str, set[Key]]) -> bool:
    """The terms include a key of every source of the scope (or every group column)."""
    select = scope.expression
    if isinstance(select, exp.Select) and select.args.get("group") is not None:
        grouped = _columns(_group_expressions(select))
        return all(_term_in(term, terms, scope) for term in grouped)
    if not scope.selected_sources:
        return True
    looked_up = _looked_up(scope, keys)
    return all(alias in looked_up or any(all(_term_in((alias, column), terms, scope) for column in key)
                                         for key in keys.get(alias, set()))
               for alias in scope.selected_sources)


def _looked_up(scope: Scope, keys: dict[str, set[Key]]) -> set[str]:
    """Joined sources matched on their whole key (`JOIN accounts a ON a.account_id = u.account_id`,
    or USING their key): at most one row per row of the rest, so they need no key of their own."""
    select = scope.expression
    found: set[str] = set()
    for join in (select.args.get("joins") or []) if isinstance(select, exp.Select) else []:
        alias = join.this.alias_or_name.lower()
        equated = {column.lower() for column in (str(u.name) for u in join.args.get("using") or [])}
        condition = join.args.get("on")
        for equality in (condition.find_all(exp.EQ) if condition is not None else []):
            for side in (equality.this, equality.expression):
                if isinstance(side, exp.Column) and side.table.lower() == alias:
                    equated.add(side.name.lower())
        if any(key <= equated for key in keys.get(alias, set())):
            found.add(alias)
    return found


def _group_expressions(select: exp.Select) -> list[exp.Expr]:
    """GROUP BY items, positions (`GROUP BY 1`) resolved to the projections they name."""
    resolved = []
    for item in select.args["group"].expressions:
        if isinstance(item, exp.Literal) and item.is_int and 0 < int(item.name) <= len(select.expressions):
            projection = select.expressions[int(item.name) - 1]
            resolved.append(projection.this if isinstance(projection, exp.Alias) else projection)
        else:
            resolved.append(item)
    return resolved


def _term_in(term: tuple[str, str], terms: set[tuple[str, str]], scope: Scope) -> bool:
    alias, column = term
    if term in terms:
        return True
    single = len(scope.selected_sources) == 1
    return (("", column) in terms and (single or alias == "")) or (alias == "" and any(c == column for _, c in terms))


def _scope_keys(scope: Scope, unique_keys: dict[str, set[Key]]) -> dict[str, set[Key]]:
    """Source alias (lower case) -> its keys, for the FROM items of a scope."""
    keys: dict[str, set[Key]] = {}
    for alias, (_node, source) in scope.selected_sources.items():
        if isinstance(source, exp.Table):
            keys[alias.lower()] = unique_keys.get(source.name.lower(), set())
        elif isinstance(source, Scope):
            keys[alias.lower()] = _output_keys(source, unique_keys)
    return keys


def _output_keys(scope: Scope, unique_keys: dict[str, set[Key]]) -> set[Key]:
    """Keys of what a derived table (subquery, CTE) outputs: its group columns together, all its
    columns under DISTINCT, or, for a filter/projection of one source, that source's keys
    whose columns it keeps (renamed by their aliases)."""
    select = scope.expression
    if not isinstance(select, exp.Select):
        return set()
    outputs = {_plain(p): p.alias_or_name.lower() for p in select.expressions if _plain(p) is not None}
    if select.args.get("group") is not None:
        grouped = [e.sql().lower() for e in _group_expressions(select)]
        named = {p.alias_or_name.lower() for p in select.expressions
                 if (p.this if isinstance(p, exp.Alias) else p).sql().lower() in grouped}
        return {frozenset(named)} if len(named) == len(grouped) else set()
    if select.args.get("distinct") is not None and not select.args["distinct"].args.get("on"):
        return {frozenset(p.alias_or_name.lower() for p in select.expressions)}
    if len(scope.selected_sources) != 1 or select.args.get("joins"):
        return set()
    inner = next(iter(_scope_keys(scope, unique_keys).values()))
    if any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
           for p in select.expressions):
        return inner
    return {frozenset(outputs[c] for c in key) for key in inner if all(c in outputs for c in key)}


def _plain(projection: exp.Expr) -> str | None:
    """The source column a projection passes through unchanged (`a.id`, `a.id AS key`), lower case."""
    node = projection.this if isinstance(projection, exp.Alias) else projection
    return node.name.lower() if isinstance(node, exp.Column) else None


def _tie_hint(scope: Scope, keys: dict[str, set[Key]]) -> str:
    suggestions = [", ".join(f"{alias}.{column}" for column in sorted(min(options, key=sorted)))
                   for alias, options in sorted(keys.items()) if options]
    if suggestions:
        return f"add {', '.join(suggestions)} as the last ORDER BY term(s) to break ties"
    return "order by columns that are unique together (declare them under sources.NAME.unique in segsql.yml)"
