"""Every statistic against scipy/statsmodels (or an independent numpy computation) on fixed data,
to 1e-9, including the small-count and empty edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.rates import confint_poisson_2indep
from statsmodels.stats.rates import test_poisson_2indep as poisson_2indep

from segsql.measure.stats import Sufficient, benjamini_hochberg, compare, ratio_variance

RNG = np.random.default_rng(20261123)
TOL = 1e-9


def ones(n: int) -> np.ndarray:
    return np.ones(n)


def test_two_proportion_z_test() -> None:
    a = (RNG.random(400) < 0.31).astype(float)
    b = (RNG.random(900) < 0.24).astype(float)
    result = compare("proportion", Sufficient.of(a, ones(400)), Sufficient.of(b, ones(900)))
    _, p_value = proportions_ztest([a.sum(), b.sum()], [400, 900])
    low, high = confint_proportions_2indep(a.sum(), 400, b.sum(), 900, method="newcombe", compare="diff")
    assert result.test == "two-proportion z-test"
    assert result.value == pytest.approx(a.mean(), abs=TOL) and result.baseline == pytest.approx(b.mean(), abs=TOL)
    assert result.p_value == pytest.approx(p_value, abs=TOL)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), abs=TOL)


def test_small_counts_use_fishers_exact_test() -> None:
    a, b = np.array([1, 0, 0, 1, 0], dtype=float), np.zeros(60)
    b[:2] = 1
    result = compare("proportion", Sufficient.of(a, ones(5)), Sufficient.of(b, ones(60)))
    expected = scipy_stats.fisher_exact([[2, 3], [2, 58]]).pvalue
    assert result.test == "Fisher's exact test" and result.p_value == pytest.approx(expected, abs=TOL)


def test_proportion_with_ineligible_entities() -> None:
    # den = 0 marks entities that are not eligible (e.g. not active at the start)
    num, den = np.array([1, 0, 0, 1, 0, 0] * 50, dtype=float), np.array([1, 1, 0, 1, 1, 0] * 50, dtype=float)
    base_num, base_den = np.array([1, 0, 0, 0] * 100, dtype=float), np.ones(400)
    result = compare("proportion", Sufficient.of(num, den), Sufficient.of(base_num, base_den))
    assert result.value == pytest.approx(100 / 200, abs=TOL)
    assert result.p_value == pytest.approx(proportions_ztest([100, 100], [200, 400])[1], abs=TOL)


def test_zero_counts_give_clear_results_not_nan() -> None:
    result = compare("proportion", Sufficient.of(np.zeros(30), ones(30)), Sufficient.of(np.zeros(300), ones(300)))
    assert result.value == 0 and result.p_value == pytest.approx(1.0) and result.test == "Fisher's exact test"
    assert np.isfinite([result.ci_low, result.ci_high]).all()


def test_welch_t_test_matches_scipy() -> None:
    # spread unequal, skew mild (lognormal σ = 0.3): within the conditions of the normal approximation
    a, b = RNG.lognormal(6, 0.3, 150), RNG.lognormal(5.95, 0.35, 1000)
    result = compare("mean", Sufficient.of(a, ones(150)), Sufficient.of(b, ones(1000)))
    assert result.test == "Welch's t-test"
    reference = scipy_stats.ttest_ind(a, b, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert result.p_value == pytest.approx(reference.pvalue, abs=TOL)
    assert (result.ci_low, result.ci_high) == pytest.approx((interval.low, interval.high), rel=1e-9)
    assert result.diff == pytest.approx(a.mean() - b.mean(), rel=1e-12)


def test_delta_method_matches_an_independent_numpy_computation() -> None:
    start = RNG.lognormal(7, 1, 300)
    end = start * RNG.normal(1.05, 0.3, 300).clip(0)
    base_start = RNG.lognormal(7, 1, 800)
    base_end = base_start * RNG.normal(0.95, 0.3, 800).clip(0)

    def delta_variance(a: np.ndarray, b: np.ndarray) -> float:
        ratio = a.sum() / b.sum()
        covariance = np.cov(np.vstack([a, b]), ddof=1)
        return (covariance[0, 0] - 2 * ratio * covariance[0, 1] + ratio**2 * covariance[1, 1]) / (len(a) * b.mean() ** 2)

    group, base = Sufficient.of(end, start), Sufficient.of(base_end, base_start)
    assert ratio_variance(group) == pytest.approx(delta_variance(end, start), rel=1e-9)
    result = compare("ratio", group, base)
    diff = end.sum() / start.sum() - base_end.sum() / base_start.sum()
    se = np.sqrt(delta_variance(end, start) + delta_variance(base_end, base_start))
    assert result.diff == pytest.approx(diff, rel=1e-12)
    # Student's t with Welch–Satterthwaite degrees of freedom from the two delta-method variances
    v1, v0 = delta_variance(end, start), delta_variance(base_end, base_start)
    df = (v1 + v0) ** 2 / (v1 ** 2 / 299 + v0 ** 2 / 799)
    assert result.test == "delta method (Welch t)"
    assert result.p_value == pytest.approx(2 * scipy_stats.t.sf(abs(diff) / se, df), abs=TOL)
    t = scipy_stats.t.ppf(0.975, df)
    assert (result.ci_low, result.ci_high) == pytest.approx((diff - t * se, diff + t * se), rel=1e-9)


def test_delta_method_with_unit_denominators_is_welchs_t_test() -> None:
    a, b = RNG.normal(10, 3, 60), RNG.normal(9, 4, 500)
    ratio = compare("ratio", Sufficient.of(a, ones(60)), Sufficient.of(b, ones(500)))
    mean = compare("mean", Sufficient.of(a, ones(60)), Sufficient.of(b, ones(500)))
    assert mean.test == "Welch's t-test" and ratio.test == "delta method (Welch t)"
    assert ratio.p_value == pytest.approx(mean.p_value, abs=TOL)
    assert (ratio.ci_low, ratio.ci_high) == pytest.approx((mean.ci_low, mean.ci_high), rel=1e-9)


def test_delta_method_covers_the_bootstrap_roughly() -> None:
    start = RNG.lognormal(7, 1, 400)
    end = start * RNG.normal(1.0, 0.2, 400).clip(0)
    draws = RNG.integers(0, 400, (2000, 400))
    boot = end[draws].sum(axis=1) / start[draws].sum(axis=1)
    assert np.sqrt(ratio_variance(Sufficient.of(end, start))) == pytest.approx(boot.std(ddof=1), rel=0.15)


def test_poisson_rate_difference_matches_statsmodels() -> None:
    events, exposure = RNG.poisson(3, 200).astype(float), RNG.integers(1, 5, 200).astype(float)
    base_events, base_exposure = RNG.poisson(2.5, 500).astype(float), RNG.integers(1, 5, 500).astype(float)
    result = compare("rate", Sufficient.of(events, exposure), Sufficient.of(base_events, base_exposure))
    reference = poisson_2indep(events.sum(), exposure.sum(), base_events.sum(), base_exposure.sum(),
                                    method="score", compare="diff")
    low, high = confint_poisson_2indep(events.sum(), exposure.sum(), base_events.sum(), base_exposure.sum(),
                                       method="score", compare="diff")
    assert result.p_value == pytest.approx(reference.pvalue, abs=TOL)
    # statsmodels finds each end with Nelder-Mead (xtol 1e-8); ours is the root itself: at each end
    # statsmodels' own score test gives p = 0.05 exactly
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), abs=1e-7)
    for end in (result.ci_low, result.ci_high):
        at_end = poisson_2indep(events.sum(), exposure.sum(), base_events.sum(), base_exposure.sum(),
                                method="score", compare="diff", value=end)
        assert at_end.pvalue == pytest.approx(0.05, abs=1e-12)


def test_benjamini_hochberg_matches_statsmodels() -> None:
    p_values = [0.001, 0.04, None, 0.03, 0.2, 0.012]
    present = [p for p in p_values if p is not None]
    expected = iter(multipletests(present, alpha=0.05, method="fdr_bh")[0])
    assert benjamini_hochberg(p_values) == [None if p is None else bool(next(expected)) for p in p_values]
    assert benjamini_hochberg([None, None]) == [None, None]


@pytest.mark.parametrize("kind", ["proportion", "mean", "ratio", "rate", "sum"])
def test_empty_segment_is_reported_not_nan(kind: str) -> None:
    result = compare(kind, Sufficient(), Sufficient.of(np.ones(10), np.ones(10)))
    assert result.value is None and result.p_value is None and result.note == "no member has a value"


def test_segment_equal_to_population_has_an_empty_rest() -> None:
    everyone = Sufficient.of(np.array([1.0, 0, 1]), np.ones(3))
    result = compare("proportion", everyone, everyone - everyone)
    assert result.value == pytest.approx(2 / 3) and result.baseline is None
    assert result.note == "baseline: no member has a value"


def test_ratio_with_zero_denominator_is_undefined() -> None:
    # LTV = Σ MRR ÷ Σ churned: nobody churned -> undefined, never infinity
    result = compare("ratio", Sufficient.of(np.array([100.0, 200.0]), np.zeros(2)), Sufficient.of(np.ones(5), np.ones(5)))
    assert result.value is None and "undefined" in result.note


def test_mean_with_one_value_has_no_test() -> None:
    result = compare("mean", Sufficient.of(np.array([5.0]), ones(1)), Sufficient.of(np.arange(10.0), ones(10)))
    assert result.value == 5.0 and result.p_value is None and "too few values" in result.note


def test_sum_is_descriptive() -> None:
    result = compare("sum", Sufficient.of(np.array([1.0, 2.0]), ones(2)), Sufficient.of(np.array([4.0]), ones(1)))
    assert (result.value, result.baseline, result.diff, result.p_value) == (3.0, 4.0, -1.0, None)


def test_proportion_refuses_non_binary_values() -> None:
    with pytest.raises(ValueError, match="0/1"):
        compare("proportion", Sufficient.of(np.array([2.0, 0.0]), ones(2)), Sufficient.of(np.ones(3), ones(3)))
