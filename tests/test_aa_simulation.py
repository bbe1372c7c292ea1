"""A/A simulation (#18): random segments of the demo's own members, compared with the rest or
split in two like a readout, must not be found "different" more often than the 5% level says,
for every metric kind and at every size (2-30 members and larger).

The per-member values of the demo's starter metrics come from the engine once; each comparison
is then stats.compare on a random subset, as compare() and readout() call it. Under A/A the
null is true, so the share of p < 0.05 estimates the false-positive rate. Bound: the binomial
99.9% upper quantile of Bin(tests, 0.05) / tests, per kind and in each cell of scenario (against
the rest, or halves) and size band (6.5% for a kind's 2,000 tests, about 9.5% for a cell of 250).

What it found (fixed in segsql.measure.stats): Welch's t-test on 30-59 accounts of MRR per
account (skewness 5.5) against the rest rejected 15% of true nulls, the delta method on NRR,
GRR and LTV 10-18%; now the normal approximation also needs Cochran's conditions (skewness of
the difference ≤ 0.2, a ratio's denominator mean with CV ≤ 0.1), else the permutation test.

The permutation p-value (1 + k) / (1 + B) is valid for any number of draws B, so B = 999 here
keeps every test's size and saves nine tenths of the time (and 400 bootstrap draws for the
intervals, which do not enter the rate).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import numpy as np
import pytest
from scipy import stats as scipy_stats

from segsql import Project
from segsql.demo.project import prepare_demo
from segsql.measure import cuped, stats
from segsql.measure.metrics import entity_query

AS_OF = dt.date(2026, 11, 23)
COMPARISONS = 2000  # per kind
BANDS = {"2-9": list(range(2, 10)), "10-30": list(range(10, 31)), "31-60": [31, 35, 40, 45, 50, 60],
         "61+": [80, 100, 150, 200, 250]}  # segment sizes, each band a quarter of the comparisons
KINDS = {"proportion": ["churn_rate", "conversion_rate", "expansion_rate", "feature_adoption", "reachable_users"],
         "mean": ["mrr_per_account"], "ratio": ["nrr", "grr", "ltv", "csat", "csat_average"],
         "rate": ["events_per_active_day"], "sum": ["mrr", "expansion_arr"]}
Values = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # metric -> (keys, num, den), by key


def upper_bound(tests: int, level: float = 0.05) -> float:
    return float(scipy_stats.binom.ppf(0.999, tests, level)) / tests


def fetch(project: Project, names: list[str], as_of: dt.date) -> Values:
    """Per measured member: key, num and den of each metric (the engine's per-entity query)."""
    variant = project.with_options(as_of=as_of)
    values: Values = {}
    with variant.engine() as engine:
        engine.prepare_sources()
        for name in names:
            rows = sorted(row for row in engine.fetchall(entity_query(variant.compiler, variant.metrics[name]))
                          if row[1] is not None and row[2] is not None)
            values[name] = tuple(np.array([row[i] for row in rows], dtype=float) for i in range(3))  # type: ignore[assignment]
    return values


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Values, Values]:
    project, _ = prepare_demo(tmp_path_factory.mktemp("aa") / "demo", scale=1.0, seed=42, as_of=AS_OF)
    now = fetch(project, [name for names in KINDS.values() for name in names], AS_OF)
    before = fetch(project, list(PRE_PERIOD), AS_OF - dt.timedelta(days=90))
    project.close()
    return now, before


def test_false_positive_rate_of_every_kind_at_every_size(demo: tuple[Values, Values],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "PERMUTATIONS", 999)
    monkeypatch.setattr(stats, "BOOTSTRAPS", 400)
    values, _ = demo
    rng = np.random.default_rng(2026)
    outcomes: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
    for kind, names in KINDS.items():
        for index in range(COMPARISONS if kind != "sum" else 200):
            _, num, den = values[names[index % len(names)]]
            size_band = list(BANDS)[(index // 2) % len(BANDS)]
            size = min(int(rng.choice(BANDS[size_band])), num.size // 2)
            order = rng.permutation(num.size)
            scenario = ("vs rest", "halves")[index % 2]
            if scenario == "halves":  # a readout: a random segment of 2·size members split in two
                own, other = order[:size], order[size:2 * size]
            else:  # compare(): a random segment against the rest
                own, other = order[:size], order[size:]
            group, base = stats.Sufficient.of(num[own], den[own]), stats.Sufficient.of(num[other], den[other])
            needed = stats.needs_values(kind, group, base)
            pair = (stats.Values.of(num[own], den[own]), stats.Values.of(num[other], den[other])) if needed else None
            result = stats.compare(kind, group, base, pair)
            if kind == "sum":
                assert result.p_value is None  # descriptive: never "significant"
            elif result.p_value is not None:
                outcomes[(kind, scenario, size_band)].append(result.p_value < 0.05)
                outcomes[(kind, "all", "all")].append(result.p_value < 0.05)
    report = {key: (round(float(np.mean(hits)), 4), len(hits)) for key, hits in sorted(outcomes.items())}
    for (kind, scenario, size_band), (rate, tests) in report.items():
        assert tests >= 150, (kind, scenario, size_band, report)
        assert rate <= upper_bound(tests), f"{kind} {scenario} at {size_band}: {rate:.3f} of {tests} ({report})"


PRE_PERIOD = {"mrr_per_account": "mean", "csat": "ratio"}


def test_cuped_keeps_the_false_positive_rate(demo: tuple[Values, Values]) -> None:
    """Readouts of random balanced splits, adjusted by each member's value 90 days earlier."""
    values, before = demo
    rng = np.random.default_rng(7)
    hits: list[bool] = []
    reductions: list[float] = []
    for index in range(COMPARISONS):
        name = list(PRE_PERIOD)[index % 2]
        kind = PRE_PERIOD[name]
        keys, num, den = values[name]
        pre_keys, pre_num, pre_den = before[name]
        at = np.searchsorted(pre_keys, keys).clip(max=pre_keys.size - 1)
        has = pre_keys[at] == keys  # members measured now with a value 90 days earlier
        c = np.where(has, pre_num[at], 0.0)
        d = np.where(has, 1.0 if kind == "mean" else pre_den[at], 0.0)
        b = np.ones(num.size) if kind == "mean" else den
        size = (100, 200, 300, 400)[index % 4]
        order = rng.permutation(num.size)
        own, other = order[:size], order[size:2 * size]
        unadjusted = stats.compare(kind, stats.Sufficient.of(num[own], den[own]),
                                   stats.Sufficient.of(num[other], den[other]))
        if unadjusted.p_value is None or unadjusted.test not in cuped.NORMAL_TESTS:
            continue  # CUPED is applied only where the normal approximation is
        joint = [cuped.Joint.of(num[part], b[part], c[part], d[part], int(has[part].sum())) for part in (own, other)]
        adjusted = cuped.adjust(joint[0], joint[1], unadjusted)
        assert adjusted.p_value is not None, adjusted.problem
        hits.append(adjusted.p_value < 0.05)
        reductions.append(adjusted.variance_reduction or 0.0)
    assert len(hits) >= 1000
    assert np.mean(hits) <= upper_bound(len(hits)), (np.mean(hits), len(hits))
    assert np.median(reductions) > 0.2, np.median(reductions)  # now and 90 days ago are related
