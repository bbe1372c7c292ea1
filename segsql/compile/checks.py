"""One function per validation rule over a parsed segment.

Every rule raises `RuleError` with an offset into the rendered SQL; the compiler maps it to the
template line and column the analyst wrote. Rules never execute anything.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.tokens import Token, TokenType  # type: ignore[attr-defined]

from segsql.compile.catalog import Catalog, Columns
from segsql.compile.functions import unknown_function
from segsql.compile.literals import get_dialect
from segsql.errors import did_you_mean

WRITE_NODES = tuple(
    node for node in (getattr(exp, name, None) for name in (
        "Create", "Insert", "Update", "Delete", "Merge", "Drop", "Alter", "AlterTable",
        "Command", "Copy", "Pragma", "Use", "Set", "Transaction", "Commit", "Rollback", "Into",
        "Attach", "Detach", "Install", "Load", "Describe", "Show", "Summarize", "Analyze",
        "Cache", "Uncache", "Refresh", "TruncateTable", "Grant", "Revoke", "Kill", "Export",
    )) if node is not None
)
# Functions that read files or other databases: a segment reads only declared sources.
FILE_FUNCTIONS = frozenset({
    "read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto",
    "read_ndjson", "read_text", "read_blob", "glob", "sniff_csv", "query", "query_table",
    "read_json_objects", "iceberg_scan", "delta_scan", "postgres_scan", "sqlite_scan",
    "pg_read_file", "pg_read_binary_file", "lo_import", "dblink", "getenv", "current_setting",
})


@dataclass
class RuleError(Exception):
    """A rule failed at `offset` (0-based, rendered SQL), with a message and an optional hint."""

    message: str
    offset: int = 0
    hint: str | None = None


class SqlRuleError(RuleError):
    """The SQL itself is wrong in shape (not one read-only SELECT, unreadable tokens)."""


def offset_of(node: exp.Expr) -> int:
    """The rendered-SQL offset where `node` starts: the smallest token offset inside it."""
    starts = [int(n.meta["start"]) for n in node.walk() if n.meta and "start" in n.meta]
    return min(starts) if starts else 0


def split_statements(tokens: list[Token]) -> list[list[Token]]:
    """Tokens grouped into statements on `;`, empty statements dropped."""
    statements: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(token)
    return [s for s in statements if s]


def check_single_statement(tokens: list[Token]) -> None:
    statements = split_statements(tokens)
    if not statements:
        raise SqlRuleError("the segment has no SQL", 0, "a segment is one SELECT returning the entity key")
    if len(statements) > 1:
        raise SqlRuleError(f"found {len(statements)} statements; a segment is exactly one SELECT",
                      statements[1][0].start, "remove everything after the first `;`")


# Operators sqlglot's parser builds from two tokens (`>>` is GT GT): written apart, as `a > > 1`,
# the engine rejects them, but the tree (and the SQL printed from it) would hold a bit shift.
PAIRED_OPERATORS = {(TokenType.GT, TokenType.GT): ">>", (TokenType.LT, TokenType.LT): "<<"}


def check_split_operators(tokens: list[Token]) -> None:
    """Refuse `> >` and `< <`: the SQL printed from the tree must have the tokens the analyst
    wrote, and these two would silently become the shifts `>>` and `<<`."""
    for first, second in itertools.pairwise(tokens):
        fused = PAIRED_OPERATORS.get((first.token_type, second.token_type))
        if fused and second.start != first.end + 1:
            raise SqlRuleError(f"`{first.text} {second.text}` is not an operator", second.start,
                               f"write one `{first.text}` (a comparison), or `{fused}` without a space for a bit shift")


def check_nesting(tokens: list[Token], limit: int) -> None:
    """Parentheses nested deeper than `limit` (parsers recurse per level) are refused where the
    limit is crossed, before parsing."""
    depth = 0
    for token in tokens:
        if token.token_type == TokenType.L_PAREN:
            depth += 1
            if depth > limit:
                raise SqlRuleError(f"parentheses or subqueries are nested more than {limit} levels deep",
                                   token.start, "flatten the expression (CTEs, IN lists), or raise "
                                   "limits.nesting_depth in segsql.yml")
        elif token.token_type == TokenType.R_PAREN:
            depth = max(0, depth - 1)


def check_read_only(tree: exp.Expr, statement_start: int = 0, dialect: str = "duckdb",
                    udfs: frozenset[str] = frozenset(), tokens: list[Token] | None = None) -> None:
    """Exactly one SELECT (or set operation of SELECTs); no writes, commands, locks or file reads,
    and only functions that compute values (compile/functions.py)."""
    if not isinstance(tree, exp.Select | exp.SetOperation):
        kind = tree.key.upper() if isinstance(tree, exp.Expr) else "statement"
        raise SqlRuleError(f"a segment must be a SELECT, not {kind}", statement_start,
                      "segments only read; DDL/DML and commands are refused")
    for node in tree.walk():
        if isinstance(node, WRITE_NODES):
            raise SqlRuleError(f"{node.key.upper()} is not allowed in a segment", offset_of(node),
                          "segments only read; DDL/DML and commands are refused")
        if isinstance(node, exp.Func) and _function_name(node) in FILE_FUNCTIONS:
            raise SqlRuleError(f"{_function_name(node)}() is not allowed in a segment", offset_of(node),
                          "declare files and tables as sources in segsql.yml and use source('name')")
        if isinstance(node, exp.Placeholder | exp.Parameter | exp.NextValueFor):
            raise SqlRuleError(f"`{node.sql(dialect=get_dialect(dialect))}` is not allowed in a segment",
                               offset_of(node), "values come from var() and param(), printed as literals; "
                               "segments read no sequences")
        if isinstance(node, exp.Lock):
            locks = [t.start for t in tokens or [] if t.token_type == TokenType.FOR]  # a Lock node has no position
            raise SqlRuleError(f"{node.sql(dialect=get_dialect(dialect)).split(' OF ')[0]} is not allowed in a segment",
                               locks[-1] if locks else offset_of(node), "segments only read; they take no row locks")
        unknown = unknown_function(node, dialect, udfs)
        if unknown is not None:
            raise SqlRuleError(f"function {unknown}() is not allowed in a segment", offset_of(node),
                               "segments may call functions that only compute a value; declare a trusted "
                               f"function under udfs: in segsql.yml if {unknown}() is one")
        if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
            raise SqlRuleError("table functions are not allowed in FROM", offset_of(node),
                          "declare the data as a source in segsql.yml and use source('name')")


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    return node.sql_name().lower()


def scopes(tree: exp.Expr) -> list[Scope]:
    try:
        return traverse_scope(tree)
    except OptimizeError as error:
        raise RuleError(f"cannot analyse the query: {error}", offset_of(tree)) from None


def check_tables(all_scopes: list[Scope], catalog: Catalog) -> None:
    """Every table read is a declared source, a ref or a CTE."""
    for scope in all_scopes:
        for _node, source in scope.selected_sources.values():
            if isinstance(source, exp.Table) and catalog.find(source) is None:
                name = ".".join(p for p in (source.db, source.name) if p)
                hint = did_you_mean(source.name, [k[-1] for k in catalog.tables])
                raise RuleError(f"unknown table `{name}`", offset_of(source),
                              hint or "read tables with source('name') or ref('segment')")


class ColumnResolver:
    """Which columns each FROM item of a scope offers; None when it cannot be known."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def source_columns(self, source: exp.Table | Scope | object) -> Columns | None:
        if isinstance(source, exp.Table):
            found = self.catalog.find(source)
            return found[1] if found else None
        if isinstance(source, Scope):
            return self.output_columns(source)
        return None

    def output_columns(self, scope: Scope) -> Columns | None:
        """The names a scope's query outputs (SELECT * expanded), in order, or None."""
        expression = scope.expression
        while isinstance(expression, exp.SetOperation):
            expression = expression.left
        if not isinstance(expression, exp.Select):
            return None
        result: Columns = {}
        for projection in expression.expressions:
            expanded = self._projection(projection, scope)
            if expanded is None:
                return None
            result.update(expanded)
        return result

    def _projection(self, projection: exp.Expr, scope: Scope) -> Columns | None:
        if isinstance(projection, exp.Star) or (
                isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)):
            if projection.args.get("except") or projection.args.get("replace"):
                return None
            table = projection.table if isinstance(projection, exp.Column) else ""
            aliases = [table] if table else list(scope.selected_sources)
            merged: Columns = {}
            for alias in aliases:
                if alias not in scope.selected_sources:
                    return None
                columns = self.source_columns(scope.selected_sources[alias][1])
                if columns is None:
                    return None
                merged.update(columns)
            return merged
        name = projection.alias_or_name.lower()
        return {name: self._type_of(projection, scope)}

    def _type_of(self, projection: exp.Expr, scope: Scope) -> str | None:
        inner = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(inner, exp.Column) and inner.table in scope.selected_sources:
            columns = self.source_columns(scope.selected_sources[inner.table][1])
            return columns.get(inner.name.lower()) if columns else None
        return None


