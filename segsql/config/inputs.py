"""Options from users (API arguments, CLI flags, magic arguments): `as_of`, vars, dialects."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from segsql.config import DIALECTS
from segsql.errors import UsageError, did_you_mean


def parse_as_of(value: dt.date | str | None) -> dt.date:
    """`as_of` from an API or CLI value; default today."""
    if value is None:
        return dt.date.today()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise UsageError(f"as_of `{value}` is not a date", None, "use YYYY-MM-DD, e.g. 2026-01-31") from None


def check_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise UsageError(f"unknown dialect `{dialect}`", None,
                         did_you_mean(dialect, DIALECTS) or f"choose one of {', '.join(DIALECTS)}")
    return dialect


def parse_vars(pairs: list[str], json_text: str | None) -> dict[str, Any]:
    """`--var key=value` pairs and a `--vars JSON` object into one override mapping."""
    result: dict[str, Any] = {}
    if json_text:
        try:
            loaded = json.loads(json_text)
        except json.JSONDecodeError as error:
            raise UsageError(f"--vars is not valid JSON: {error.msg} at column {error.colno}", None,
                             'e.g. --vars \'{"min_mrr": 500}\'') from None
        if not isinstance(loaded, dict):
            raise UsageError("--vars must be a JSON object", None, 'e.g. --vars \'{"min_mrr": 500}\'')
        result.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--var `{pair}` is not key=value", None, "e.g. --var min_mrr=500")
        result[key.strip()] = value
    return result
