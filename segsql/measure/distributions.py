"""The few distribution functions compare needs, in plain Python and numpy.

Why not scipy.stats: importing it (and statsmodels, which imports it) costs ~1.3 s of CPU, more
than three times the whole query a `segsql compare` runs (issue #20). Everything here is a
textbook formula; tests/test_distributions.py checks each against scipy and statsmodels (still
the dev-time oracle) on a grid and on random tables, to 1e-9 relative or better.

  normal      sf via erfc; the quantile by Acklam's rational approximation plus one Halley step
  Student t   sf = I_x(ν/2, ½)/2 with x = ν/(ν+t²): the regularised incomplete beta function by
              Lentz's continued fraction (Numerical Recipes §6.4); the quantile by Newton's method
              from the normal quantile (monotone: the t sf is convex and decreasing for t > 0)
  exact tests two-sided Fisher (2×2) and binomial p-values as R and scipy define them: the sum of
              the probabilities of every outcome no more likely than the observed one, with R's
              relative tolerance 1e-7 for ties; the probabilities come from the pmf's ratio
              recurrence in log space (no log-gamma of large arguments, which loses digits)
"""

from __future__ import annotations

import math

import numpy as np

_TIE_TOLERANCE = 1e-7
_CF_EPSILON = 1e-16
_CF_TINY = 1e-300
_CF_MAX_TERMS = 100_000


def normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


_ACKLAM_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
             -3.066479806614716e01, 2.506628277459239e00)
_ACKLAM_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
             -1.328068155288572e01)
_ACKLAM_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
             4.374664141464968e00, 2.938163982698783e00)
_ACKLAM_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)


def _polynomial(coefficients: tuple[float, ...], x: float) -> float:
    value = 0.0
    for coefficient in coefficients:
        value = value * x + coefficient
    return value


def normal_ppf(p: float) -> float:
    """The standard normal quantile, to full double precision (the upper half by symmetry: 1 − p
    is exact there, and the refinement is precise only in the lower tail)."""
    if not 0 < p < 1:
        raise ValueError(f"a probability strictly between 0 and 1 is needed, not {p}")
    if p > 0.5:
        return -normal_ppf(1 - p)
    if p < 0.02425 or p > 1 - 0.02425:
        q = math.sqrt(-2 * math.log(min(p, 1 - p)))
        x = _polynomial(_ACKLAM_C, q) / (_polynomial(_ACKLAM_D, q) * q + 1)
        x = x if p < 0.5 else -x
    else:
        q = p - 0.5
        r = q * q
        x = _polynomial(_ACKLAM_A, r) * q / (_polynomial(_ACKLAM_B, r) * r + 1)
    error = 0.5 * math.erfc(-x / math.sqrt(2)) - p  # one Halley step (Acklam's refinement)
    u = error * math.sqrt(2 * math.pi) * math.exp(x * x / 2)
    return x - u / (1 + x * u / 2)


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (Lentz's method), converging for x < (a+1)/(a+b+2)."""
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > _CF_TINY else _CF_TINY)
    h = d
    for m in range(1, _CF_MAX_TERMS):
        for aa in (m * (b - m) * x / ((qam + 2 * m) * (a + 2 * m)),
                   -(a + m) * (qab + m) * x / ((a + 2 * m) * (qap + 2 * m))):
            d = 1 + aa * d
            d = 1 / (d if abs(d) > _CF_TINY else _CF_TINY)
            c = 1 + aa / c
            c = c if abs(c) > _CF_TINY else _CF_TINY
            h *= d * c
        if abs(d * c - 1) < _CF_EPSILON:
            return h
    raise ArithmeticError(f"the incomplete beta function did not converge (a={a}, b={b}, x={x})")


def _log_gamma_ratio_half(a: float) -> float:
    """log Γ(a + ½) − log Γ(a), without the cancellation of two large log-gammas: the asymptotic
    series for large a (error < 1e-17 for a ≥ 50)."""
    if a < 50:
        return math.lgamma(a + 0.5) - math.lgamma(a)
    inverse = 1 / a
    return (0.5 * math.log(a) - inverse / 8 + inverse ** 3 / 192 - inverse ** 5 / 640
            + 17 * inverse ** 7 / 14336)


