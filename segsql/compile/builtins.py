"""The functions a segment template can call. Each docstring is the reference documentation
(docs/templating.md is generated from them and a test keeps it in step).

Helpers that produce SQL build it as sqlglot trees and print it in the project dialect;
helpers that produce values (var, param) return Python values, which `{{ }}` prints as literals.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sqlglot import exp

from segsql.compile import rfm as rfm_sql
from segsql.compile import splits
from segsql.compile.keys import EntityKey
from segsql.compile.literals import SqlText, get_dialect, to_literal
from segsql.compile.templating import CallSite, HelperError, current_state
from segsql.config.dbt import PREFIX as DBT_PREFIX
from segsql.config.dbt import unknown_node
from segsql.config.models import SegmentConfig
from segsql.errors import ConfigError, did_you_mean

_MISSING: Any = object()
PARAM_TYPES = ("int", "float", "str", "bool", "date", "list")
QUANTIFIERS = ("any", "all", "none", "at_least")


def _sql(node: exp.Expr) -> SqlText:
    return SqlText(node.sql(dialect=get_dialect(current_state().session.dialect), copy=False))


def config(**settings: Any) -> SqlText:
    """Declare the segment: `{{ config(entity='account', description='...', owner='...',
    tags=['value']) }}`. `entity` is required and must be declared in segsql.yml. Prints nothing."""
    state = current_state()
    call = CallSite.here("config")
    if state.config is not None:
        raise HelperError("config() is called twice", call, "keep one config() per segment")
    try:
        parsed = SegmentConfig.model_validate(settings)
    except Exception as error:  # pydantic.ValidationError: report the first problem
        first = error.errors()[0] if hasattr(error, "errors") else {"loc": (), "msg": str(error)}
        key = ".".join(str(p) for p in first["loc"])
        kind = first.get("type")
        text = (f"unknown config key `{key}`" if kind == "extra_forbidden"
                else f"config() needs `{key}`" if kind == "missing"
                else f"config `{key}`: {str(first['msg']).removeprefix('Value error, ')}")
        hint = did_you_mean(key, SegmentConfig.model_fields) if kind == "extra_forbidden" else None
        raise HelperError(text, call, hint) from None
    entities = state.session.config.entities
    if parsed.entity not in entities:
        raise HelperError(f"unknown entity `{parsed.entity}`", call,
                          did_you_mean(parsed.entity, entities) or "declare it under entities: in segsql.yml")
    state.config = parsed.model_dump()
    return SqlText("")


def source(name: str) -> SqlText:
    """The table behind a source declared in segsql.yml: `FROM {{ source('accounts') }} AS a`."""
    state = current_state()
    sources = state.session.config.sources
    if name not in sources:
        raise HelperError(f"unknown source `{name}`", CallSite.here("source", str(name)),
                          did_you_mean(str(name), sources) or "declare it under sources: in segsql.yml")
    state.sources.add(name)
    return _sql(source_table(name))


def source_table(name: str) -> exp.Table:
    """The table node a source name stands for (files are exposed by the engine as a view)."""
    session = current_state().session
    return table_for_source(name, session.config.sources[name].table, session.dialect)


def dbt(name: str) -> SqlText:
    """The relation a dbt model, seed or snapshot was built as, from the project's dbt artifacts
    (`dbt:` in segsql.yml, docs/dbt.md): `FROM {{ dbt('customer_ltv') }} AS c`. Its columns come
    from dbt's catalog.json, so validate needs no connection; `--select dbt:customer_ltv` picks
    the segments that read it."""
    return _dbt_node(f"{DBT_PREFIX}{name}", str(name), "dbt")


def dbt_source(source_name: str, table: str) -> SqlText:
    """A table of a dbt source (`sources:` of the dbt project), as dbt resolves it:
    `FROM {{ dbt_source('stripe', 'invoices') }} AS i`."""
    return _dbt_node(f"{DBT_PREFIX}{source_name}.{table}", str(source_name), "dbt_source")


def _dbt_node(key: str, argument: str, function: str) -> SqlText:
    """The table of the source `key` (`dbt:...`) that with_dbt_sources made for a dbt node."""
    state = current_state()
    call = CallSite.here(function, argument)
    artifacts = state.session.config.dbt_artifacts
    if artifacts is None:
        raise HelperError(f"{function}() needs a dbt project", call,
                          "add `dbt: {project_dir: ../your_dbt_project}` to segsql.yml (docs/dbt.md)")
    if key not in state.session.config.sources:
        raise HelperError(f"unknown dbt {'source table' if function == 'dbt_source' else 'node'} "
                          f"`{key.removeprefix(DBT_PREFIX)}`", call, unknown_node(key.removeprefix(DBT_PREFIX),
                                                                                    artifacts, function))
    state.sources.add(key)
    return _sql(source_table(key))


@lru_cache(maxsize=4096)
def _parsed_table(text: str, dialect_name: str) -> exp.Table:
    return exp.to_table(text, dialect=get_dialect(dialect_name))


def table_for_source(name: str, table: str | None, dialect_name: str) -> exp.Table:
    """A fresh Table node for a source: its `table:` (parsed once) or, for files, its name."""
    if table is None:
        return exp.Table(this=exp.to_identifier(name))
    return _parsed_table(table, dialect_name).copy()


def _table(name: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(name))


def ref(name: str) -> SqlText:
    """Another segment's members (its key and trait columns): `FROM {{ ref('power_users') }}`.
    Builds the dependency graph; the compiled SQL inlines the referenced segment as a CTE."""
    state = current_state()
    call = CallSite.here("ref", str(name))
    state.session.segment_entity(str(name), call)
    state.refs.setdefault(str(name), call)
    return _sql(_table(str(name)))


def var(name: str, default: Any = _MISSING) -> Any:
    """A project variable from `vars:` in segsql.yml, overridable with `--var name=value`.
    `{{ var('regions') }}` prints a literal (a list prints as `('a', 'b')` for IN)."""
    state = current_state()
    session = state.session
    if name in session.overrides:
        value = session.overrides[name]
        declared = session.config.vars.get(name, default)
        if isinstance(declared, bool | int | float | str | dt.date | list | tuple):  # takes the declared type
            call = CallSite.here("var", str(name))
            value = coerce(value, _type_of(declared, call), f"var `{name}` (declared as {declared!r})", call)
    elif name in session.config.vars:
        value = session.config.vars[name]
    elif default is not _MISSING:
        value = default
    else:
        raise HelperError(f"undefined var `{name}`", CallSite.here("var", str(name)),
                          did_you_mean(str(name), session.config.vars)
                          or f"declare it under vars: in segsql.yml or pass --var {name}=...")
    state.vars[name] = value
    return value


def param(name: str, default: Any = _MISSING, type: str | None = None) -> Any:
    """A typed parameter with a default, overridable per run: `{{ param('min_mrr', 1000) }}`.
    The type comes from the default (or `type='int'|'float'|'str'|'bool'|'date'|'list'`); an
    override that does not fit the type is an error. Printed as a literal, never as SQL text."""
    state = current_state()
    call = CallSite.here("param", str(name))
    kind = type or _type_of(default, call)
    if kind not in PARAM_TYPES:
        raise HelperError(f"param `{name}`: unknown type `{kind}`", call, f"use one of {', '.join(PARAM_TYPES)}")
    overrides = state.session.overrides
    if name in overrides:
        value = coerce(overrides[name], kind, f"param `{name}`", call)
    elif default is _MISSING:
        raise HelperError(f"param `{name}` has no default and no value", call,
                          f"pass --var {name}=... or give a default")
    else:
        value = coerce(default, kind, f"param `{name}` default", call)
    if name in state.params and state.params[name] != value:
        raise HelperError(f"param `{name}` is declared twice with different values", call)
    state.params[name] = value
    return value


def _type_of(default: Any, call: CallSite) -> str:
    if default is _MISSING:
        return "str"
    for python_type, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"),
                              (dt.date, "date"), (list, "list"), (tuple, "list")):
        if isinstance(default, python_type):
            return name
    raise HelperError(f"param default of type {default.__class__.__name__} is not supported", call)


def coerce(value: Any, kind: str, what: str, call: CallSite) -> Any:
    """Convert an override (often a CLI string) to the param's type, or raise a clear error."""
    try:
        return _COERCE[kind](value)
    except (TypeError, ValueError):
        raise HelperError(f"{what} expects {kind}, got {value!r}", call) from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    return int(value)


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _to_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    text = str(value).strip()
    if text.startswith("["):
        parsed = json.loads(text)
        if not isinstance(parsed, list):
            raise ValueError(value)
        return parsed
    return [item.strip() for item in text.split(",") if item.strip()]


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    return float(value)