def check_columns(all_scopes: list[Scope], catalog: Catalog) -> None:
    """Every column resolves to exactly one FROM item (or a select alias or an outer scope)."""
    resolver = ColumnResolver(catalog)
    for scope in all_scopes:
        available = {alias: resolver.source_columns(src) for alias, (_n, src) in scope.selected_sources.items()}
        for column in scope.columns:
            if isinstance(column.this, exp.Star):
                _check_alias(column, scope, available)
            elif column.table:
                _check_qualified(column, scope, available, resolver)
            else:
                _check_unqualified(column, scope, available, resolver)


def _outer_sources(scope: Scope) -> list[Scope]:
    outer, parent = [], scope.parent
    while parent is not None:
        outer.append(parent)
        parent = parent.parent
    return outer


def _check_alias(column: exp.Column, scope: Scope, available: dict[str, Columns | None]) -> None:
    if column.table not in available and not any(
            column.table in outer.selected_sources for outer in _outer_sources(scope)):
        raise RuleError(f"unknown table or alias `{column.table}`", offset_of(column.args["table"]),
                      did_you_mean(column.table, available))


def _check_qualified(column: exp.Column, scope: Scope, available: dict[str, Columns | None],
                     resolver: ColumnResolver) -> None:
    if column.table in available:
        columns = available[column.table]
    else:
        owner = next((o for o in _outer_sources(scope) if column.table in o.selected_sources), None)
        if owner is None:
            _check_alias(column, scope, available)
            return
        columns = resolver.source_columns(owner.selected_sources[column.table][1])
    name = column.name.lower()
    if columns is not None and name not in columns and not _is_struct_access(column):
        raise RuleError(f"unknown column `{column.name}` in `{column.table}`",
                      offset_of(column.this), did_you_mean(column.name, columns))


