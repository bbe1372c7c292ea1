"""Turn Python values into SQL literals (as sqlglot trees), never into pasted text."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from functools import cache
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect


@cache
def get_dialect(name: str) -> Dialect:
    """One shared Dialect instance per name (sqlglot builds a new one for every string)."""
    return Dialect.get_or_raise(name)


class SqlText(str):
    """SQL produced by segsql helpers or the analyst's own macros: printed as is.

    Everything else printed with `{{ }}` becomes a literal, so a var or param value can never
    change the shape of the query.
    """


def to_literal(value: Any) -> exp.Expr:
    """The SQL literal for a Python value; raises TypeError/ValueError for what has none."""
    if value is None or isinstance(value, bool):
        return exp.convert(value)
    if isinstance(value, int | decimal.Decimal):
        return exp.convert(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no SQL literal")
        return exp.convert(value)
    if isinstance(value, dt.datetime):
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.Type.TIMESTAMP)
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.Type.DATE)
    if isinstance(value, str):
        return exp.Literal.string(str.__str__(value))
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        if not items:
            raise ValueError("an empty list has no SQL literal (IN () is invalid SQL)")
        return exp.Tuple(expressions=[to_literal(item) for item in items])
    raise TypeError(f"a {type(value).__name__} cannot be printed into SQL")
