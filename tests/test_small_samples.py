"""Small samples (#18): no normal approximation outside its conditions. Tiny or variance-free
groups get an exact or permutation test (checked against exact enumeration and scipy/statsmodels)
or "too few to test"; never a p-value of 1e-144 from two accounts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.rates import test_poisson_2indep as poisson_2indep

from segsql.measure.stats import Sufficient, Values, compare, permutation_p_value

MONTE_CARLO = 0.02  # 9,999 draws: the standard error of p is at most 0.005


def csat_rest(seed: int = 1) -> Values:
    """569 positive of 956 responses spread over 320 accounts (the issue's rest)."""
    rng = np.random.default_rng(seed)
    counts = 1 + rng.multinomial(956 - 320, np.full(320, 1 / 320))
    positive = np.zeros(956)
    positive[:569] = 1
    rng.shuffle(positive)
    return Values.of([part.sum() for part in np.split(positive, np.cumsum(counts)[:-1])], counts)


def exact_permutation_p(own: Values, other: Values) -> float:
    """Every relabelling of the pool, enumerated (the oracle for the Monte Carlo p-value)."""
    num, den = np.concatenate([own.num, other.num]), np.concatenate([own.den, other.den])
    observed = abs(own.num.sum() / own.den.sum() - other.num.sum() / other.den.sum())
    picks = np.array(list(itertools.combinations(range(num.size), own.num.size)))
    drawn_num, drawn_den = num[picks].sum(axis=1), den[picks].sum(axis=1)
    statistic = drawn_num / drawn_den - (num.sum() - drawn_num) / (den.sum() - drawn_den)
    return float(np.mean(np.abs(statistic) >= observed - 1e-12))


def sums(values: Values) -> Sufficient:
    return Sufficient.of(values.num, values.den)


def test_two_accounts_with_perfect_csat_are_not_significant() -> None:
    # old code: delta method with zero within-group variance, CI [0.374, 0.436], p = 1.5e-144
    own, rest = Values.of([2, 2], [2, 2]), csat_rest()
    result = compare("ratio", sums(own), sums(rest), (own, rest))
    assert result.test.startswith("permutation test") and result.p_value is not None
    assert result.p_value == pytest.approx(exact_permutation_p(own, rest), abs=MONTE_CARLO)
    assert result.p_value > 0.05
    assert result.ci_low is None and result.ci_high is None and "no interval" in result.note
    # on the responses alone (ignoring that they cluster in accounts) Fisher agrees it is no finding
    assert scipy_stats.fisher_exact([[4, 0], [569, 387]]).pvalue > 0.05


def test_without_values_a_tiny_group_is_too_few_to_test() -> None:
    own, rest = Values.of([2, 2], [2, 2]), csat_rest()
    result = compare("ratio", sums(own), sums(rest))
    assert result.p_value is None and result.ci_low is None and result.test == "none (too few to test)"
    assert "2 of 2 members measured, baseline 320" in result.note


def test_nrr_of_two_accounts() -> None:
    # old code: p = 1.2e-14 and flagged; two accounts that both grew 30% say little
    rng = np.random.default_rng(5)
    start = rng.lognormal(6, 1, 200)
    rest = Values.of(start * rng.normal(1.0, 0.25, 200).clip(0), start)
    own = Values.of([130.0, 260.0], [100.0, 200.0])
    result = compare("ratio", sums(own), sums(rest), (own, rest))
    assert result.p_value == pytest.approx(exact_permutation_p(own, rest), abs=MONTE_CARLO)
    assert result.p_value > 1e-3


def test_variance_free_group_is_not_tested_by_the_delta_method() -> None:
    own = Values.of(np.full(40, 3.0), np.full(40, 3.0))  # 40 accounts, every response positive
    rest = Values.of(*[np.repeat(v, 10) for v in ([1, 2, 3, 0, 2, 1, 3, 2, 1, 0] * 10, [3] * 100)])
    result = compare("ratio", sums(own), sums(rest), (own, rest))
    assert result.test.startswith("permutation") and "no variance in the segment" in result.note
    assert result.ci_low is None  # a bootstrap of identical values would claim certainty


def test_small_mean_permutation_matches_exact_enumeration_and_bootstraps_an_interval() -> None:
    rng = np.random.default_rng(9)
    own, rest = Values.of(rng.lognormal(6, 1, 3), np.ones(3)), Values.of(rng.lognormal(6.3, 1, 12), np.ones(12))
    result = compare("mean", sums(own), sums(rest), (own, rest))
    assert result.p_value == pytest.approx(exact_permutation_p(own, rest), abs=MONTE_CARLO)
    own = Values.of(rng.lognormal(6, 0.5, 15), np.ones(15))
    rest = Values.of(rng.lognormal(6, 0.5, 500), np.ones(500))
    first = compare("mean", sums(own), sums(rest), (own, rest))
    assert first == compare("mean", sums(own), sums(rest), (own, rest))  # seeded: reproducible
    assert first.ci_low is not None and first.ci_high is not None
    assert first.ci_low < first.diff < first.ci_high and first.test.endswith("bootstrap CI")
    # the interval is about as wide as Welch's on these data (the test is not Welch's: n < 30)
    welch = scipy_stats.ttest_ind(own.num, rest.num, equal_var=False).confidence_interval(0.95)
    assert first.ci_high - first.ci_low == pytest.approx(welch.high - welch.low, rel=0.35)


def test_permutation_p_value_is_symmetric_in_the_groups() -> None:
    rng = np.random.default_rng(2)
    a, b = Values.of(rng.normal(1, 1, 5), np.ones(5)), Values.of(rng.normal(0, 1, 50), np.ones(50))
    assert permutation_p_value(a, b) == pytest.approx(permutation_p_value(b, a), abs=MONTE_CARLO)


def test_large_groups_keep_welch_and_the_delta_method() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(100, 20, 40), rng.normal(100, 25, 400)
    result = compare("mean", Sufficient.of(a, np.ones(40)), Sufficient.of(b, np.ones(400)))
    assert result.test == "Welch's t-test"
    assert result.p_value == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue, abs=1e-9)
    start = rng.normal(100, 20, 440)
    end = start * rng.normal(1.05, 0.1, 440)
    ratio = compare("ratio", Sufficient.of(end[:40], start[:40]), Sufficient.of(end[40:], start[40:]))
    assert ratio.test == "delta method (Welch t)"