def _to_str(value: Any) -> str:
    if isinstance(value, dict | list):
        raise ValueError(value)
    return str(value)


_COERCE: dict[str, Callable[[Any], Any]] = {
    "int": _to_int, "float": _to_float, "str": _to_str,
    "bool": _to_bool, "date": _to_date, "list": _to_list,
}


def ident(name: str) -> SqlText:
    """A column or table name given as a string, printed as a (quoted when needed) identifier:
    `{{ ident('mrr') }}`, `{{ ident('a.mrr') }}`. Use it in macros that take a column name."""
    parts = str(name).split(".")
    if not all(parts):
        raise HelperError(f"`{name}` is not a column name", CallSite.here("ident", str(name)))
    return _sql(exp.column(parts[-1], table=parts[-2] if len(parts) > 1 else None,
                           db=parts[-3] if len(parts) > 2 else None))


def _column(name: str, function: str) -> exp.Column:
    parts = str(name).split(".")
    if not all(parts) or len(parts) > 3:
        raise HelperError(f"`{name}` is not a column name", CallSite.here(function, str(name)),
                          "pass the column as a string, e.g. 'e.occurred_at'")
    return exp.column(parts[-1], table=parts[-2] if len(parts) > 1 else None)


def _as_of() -> dt.date:
    return current_state().session.as_of


