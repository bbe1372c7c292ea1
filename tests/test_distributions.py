"""segsql.measure.distributions and the tests built on it against scipy and statsmodels, which
stay the oracle: compare stopped importing them (1.3 s of CPU per `segsql compare`, issue #20).
Agreement is 1e-9 relative or better (the t tail at ten million degrees of freedom, 2e-10, is the
worst seen; scipy's own t quantile is itself exact only to about 1e-12)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest
from statsmodels.stats.rates import test_poisson_2indep as poisson_test

from segsql.measure import distributions as dist
from segsql.measure import stats

RNG = np.random.default_rng(7)
DEGREES = [1, 1.5, 2.5, 5, 29, 30.7, 100, 371.04, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e12]


@pytest.mark.parametrize("p", [1e-300, 1e-20, 1e-5, 0.01, 0.02425, 0.025, 0.3, 0.5, 0.7, 0.975, 0.99, 1 - 1e-10])
def test_normal_quantile_matches_scipy(p: float) -> None:
    assert dist.normal_ppf(p) == pytest.approx(scipy_stats.norm.ppf(p), rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("df", DEGREES)
def test_student_t_tail_matches_scipy(df: float) -> None:
    for t in [-3.0, -0.2, 0.0, 0.01, 0.5, 1.96, 2.5, 3.0, 4.0, 5.0, 8.0, 15.0, 30.0]:
        expected = scipy_stats.t.sf(t, df)
        tolerance = 1e-9 if df <= 1e7 else 1e-8  # beyond, ≤ 6e-9 in the far tails (p < 1e-6)
        assert dist.student_t_sf(t, df) == pytest.approx(expected, rel=tolerance), (t, df)


def test_student_t_at_the_edges_of_its_domain() -> None:
    assert math.isnan(dist.student_t_sf(math.nan, 10)) and math.isnan(dist.student_t_sf(1.0, math.nan))
    assert dist.student_t_sf(math.inf, 10) == 0.0 and dist.student_t_sf(-math.inf, 10) == 1.0
    assert dist.student_t_sf(1.0, math.inf) == pytest.approx(scipy_stats.norm.sf(1.0), rel=1e-12)
    assert dist.student_t_ppf(0.975, math.inf) == pytest.approx(scipy_stats.norm.ppf(0.975), rel=1e-12)


def test_a_nan_in_the_data_gives_an_untested_row_not_an_error() -> None:
    """DuckDB and Postgres allow NaN in a double column: that row has no p-value, compare goes on."""
    with_nan = np.r_[np.arange(39.0), np.nan]
    for kind in ("mean", "ratio"):
        result = stats.compare(kind, stats.Sufficient.of(with_nan, np.ones(40)),
                               stats.Sufficient.of(np.arange(40.0), np.ones(40)))
        assert result.p_value is None, kind


def test_poisson_score_test_at_tiny_rates_per_exposure_matches_statsmodels() -> None:
    """Exposures in seconds over many users: rate / exposure far below 1e-20 (a constant added
    to the variance had swamped it: p 0.32 instead of 0)."""
    group, base = stats.Sufficient(1, 1, 1e6, 1e15), stats.Sufficient(1, 1, 1.1e6, 1e15)
    result = stats.compare("rate", group, base)
    expected = poisson_test(1e6, 1e15, 1.1e6, 1e15, method="score", compare="diff")
    assert result.test == "Poisson score test" and result.p_value == pytest.approx(expected.pvalue, abs=1e-300)
    assert (result.ci_low, result.ci_high) == pytest.approx((-1.0284e-10, -9.716e-11), rel=1e-3)
    small = stats.compare("rate", stats.Sufficient(1, 1, 10.0, 1e12), stats.Sufficient(1, 1, 20.0, 1e12))
    reference = poisson_test(10.0, 1e12, 20.0, 1e12, method="score", compare="diff").pvalue
    assert small.p_value == pytest.approx(reference, rel=1e-9)


@pytest.mark.parametrize("df", DEGREES)
def test_student_t_quantile_matches_scipy(df: float) -> None:
    for p in [0.6, 0.9, 0.975, 0.995, 0.025, 1 - 1e-10]:
        assert dist.student_t_ppf(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-10), (p, df)


def random_tables(count: int) -> list[list[list[int]]]:
    tables = [[[0, 5], [0, 7]], [[3, 3], [3, 3]], [[1, 9], [9, 1]], [[0, 0], [4, 2]], [[2, 0], [0, 2]]]
    for _ in range(count):
        rows = RNG.integers(1, [40, 4000][int(RNG.integers(0, 2))], 2)
        shares = RNG.uniform(0, 0.2, 2)
        tables.append([[int(x), int(n - x)] for x, n in zip(RNG.binomial(rows, shares), rows, strict=True)])
    return tables


def test_fisher_exact_matches_scipy_on_random_and_tied_tables() -> None:
    for table in random_tables(300):
        expected = scipy_stats.fisher_exact(table).pvalue
        assert dist.fisher_exact_p(table) == pytest.approx(expected, rel=1e-9, abs=1e-300), table


def test_exact_binomial_matches_scipy() -> None:
    cases = [(0, 10, 0.5), (5, 10, 0.5), (3, 10, 0.5), (7, 10, 0.5), (1, 3000, 0.001), (9, 20, 0.2), (0, 5, 0.0),
             (2, 10**9, 3e-9), (12, 10**9, 3e-9), (10**9 - 1, 10**9, 1 - 4e-9), (4_990_000, 10**7, 0.5),
             (330, 10**9, 2.5e-8)]
    cases += [(int(RNG.integers(0, n + 1)), int(n), float(RNG.uniform(0.001, 0.999)))
              for n in RNG.integers(1, 5000, 200)]
    for successes, trials, share in cases:
        expected = scipy_stats.binomtest(successes, trials, share).pvalue
        assert dist.binomial_two_sided_p(successes, trials, share) == pytest.approx(expected, rel=1e-9), \
            (successes, trials, share)


def test_benjamini_hochberg_matches_statsmodels_with_ties() -> None:
    for _ in range(200):
        p_values = list(np.round(RNG.uniform(0, 0.2, int(RNG.integers(1, 40))) ** 2, 4))
        expected = multipletests(p_values, alpha=0.05, method="fdr_bh")[0]
        assert dist.benjamini_hochberg_rejections(p_values, 0.05) == list(expected)


def test_wilson_newcombe_and_z_test_match_statsmodels() -> None:
    for _ in range(200):
        n1, n0 = (int(n) for n in RNG.integers(1, 5000, 2))
        x1, x0 = int(RNG.integers(0, n1 + 1)), int(RNG.integers(0, n0 + 1))
        assert stats.wilson_interval(x1, n1) == pytest.approx(proportion_confint(x1, n1, method="wilson"),
                                                              rel=1e-12, abs=1e-15)
        expected = confint_proportions_2indep(x1, n1, x0, n0, method="newcomb", compare="diff")
        assert stats.newcombe_interval(x1, n1, x0, n0) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    group, base = stats.Sufficient.of(np.r_[np.ones(40), np.zeros(160)], np.ones(200)), \
        stats.Sufficient.of(np.r_[np.ones(300), np.zeros(1700)], np.ones(2000))
    result = stats.compare("proportion", group, base)
    assert result.test == "two-proportion z-test"
    assert result.p_value == pytest.approx(proportions_ztest([40, 300], [200, 2000])[1], rel=1e-12)


def test_exact_poisson_test_matches_statsmodels() -> None:
    group = stats.Sufficient.of(np.r_[np.ones(2), np.zeros(48)], np.full(50, 3.0))
    base = stats.Sufficient.of(np.r_[np.ones(40), np.zeros(960)], np.full(1000, 2.0))
    result = stats.compare("rate", group, base)
    expected = poisson_test(2, 150, 40, 2000, method="exact-cond", compare="ratio").pvalue
    assert result.test == "exact conditional Poisson test"
    assert result.p_value == pytest.approx(expected, rel=1e-9)


def test_compare_imports_neither_scipy_nor_statsmodels() -> None:
    code = ("import sys, segsql.measure.compare; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'statsmodels')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
