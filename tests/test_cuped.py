"""CUPED in the readout (#18): the variance reduction equals the theoretical 1 − ρ², the adjusted
difference is the ANCOVA estimate, members without a pre-period are left unadjusted, and a
readout without CUPED is what it was."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from segsql import Project, UsageError
from segsql.cli.main import cli
from segsql.compile.splits import Split, assign
from segsql.measure import cuped, stats
from tests.conftest import write_files, write_tables

START = dt.date(2026, 10, 1)        # the experiment's first day
AS_OF = dt.date(2026, 10, 28)       # the readout: 28 days in
WINDOW = 28                         # the metric's window: the 28 days up to as_of
GROUPS = (("control", 50.0), ("treatment", 50.0))
EFFECT = 4.0

CONFIG = """\
connection: {type: duckdb, path: data.duckdb}
sources:
  accounts: {table: accounts, columns: {account_id: BIGINT, plan: VARCHAR}}
  usage: {table: usage, columns: {account_id: BIGINT, day: DATE, value: DOUBLE, converted: INTEGER}}
entities:
  account: {key: account_id, source: accounts}
"""
METRICS = """\
metrics:
  spend:
    entity: account
    kind: mean
    source: usage
    where: "{{ last_n_days('day', 28) }}"
    numerator: "SUM(value)"
  per_day:
    entity: account
    kind: ratio
    source: usage
    where: "{{ last_n_days('day', 28) }}"
    numerator: "SUM(value)"
    denominator: "COUNT(*)"
  converted:
    entity: account
    kind: proportion
    source: usage
    where: "{{ last_n_days('day', 28) }}"
    numerator: "MAX(converted)"
    denominator: "1"