def _count(n: Any, function: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise HelperError(f"{function}() needs a whole number of days ≥ 0, got {n!r}", CallSite.here(function))
    return int(n)


def days_ago(n: int) -> SqlText:
    """The date `n` days before `as_of`, as a date literal: `signup_date >= {{ days_ago(90) }}`."""
    return _sql(to_literal(_as_of() - dt.timedelta(days=_count(n, "days_ago"))))


def months_ago(n: int) -> SqlText:
    """The date `n` calendar months before `as_of` (day clamped to the month's end)."""
    n = _count(n, "months_ago")
    date = _as_of()
    month_index = date.year * 12 + date.month - 1 - n
    year, month = divmod(month_index, 12)
    last_day = (dt.date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1) - dt.timedelta(days=1)).day
    return _sql(to_literal(dt.date(year, month + 1, min(date.day, last_day))))


def month_start(n: int = 0) -> SqlText:
    """The first day of the month `n` months before the month of `as_of`, as a date literal:
    `month = {{ month_start() }}` is the current month, `{{ month_start(1) }}` the previous one."""
    n = _count(n, "month_start")
    date = _as_of()
    year, month = divmod(date.year * 12 + date.month - 1 - n, 12)
    return _sql(to_literal(dt.date(year, month + 1, 1)))


def last_n_days(column: str, n: int) -> SqlText:
    """True for timestamps/dates in the `n` calendar days ending with `as_of` (inclusive):
    `WHERE {{ last_n_days('e.occurred_at', 30) }}` means
    `occurred_at >= as_of - (n-1) days AND occurred_at < as_of + 1 day`."""
    n = _count(n, "last_n_days")
    if n == 0:
        raise HelperError("last_n_days() needs n ≥ 1", CallSite.here("last_n_days"))
    return between_days(column, 0, n - 1)


