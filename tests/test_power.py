"""Experiment design (#18): MDE and sample size against statsmodels' power functions, achieved
power by simulation, and the errors for what cannot be answered."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from statsmodels.stats.power import NormalIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import proportion_effectsize

from segsql import Project, SegsqlError
from segsql.cli.main import cli
from segsql.measure import power as power_math
from segsql.measure.stats import Sufficient, compare
from tests.conftest import AS_OF, write_files, write_tables

CONFIG = """\
connection: {type: duckdb, path: data.duckdb}
sources:
  accounts: {table: accounts, columns: {account_id: BIGINT, spend: DOUBLE, converted: BOOLEAN, won: DOUBLE,
                                        offers: DOUBLE, events: DOUBLE, days: DOUBLE}}
entities:
  account: {key: account_id, source: accounts}
"""
METRICS = """\
metrics:
  spend: {entity: account, kind: mean, source: accounts, numerator: "SUM(spend)"}
  conversion: {entity: account, kind: proportion, source: accounts,
               numerator: "MAX(CASE WHEN converted THEN 1 ELSE 0 END)", denominator: "1"}
  win_rate: {entity: account, kind: ratio, source: accounts, numerator: "SUM(won)", denominator: "SUM(offers)"}
  events_per_day: {entity: account, kind: rate, source: accounts, numerator: "SUM(events)", denominator: "SUM(days)"}
  revenue: {entity: account, kind: sum, source: accounts, numerator: "SUM(spend)"}
