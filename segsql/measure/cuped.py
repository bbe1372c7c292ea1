"""CUPED (Deng, Xu, Kohavi & Walker 2013): a readout's differences adjusted by each member's
pre-period value of the same metric, which removes the part of the variance the members
brought with them from before the experiment.

Every kind with a test is a ratio Σa/Σb over a group's measured members (a mean: b = 1; a
proportion: b = 1 when eligible). Its covariate is the same metric before the experiment,
Σc/Σd over the same members. Both are linearised as in the delta method (Deng et al. 2018):

    L  = (a − R·b) / mean b        R  = Σa/Σb   (the metric in the experiment period)
    Lx = (c − Rx·d) / mean d       Rx = Σc/Σd   (the metric in the pre-period)

    adjusted difference  Δ = (R1 − R0) − θ·(Rx1 − Rx0)
    θ                    = Σ_g (n_g − 1)·cov_g(L, Lx) / Σ_g (n_g − 1)·var_g(Lx)  (pooled within groups)
    variance             var Δ = Σ_g var_g(L − θ·Lx) / n_g
    variance reduction   1 − var Δ / Σ_g var_g(L) / n_g      (in theory ρ², ρ = corr(L, Lx))

Δ is unbiased whatever θ, because the pre-period cannot differ between randomised groups
except by chance; the CI and p-value use Student's t with Welch–Satterthwaite degrees of freedom
(segsql.measure.stats.welch_interval). Members without a pre-period value (new since then,
or not measured then) keep c = d = 0, so Lx = 0 and their values are not adjusted (the same as
filling in the mean); `pre_covered` says how many had one.

Only where the unadjusted test is the normal approximation (both groups ≥ 30 measured, and
its other conditions): CUPED does not make a tiny or skewed comparison valid, so there the row
keeps its exact or permutation test and says why CUPED was not applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlglot import exp

from segsql.measure import metrics as metrics_module
from segsql.measure import stats

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine
    from segsql.measure.metrics import Metric

PAIRS = ("aa", "bb", "ab", "cc", "dd", "cd", "ac", "ad", "bc", "bd")
TEST = "CUPED (delta method, Welch t)"
NORMAL_TESTS = ("two-proportion z-test", "Welch's t-test", stats.DELTA_TEST, "Poisson score test")


@dataclass(frozen=True)
class Joint:
    """Sums over a group's measured members of the period's (a, b) and the pre-period's (c, d)."""

    n: int = 0             # members measured in the period
    covered: int = 0       # of them, with a pre-period value
    a: float = 0.0
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0
    aa: float = 0.0
    bb: float = 0.0
    ab: float = 0.0
    cc: float = 0.0
    dd: float = 0.0
    cd: float = 0.0
    ac: float = 0.0
    ad: float = 0.0
    bc: float = 0.0
    bd: float = 0.0

    @classmethod
    def of(cls, a: object, b: object, c: object, d: object, covered: int | None = None) -> Joint:
        """From per-member arrays (c = d = 0 for members without a pre-period value)."""
        import numpy as np

        arrays = {name: np.asarray(values, dtype=float) for name, values in zip("abcd", (a, b, c, d), strict=True)}
        sums = {name: float(values.sum()) for name, values in arrays.items()}
        sums.update({pair: float((arrays[pair[0]] * arrays[pair[1]]).sum()) for pair in PAIRS})
        n = len(arrays["a"])
        return cls(n, n if covered is None else covered, **sums)


@dataclass(frozen=True)
class Adjusted:
    """A CUPED-adjusted comparison, or why there is none (`problem`)."""

    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    theta: float | None = None
    variance_reduction: float | None = None
    problem: str = ""