"""
SEGMENT = ("{{ config(entity='account') }}\nSELECT a.account_id, a.plan, "
           "{{ split('a.account_id', {'control': 50, 'treatment': 50}, salt='cuped-1') }} AS arm "
           "FROM {{ source('accounts') }} AS a")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """3,000 accounts with a lasting level of usage, active on 9-11 days of each 28-day window;
    10% joined after the pre-period (no value there); the treatment adds EFFECT to every active
    day after START."""
    root = tmp_path_factory.mktemp("cuped")
    rng = np.random.default_rng(7)
    n = 3000
    level = rng.normal(20, 8, n).clip(1)
    arms = np.array([assign(key, Split("cuped-1", GROUPS)) for key in range(1, n + 1)])
    new = rng.random(n) < 0.1
    frames = []
    for first, lift, keep in ((START - dt.timedelta(days=WINDOW), 0.0, ~new),
                              (AS_OF - dt.timedelta(days=WINDOW - 1), EFFECT, np.ones(n, dtype=bool))):
        active = np.argsort(rng.random((n, WINDOW)), axis=1) < rng.integers(9, 12, n)[:, None]  # 9-11 random days
        active &= keep[:, None]
        account, offset = np.nonzero(active)
        frames.append(pd.DataFrame({
            "account_id": account + 1, "day": [first + dt.timedelta(days=int(d)) for d in offset],
            "value": level[account] + lift * (arms[account] == "treatment") + rng.normal(0, 4, account.size),
            "converted": (rng.random(account.size) < 0.02 * level[account] / 20).astype(int)}))
    usage = pd.concat(frames, ignore_index=True)
    accounts = pd.DataFrame({"account_id": np.arange(1, n + 1), "plan": rng.choice(["a", "b"], n)})
    write_tables(root / "data.duckdb", {"accounts": accounts, "usage": usage})
    write_files(root, {"segsql.yml": CONFIG, "metrics.yml": METRICS, "segments_sql/exp.sql": SEGMENT})
    Project.load(root, as_of=AS_OF).run()
    usage["arm"] = arms[usage.account_id - 1]
    return root, usage


def per_account(usage: pd.DataFrame, last: dt.date) -> pd.DataFrame:
    window = usage[(usage.day > last - dt.timedelta(days=WINDOW)) & (usage.day <= last)]
    return window.groupby("account_id").agg(spend=("value", "sum"), days=("value", "size"), arm=("arm", "first"))


def test_adjusted_difference_matches_an_independent_computation(experiment: tuple[Path, pd.DataFrame]) -> None:
    root, usage = experiment
    result = Project.load(root, as_of=AS_OF).readout("exp", ["spend", "per_day"], cuped=True, start=START)
    assert result.pre_period_as_of == START - dt.timedelta(days=1)
    assert f"CUPED: each metric adjusted by its value as of {START - dt.timedelta(days=1)}" in result._repr_html_()
    row = result.metrics.set_index("metric").loc["spend"]
    post, pre = per_account(usage, AS_OF), per_account(usage, START - dt.timedelta(days=1))
    joined = post.join(pre.spend.rename("pre"), how="left")
    covered = joined.dropna()
    assert row.pre_covered == pytest.approx(len(covered) / len(joined), abs=1e-12)
    assert 0.85 < row.pre_covered < 0.95  # the accounts that joined after the pre-period
    # ANCOVA on the covered accounts, with the uncovered ones kept at their group's level:
    # the adjustment is y − θ·(x − x̄) for covered members and y for the others
    x = joined.pre.to_numpy()
    treated = (joined.arm == "treatment").to_numpy()
    within = []
    for group in (treated, ~treated):
        has = group & ~np.isnan(x)
        share = has.sum() / group.sum()
        centred = np.where(np.isnan(x), 0.0, x - np.nanmean(x[has])) / share
        within.append((joined.spend.to_numpy()[group] - joined.spend.to_numpy()[group].mean(), centred[group]))
    theta = sum(float(np.dot(y, c)) for y, c in within) / sum(float(np.dot(c, c)) for _, c in within)
    pre_means = [np.nanmean(x[g & ~np.isnan(x)]) for g in (treated, ~treated)]
    raw = joined.spend[treated].mean() - joined.spend[~treated].mean()
    assert row.theta == pytest.approx(theta, rel=1e-9)
    assert row["diff"] == pytest.approx(raw - theta * (pre_means[0] - pre_means[1]), rel=1e-9)
    assert row.test == cuped.TEST and row.value == pytest.approx(joined.spend[treated].mean(), rel=1e-12)
    assert row.ci_low < EFFECT * post.days[post.arm == "treatment"].mean() < row.ci_high
    assert row.variance_reduction > 0.5


def test_with_every_pre_period_value_a_mean_is_adjusted_as_by_ancova() -> None:
    """y = α + τ·treated + β·x + ε by least squares: τ is CUPED's difference, β its θ."""
    rng = np.random.default_rng(5)
    x = rng.gamma(4, 5, 1200)
    treated = np.arange(1200) < 500
    y = 3 + 2 * treated + 0.8 * x + rng.normal(0, 4, 1200)
    design = np.column_stack([np.ones(1200), treated, x])
    _, tau, beta = np.linalg.lstsq(design, y, rcond=None)[0]
    group = cuped.Joint.of(y[treated], np.ones(500), x[treated], np.ones(500))
    control = cuped.Joint.of(y[~treated], np.ones(700), x[~treated], np.ones(700))
    adjusted = cuped.adjust(group, control, stats.Result(0.0, 0.0, test="Welch's t-test"))
    assert adjusted.diff == pytest.approx(tau, rel=1e-9) and adjusted.theta == pytest.approx(beta, rel=1e-9)


def test_theoretical_variance_reduction_for_means_and_ratios() -> None:
    """1 − ρ² within simulation error: with n = 50,000 per group the sample ρ² has a standard
    deviation of at most 2ρ(1 − ρ²)/√100,000 ≤ 0.0025; the bound used is 0.01 (4 sd)."""
    rng = np.random.default_rng(3)
    n = 50_000
    for rho in (0.3, 0.6, 0.9):
        groups = []
        for _ in range(2):
            x = rng.normal(0, 1, n)
            y = rho * x + math.sqrt(1 - rho ** 2) * rng.normal(0, 1, n)
            groups.append(cuped.Joint.of(10 + y, np.ones(n), 5 + x, np.ones(n)))
        unadjusted = stats.compare("mean", stats.Sufficient.of(10 + y, np.ones(n)), stats.Sufficient.of(10 + y, np.ones(n)))
        adjusted = cuped.adjust(groups[0], groups[1], unadjusted)
        assert adjusted.variance_reduction == pytest.approx(rho ** 2, abs=0.01)
        # a ratio (e.g. CSAT positives per response): the linearised values are e·√b / mean b,
        # whose correlation with the pre-period's is ρ by construction
        ratio_groups = []
        for _ in range(2):
            responses = rng.integers(1, 6, n).astype(float)
            e = rng.normal(0, 1, n)
            e_pre = rho * e + math.sqrt(1 - rho ** 2) * rng.normal(0, 1, n)
            ratio_groups.append(cuped.Joint.of(0.6 * responses + e * np.sqrt(responses), responses,
                                               0.5 * responses + e_pre * np.sqrt(responses), responses))
        ratio_row = stats.Result(0.6, 0.6, test=stats.DELTA_TEST)
        assert cuped.adjust(*ratio_groups, ratio_row).variance_reduction == pytest.approx(rho ** 2, abs=0.01)