def between_days(column: str, newest: int, oldest: int) -> SqlText:
    """True for timestamps/dates from `oldest` to `newest` days before `as_of`, both days
    inclusive: `{{ between_days('last_seen_at', 31, 60) }}` is "31 to 60 days ago"."""
    newest, oldest = _count(newest, "between_days"), _count(oldest, "between_days")
    if newest > oldest:
        raise HelperError("between_days(column, newest, oldest) needs newest ≤ oldest",
                          CallSite.here("between_days"), "e.g. between_days('seen_at', 31, 60)")
    col = _column(column, "between_days")
    start = to_literal(_as_of() - dt.timedelta(days=oldest))
    end = to_literal(_as_of() - dt.timedelta(days=newest - 1))
    return _sql(exp.paren(exp.and_(col.copy() >= start, col < end)))


def _key_query(name: str, function: str) -> tuple[exp.Select, str]:
    state = current_state()
    call = CallSite.here(function, str(name))
    entity = state.session.segment_entity(str(name), call)
    state.refs.setdefault(str(name), call)
    key = EntityKey(state.session.config.entities[entity].key_columns)
    return exp.select(*key.parts()).from_(_table(str(name))), entity


def _same_entity(names: tuple[str, ...], function: str) -> list[exp.Select]:
    if not names:
        raise HelperError(f"{function}() needs at least one segment name", CallSite.here(function))
    queries, entities = zip(*(_key_query(name, function) for name in names), strict=True)
    if len(set(entities)) > 1:
        pairs = ", ".join(f"{n} ({e})" for n, e in zip(names, entities, strict=True))
        raise HelperError(f"{function}() mixes entities: {pairs}", CallSite.here(function, names[0]),
                          "use rollup() to move a user segment to its account")
    return list(queries)


def union(*names: str) -> SqlText:
    """Members of any of the segments (same entity): `{{ union('trial_active', 'new_accounts') }}`
    prints a full query `SELECT key FROM a UNION SELECT key FROM b`."""
    queries = _same_entity(names, "union")
    result: exp.Query = queries[0]
    for query in queries[1:]:
        result = exp.union(result, query, distinct=True)
    return _sql(result)


def intersect(*names: str) -> SqlText:
    """Members of all of the segments: `{{ intersect('enterprise_dach', 'high_mrr') }}`."""
    queries = _same_entity(names, "intersect")
    result: exp.Query = queries[0]
    for query in queries[1:]:
        result = exp.intersect(result, query, distinct=True)
    return _sql(result)


def exclude(base: str, *others: str) -> SqlText:
    """Members of `base` that are in none of `others`: `{{ exclude('active', 'churn_risk') }}`."""
    if not others:
        raise HelperError("exclude(base, *others) needs at least one segment to remove",
                          CallSite.here("exclude", str(base)))
    queries = _same_entity((base, *others), "exclude")
    result: exp.Query = queries[0]
    for query in queries[1:]:
        result = exp.except_(result, query, distinct=True)
    return _sql(result)