def _is_struct_access(column: exp.Column) -> bool:
    return isinstance(column.parent, exp.Dot)


def _check_unqualified(column: exp.Column, scope: Scope, available: dict[str, Columns | None],
                       resolver: ColumnResolver) -> None:
    name = column.name.lower()
    if any(columns is None for columns in available.values()):
        return  # a FROM item with unknown columns could provide it
    owners = [alias for alias, columns in available.items() if columns and name in columns]
    if len(owners) > 1 and not _joined_using(scope, name):
        raise RuleError(f"column `{column.name}` is ambiguous: it is in {', '.join(sorted(owners))}",
                      offset_of(column), f"qualify it, e.g. {sorted(owners)[0]}.{column.name}")
    if owners or name in _select_aliases(scope):
        return
    for outer in _outer_sources(scope):
        outer_columns = [resolver.source_columns(src) for _n, src in outer.selected_sources.values()]
        if any(c is None or name in c for c in outer_columns):
            return
    every = [c for columns in available.values() if columns for c in columns]
    raise RuleError(f"unknown column `{column.name}`", offset_of(column),
                  did_you_mean(column.name, every) or _where_hint(available))


def _where_hint(available: dict[str, Columns | None]) -> str | None:
    return f"available from {', '.join(sorted(available))}" if available else None


def _select_aliases(scope: Scope) -> set[str]:
    expression = scope.expression
    if not isinstance(expression, exp.Select):
        return set()
    return {p.alias.lower() for p in expression.expressions if isinstance(p, exp.Alias)}


def _joined_using(scope: Scope, name: str) -> bool:
    for join in scope.expression.args.get("joins") or []:
        for identifier in join.args.get("using") or []:
            if identifier.name.lower() == name:
                return True
    return False


def check_output(tree: exp.Expr, root: Scope, catalog: Catalog, key_columns: tuple[str, ...],
                 entity: str) -> Columns:
    """The output columns: known, unique, and holding each entity key column exactly once (of a
    type every engine turns into the same text, for a composite key)."""
    columns_out = ColumnResolver(catalog).output_columns(root)
    select: exp.Expr = tree
    while isinstance(select, exp.SetOperation):
        select = select.left
    where = offset_of(select.expressions[0]) if isinstance(select, exp.Select) and select.expressions else 0
    if columns_out is None:
        raise RuleError("cannot tell the output columns (SELECT * over a table whose columns are unknown)",
                      where, "list the output columns, or declare the source's columns in segsql.yml")
    names = _output_names(select, root, catalog)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    for key in key_columns:
        if key.lower() in duplicates:
            raise RuleError(f"the entity key `{key}` appears {names.count(key.lower())} times in the output",
                            where, "select it once")
    if duplicates:
        raise RuleError(f"output column `{duplicates[0]}` appears more than once", where,
                      "give each output column its own alias")
    for key in key_columns:
        if key.lower() not in columns_out:
            what = "the entity key" if len(key_columns) == 1 else "the entity key column"
            raise RuleError(f"the output lacks {what} `{key}` of entity `{entity}`", where,
                            f"select the {entity}'s key, e.g. `SELECT ... AS {key}`")
    if len(key_columns) > 1:
        _check_key_part_types(key_columns, {**columns_out, **_cast_types(select)}, entity, where)
    return columns_out


