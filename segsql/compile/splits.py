"""Deterministic splits and holdouts: named groups by a hash of (salt, entity key).

Assignment: h = md5(salt || ':' || CAST(key AS text)) as lowercase hex; its first four hex digits
give a bucket in [0, 65536). Groups take contiguous bucket ranges in the order declared, each
ending at round(cumulative percent / 100 * 65536). So:
- the same key always lands in the same group (stable across runs, engines and machines);
- adding members never moves existing ones (a key's bucket depends on nothing else);
- changing percentages moves only the buckets between the old and new boundaries;
- a new salt gives an independent assignment (use one salt per experiment).
The SQL uses MD5, SUBSTRING and STRPOS only, which sqlglot writes for every dialect (BigQuery
and Trino get TO_HEX), and `assign()` is the same rule in Python for checks.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

BUCKETS = 65536
HEX = "0123456789abcdef"


@dataclass(frozen=True)
class Split:
    salt: str
    groups: tuple[tuple[str, float], ...]  # (name, percent) in declared order

    @property
    def boundaries(self) -> list[tuple[str, int]]:
        """(group, first bucket NOT in it), cumulative."""
        total, result = 0.0, []
        for name, percent in self.groups:
            total += percent
            result.append((name, round(total / 100 * BUCKETS)))
        return result

    def expected_shares(self) -> dict[str, float]:
        start, shares = 0, {}
        for name, end in self.boundaries:
            shares[name] = (end - start) / BUCKETS
            start = end
        return shares


def parse_groups(groups: Any) -> tuple[tuple[str, float], ...]:
    """{'control': 10, 'treatment': 90} or [('control', 10), ...] -> validated pairs (ValueError)."""
    pairs = list(groups.items()) if isinstance(groups, dict) else list(groups or [])
    if len(pairs) < 2:
        raise ValueError("a split needs at least two groups, e.g. {'control': 10, 'treatment': 90}")
    seen: set[str] = set()
    parsed = []
    for pair in pairs:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(f"group {pair!r} is not a (name, percent) pair")
        name, percent = pair
        if not isinstance(name, str) or not name or name in seen:
            raise ValueError(f"group name {name!r} must be a non-empty, unique string")
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 < percent <= 100:
            raise ValueError(f"group `{name}`: percent must be a number in (0, 100], got {percent!r}")
        seen.add(name)
        parsed.append((name, float(percent)))
    total = sum(p for _, p in parsed)
    if not math.isclose(total, 100, abs_tol=1e-9):
        raise ValueError(f"group percents add up to {total:g}, not 100 (add a `holdout` group for the rest)")
    return tuple(parsed)


def bucket_sql(key: exp.Expr, salt: str) -> exp.Expr:
    """The bucket number in [0, 65536) of `key`, as a portable SQL expression."""
    digest = exp.MD5(this=exp.Concat(expressions=[exp.Literal.string(f"{salt}:"),
                                                  exp.cast(key, exp.DataType.Type.VARCHAR)]))
    total: exp.Expr | None = None
    for position in range(4):
        char = exp.Substring(this=digest.copy(), start=exp.Literal.number(position + 1), length=exp.Literal.number(1))
        position_of = exp.StrPosition(this=exp.Literal.string(HEX), substr=char)
        digit = exp.Sub(this=position_of, expression=exp.Literal.number(1))
        term = exp.Mul(this=exp.Paren(this=digit), expression=exp.Literal.number(16 ** (3 - position)))
        total = term if total is None else exp.Add(this=total, expression=term)
    assert total is not None
    return exp.Paren(this=total)


def group_sql(key: exp.Expr, split: Split) -> exp.Case:
    """CASE WHEN bucket < b1 THEN 'g1' WHEN bucket < b2 THEN 'g2' ... END."""
    bucket = bucket_sql(key, split.salt)
    case = exp.Case()
    for name, end in split.boundaries[:-1]:
        case = case.when(exp.LT(this=bucket.copy(), expression=exp.Literal.number(end)), exp.Literal.string(name))
    return case.else_(exp.Literal.string(split.boundaries[-1][0]))


def bucket(key: Any, salt: str) -> int:
    """The same bucket in Python (keys as the engines print them: str(int) for integers)."""
    return int(hashlib.md5(f"{salt}:{key}".encode()).hexdigest()[:4], 16)


def assign(key: Any, split: Split) -> str:
    position = bucket(key, split.salt)
    for name, end in split.boundaries:
        if position < end:
            return name
    return split.boundaries[-1][0]