def test_skewed_values_are_resampled_until_cochrans_rule_holds() -> None:
    # old code: Welch's t-test for 40 lognormal MRRs against 400; in A/A simulations on the demo's
    # MRR (skewness 5.5) that rejected 15% of true nulls at 30-45 accounts against the rest
    rng = np.random.default_rng(4)
    a, b = rng.lognormal(6, 1, 40), rng.lognormal(6, 1, 400)
    group, base = Sufficient.of(a, np.ones(40)), Sufficient.of(b, np.ones(400))
    result = compare("mean", group, base, (Values.of(a, np.ones(40)), Values.of(b, np.ones(400))))
    assert result.test.startswith("permutation test") and "too skewed" in result.note
    assert "Cochran's rule" in result.note
    # equal groups: the skewness of the difference cancels, Welch's t-test stays
    c = rng.lognormal(6, 1, 40)
    assert compare("mean", group, Sufficient.of(c, np.ones(40))).test == "Welch's t-test"


def test_a_ratio_whose_denominator_varies_a_lot_is_resampled() -> None:
    # NRR of 60 accounts: start MRR is heavy-tailed, so Σ start MRR of 60 accounts varies by
    # more than 10% (Cochran's condition for the ratio estimator's normal approximation)
    rng = np.random.default_rng(6)
    start = rng.lognormal(6, 1.5, 700)
    end = start * rng.normal(1.0, 0.2, 700).clip(0)
    group, base = Sufficient.of(end[:60], start[:60]), Sufficient.of(end[60:], start[60:])
    result = compare("ratio", group, base)
    assert result.test == "none (too few to test)" and "denominator varies too much" in result.note


def test_rare_events_use_the_exact_conditional_poisson_test() -> None:
    group, base = Sufficient(members=5, n=5, num=3, den=10), Sufficient(members=400, n=400, num=40, den=800)
    result = compare("rate", group, base)
    expected = poisson_2indep(3, 10, 40, 800, method="exact-cond", compare="ratio").pvalue
    assert result.test == "exact conditional Poisson test" and result.p_value == pytest.approx(expected, abs=1e-9)
    # the same test by hand: conditional on 43 events, the segment's share is binomial(43, 10/810)
    assert result.p_value == pytest.approx(scipy_stats.binomtest(3, 43, 10 / 810).pvalue, abs=1e-9)
    assert result.ci_low is None and "exact test" in result.note
    # sums as the engine's values give them (floats): the same test, not a TypeError from scipy
    floats = compare("rate", Sufficient.of(np.array([1.0, 2.0, 0.0]), np.array([4.0, 3.0, 3.0])), base)
    assert floats.p_value == pytest.approx(expected, abs=1e-9)


def test_a_sum_over_members_without_rows_is_zero() -> None:
    # old code: "no member has a value" for a segment of churned accounts (their MRR is 0)
    result = compare("sum", Sufficient(members=12), Sufficient.of(np.arange(5.0), np.ones(5)))
    assert result.value == 0.0 and result.diff == -10.0 and "sum is 0" in result.note