def rollup(name: str, quantifier: str = "any", n: int | None = None, as_key: str | None = None) -> SqlText:
    """Roll a segment up to its entity's parent (e.g. users to accounts). `quantifier`:
    `any` (≥ 1 member), `all` (every child is a member; a parent with no children at all is *not*
    included), `none` (no child is a member; a parent with no children at all *is* included) or
    `at_least` with `n` (≥ n members). Every parent of the parent's population source is
    considered. Prints a full query returning the parent key plus `matching_count` and
    `total_count` (0 for a parent without children): `{{ rollup('power_users', 'at_least', n=3) }}`.
    `as_key` names the key column of the output (default: the parent's key). The segment's entity
    may have a composite key (`[order_id, line_no]` rolled up to orders); its parent needs a
    one-column key."""
    state = current_state()
    call = CallSite.here("rollup", str(name))
    if quantifier not in QUANTIFIERS:
        raise HelperError(f"unknown quantifier `{quantifier}`", call, f"use one of {', '.join(QUANTIFIERS)}")
    if (quantifier == "at_least") != (n is not None):
        raise HelperError("rollup() takes n only with quantifier='at_least'", call,
                          "e.g. rollup('power_users', 'at_least', n=3)")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise HelperError(f"rollup() needs n ≥ 1, got {n!r}", call)
    entities = state.session.config.entities
    child_name = state.session.segment_entity(str(name), call)
    state.refs.setdefault(str(name), call)
    child = entities[child_name]
    if child.parent is None or child.source is None:
        raise HelperError(f"entity `{child_name}` has no parent to roll up to", call,
                          "declare `parent:` and `source:` for it in segsql.yml")
    parent = entities[child.parent]
    if parent.source is None:
        raise HelperError(f"entity `{child.parent}` has no `source:` listing its population", call)
    if parent.composite:
        raise HelperError(f"rollup() needs a one-column key on the parent entity `{child.parent}`, keyed by "
                          f"({', '.join(parent.key_columns)})", call,
                          "roll up to an entity with a single key column")
    output = _output_key(as_key, "rollup", call) or parent.single_key(child.parent, "rollup()")
    return _sql(_rollup_query(str(name), child, parent, quantifier, n, output))


def _output_key(as_key: str | None, function: str, call: CallSite) -> str | None:
    """The name a helper gives the key column it outputs (`as_key=`), checked to be a column name."""
    if as_key is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(as_key)):
        raise HelperError(f"{function}(): as_key `{as_key}` is not a column name", call,
                          "name the output key column with letters, digits and _, e.g. as_key='c_custkey'")
    return None if as_key is None else str(as_key)


def _rollup_query(segment: str, child: Any, parent: Any, quantifier: str, n: int | None,
                  output: str) -> exp.Select:
    state = current_state()
    state.sources.update({child.source, parent.source})
    parent_key = child.parent_key or parent.key
    key = EntityKey(child.key_columns)
    matching = exp.Count(this=exp.Distinct(expressions=[key.value("m")]))
    total = exp.Count(this=exp.Distinct(expressions=[key.value("c")]))
    condition: exp.Expr = {
        "any": matching.copy() >= 1,
        "at_least": matching.copy() >= (n or 1),
        "none": matching.copy().eq(0),
        "all": exp.and_(total.copy() > 0, matching.copy().eq(total.copy())),
    }[quantifier]
    return (
        exp.select(exp.column(parent.key, "p").as_(output),
                   matching.as_("matching_count"), total.as_("total_count"))
        .from_(source_table(parent.source).as_("p"))
        .join(source_table(child.source).as_("c"),
              on=exp.column(parent_key, "c").eq(exp.column(parent.key, "p")), join_type="left")
        .join(_table(segment).as_("m"),
              on=exp.and_(*[m.eq(c) for m, c in zip(key.parts("m"), key.parts("c"), strict=True)]),
              join_type="left")
        .group_by(exp.column(parent.key, "p"))
        .having(condition)
    )


def split(column: str, groups: Any, salt: str | None = None) -> SqlText:
    """Assign each entity to a named group by a deterministic hash of (salt, key), e.g. an A/B
    test or a holdout: `{{ split('u.user_id', {'control': 10, 'treatment': 90}, salt='onboarding-2026-11') }}
    AS arm`. Percents add up to 100; the same key always gets the same group on every engine;
    adding members never moves existing ones; changing percents moves only boundary buckets.
    Use a new salt per experiment. `segsql readout` compares metrics across the groups."""
    call = CallSite.here("split", str(column))
    if not isinstance(salt, str) or not salt.strip():
        raise HelperError("split() needs salt='...' (one per experiment)", call,
                          "e.g. split('u.user_id', {'control': 10, 'treatment': 90}, salt='onboarding-2026-11')")
    try:
        parsed = splits.Split(salt, splits.parse_groups(groups))
    except ValueError as error:
        raise HelperError(f"split(): {error}", call) from None
    current_state().splits.append(parsed)
    return _sql(splits.group_sql(_column(column, "split"), parsed))


