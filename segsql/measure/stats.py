"""Statistics for comparing a segment with a baseline on one metric.

Inputs are sufficient statistics computed in the engine (sums of num, den and their products up
to the third power; per-entity values only for the resampling test, see
segsql.measure.compare). The tests are the ones scipy and statsmodels implement, written out here
(with segsql.measure.distributions) because importing those libraries cost a `segsql compare`
~1.3 s of CPU; tests/test_distributions.py checks every one against them:

  proportion  two-proportion z-test when every expected cell count of the 2×2 table is ≥ 5,
              else Fisher's exact test; 95% CI of the difference by Newcombe's hybrid score
              method (Wilson intervals: valid at any n)
  mean        Welch's t-test (CI from the Welch–Satterthwaite degrees of freedom) when the
              normal approximation holds (below), else the resampling test
  ratio       delta method for Σa/Σb, e.g. NRR, GRR, LTV, CSAT share: Student's t with
              Welch–Satterthwaite degrees of freedom from the two delta-method variances (for
              b ≡ 1 it is Welch's t-test), when the normal approximation holds, else resampling
  rate        Poisson rate difference: score test and score CI (statsmodels' method) when each group's
              expected event count under equal rates is ≥ 5, else the exact conditional
              (binomial) test and no interval
  sum         descriptive: values only, no test; members without a row add 0
The normal approximation of a mean or ratio holds when
  - each group has ≥ 30 measured entities and a positive variance;
  - the difference is not too skewed (Cochran's rule, n ≥ 25·G1², as a condition on the
    difference): |κ3·(1/n1² − 1/n0²)| / (σ²·(1/n1 + 1/n0))^1.5 ≤ 0.2, with σ² and κ3 the
    variance and third central moment of the (linearised) values of both groups together. Equal
    groups cancel the skewness; a small segment against a large rest does not (G1/√n1);
  - for a ratio, each group's mean denominator varies by less than 10% (CV of the mean ≤ 0.1,
    Cochran 1977 §6.4): the linearisation of Σa/Σb is poor when Σb depends on a few entities.
  In A/A simulations on the demo data (tests/test_aa_simulation.py) the normal approximation
  without the last two conditions rejected 10-18% of true nulls for MRR per account, NRR, GRR and
  LTV at 30-60 accounts against the rest.
Resampling test (mean and ratio outside the conditions above), on per-entity values:
  p-value     two-sided permutation test of the difference (entities are the units, so several
              responses of one account stay together): 9,999 random relabellings, p = (1 + number
              at least as extreme) / (1 + draws), seed fixed (same data, same p)
  95% CI      percentile interval of the difference, 4,000 draws: a group whose own mean meets
              the conditions above (G1/√n ≤ 0.2) is drawn from its normal approximation, another
              is bootstrapped; no interval when a bootstrapped group has < 10 entities or no
              variance (the draws would show no uncertainty that is there)
  Without per-entity values (too many to fetch) the row says "too few to test" with the counts
  and the condition that failed.
Multiple comparisons: Benjamini–Hochberg over every p-value of one compare call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from segsql.measure.distributions import (
    benjamini_hochberg_rejections,
    binomial_two_sided_p,
    fisher_exact_p,
    normal_ppf,
    normal_sf,
    student_t_ppf,
    student_t_sf,
)

CONFIDENCE = 0.95
MIN_ASYMPTOTIC_N = 30    # measured entities per group for Welch's t and the delta method
MIN_BOOTSTRAP_N = 10     # entities of a bootstrapped group for a percentile interval
MIN_EXPECTED = 5         # expected count per cell (proportion) or per group (rate)
MAX_SKEW = 0.2           # |skewness of the estimated difference| (Cochran's rule: G1/√n ≤ 0.2)
MAX_DENOMINATOR_CV = 0.1 # CV of a group's mean denominator for the delta method (Cochran 1977, §6.4)
CHUNK_ELEMENTS = 2_000_000  # resampling draws at most this many indices at once (16 MB)
PERMUTATIONS = 9999
BOOTSTRAPS = 4000
VECTOR_PICKS = 256       # permutation draws of at most this many entities are drawn vectorised
SEED = 18


@dataclass(frozen=True)
class Sufficient:
    """Sums over the measured entities of one group (a segment, the rest, everyone)."""

    members: int = 0      # entities in the group, measured or not
    n: int = 0            # entities with a value (den not NULL and not 0)
    num: float = 0.0      # Σ num
    den: float = 0.0      # Σ den
    num2: float = 0.0     # Σ num²
    den2: float = 0.0     # Σ den²
    numden: float = 0.0   # Σ num·den
    num3: float = 0.0     # Σ num³ (third moments: the skewness condition of the normal approximation)
    num2den: float = 0.0  # Σ num²·den
    numden2: float = 0.0  # Σ num·den²
    den3: float = 0.0     # Σ den³

    def __sub__(self, other: Sufficient) -> Sufficient:
        return Sufficient(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def __add__(self, other: Sufficient) -> Sufficient:
        return Sufficient(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @classmethod
    def of(cls, num: np.ndarray, den: np.ndarray, members: int | None = None) -> Sufficient:
        """From per-entity arrays (used by tests and bootstraps; the engine computes the same)."""
        num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
        powers = [num * num, den * den, num * den, num ** 3, num * num * den, num * den * den, den ** 3]
        return cls(members if members is not None else len(num), len(num), float(num.sum()), float(den.sum()),
                   *(float(power.sum()) for power in powers))


@dataclass(frozen=True)
class Values:
    """Per-entity numerators and denominators of one group, for the resampling test."""

    num: np.ndarray
    den: np.ndarray

    @classmethod
    def of(cls, num: object, den: object) -> Values:
        return cls(np.asarray(num, dtype=float), np.asarray(den, dtype=float))


@dataclass(frozen=True)
class Result:
    """A group compared with its baseline on one metric."""

    value: float | None
    baseline: float | None
    diff: float | None = None
    rel_diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    test: str = ""
    note: str = ""


def value_of(kind: str, group: Sufficient) -> tuple[float | None, str]:
    """The metric's value for a group, or None with the reason. A sum over members without rows
    is 0 (e.g. the MRR of churned accounts), said in the note."""
    if kind == "sum" and group.n == 0 and group.members > 0:
        return 0.0, "no member has a row: the sum is 0"
    if group.n == 0:
        return None, "no member has a value"
    if kind == "sum":
        return group.num, ""
    if kind == "mean":
        return group.num / group.n, ""
    if group.den == 0:
        reason = "denominator is zero" if kind != "ratio" else "undefined: the denominator is zero"
        return None, reason
    return group.num / group.den, ""


def asymptotic_problem(kind: str, group: Sufficient, baseline: Sufficient) -> str:
    """Why the normal approximation of a mean or ratio does not hold here ("" when it does)."""
    if kind not in ("mean", "ratio"):
        return ""
    for label, sums in (("segment", group), ("baseline", baseline)):
        if sums.n < MIN_ASYMPTOTIC_N:
            return f"{label} has {sums.n} measured (the normal approximation needs {MIN_ASYMPTOTIC_N})"
        if _spread(kind, sums) == 0:
            return f"no variance in the {label}"
    variance, third, cv = unit_moments(kind, group + baseline)
    if kind == "ratio":
        for label, sums in (("segment", group), ("baseline", baseline)):
            if cv / math.sqrt(sums.n) > MAX_DENOMINATOR_CV:
                return (f"the {label}'s denominator varies too much for the delta method (CV of its mean "
                        f"{cv / math.sqrt(sums.n):.2f} > {MAX_DENOMINATOR_CV}, {sums.n} measured)")
    skew = difference_skewness(variance, third, group.n, baseline.n)
    if abs(skew) > MAX_SKEW:
        needed = math.ceil(25 * (third / variance ** 1.5) ** 2) if variance > 0 else 0
        return (f"values too skewed for the normal approximation (skewness of the difference {skew:.2f} > "
                f"{MAX_SKEW}; Cochran's rule wants ≥ {needed:,} measured in the smaller group)")
    return ""


def unit_moments(kind: str, sums: Sufficient) -> tuple[float, float, float]:
    """Per entity: variance and third central moment of the linearised value (a mean's value;
    for Σa/Σb the delta method's (a − R·b)/mean b), and the coefficient of variation of b."""
    n = sums.n
    if n < 2:
        return 0.0, 0.0, 0.0
    if kind == "mean":
        mean = sums.num / n
        third = (sums.num3 - 3 * mean * sums.num2 + 3 * mean * mean * sums.num - n * mean ** 3) / n
        return _variance(sums.num, sums.num2, n), third, 0.0
    if sums.den == 0:
        return 0.0, 0.0, 0.0
    ratio, mean_b = sums.num / sums.den, sums.den / n
    residual3 = sums.num3 - 3 * ratio * sums.num2den + 3 * ratio ** 2 * sums.numden2 - ratio ** 3 * sums.den3
    cv = math.sqrt(_variance(sums.den, sums.den2, n)) / abs(mean_b)
    return (ratio_variance(sums) or 0.0) * n, residual3 / n / mean_b ** 3, cv


def difference_skewness(variance: float, third: float, n1: int, n0: int) -> float:
    """Skewness of the difference of two means of n1 and n0 entities drawn from one distribution:
    κ3·(1/n1² − 1/n0²) / (σ²·(1/n1 + 1/n0))^1.5 (0 for equal groups, G1/√n1 for a small group
    against a large one, where Cochran's rule n ≥ 25·G1² asks for G1/√n ≤ 0.2)."""
    if variance <= 0:
        return 0.0
    return float(third * (1 / n1 ** 2 - 1 / n0 ** 2) / (variance * (1 / n1 + 1 / n0)) ** 1.5)


def needs_values(kind: str, group: Sufficient, baseline: Sufficient) -> bool:
    """Whether this comparison needs per-entity values (the resampling test)."""
    if value_of(kind, group)[0] is None or value_of(kind, baseline)[0] is None:
        return False
    return bool(asymptotic_problem(kind, group, baseline))


def _spread(kind: str, sums: Sufficient) -> float:
    if kind == "mean":
        return _variance(sums.num, sums.num2, sums.n) if sums.n > 1 else 0.0
    return ratio_variance(sums) or 0.0


def compare(kind: str, group: Sufficient, baseline: Sufficient,
            values: tuple[Values, Values] | None = None) -> Result:
    """Compare `group` with `baseline` using the test that fits `kind` and the data: the
    asymptotic test within its conditions, else an exact or resampling test (`values`: the
    per-entity values of group and baseline), else no test ("too few to test")."""
    value, note = value_of(kind, group)
    base, base_note = value_of(kind, baseline)
    if value is None or base is None:
        return Result(value, base, note=note or f"baseline: {base_note}")
    diff = value - base
    rel = diff / base if base else None
    if kind == "sum":
        return Result(value, base, diff, rel, test="none (descriptive)", note=note or base_note)
    problem = asymptotic_problem(kind, group, baseline)
    if problem:
        low, high, p_value, test, note = _resampled(kind, group, baseline, values, problem)
        return Result(value, base, diff, rel, low, high, p_value, test, note)
    tester = {"proportion": _proportion, "mean": _mean, "ratio": _ratio, "rate": _rate}[kind]
    low, high, p_value, test, note = tester(group, baseline)
    return Result(value, base, diff, rel, low, high, p_value, test, note)


Outcome = tuple[float | None, float | None, float | None, str, str]


def _proportion(group: Sufficient, baseline: Sufficient) -> Outcome:
    x1, n1, x0, n0 = group.num, group.den, baseline.num, baseline.den
    if not (_is_count(x1) and _is_count(x0) and x1 <= n1 and x0 <= n0 and group.num2 == group.num):
        raise ValueError("a proportion's numerator and denominator must be 0/1 per entity, numerator ≤ denominator")
    low, high = newcombe_interval(x1, n1, x0, n0)
    table = np.array([[x1, n1 - x1], [x0, n0 - x0]])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    if (expected < 5).any():
        p_value = fisher_exact_p([[round(x1), round(n1 - x1)], [round(x0), round(n0 - x0)]])
        return low, high, p_value, "Fisher's exact test", ""
    pooled = (x1 + x0) / (n1 + n0)
    z = (x1 / n1 - x0 / n0) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    return low, high, _finite(2 * normal_sf(abs(z))), "two-proportion z-test", ""


def _z_critical() -> float:
    return normal_ppf((1 + CONFIDENCE) / 2)


def wilson_interval(successes: float, trials: float) -> tuple[float, float]:
    """Wilson's score interval of a proportion (statsmodels' proportion_confint(method="wilson"))."""
    z = _z_critical()
    z2 = z * z
    share = successes / trials
    scale = 1 + z2 / trials
    center = (share + z2 / (2 * trials)) / scale
    half = z * math.sqrt(share * (1 - share) / trials + z2 / (4 * trials * trials)) / scale
    return center - half, center + half


def newcombe_interval(x1: float, n1: float, x0: float, n0: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 − p0 from the two Wilson intervals (method 10 of
    Newcombe 1998; statsmodels' confint_proportions_2indep(method="newcomb"))."""
    p1, p0 = x1 / n1, x0 / n0
    low1, high1 = wilson_interval(x1, n1)
    low0, high0 = wilson_interval(x0, n0)
    diff = p1 - p0
    return (diff - math.sqrt((p1 - low1) ** 2 + (high0 - p0) ** 2),
            diff + math.sqrt((p0 - low0) ** 2 + (high1 - p1) ** 2))


def _is_count(value: float) -> bool:
    return float(value).is_integer()


def _variance(total: float, squares: float, n: int) -> float:
    mean = total / n
    return max((squares - n * mean * mean) / (n - 1), 0.0)


def _mean(group: Sufficient, baseline: Sufficient) -> Outcome:
    n1, n0 = group.n, baseline.n
    if n1 < 2 or n0 < 2:
        return None, None, None, "Welch's t-test", "too few values for a t-test (need 2 per group)"
    m1, m0 = group.num / n1, baseline.num / n0
    v1, v0 = _variance(group.num, group.num2, n1), _variance(baseline.num, baseline.num2, n0)
    se2 = v1 / n1 + v0 / n0
    if se2 == 0:
        return m1 - m0, m1 - m0, (1.0 if m1 == m0 else 0.0), "Welch's t-test", "no variance in either group"
    low, high, p_value = welch_interval(m1 - m0, [(v1 / n1, n1), (v0 / n0, n0)])
    return low, high, _finite(p_value), "Welch's t-test", ""


def ratio_variance(group: Sufficient) -> float | None:
    """Delta-method variance of Σa/Σb: (var_a − 2R·cov_ab + R²·var_b) / (n · mean_b²)."""
    n = group.n
    if n < 2 or group.den == 0:
        return None
    ratio = group.num / group.den
    mean_a, mean_b = group.num / n, group.den / n
    var_a = _variance(group.num, group.num2, n)
    var_b = _variance(group.den, group.den2, n)
    cov = (group.numden - n * mean_a * mean_b) / (n - 1)
    return max((var_a - 2 * ratio * cov + ratio * ratio * var_b) / (n * mean_b * mean_b), 0.0)


DELTA_TEST = "delta method (Welch t)"


def _ratio(group: Sufficient, baseline: Sufficient) -> Outcome:
    v1, v0 = ratio_variance(group), ratio_variance(baseline)
    if v1 is None or v0 is None:
        return None, None, None, DELTA_TEST, "too few values for the delta method (need 2 per group)"
    diff = group.num / group.den - baseline.num / baseline.den
    if v1 + v0 == 0:
        return diff, diff, (1.0 if diff == 0 else 0.0), DELTA_TEST, "no variance in either group"
    low, high, p_value = welch_interval(diff, [(v1, group.n), (v0, baseline.n)])
    return low, high, _finite(p_value), DELTA_TEST, ""


def welch_interval(diff: float, parts: list[tuple[float, int]]) -> tuple[float, float, float]:
    """95% CI and two-sided p of `diff` from (variance of each group's estimate, its entities):
    Student's t with Welch–Satterthwaite degrees of freedom (for Σa/Σb with b ≡ 1 this is Welch's
    t-test; the normal approximation would be liberal by about a point at 30 entities)."""
    se2 = sum(variance for variance, _ in parts)
    df = se2 ** 2 / sum(variance ** 2 / (n - 1) for variance, n in parts)
    se = math.sqrt(se2)
    if not (math.isfinite(df) and df > 0 and math.isfinite(diff / se)):  # a NaN or inf in the data
        return math.nan, math.nan, math.nan
    margin = student_t_ppf((1 + CONFIDENCE) / 2, df) * se
    return diff - margin, diff + margin, min(1.0, 2 * student_t_sf(abs(diff) / se, df))


def _resampled(kind: str, group: Sufficient, baseline: Sufficient, values: tuple[Values, Values] | None,
               problem: str) -> Outcome:
    """Permutation p-value and percentile interval, or "too few to test" without values."""
    if values is None:
        counts = f"{group.n} of {group.members} members measured, baseline {baseline.n}"
        return None, None, None, "none (too few to test)", (f"too few values to test: {counts}; {problem}; "
                                                             "a resampling test needs every member's value "
                                                             "(none fetched: too few, or more rows than it fetches)")
    own, other = values
    if own.num.size != group.n or other.num.size != baseline.n:
        raise ValueError("per-entity values do not match the group's sums")
    p_value = permutation_p_value(own, other)
    low, high, why_not = _percentile_interval(kind, group, baseline, own, other)
    test = f"permutation test ({PERMUTATIONS:,} draws)" + ("" if why_not else " + bootstrap CI")
    note = f"{problem}: resampled" + (f"; {why_not}" if why_not else "")
    return low, high, p_value, test, note


def _ratio_of(values: Values) -> float:
    return float(values.num.sum() / values.den.sum())


def permutation_p_value(own: Values, other: Values, draws: int | None = None, seed: int = SEED) -> float:
    """Two-sided p of Σnum/Σden (segment) − Σnum/Σden (baseline) under random relabelling of
    entities: (1 + draws at least as extreme) / (1 + valid draws). Only the smaller group is
    drawn (without replacement); the other is the rest of the pool. `draws`: PERMUTATIONS."""
    draws = PERMUTATIONS if draws is None else draws
    num, den = np.concatenate([own.num, other.num]), np.concatenate([own.den, other.den])
    small = min(own.num.size, other.num.size)
    total_num, total_den = num.sum(), den.sum()
    observed = _ratio_of(own) - _ratio_of(other)
    rng = np.random.default_rng(seed)
    width = small if small > VECTOR_PICKS else _draws_for_distinct(num.size, small)
    per_chunk = max(1, CHUNK_ELEMENTS // width)  # bounded memory: draws × width indices in blocks
    sums = []
    for start in range(0, draws, per_chunk):
        picks = _distinct_picks(rng, num.size, small, min(per_chunk, draws - start))
        sums.append((num[picks].sum(axis=1), den[picks].sum(axis=1)))
    drawn_num = np.concatenate([chunk[0] for chunk in sums])
    drawn_den = np.concatenate([chunk[1] for chunk in sums])
    rest_den = total_den - drawn_den
    valid = (drawn_den != 0) & (rest_den != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawn = drawn_num / drawn_den - (total_num - drawn_num) / rest_den
    if own.num.size > other.num.size:
        drawn = -drawn  # the drawn group stands for the baseline
    tolerance = 1e-12 * max(1.0, abs(observed))
    extreme = np.abs(drawn[valid]) >= abs(observed) - tolerance
    return float((1 + extreme.sum()) / (1 + valid.sum()))


def _draws_for_distinct(pool: int, size: int) -> int:
    """Uniform draws (with replacement) that almost surely hold `size` distinct values of `pool`:
    the expected number plus four standard deviations (a sum of geometric waits); `pool` when
    that is at least half the pool (then random keys are cheaper)."""
    remaining = pool - np.arange(size, dtype=float)
    expected = float(np.sum(pool / remaining))
    spread = math.sqrt(float(np.sum((pool - remaining) * pool / remaining ** 2)))
    width = math.ceil(expected + 4 * spread) + 1
    return pool if width >= pool // 2 else width


def _distinct_picks(rng: np.random.Generator, pool: int, size: int, count: int) -> np.ndarray:
    """`count` rows of `size` distinct indices below `pool`, each row a uniform random subset.
    Up to VECTOR_PICKS picks, vectorised (one Generator.choice call per row was ~90% of the time
    of a permutation test of a small group): the first `size` distinct values of a row of uniform
    draws (a rare row with fewer is drawn again), or, for half the pool, the `size` smallest of
    `pool` uniform keys."""
    if size > VECTOR_PICKS:  # per row, numpy's own sampler is as fast as any vectorised one
        return np.array([rng.choice(pool, size=size, replace=False) for _ in range(count)])
    width = _draws_for_distinct(pool, size)
    if width == pool:
        return np.argpartition(rng.random((count, pool)), size - 1, axis=1)[:, :size]
    drawn = rng.integers(0, pool, (count, width))
    keyed = np.sort(drawn * width + np.arange(width), axis=1)  # by value, then by when it was drawn
    ranked, order = np.divmod(keyed, width)
    first = np.ones(ranked.shape, dtype=bool)
    first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    positions = np.partition(np.where(first, order, width), size - 1, axis=1)[:, :size]
    short = positions.max(axis=1) >= width
    picks = np.take_along_axis(drawn, np.minimum(positions, width - 1), axis=1)
    if short.any():
        picks[short] = _distinct_picks(rng, pool, size, int(short.sum()))
    return picks


def _percentile_interval(kind: str, group: Sufficient, baseline: Sufficient, own: Values,
                         other: Values) -> tuple[float | None, float | None, str]:
    """95% percentile interval of the difference; (None, None, reason) when it would mislead."""
    rng = np.random.default_rng(SEED)
    draws = []
    variance, third, cv = unit_moments(kind, group + baseline)
    for sums, values in ((group, own), (baseline, other)):
        if _normal_mean(kind, sums, variance, third, cv):
            spread = _spread(kind, sums) / (sums.n if kind == "mean" else 1)
            draws.append(_ratio_of(values) + math.sqrt(spread) * rng.standard_normal(BOOTSTRAPS))
            continue
        if sums.n < MIN_BOOTSTRAP_N or _spread(kind, sums) == 0:
            return None, None, f"no interval: {sums.n} measured, too few or no variance to bootstrap"
        draws.append(_bootstrap_ratios(rng, values))
    with np.errstate(invalid="ignore"):  # a draw with a zero denominator is ±inf; dropped below
        difference = draws[0] - draws[1]
    difference = difference[np.isfinite(difference)]
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(difference, [tail, 100 - tail])
    return float(low), float(high), ""


def _normal_mean(kind: str, sums: Sufficient, variance: float, third: float, cv: float) -> bool:
    """Whether one group's mean (or Σa/Σb) is close enough to normal to be drawn from its normal
    approximation: ≥ 30 entities, some variance, skewness G1/√n ≤ 0.2 and (ratios) a denominator
    mean with CV ≤ 0.1, judged on the moments of both groups together."""
    if sums.n < MIN_ASYMPTOTIC_N or _spread(kind, sums) == 0 or variance <= 0:
        return False
    if kind == "ratio" and cv / math.sqrt(sums.n) > MAX_DENOMINATOR_CV:
        return False
    return bool(abs(third) / variance ** 1.5 / math.sqrt(sums.n) <= MAX_SKEW)


def _bootstrap_ratios(rng: np.random.Generator, values: Values) -> np.ndarray:
    """BOOTSTRAPS resampled Σnum/Σden, drawn in blocks so memory stays bounded."""
    size = values.num.size
    per_chunk = max(1, CHUNK_ELEMENTS // max(size, 1))
    ratios = []
    for start in range(0, BOOTSTRAPS, per_chunk):
        picks = rng.integers(0, size, (min(per_chunk, BOOTSTRAPS - start), size))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios.append(values.num[picks].sum(axis=1) / values.den[picks].sum(axis=1))
    return np.concatenate(ratios)


def _rate(group: Sufficient, baseline: Sufficient) -> Outcome:
    if not (_is_count(group.num) and _is_count(baseline.num)):
        raise ValueError("a rate's numerator must count events (whole numbers)")
    events, exposure = group.num + baseline.num, group.den + baseline.den
    if min(events * group.den, events * baseline.den) < MIN_EXPECTED * exposure:
        # whole numbers (checked above) as ints: the exact test's binomial refuses 3.0 (sums arrive as floats)
        share = group.den / exposure  # given the total, the segment's events are binomial
        exact = binomial_two_sided_p(round(group.num), round(events), share)
        note = f"expected events below {MIN_EXPECTED}: exact test, no interval"
        return None, None, exact, "exact conditional Poisson test", note
    statistic = poisson_score_statistic(group, baseline, 0.0)
    low, high = poisson_score_interval(group, baseline)
    return low, high, _finite(2 * normal_sf(abs(statistic))), "Poisson score test", ""


def poisson_score_statistic(group: Sufficient, baseline: Sufficient, difference: float) -> float:
    """Score statistic of H0: rate₁ − rate₀ = `difference`, with the rates' maximum likelihood
    estimates under H0 (statsmodels' test_poisson_2indep(method="score", compare="diff"))."""
    y1, n1, y0, n0 = group.num, group.den, baseline.num, baseline.den
    excess = (y1 + y0) / (n1 + n0) - difference
    rate0 = 0.5 * (excess + math.sqrt(excess * excess + 4 * difference * y0 / (n1 + n0)))
    rate1 = rate0 + difference
    gap, variance = y1 / n1 - y0 / n0 - difference, rate1 / n1 + rate0 / n0
    if variance <= 0:  # both rates 0 under H0: only a zero gap is consistent with it
        return 0.0 if gap == 0 else math.copysign(math.inf, gap)
    return gap / math.sqrt(variance)


def poisson_score_interval(group: Sufficient, baseline: Sufficient) -> tuple[float, float]:
    """95% CI of rate₁ − rate₀ by inverting the score test: the differences whose statistic is
    ±z. The statistic falls monotonically in the difference, so each end is bracketed by doubling
    a step away from the estimate, then bisected to machine precision."""
    estimate = group.num / group.den - baseline.num / baseline.den
    z = _z_critical()
    step = z * math.sqrt((group.num + 0.5) / group.den ** 2 + (baseline.num + 0.5) / baseline.den ** 2)
    ends = []
    for sign in (-1, 1):
        near, far = estimate, estimate + sign * step
        while -sign * poisson_score_statistic(group, baseline, far) < z:
            near, far = far, 2 * far - estimate  # twice as far from the estimate
        for _ in range(200):
            middle = (near + far) / 2
            if middle in (near, far):
                break
            if -sign * poisson_score_statistic(group, baseline, middle) < z:
                near = middle
            else:
                far = middle
        ends.append((near + far) / 2)
    return ends[0], ends[1]


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def benjamini_hochberg(p_values: list[float | None], alpha: float = 0.05) -> list[bool | None]:
    """Which p-values stay significant after Benjamini–Hochberg (None where there is no test)."""
    present = [p for p in p_values if p is not None]
    if not present:
        return [None for _ in p_values]
    rejected = iter(benjamini_hochberg_rejections(present, alpha))
    return [None if p is None else bool(next(rejected)) for p in p_values]