_HUGE_DF = 1e9  # beyond it, the normal with its first-order correction (error O(t⁸/ν²) relative)


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` (real, > 0) degrees of freedom; NaN for a NaN input."""
    if math.isnan(t) or math.isnan(df):
        return math.nan
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, not {df}")
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    if t == 0:
        return 0.5
    if df > _HUGE_DF:  # Φ̄(t) + φ(t)(t³ + t)/(4ν): Edgeworth's first term
        return normal_sf(t) + math.exp(-t * t / 2) / math.sqrt(2 * math.pi) * (t ** 3 + t) / (4 * df)
    tail = _t_two_tails(abs(t), df)
    return 0.5 * tail if t > 0 else 1 - 0.5 * tail


def _t_two_tails(t: float, df: float) -> float:
    """P(|T| > t) = I_x(ν/2, ½), x = ν/(ν + t²). The continued fraction in 1 − x, subtracted from
    1, is the precise one near its region while the tails are not small (it loses only digits of
    a small result: measured against scipy, 1e-12 there where the other lost 1e-9 at ν = 10⁸); the
    one in x is used for the rest."""
    a, square = df / 2, t * t
    x, one_minus_x = df / (df + square), square / (df + square)
    front = math.exp(_log_gamma_ratio_half(a) - 0.5 * math.log(math.pi) - a * math.log1p(square / df)
                     + 0.5 * math.log(one_minus_x))
    if one_minus_x <= 6 / (a + 2.5):  # within 4× the fraction's own region (1 − x ≤ 1.5/(a + 2.5))
        try:
            tails = 1 - front * _beta_continued_fraction(0.5, a, one_minus_x) / 0.5
        except ArithmeticError:
            tails = 0.0
        if 2e-3 <= tails <= 1:  # outside its region the fraction can settle on a wrong value
            return tails
    return front * _beta_continued_fraction(a, 0.5, x) / a


def _student_t_pdf(t: float, df: float) -> float:
    log_density = (_log_gamma_ratio_half(df / 2) - 0.5 * math.log(df * math.pi)
                   - (df + 1) / 2 * math.log1p(t * t / df))
    return math.exp(log_density)


def student_t_ppf(p: float, df: float) -> float:
    """The quantile of Student's t: Newton's method on the sf from the normal quantile, which lies
    between 0 and the root for p > ½, so the iterates rise monotonically to it."""
    if math.isnan(p) or math.isnan(df):
        return math.nan
    if p < 0.5:
        return -student_t_ppf(1 - p, df)
    if p == 0.5:
        return 0.0
    z = normal_ppf(p)
    if df > 1e7:  # Cornish–Fisher (Abramowitz & Stegun 26.7.5): error O(ν⁻³)
        return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df * df)
    target, t, last = 1 - p, z, math.inf
    for _ in range(200):
        step = (student_t_sf(t, df) - target) / _student_t_pdf(t, df)
        if abs(step) <= 1e-14 * abs(t):
            return t + step
        if abs(step) <= 1e-8 * abs(t) and abs(step) >= abs(last):  # at the noise of the sf's rounding
            return t
        t, last = t + step, step
    return t  # Newton rises monotonically: after 200 steps t is as close as the sf's rounding allows


def _two_sided_from_log_pmf(log_pmf: np.ndarray, observed: int) -> float:
    """Σ pmf(k) over every k no more likely than the observed outcome (R's tolerance for ties)."""
    threshold = log_pmf[observed] + math.log1p(_TIE_TOLERANCE)
    top = float(log_pmf.max())
    total = float(np.exp(log_pmf - top).sum())
    return min(1.0, float(np.exp(log_pmf[log_pmf <= threshold] - top).sum()) / total)


def fisher_exact_p(table: list[list[int]]) -> float:
    """Two-sided p of Fisher's exact test of a 2×2 table [[a, b], [c, d]]."""
    (a, b), (c, d) = table
    row, other_row, column = a + b, c + d, a + c
    if 0 in (row, other_row, column, b + d):
        return 1.0
    low, high = max(0, column - other_row), min(column, row)
    k = np.arange(low, high, dtype=float)  # pmf(k+1)/pmf(k) = (row−k)(column−k) / ((k+1)(other_row−column+k+1))
    ratios = np.log((row - k) * (column - k)) - np.log((k + 1) * (other_row - column + k + 1))
    log_pmf = np.concatenate([[0.0], np.cumsum(ratios)])  # up to a constant: only ratios matter
    return _two_sided_from_log_pmf(log_pmf, a - low)


_WINDOW_SDS = 40  # beyond 40 standard deviations (+100) from the mode a pmf is below e^-550 of the mode's
_MAX_SUPPORT = 5_000_000  # outcomes summed at most (40 MB of floats)


def binomial_two_sided_p(successes: int, trials: int, probability: float) -> float:
    """Two-sided exact binomial p (scipy.stats.binomtest's definition). Only a window around the
    mode is summed (the exact-conditional rate test has millions of trials, but a handful
    expected on one side), so memory stays small at any number of trials."""
    if probability in (0.0, 1.0):
        return 1.0 if successes == probability * trials else 0.0
    mode = math.floor((trials + 1) * probability)
    width = math.ceil(_WINDOW_SDS * math.sqrt(trials * probability * (1 - probability))) + 100
    low = max(0, min(mode - width, successes - 100))
    high = min(trials, max(mode + width, successes + 100))
    if high - low > _MAX_SUPPORT:
        return 0.0  # millions of standard deviations from the mode: far below the smallest double
    k = np.arange(low, high, dtype=float)  # pmf(k+1)/pmf(k) = (n−k)/(k+1) · p/(1−p)
    ratios = np.log(trials - k) - np.log(k + 1) + math.log(probability) - math.log1p(-probability)
    log_pmf = np.concatenate([[0.0], np.cumsum(ratios)])
    return _two_sided_from_log_pmf(log_pmf, successes - low)


def benjamini_hochberg_rejections(p_values: list[float], alpha: float) -> list[bool]:
    """Which hypotheses Benjamini–Hochberg rejects at false discovery rate `alpha`: every p up to
    the largest p₍ᵢ₎ ≤ i·α/m."""
    ordered = np.sort(np.asarray(p_values, dtype=float))
    passing = np.nonzero(ordered <= alpha * np.arange(1, len(ordered) + 1) / len(ordered))[0]
    if passing.size == 0:
        return [False for _ in p_values]
    cutoff = ordered[passing[-1]]
    return [p <= cutoff for p in p_values]
