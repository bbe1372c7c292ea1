"""Segment profiles (the data behind a persona): the segment's typical traits against the rest of
its entity's population.

For every trait column of the entity's population source (or those named):
- numeric: median and mean in the segment and in the rest; index = segment mean / rest mean x 100;
- text/boolean: the top categories by share in the segment, each with its share in the rest and
  index = segment share / rest share x 100 (over 100: over-represented). NULL counts as a category
  ("(missing)") so shares add up to 1.
Only aggregates leave the engine. By default every column of the population source except the
key, `*_id` columns, dates and timestamps, text with more than 50 distinct values (names) and
columns tagged as personal data or `sensitive:` (a persona needs neither emails nor health data;
name a column in `traits` to include it; values of `pii:` columns are then masked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
from sqlglot import exp

from segsql.compile.builtins import table_for_source
from segsql.compile.catalog import is_numeric
from segsql.compile.keys import EntityKey
from segsql.engines import storage
from segsql.errors import UsageError, did_you_mean
from segsql.privacy.masking import mask
from segsql.starter.salt import project_salt

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine

MISSING = "(missing)"
MAX_CATEGORIES = 50  # unnamed text traits with more distinct values are skipped


def profile(compiler: Compiler, engine: Engine, name: str, traits: list[str] | None = None,
            top: int = 5) -> pd.DataFrame:
    """One row per (trait, statistic or category): segment value, rest value, index."""
    entity_name = compiler.entity_of(name)
    entity = compiler.config.entities[entity_name]
    if entity.source is None:
        raise UsageError(f"entity `{entity_name}` has no population source to compare with", None,
                         "declare `source:` for it in segsql.yml")
    source = compiler.config.sources[entity.source]
    columns = _columns(compiler, entity.source, traits, entity.key_columns)
    population = compiler.source_relation(entity.source, alias="p")
    key = EntityKey(entity.key_columns)
    members = exp.select(key.text()).from_(storage.segment_table(name))
    flag = key.text("p").isin(query=members)
    group = exp.If(this=flag, true=exp.Literal.string("segment"), false=exp.Literal.string("rest"))
    base = exp.select(group.as_("grp"),
                      *[exp.column(c, "p").as_(c) for c in columns]).from_(population)
    rows: list[dict[str, object]] = []
    engine.prepare_sources()
    if not engine.table_exists(storage.segment_table(name)):
        raise UsageError(f"segment `{name}` has no results yet", None, f"run `segsql run --select {name}` first")
    for column, kind in columns.items():
        if is_numeric(kind):
            rows.extend(_numeric(engine, base, column))
        else:
            found = _categorical(engine, base, column, top, None if traits else MAX_CATEGORIES)
            tagged = {k.lower(): v for k, v in source.pii.items()}.get(column)
            rows.extend(_masked(found, tagged, project_salt(compiler.root)))
    return pd.DataFrame(rows, columns=["trait", "kind", "value", "segment", "rest", "index"])


def _columns(compiler: Compiler, source_name: str, traits: list[str] | None,
             key: tuple[str, ...]) -> dict[str, str | None]:
    source = compiler.config.sources[source_name]
    found = compiler.catalog.find(table_for_source(source_name, source.table, compiler.config.dialect))
    available = dict(found[1]) if found and found[1] else {}
    if traits:
        unknown = [t for t in traits if t.lower() not in available]
        if unknown:
            raise UsageError(f"source `{source_name}` has no column `{unknown[0]}`", None,
                             did_you_mean(unknown[0], available))
        return {t.lower(): available[t.lower()] for t in traits}
    hidden = {c.lower() for c in (*source.pii, *source.sensitive)} | {column.lower() for column in key}
    return {c: k for c, k in available.items()
            if c not in hidden and not c.endswith("_id") and not (k and ("DATE" in k.upper() or "TIME" in k.upper()))}


def _numeric(engine: object, base: exp.Select, column: str) -> list[dict[str, object]]:
    value = exp.cast(exp.column(column), exp.DataType.Type.DOUBLE)
    query = exp.select("grp", exp.func("median", value), exp.func("avg", value.copy())).from_(
        base.subquery("b")).group_by("grp")
    stats = {str(r[0]): (r[1], r[2]) for r in engine.fetchall(query)}  # type: ignore[attr-defined]
    segment, rest = stats.get("segment", (None, None)), stats.get("rest", (None, None))
    index = segment[1] / rest[1] * 100 if segment[1] is not None and rest[1] else None
    return [{"trait": column, "kind": "numeric", "value": "median", "segment": segment[0], "rest": rest[0],
             "index": None},
            {"trait": column, "kind": "numeric", "value": "mean", "segment": segment[1], "rest": rest[1],
             "index": index}]


def _categorical(engine: object, base: exp.Select, column: str, top: int,
                 max_categories: int | None) -> list[dict[str, object]]:
    text = exp.cast(exp.column(column), exp.DataType.Type.VARCHAR)
    category = exp.func("coalesce", text, exp.Literal.string(MISSING))
    query = exp.select("grp", category.as_("category"), exp.func("count", exp.Star())).from_(
        base.subquery("b")).group_by("grp", category.copy())
    counts = pd.DataFrame(engine.fetchall(query), columns=["grp", "category", "n"])  # type: ignore[attr-defined]
    if max_categories is not None and counts["category"].nunique() > max_categories:
        return []  # an identifier-like column (names, free text): no persona in it; name it to force
    table = counts.pivot_table(index="category", columns="grp", values="n", fill_value=0, aggfunc="sum")
    for group in ("segment", "rest"):
        if group not in table:
            table[group] = 0
    shares = table / table.sum().replace(0, pd.NA)
    shares = shares.rename_axis("category").reset_index().sort_values(  # ties ordered by name: same on every engine
        ["segment", "rest", "category"], ascending=[False, False, True]).set_index("category").head(top)
    return [{"trait": column, "kind": "category", "value": str(cat), "segment": float(row["segment"]),
             "rest": float(row["rest"]),
             "index": float(row["segment"] / row["rest"] * 100) if row["rest"] else None}
            for cat, row in shares.fillna(0).iterrows()]


def _masked(rows: list[dict[str, object]], category: str | None, salt: str) -> list[dict[str, object]]:
    """Values of a `pii:` column named explicitly are shown masked, like every preview."""
    if category is None:
        return rows
    return [{**row, "value": row["value"] if row["value"] == MISSING else mask(row["value"], category, salt)}
            for row in rows]
