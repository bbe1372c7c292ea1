"""How numbers read: one formatter per kind of quantity, shared by the CLI, the notebook, the
docs catalog and the charts, so a value prints the same wherever it is shown.

    percent(0.0729)       '7.3%'       rates, shares, retention ratios (NRR 1.393 -> '139.3%')
    percent(2 / 5688)     '<0.1%'      a non-zero share never shows as 0.0% (nor 5,686 of 5,688 as 100.0%)
    count(5688)           '5,688'      sizes, members, rows
    number(10360.25)      '10,360'     significant digits, never exponent notation ('1.036e+04')
    number(0.07679135)    '0.07679'
    currency(83959.08)    '83,959'     sums and means of money: cents below 1,000 only
    cell(83959.07999999997) '83,959.08' a value from a member table (ints, i.e. keys, stay as they are)

`metric(value, kind, unit)` picks the formatter of a metric (metrics.yml `kind` and `unit`);
`difference()` does the same for a difference, in percentage points for percent metrics. Missing
values (None, NaN) print as "", non-finite ones as "n/a" (an undefined LTV is not infinite).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import numbers
import re
from typing import Any

PERCENT, CURRENCY, COUNT, NUMBER = "percent", "currency", "count", "number"
UNITS = ("", PERCENT, CURRENCY, COUNT)  # metrics.yml `unit:` ("" = by kind)
SIGNIFICANT = 4


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _float(value: Any) -> float | None:
    """The value as a float, or None when missing; raises nothing for numpy and Decimal values."""
    if _missing(value):
        return None
    result = float(value)
    return None if math.isnan(result) else result


def number(value: Any, digits: int = SIGNIFICANT, signed: bool = False) -> str:
    """`digits` significant digits, thousands separators, no exponent; the integer part is never
    rounded away (10,360 stays 10,360), trailing zeros are dropped.

    >>> number(10360.25), number(0.07679135), number(-2.5), number(12.0)
    ('10,360', '0.07679', '-2.5', '12')
    """
    shown = _float(value)
    if shown is None:
        return ""
    if math.isinf(shown):
        return "n/a"
    sign = "+" if signed and shown > 0 else ""
    if shown == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(shown)))
    decimals = max(digits - 1 - magnitude, 0)
    text = f"{shown:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "+0") else sign + text


def count(value: Any) -> str:
    """Whole numbers with separators.

    >>> count(5688)
    '5,688'
    """
    shown = _float(value)
    if shown is None:
        return ""
    return "n/a" if math.isinf(shown) else f"{round(shown):,}"


def currency(value: Any, signed: bool = False) -> str:
    """Whole units from 1,000 up, cents below (no symbol: metrics.yml does not say which).

    >>> currency(1744168.4), currency(872.345), currency(-12.5, signed=True)
    ('1,744,168', '872.35', '-12.50')
    """
    shown = _float(value)
    if shown is None:
        return ""
    if math.isinf(shown):
        return "n/a"
    sign = "+" if signed else ""
    return f"{shown:{sign},.0f}" if abs(shown) >= 1000 else f"{shown:{sign},.2f}"


def percent(value: Any, decimals: int = 1, signed: bool = False) -> str:
    """A ratio as a percentage; a non-zero value that would round to 0% (or to 100%) says so.

    >>> percent(1.393), percent(2 / 5688), percent(5686 / 5688), percent(0), percent(15941.51)
    ('139.3%', '<0.1%', '>99.9%', '0%', '1,594,151.0%')
    """
    shown = _float(value)
    if shown is None:
        return ""
    if math.isinf(shown):
        return "n/a"
    if shown == 0:
        return "0%"
    tiny = 0.5 * 10 ** -(decimals + 2)  # rounds to 0 at `decimals`
    step = 10.0 ** -decimals
    if abs(shown) < tiny:
        return f"<{step:.{decimals}f}%" if shown > 0 else f">-{step:.{decimals}f}%"
    if 1 - tiny < shown < 1:
        return f">{100 - step:.{decimals}f}%"
    sign = "+" if signed else ""
    return f"{shown:{sign},.{decimals}%}"


def points(value: Any, decimals: int = 1, signed: bool = True) -> str:
    """A difference of two percentages, in percentage points.

    >>> points(-0.0512), points(0.00001)
    ('-5.1 pp', '+<0.1 pp')
    """
    shown = _float(value)
    if shown is None:
        return ""
    if math.isinf(shown):
        return "n/a"
    step = 0.5 * 10 ** -(decimals + 2)
    if shown != 0 and abs(shown) < step:
        return f"{'+' if shown > 0 else '-'}<{2 * step * 100:.{decimals}f} pp"
    sign = "+" if signed else ""
    return f"{100 * shown:{sign},.{decimals}f} pp"


def p_value(value: Any) -> str:
    """Two significant digits, no exponent.

    >>> p_value(0.0321), p_value(0.00002), p_value(0.5)
    ('0.032', '<0.0001', '0.5')
    """
    shown = _float(value)
    if shown is None:
        return ""
    return "<0.0001" if shown < 1e-4 else number(shown, 2)


def display_kind(kind: str, unit: str = "") -> str:
    """How a metric's values read: its `unit`, else by kind (a proportion is a percent).

    >>> display_kind("proportion"), display_kind("ratio", "percent"), display_kind("mean", "currency")
    ('percent', 'percent', 'currency')
    """
    if unit:
        return unit
    return PERCENT if kind == "proportion" else NUMBER


def metric(value: Any, kind: str, unit: str = "", signed: bool = False) -> str:
    """A metric's value (or a bound of its interval) as its kind reads.

    >>> metric(1.393, "ratio", "percent"), metric(10360.25, "mean", "currency"), metric(4.25, "ratio")
    ('139.3%', '10,360', '4.25')
    """
    shown = display_kind(kind, unit)
    if shown == PERCENT:
        return percent(value, signed=signed)
    if shown == CURRENCY:
        return currency(value, signed=signed)
    if shown == COUNT:
        return count(value) if not signed or _missing(value) else f"{round(float(value)):+,}"
    return number(value, signed=signed)


def difference(value: Any, kind: str, unit: str = "") -> str:
    """A segment's difference from its baseline: percentage points for percent metrics, signed.

    >>> difference(-0.0512, "proportion"), difference(1250.0, "sum", "currency")
    ('-5.1 pp', '+1,250')
    """
    if display_kind(kind, unit) == PERCENT:
        return points(value)
    return metric(value, kind, unit, signed=True)


def interval(low: Any, high: Any, kind: str, unit: str = "", of_difference: bool = True) -> str:
    """A 95% CI as `[low, high]` ("" when there is none).

    >>> interval(7192.0, 12420.4, "mean", "currency"), interval(None, None, "mean")
    ('[+7,192, +12,420]', '')
    """
    if _missing(low) or _missing(high):
        return ""
    shown = difference if of_difference else metric
    return f"[{shown(low, kind, unit)}, {shown(high, kind, unit)}]"


def cell(value: Any) -> str:
    """A value from a member table: integers (often keys) as they are, fractions without float
    noise (two decimals from 1 up, three significant digits below), dates in ISO form.

    >>> cell(83959.07999999997), cell(12345), cell(0.000123456), cell(None), cell(dt.date(2026, 1, 2))
    ('83,959.08', '12345', '0.000123', '', '2026-01-02')
    """
    if _missing(value):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, float | decimal.Decimal) or (is_numeric(value) and not isinstance(value, numbers.Integral)):
        shown = float(value)
        if math.isinf(shown):
            return "n/a"
        if abs(shown) < 1:
            return number(shown, 3)
        text = f"{shown:,.2f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return str(value)


# A number as these functions print it: 1,234 · -5.1 pp · <0.1% · [+7,192, +12,420] · 0.032
NUMBER_TEXT = re.compile(r"^\[?[+\-<>]?[\d,]+(\.\d+)?( ?%| pp)?(, [+\-<>]?[\d,]+(\.\d+)?( ?%| pp)?\])?$")


def is_number_text(text: str) -> bool:
    """True for a number as printed here (it aligns right in tables).

    >>> is_number_text("1,234"), is_number_text("-5.1 pp"), is_number_text("[+7,192, +12,417]"), is_number_text("a1")
    (True, True, True, False)
    """
    return bool(NUMBER_TEXT.match(text))


def is_numeric(value: Any) -> bool:
    """True for numbers, numpy's included (not booleans): they align right in tables."""
    return isinstance(value, numbers.Number) and not isinstance(value, bool)
