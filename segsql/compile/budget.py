"""Budgets for rendering untrusted templates: wall time, output size, loop iterations and the size
of any value a template builds (`'x' * n`, `list + list`, `'%9999999d' % 1`, `s.ljust(n)`, ...).

Segment files come from pull requests and notebook cells, so a template may try to exhaust the
machine. Jinja's sandbox stops attribute escapes but not amplification; these checks run *before*
the amplifying operation (so memory stays bounded), every loop iteration counts against the
budget (loops are wrapped when the template is compiled), and the clock is read on every call,
loop iteration and output chunk. Each refusal names its `limits:` key in segsql.yml.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass, field
from typing import Any

from segsql.errors import SegsqlError

# str methods whose result can be far larger than their inputs, and the argument that says how large
WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})
FORMAT_WIDTH = re.compile(r"%[-+ #0]*(\d+)|\{[^{}]*:[^{}]*?(\d{4,})[^{}]*\}")
CLOCK_EVERY = 1024  # loop iterations between two reads of the clock
MAX_POWER_DIGITS = 10_000  # `**` results above this are refused (big-integer powers take seconds)


class BudgetError(SegsqlError):
    """A template went over one of the render limits."""


@dataclass(frozen=True)
class RenderLimits:
    """The limits of one render (segsql.yml `limits:`; defaults are generous for real segments)."""

    render_seconds: float = 10.0
    rendered_bytes: int = 20_000_000
    template_value_bytes: int = 5_000_000
    loop_iterations: int = 1_000_000


@dataclass
class Budget:
    """What one render has used so far."""

    limits: RenderLimits = field(default_factory=RenderLimits)
    # CPU time of the rendering thread, not wall time: a template can only spend time computing,
    # and a loaded machine (CI) must not fail a render that is within its budget
    started: float = field(default_factory=time.thread_time)
    iterations: int = 0
    output_bytes: int = 0

    def restart_clock(self) -> None:
        self.started = time.thread_time()

    def check_time(self) -> None:
        elapsed = time.thread_time() - self.started
        if elapsed > self.limits.render_seconds:
            raise BudgetError(f"rendering took more than {self.limits.render_seconds:g} s of CPU time", None,
                                 "simplify the template's loops, or raise limits.render_seconds in segsql.yml")

    def count_output(self, chunk: str) -> None:
        self.output_bytes += len(chunk)
        if self.output_bytes > self.limits.rendered_bytes:
            raise BudgetError(f"the rendered SQL is larger than {self.limits.rendered_bytes:,} characters", None,
                                 "move long value lists into a source table, or raise limits.rendered_bytes")
        self.check_time()

    def loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """`iterable`, counting each item against limits.loop_iterations."""
        for item in iterable:
            self.iterations += 1
            if self.iterations > self.limits.loop_iterations:
                raise BudgetError(f"the template's loops ran more than {self.limits.loop_iterations:,} "
                                     "iterations", None, "loop over less, or raise limits.loop_iterations")
            if self.iterations % CLOCK_EVERY == 0:
                self.check_time()
            yield item

    def check_value(self, size: float, what: str) -> None:
        if size > self.limits.template_value_bytes:
            raise BudgetError(f"{what} would build a value of {size:,.0f} items/characters (more than "
                                 f"{self.limits.template_value_bytes:,})", None,
                                 "build smaller values, or raise limits.template_value_bytes")

    def check_binop(self, operator: str, left: Any, right: Any) -> None:
        """Refuse `*`, `+`, `**` and `%` whose result would be over the value limit."""
        self.check_time()
        if operator == "*" and isinstance(left, int) and isinstance(right, int) and \
                left.bit_length() + right.bit_length() > MAX_POWER_DIGITS * 3.33:
            raise BudgetError(f"`*` would build a number of more than {MAX_POWER_DIGITS:,} digits", None,
                              "templates compute small numbers only")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if _is_sequence(sequence) and isinstance(count, int):
                    self.check_value(len(sequence) * max(count, 0), "`*`")
        elif operator == "+" and _is_sequence(left) and _is_sequence(right):
            self.check_value(len(left) + len(right), "`+`")
        elif operator == "**" and _is_number(left) and _is_number(right):
            self._check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            self.check_format(left)
            values = right if isinstance(right, tuple) else (right,)
            if "*" in left:  # `%*d`: the widths come from the values
                for width in (v for v in values if isinstance(v, int) and not isinstance(v, bool)):
                    self.check_value(width, "a format width")
            self.check_value(len(left) + sum(len(v) if isinstance(v, str) else 24 for v in values), "`%`")

    def _check_power(self, base: Any, exponent: Any) -> None:
        if abs(base) <= 1 or exponent <= 0:
            return
        digits = exponent * math.log10(abs(base))
        if digits > MAX_POWER_DIGITS:
            raise BudgetError(f"`**` would build a number of {digits:,.0f} digits", None,
                                 "templates compute small numbers only")

    def check_format(self, text: str) -> None:
        """Format strings with huge field widths (`%99999999d`, `{:>99999999}`)."""
        for match in FORMAT_WIDTH.finditer(text):
            width = int(match.group(1) or match.group(2))
            self.check_value(width, "a format width")

    def check_result(self, value: Any) -> None:
        """A call's or filter's result over the value limit is refused (before it is used further)."""
        if isinstance(value, str | bytes | list | tuple | dict | set):
            self.check_value(len(value), "a call")
        self.check_time()

    def check_call(self, function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Calls of str methods that pad or repeat: their width/count against the value limit."""
        self.check_time()
        target = getattr(function, "__wrapped__", function)  # the sandbox wraps str.format
        owner, name = getattr(target, "__self__", None), getattr(target, "__name__", "")
        if isinstance(owner, str):
            if name in WIDTH_METHODS:
                width = next((a for a in (*args, *kwargs.values()) if isinstance(a, int)), 0)
                self.check_value(max(width, len(owner)) if name != "expandtabs" else len(owner) * width, f"`{name}`")
            elif name == "replace" and len(args) >= 2 and isinstance(args[1], str):
                self.check_value(len(owner) + (len(owner) + 1) * len(args[1]), "`replace`")
            elif name in ("format", "format_map"):
                self.check_format(owner)
            elif name == "join" and args:
                self.check_join(owner, args[0])

    def check_join(self, separator: Any, items: Any) -> None:
        """`sep.join(items)` / `items|join(sep)` measured before joining (sized inputs)."""
        if not isinstance(items, Sized):
            return
        count = len(items)
        pieces = sum(len(item) for item in items if isinstance(item, str)) if isinstance(items, list | tuple) else 0
        self.check_value(len(str(separator)) * max(count - 1, 0) + pieces, "a join")


def _is_sequence(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
