"""Experiment design: the minimum detectable effect (MDE) of a two-group comparison, or the
sample it needs for a given effect, under the normal approximation of the readout's tests.

A two-sided test at level α compares a treatment group of n1 measured entities with a control
of n0; the estimated difference has standard error se = σ·√(1/n1 + 1/n0), σ the per-entity
standard deviation. The probability of a significant result when the true difference is δ is

    power(δ) = Φ(δ/se − z) + Φ(−δ/se − z),   z = Φ⁻¹(1 − α/2)

(statsmodels' NormalIndPower, both tails). With k the root of power = target (k ≈ z + Φ⁻¹(power);
2.80 at α = 0.05 and 80% power), MDE = k·se, and the total sample N that makes δ detectable,
with group shares s1 and s0 (n = N·s), is N = (k·σ/δ)²·(1/s1 + 1/s0).

σ per metric kind (the per-entity values of the metric, see segsql.measure.metrics):
  mean        the standard deviation of the values
  ratio       Σa/Σb by the delta method: σ² = (var a − 2R·cov(a,b) + R²·var b) / mean(b)², R = Σa/Σb
  rate        events per exposure, as the readout's Poisson test sees it: σ² = λ / mean exposure per
              entity (λ = Σ events / Σ exposure); `dispersion` = the delta method's σ² over this
              (above 1: events cluster in entities, the Poisson test is then liberal)
  proportion  the arcsine scale: h = 2·asin√p1 − 2·asin√p0 (Cohen's h; statsmodels'
              proportion_effectsize) has variance 1/n per group at any p, so σ = 1 on that scale,
              n counts the eligible entities (Σ den) and the MDE is p1 − p0 at h = k·√(1/n1 + 1/n0),
              up (p1 > p0) and down (p1 < p0, smaller near 0 and 1); σ shown is √(p0·(1 − p0))
  sum         descriptive, no test: no power analysis
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize
from scipy import stats as scipy_stats

from segsql.errors import UsageError
from segsql.measure import stats

KINDS = ("proportion", "mean", "ratio", "rate")


@dataclass(frozen=True)
class Variability:
    """What a power analysis needs from the historical values: the baseline and its spread."""

    kind: str
    baseline: float        # the metric's value (p0 for a proportion)
    sd: float              # per-entity standard deviation (√(p0·(1 − p0)) for a proportion)
    measured: int          # entities that count: measured, or eligible (Σ den) for a proportion
    dispersion: float | None = None  # rate: per-entity variance over the Poisson variance


def variability(kind: str, sums: stats.Sufficient) -> Variability:
    """Baseline and per-entity spread of a metric from its sufficient statistics."""
    if kind not in KINDS:
        raise UsageError(f"a {kind} metric is descriptive (no test), so it has no power", None,
                         "pick a mean, ratio, proportion or rate metric")
    value, why = stats.value_of(kind, sums)
    if value is None:
        raise UsageError(f"the metric has no value on these members: {why}", None)
    if kind == "proportion":
        return Variability(kind, value, math.sqrt(max(value * (1 - value), 0.0)), round(sums.den))
    variance = stats.unit_moments(kind, sums)[0]
    if kind == "rate":
        poisson = value / (sums.den / sums.n)
        return Variability(kind, value, math.sqrt(poisson), sums.n, variance / poisson if poisson else None)
    return Variability(kind, value, math.sqrt(max(variance, 0.0)), sums.n)


def check_levels(alpha: float, power: float) -> None:
    """α in (0, 1) and a power above α (at δ = 0 the test rejects with probability α)."""
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must be between 0 and 1, got {alpha}", None, "e.g. --alpha 0.05")
    if not alpha < power < 1:
        raise UsageError(f"power must be between alpha ({alpha}) and 1, got {power}", None, "e.g. --power 0.8")


def critical_ratio(alpha: float, power: float) -> float:
    """k = δ/se at which the two-sided level-α z-test has the given power."""
    check_levels(alpha, power)
    z = float(scipy_stats.norm.isf(alpha / 2))

    def shortfall(k: float) -> float:
        return float(scipy_stats.norm.sf(z - k) + scipy_stats.norm.cdf(-z - k)) - power

    return float(optimize.brentq(shortfall, 0.0, z + float(scipy_stats.norm.isf(1 - power)) + 10, xtol=1e-12))


def achieved_power(k: float, alpha: float) -> float:
    """Power of the two-sided level-α z-test when the true difference is k standard errors."""
    z = float(scipy_stats.norm.isf(alpha / 2))
    return float(scipy_stats.norm.sf(z - k) + scipy_stats.norm.cdf(-z - k))


def mde(spread: Variability, n1: float, n0: float, alpha: float, power: float) -> tuple[float | None, float | None]:
    """The smallest increase and decrease (absolute, ≥ 0) detectable with the given power between
    a group of n1 and a control of n0 entities; None for a decrease or increase past 0 or 1."""
    k = critical_ratio(alpha, power)
    if spread.kind != "proportion":
        shift = k * spread.sd * math.sqrt(1 / n1 + 1 / n0)
        return shift, shift
    half_h = k * math.sqrt(1 / n1 + 1 / n0) / 2
    angle = math.asin(math.sqrt(spread.baseline))
    up = math.sin(angle + half_h) ** 2 - spread.baseline if angle + half_h <= math.pi / 2 else None
    down = spread.baseline - math.sin(angle - half_h) ** 2 if angle - half_h >= 0 else None
    return up, down


def sample_size(spread: Variability, effect: float, share1: float, share0: float, alpha: float,
                power: float) -> float:
    """Total entities N (n1 = N·share1, n0 = N·share0) at which `effect` (absolute, either sign)
    has the given power."""
    if effect == 0:
        raise UsageError("the effect must not be 0", None, "give the difference you want to detect")
    k = critical_ratio(alpha, power)
    spread_factor = 1 / share1 + 1 / share0
    if spread.kind != "proportion":
        if spread.sd == 0:
            raise UsageError("no variance in the historical values: any effect would be detected", None,
                             "check the metric and the segment")
        return (k * spread.sd / effect) ** 2 * spread_factor
    target = spread.baseline + effect
    if not 0 <= target <= 1:
        raise UsageError(f"a proportion of {spread.baseline:.4g} {effect:+.4g} is outside [0, 1]", None,
                         "give a smaller effect")
    h = 2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(spread.baseline))
    return (k / h) ** 2 * spread_factor
