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