"""
CFG = "{{ config(entity='account') }}\n"
SEGMENTS = {
    "everyone": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a",
    "tiny": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.account_id <= 20",
    "exp": CFG + "SELECT a.account_id, {{ split('a.account_id', {'control': 20, 'treatment': 80}, salt='p') }} AS arm "
                 "FROM {{ source('accounts') }} AS a",
}
N = 3000


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, pd.DataFrame]:
    root = tmp_path_factory.mktemp("power")
    rng = np.random.default_rng(11)
    offers = rng.integers(1, 8, N).astype(float)
    days = rng.integers(5, 30, N).astype(float)
    frame = pd.DataFrame({"account_id": np.arange(1, N + 1), "spend": rng.normal(200, 40, N),
                          "converted": rng.random(N) < 0.3, "won": rng.binomial(offers.astype(int), 0.4) * 1.0,
                          "offers": offers, "events": rng.poisson(3 * days) * 1.0, "days": days})
    write_tables(root / "data.duckdb", {"accounts": frame})
    write_files(root, {"segsql.yml": CONFIG, "metrics.yml": METRICS,
                       **{f"segments_sql/{k}.sql": v for k, v in SEGMENTS.items()}})
    loaded = Project.load(root, as_of=AS_OF)
    loaded.run()
    return loaded, frame


def test_mean_mde_and_sample_size_match_statsmodels(project: tuple[Project, pd.DataFrame]) -> None:
    loaded, frame = project
    result = loaded.power("everyone", "spend", alpha=0.05, power=0.8, effect=3.0)
    sd = frame.spend.std(ddof=1)
    assert result.baseline == pytest.approx(frame.spend.mean(), rel=1e-12) and result.sd == pytest.approx(sd, rel=1e-9)
    row = result.rows.iloc[0]
    assert (row.group, row.control_n, row.group_n, result.shares_from) == ("treatment", N / 2, N / 2, "default 50/50")
    assert NormalIndPower().power(row.mde_up / sd, nobs1=N / 2, alpha=0.05, ratio=1.0) == pytest.approx(0.8, abs=1e-9)
    d = NormalIndPower().solve_power(effect_size=None, nobs1=N / 2, alpha=0.05, power=0.8, ratio=1.0)
    assert row.mde_up == pytest.approx(d * sd, rel=1e-5) and row.mde_down == row.mde_up
    assert row.relative_mde_up == pytest.approx(d * sd / frame.spend.mean(), rel=1e-6)
    per_group = zt_ind_solve_power(effect_size=3.0 / sd, nobs1=None, alpha=0.05, power=0.8, ratio=1.0)
    assert row.needed_total == math.ceil(2 * per_group - 1e-6)
    assert row.needed_factor == pytest.approx(row.needed_total / N)
    assert "power on spend (mean)" in result._repr_html_() and "needs" in result.text()


def test_a_split_segment_uses_its_own_shares(project: tuple[Project, pd.DataFrame]) -> None:
    loaded, frame = project
    result = loaded.power("exp", "spend", alpha=0.01, power=0.9)
    row = result.rows.iloc[0]
    share = round(0.2 * 65536) / 65536  # the split's bucket boundary
    assert result.shares_from == "split()" and row.group_n == pytest.approx(N * (1 - share))
    d = row.mde_up / frame.spend.std(ddof=1)  # statsmodels' power at our MDE is the target, to 1e-9
    assert NormalIndPower().power(d, nobs1=N * (1 - share), alpha=0.01, ratio=share / (1 - share)) == \
        pytest.approx(0.9, abs=1e-9)
    solved = NormalIndPower().solve_power(effect_size=None, nobs1=N * (1 - share), alpha=0.01, power=0.9,
                                          ratio=share / (1 - share))
    assert d == pytest.approx(solved, rel=1e-5)  # its root finder stops earlier
    planned = loaded.power("exp", "spend", shares={"control": 50, "a": 25, "b": 25})
    assert planned.shares_from == "shares" and list(planned.rows.group) == ["a", "b"]
    assert planned.rows.control_n.tolist() == [N / 2, N / 2] and planned.rows.group_n.tolist() == [N / 4, N / 4]


def test_proportion_mde_is_cohens_h_at_the_target_power(project: tuple[Project, pd.DataFrame]) -> None:
    loaded, frame = project
    result = loaded.power("everyone", "conversion", shares={"control": 30, "treatment": 70}, effect=0.04)
    p0, row = frame.converted.mean(), result.rows.iloc[0]
    n1, n0 = N * 0.7, N * 0.3
    assert result.baseline == pytest.approx(p0, rel=1e-12) and result.measured == N
    for p1 in (p0 + row.mde_up, p0 - row.mde_down):
        h = proportion_effectsize(p1, p0)
        assert NormalIndPower().power(h, nobs1=n1, alpha=0.05, ratio=n0 / n1) == pytest.approx(0.8, abs=1e-9)
    assert row.mde_down < row.mde_up  # the arcsine scale: p0 < 0.5 moves more easily towards 0
    n_treated = zt_ind_solve_power(effect_size=proportion_effectsize(p0 + 0.04, p0), nobs1=None, alpha=0.05,
                                   power=0.8, ratio=0.3 / 0.7)
    assert row.needed_total == math.ceil(n_treated / 0.7 - 1e-6)


def test_ratio_and_rate_variances(project: tuple[Project, pd.DataFrame]) -> None:
    loaded, frame = project
    ratio = loaded.power("everyone", "win_rate")
    r = frame.won.sum() / frame.offers.sum()
    linearised = (frame.won - r * frame.offers) / frame.offers.mean()
    assert ratio.sd == pytest.approx(linearised.std(ddof=1), rel=1e-9)
    rate = loaded.power("everyone", "events_per_day")
    lam = frame.events.sum() / frame.days.sum()
    assert rate.sd == pytest.approx(math.sqrt(lam / frame.days.mean()), rel=1e-9)  # the Poisson test's variance
    assert not rate.notes  # Poisson counts: no overdispersion to warn about


@pytest.mark.parametrize(("call", "message"), [
    (dict(name="nope", metric="spend"), "unknown segment `nope`"),
    (dict(name="everyone", metric="spnd"), "unknown metric `spnd`"),
    (dict(name="everyone", metric="revenue"), "is a sum"),
    (dict(name="everyone", metric="spend", alpha=0.0), "alpha must be between 0 and 1"),
    (dict(name="everyone", metric="spend", alpha=1.5), "alpha must be between 0 and 1"),
    (dict(name="everyone", metric="spend", power=0.03), "power must be between alpha"),
    (dict(name="everyone", metric="spend", power=1.0), "power must be between alpha"),
    (dict(name="everyone", metric="spend", effect=1.0, lift=0.1), "not both"),
    (dict(name="everyone", metric="spend", effect=0.0), "must not be 0"),
    (dict(name="everyone", metric="conversion", effect=0.9), "outside [0, 1]"),
    (dict(name="everyone", metric="spend", shares={"control": 50, "treatment": 40}), "add up to 90"),
    (dict(name="tiny", metric="spend"), "has 20 member(s) measured on `spend`: too few"),
])
def test_what_cannot_be_answered_is_a_clear_error(project: tuple[Project, pd.DataFrame], call: dict[str, object],
                                                   message: str) -> None:
    loaded, _ = project
    with pytest.raises(SegsqlError) as caught:  # UsageError, or for an unknown metric its base class
        loaded.power(**call)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_cli(project: tuple[Project, pd.DataFrame]) -> None:
    loaded, _ = project
    runner = CliRunner()
    result = runner.invoke(cli, ["power", "everyone", "--project", str(loaded.root), "--metric", "spend",
                                 "--lift", "0.02", "--shares", "control=50,treatment=50"])
    assert result.exit_code == 0, result.output
    assert "minimum detectable effect" in result.output and "needs" in result.output
    as_json = runner.invoke(cli, ["power", "everyone", "--project", str(loaded.root), "-m", "spend",
                                  "--format", "json"])
    assert as_json.exit_code == 0 and '"mde_up"' in as_json.output
    bad = runner.invoke(cli, ["power", "everyone", "--project", str(loaded.root), "-m", "spend", "--alpha", "2"])
    assert bad.exit_code != 0 and "alpha must be between 0 and 1" in bad.output and "Traceback" not in bad.output
    shares = runner.invoke(cli, ["power", "everyone", "--project", str(loaded.root), "-m", "spend", "--shares", "50"])
    assert shares.exit_code != 0 and "--shares `50` is not NAME=NUMBER" in shares.output


SIMULATIONS = 2000
# 99.9% two-sided band for a binomial share of 0.8 in 2,000 draws: ±3.29·√(0.8·0.2/2000) = ±0.029
POWER_BAND = 3.29 * math.sqrt(0.8 * 0.2 / SIMULATIONS)


def test_simulated_experiments_reach_the_planned_power() -> None:
    """Draw A/B experiments with the true effect at the MDE: the readout's own tests reject in
    80% of them (within simulation error) for a mean, a proportion and a ratio."""
    rng = np.random.default_rng(18)
    n1 = n0 = 400
    sd = 25.0
    spread = power_math.Variability("mean", 100.0, sd, n1 + n0)
    shift = power_math.mde(spread, n1, n0, 0.05, 0.8)[0]
    assert shift is not None
    control = rng.normal(100, sd, (SIMULATIONS, n0))
    treated = rng.normal(100 + shift, sd, (SIMULATIONS, n1))
    means = [compare("mean", Sufficient.of(t, np.ones(n1)), Sufficient.of(c, np.ones(n0))).p_value
             for t, c in zip(treated, control, strict=True)]
    assert abs(np.mean(np.array(means) < 0.05) - 0.8) < POWER_BAND

    p0 = 0.2
    up = power_math.mde(power_math.Variability("proportion", p0, math.sqrt(p0 * (1 - p0)), n1 + n0),
                        n1, n0, 0.05, 0.8)[0]
    assert up is not None
    hits = [compare("proportion", Sufficient(n1, n1, float(x), float(n1), float(x)),
                    Sufficient(n0, n0, float(y), float(n0), float(y))).p_value
            for x, y in zip(rng.binomial(n1, p0 + up, SIMULATIONS), rng.binomial(n0, p0, SIMULATIONS), strict=True)]
    assert abs(np.mean(np.array(hits) < 0.05) - 0.8) < POWER_BAND

    offers = rng.integers(2, 8, n1 + n0).astype(float)
    won = rng.binomial(offers.astype(int), 0.4) * 1.0
    history = Sufficient.of(won, offers)
    ratio_spread = power_math.variability("ratio", history)
    lift = power_math.mde(ratio_spread, n1, n0, 0.05, 0.8)[0]
    assert lift is not None
    ratios = []
    for _ in range(SIMULATIONS):
        a_offers, b_offers = rng.integers(2, 8, n1).astype(float), rng.integers(2, 8, n0).astype(float)
        a_won = rng.binomial(a_offers.astype(int), history.num / history.den + lift) * 1.0
        b_won = rng.binomial(b_offers.astype(int), history.num / history.den) * 1.0
        ratios.append(compare("ratio", Sufficient.of(a_won, a_offers), Sufficient.of(b_won, b_offers)).p_value)
    assert abs(np.mean(np.array(ratios) < 0.05) - 0.8) < POWER_BAND