def _cast_types(select: exp.Expr) -> Columns:
    """Output columns written as CAST(... AS type): their type, whatever the catalog knows."""
    if not isinstance(select, exp.Select):
        return {}
    return {projection.alias_or_name.lower(): projection.this.to.sql() for projection in select.expressions
            if isinstance(projection, exp.Alias) and isinstance(projection.this, exp.Cast)}


# Types whose text (CAST AS VARCHAR) is the same on DuckDB, Postgres, Spark and Snowflake: the
# parts of a composite key are stored as text (compile.keys.EntityKey). Floats and timestamps
# print differently per engine (1e+20 / 1.0E20, fractional seconds), and a decimal with fractional
# digits prints its type's scale, which differs (DuckDB's DECIMAL is (18, 3), Postgres's NUMERIC
# has none): 1.500 / 1.5.
KEY_PART_TYPES = (*exp.DataType.INTEGER_TYPES, *exp.DataType.TEXT_TYPES, exp.DataType.Type.DATE,
                  exp.DataType.Type.BOOLEAN)


def _whole_decimal(parsed: exp.DataType, written: str) -> bool:
    """A decimal without fractional digits prints as an integer everywhere: DECIMAL(p, 0), and
    Snowflake's NUMBER (its integers: NUMBER(38, 0); catalogs name it without the scale)."""
    if not parsed.is_type(exp.DataType.Type.DECIMAL):
        return False
    if written.strip().upper() == "NUMBER":
        return True
    return len(parsed.expressions) == 2 and parsed.expressions[1].sql() == "0"


def _check_key_part_types(key_columns: tuple[str, ...], columns: Columns, entity: str, where: int) -> None:
    for key in key_columns:
        kind = columns.get(key.lower())
        if kind is None:
            continue  # unknown here; the engine casts whatever it is
        try:
            parsed = exp.DataType.build(kind)
        except Exception:  # a type sqlglot cannot read: leave it to the engine
            continue
        if not parsed.is_type(*KEY_PART_TYPES) and not _whole_decimal(parsed, kind):
            raise RuleError(f"key column `{key}` of entity `{entity}` is {kind.upper()}: a composite key's "
                            "parts must be integers, text, dates or booleans (their text is the same on "
                            "every engine; whole-number decimals count as integers)", where,
                            f"cast it in the SELECT, e.g. `CAST(... AS BIGINT) AS {key}`")


def _output_names(select: exp.Expr, root: Scope, catalog: Catalog) -> list[str]:
    if not isinstance(select, exp.Select):
        return []
    resolver = ColumnResolver(catalog)
    names: list[str] = []
    for projection in select.expressions:
        expanded = resolver._projection(projection, root)
        names.extend(expanded or [])
    return names


def tokenize(sql: str, dialect: str) -> list[Token]:
    """Tokens of the rendered SQL; an unterminated string or comment raises RuleError."""
    try:
        return get_dialect(dialect).tokenize(sql)
    except sqlglot.errors.TokenError as error:
        raise SqlRuleError(f"cannot read the SQL: {_token_error_text(error)}", _token_error_offset(sql),
                      "check for an unclosed quote or comment") from None


def _token_error_text(error: Exception) -> str:
    return "unterminated string, identifier or comment" if "tokeniz" in str(error).lower() else str(error)


def _token_error_offset(sql: str) -> int:
    """Where the unterminated quote or comment starts: the first opener left unclosed."""
    i, length = 0, len(sql)
    while i < length:
        ch = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = length if end < 0 else end + 1
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                return i
            i = end + 2
            continue
        if ch in "'\"`":
            end = i + 1
            while end < length and sql[end] != ch:
                end += 2 if sql[end] == "\\" else 1
            if end >= length:
                return i
            i = end + 1
            continue
        i += 1
    return 0


def protected_uses(all_scopes: list[Scope], catalog: Catalog, protected: dict[str, str]) -> list[tuple[str, str, int]]:
    """(column, category, offset) for each protected attribute a segment filters, joins or groups
    on (WHERE, ON, GROUP BY, HAVING, QUALIFY); selecting it as a trait is not flagged."""
    found = []
    for scope in all_scopes:
        for column in scope.columns:
            category = protected.get(column.name.lower())
            if category is None:
                continue
            clause = column.find_ancestor(exp.Where, exp.Join, exp.Group, exp.Having, exp.Qualify, exp.Select)
            if clause is not None and not isinstance(clause, exp.Select):
                found.append((column.name, category, offset_of(column)))
    return found
