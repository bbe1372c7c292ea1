"""Feature tables for the model-based methods: a segment's query (key + numeric columns) evaluated
in the engine at an `as_of`, without writing anything."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from segsql.errors import UsageError

if TYPE_CHECKING:
    import datetime as dt

    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine


def feature_frame(compiler: Compiler, engine: Engine, name: str,
                  as_of: dt.date | None = None) -> tuple[pd.DataFrame, str, list[str]]:
    """(frame indexed by key, key column, numeric feature columns) of segment `name` at `as_of`."""
    variant = compiler.with_options(as_of=as_of) if as_of is not None else compiler
    compiled = variant.compiled(name)
    key = variant.config.entities[compiled.entity].single_key(compiled.entity, "the feature frame").lower()
    engine.prepare_sources()
    frame = engine.fetch_arrow(variant.tree(name)).to_pandas()
    frame.columns = [c.lower() for c in frame.columns]
    frame = frame.set_index(key).sort_index()  # engines return rows in any order; fits must not depend on it
    # numeric by the values the engine returned (types of computed columns are not always known before)
    features = [c for c in compiled.columns if c != key and c in frame
                and pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
    if not features:
        raise UsageError(f"segment `{name}` has no numeric columns to use as features", None,
                         "select numeric traits (counts, amounts, days) next to the key")
    if frame.index.has_duplicates:
        raise UsageError(f"segment `{name}` returns a key more than once", None, "one row per entity, please")
    return frame[features].astype(float), key, features