def joint_by_group(compiler: Compiler, covariate: Compiler, engine: Engine, groups: exp.Query,
                   metric: Metric) -> dict[str, Joint]:
    """Per `grp` of a (grp, key) query: the metric's sums at `compiler`'s as_of jointly with its
    value at `covariate`'s as_of (the pre-period), over the members measured in the period."""
    def measured(source: Compiler, alias: str) -> exp.Subquery:
        values = metrics_module.entity_query(source, metric).subquery("v")
        return exp.select("*").from_(values).where(exp.and_(
            exp.column("den").is_(exp.null()).not_(), exp.column("num").is_(exp.null()).not_())).subquery(alias)

    present = exp.column("den", "x").is_(exp.null()).not_()
    if metric.kind == "mean":  # the value is num; the denominator only says who is measured
        b: exp.Expr = exp.Literal.number(1)
        d: exp.Expr = exp.If(this=present, true=exp.Literal.number(1), false=exp.Literal.number(0))
    else:
        b = exp.column("den", "y")
        d = exp.func("coalesce", exp.column("den", "x"), exp.Literal.number(0))
    columns = {"a": exp.column("num", "y"), "b": b, "c": exp.func("coalesce", exp.column("num", "x"),
                                                                   exp.Literal.number(0)), "d": d}
    sums = [exp.func("sum", columns[name].copy()).as_(name) for name in "abcd"]
    sums += [exp.func("sum", exp.Mul(this=columns[pair[0]].copy(), expression=columns[pair[1]].copy())).as_(pair)
             for pair in PAIRS]
    query = (exp.select(exp.column("grp", "g"), exp.func("count", exp.Star()).as_("n"),
                        exp.func("count", exp.column("den", "x")).as_("covered"), *sums)
             .from_(groups.subquery("g"))
             .join(measured(compiler, "y"), on=exp.column("key", "y").eq(exp.column("key", "g")))
             .join(measured(covariate, "x"), on=exp.column("key", "x").eq(exp.column("key", "g")),
                   join_type="left")
             .group_by(exp.column("grp", "g")))
    return {row[0]: Joint(int(row[1]), int(row[2]), *(float(v or 0.0) for v in row[3:]))
            for row in engine.fetchall(query)}


def _covariance(sums: Joint, pair: str) -> float:
    left, right, product = (float(getattr(sums, name)) for name in (pair[0], pair[1], pair))
    return (product - left * right / sums.n) / (sums.n - 1)


@dataclass(frozen=True)
class _Linear:
    """One group's linearised variance terms: var L, var Lx, cov(L, Lx), and R, Rx."""

    var_l: float
    var_x: float
    cov: float
    ratio: float
    pre_ratio: float


def _linearised(sums: Joint) -> _Linear:
    ratio, pre_ratio = sums.a / sums.b, sums.c / sums.d
    mean_b, mean_d = sums.b / sums.n, sums.d / sums.n

    def cov(pair: str) -> float:
        return _covariance(sums, pair)

    var_l = (cov("aa") - 2 * ratio * cov("ab") + ratio ** 2 * cov("bb")) / mean_b ** 2
    var_x = (cov("cc") - 2 * pre_ratio * cov("cd") + pre_ratio ** 2 * cov("dd")) / mean_d ** 2
    both = (cov("ac") - pre_ratio * cov("ad") - ratio * cov("bc") + ratio * pre_ratio * cov("bd")) / (mean_b * mean_d)
    return _Linear(max(var_l, 0.0), max(var_x, 0.0), both, ratio, pre_ratio)


def adjust(group: Joint, control: Joint, unadjusted: stats.Result) -> Adjusted:
    """The CUPED comparison of `group` with `control`, where the unadjusted one is a normal test."""
    if unadjusted.test not in NORMAL_TESTS:
        return Adjusted(problem=f"not applied: the unadjusted comparison uses {unadjusted.test}")
    for label, sums in (("group", group), ("control", control)):
        if sums.n < stats.MIN_ASYMPTOTIC_N:
            return Adjusted(problem=f"not applied: the {label} has {sums.n} measured (needs {stats.MIN_ASYMPTOTIC_N})")
        if sums.d == 0 or sums.b == 0:
            return Adjusted(problem=f"not applied: no member of the {label} has a pre-period value")
    one, zero = _linearised(group), _linearised(control)
    pooled_var = (group.n - 1) * one.var_x + (control.n - 1) * zero.var_x
    if pooled_var == 0:
        return Adjusted(problem="not applied: the pre-period values do not vary")
    theta = ((group.n - 1) * one.cov + (control.n - 1) * zero.cov) / pooled_var
    parts = [(max(line.var_l - 2 * theta * line.cov + theta ** 2 * line.var_x, 0.0) / sums.n, sums.n)
             for line, sums in ((one, group), (zero, control))]
    unadjusted_variance = one.var_l / group.n + zero.var_l / control.n
    diff = (one.ratio - zero.ratio) - theta * (one.pre_ratio - zero.pre_ratio)
    if sum(variance for variance, _ in parts) == 0 or unadjusted_variance == 0:
        return Adjusted(problem="not applied: the pre-period values predict the values exactly (does the metric "
                                "depend on as_of?)")
    low, high, p_value = stats.welch_interval(diff, parts)
    reduction = 1 - sum(variance for variance, _ in parts) / unadjusted_variance
    return Adjusted(diff, low, high, p_value, theta, reduction)