def test_without_cuped_the_readout_is_unchanged(experiment: tuple[Path, pd.DataFrame]) -> None:
    root, _ = experiment
    project = Project.load(root, as_of=AS_OF)
    plain = project.readout("exp", ["spend", "per_day", "converted"])
    assert list(plain.metrics.columns) == ["metric", "group", "value", "control_value", "lift", "diff", "ci_low",
                                           "ci_high", "p_value", "test", "note", "significant"]
    assert plain.pre_period_as_of is None
    adjusted = project.readout("exp", ["spend", "per_day", "converted"], cuped=True, pre_days=WINDOW)
    assert adjusted.pre_period_as_of == AS_OF - dt.timedelta(days=WINDOW)
    pd.testing.assert_frame_equal(plain.metrics[["metric", "group", "value", "control_value"]],
                                  adjusted.metrics[["metric", "group", "value", "control_value"]])
    pd.testing.assert_frame_equal(plain.sizes, adjusted.sizes)
    widths = (adjusted.metrics.ci_high - adjusted.metrics.ci_low) / (plain.metrics.ci_high - plain.metrics.ci_low)
    reduction = adjusted.metrics.variance_reduction.to_numpy()
    applied = ~np.isnan(reduction)
    assert applied[:2].all()  # spend and per_day
    assert np.allclose(widths[applied], np.sqrt(1 - reduction[applied]), rtol=0.05)  # t quantiles differ a little


def test_conversion_of_few_converters_keeps_its_exact_test(experiment: tuple[Path, pd.DataFrame]) -> None:
    root, _ = experiment
    row = Project.load(root, as_of=AS_OF).readout("exp", ["converted"], cuped=True, start=START).metrics.iloc[0]
    if row.test == "Fisher's exact test":
        assert "CUPED not applied: the unadjusted comparison uses Fisher's exact test" in row.note
    else:  # enough converters for the z-test: CUPED applies
        assert row.test == cuped.TEST and row.variance_reduction is not None


@pytest.mark.parametrize(("options", "message"), [
    (dict(cuped=True), "not neither"),
    (dict(cuped=True, start=START, pre_days=10), "not both"),
    (dict(cuped=True, start=AS_OF + dt.timedelta(days=1)), "is after the readout's as_of"),
    (dict(cuped=True, pre_days=0), "at least 1"),
    (dict(pre_days=10), "CUPED is off"),  # a start alone sets who was assigned (test_point_in_time)
])
def test_a_pre_period_that_cannot_be_used_is_an_error(experiment: tuple[Path, pd.DataFrame],
                                                      options: dict[str, object], message: str) -> None:
    root, _ = experiment
    with pytest.raises(UsageError) as caught:
        Project.load(root, as_of=AS_OF).readout("exp", ["spend"], **options)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_cli(experiment: tuple[Path, pd.DataFrame]) -> None:
    root, _ = experiment
    runner = CliRunner()
    result = runner.invoke(cli, ["readout", "exp", "--project", str(root), "--as-of", str(AS_OF), "--metrics",
                                 "spend", "--cuped", "--start", str(START)])
    assert result.exit_code == 0, result.output
    assert f"CUPED: adjusted by each metric as of {START - dt.timedelta(days=1)}" in result.output
    assert "variance_reduction" in result.output
    missing = runner.invoke(cli, ["readout", "exp", "--project", str(root), "--as-of", str(AS_OF), "--metrics",
                                  "spend", "--cuped"])
    assert missing.exit_code != 0 and "--start" in missing.output and "Traceback" not in missing.output