def rfm(source: str, at: str, amount: str, key: str | None = None, convention: str = "classic",
        unit: str = "day", monetary: str = "total", cuts: Any = None, where: str | None = None,
        ties: str = "lowest", frequency: str = "transactions", as_key: str | None = None) -> SqlText:
    """Recency, frequency and monetary value per entity from a transactions source, with 1..5
    scores and a named RFM segment: `{{ rfm('invoices', at='issued_at', amount='amount') }}` prints
    a full query (key, first_purchase, last_purchase, days_since_last, recency, frequency,
    monetary, [t], r_score, f_score, m_score, rfm_score, rfm_segment). `convention='btyd'` gives
    the lifetimes/PyMC-Marketing definitions; `unit='week'`; `monetary='mean'`; `cuts={'r': [...],
    'f': [...], 'm': [...]}` for fixed cut points; equal values share the lowest score of their
    group (one-time buyers get f = 1), `ties='highest'` the highest, `ties='split'` gives
    equal-sized quintiles (ties broken by key); `frequency='days'` counts purchase days;
    `where="status = 'paid'"`. `key` defaults to
    the segment's entity key; `as_key` names the key column of the output (`key='o_custkey',
    as_key='c_custkey'` for an entity keyed by c_custkey). Definitions: docs/methods.md."""
    state = current_state()
    call = CallSite.here("rfm", str(source))
    if source not in state.session.config.sources:
        raise HelperError(f"unknown source `{source}`", call, did_you_mean(str(source), state.session.config.sources))
    if key is None:
        if state.config is None:
            raise HelperError("rfm() needs key='...' or a config(entity=...) call before it", call)
        entity = state.session.config.entities[state.config["entity"]]
        if entity.composite:
            raise HelperError(f"rfm() outputs one key column; entity `{state.config['entity']}` is keyed by "
                              f"({', '.join(entity.key_columns)})", call,
                              "use rfm() in a segment of an entity with a single key column")
        key = entity.single_key(state.config["entity"], "rfm()")
    try:
        parsed_cuts = rfm_sql.check(convention, unit, monetary, cuts, ties, frequency)
        condition = rfm_sql.parse_where(where, state.session.dialect)
    except ValueError as error:
        raise HelperError(f"rfm(): {error}", call) from None
    except Exception as error:  # sqlglot ParseError in `where`
        raise HelperError(f"rfm(): `where` is not a SQL condition: {str(error).splitlines()[0]}", call) from None
    for column in (at, amount, key):
        _column(column, "rfm")
    as_key = _output_key(as_key, "rfm", call)
    state.sources.add(source)
    spec = rfm_sql.RfmSpec(source_table(source), str(key), str(at), str(amount), state.session.as_of, convention, unit,
                   monetary, parsed_cuts, condition, ties, frequency, as_key)
    return _sql(rfm_sql.query(spec))


BUILTINS: dict[str, Callable[..., Any]] = {
    "config": config, "source": source, "ref": ref, "var": var, "param": param, "ident": ident,
    "days_ago": days_ago, "months_ago": months_ago, "month_start": month_start,
    "last_n_days": last_n_days,
    "between_days": between_days, "union": union, "intersect": intersect, "exclude": exclude,
    "rollup": rollup, "split": split, "rfm": rfm, "dbt": dbt, "dbt_source": dbt_source,
}


def validate_override_names(overrides: dict[str, Any]) -> None:
    """Override names must be identifiers (they come from --var)."""
    for key in overrides:
        if not str(key).isidentifier():
            raise ConfigError(f"--var name `{key}` is not a valid name", None, "use letters, digits and _")
