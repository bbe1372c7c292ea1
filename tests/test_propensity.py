"""Propensity segments: time-based split, holdout AUC equal to an independent sklearn fit, and a
SQL score that equals the model's probabilities in the engine."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from segsql import Project
from segsql.cli.main import cli
from segsql.errors import UsageError
from tests.conftest import REPO, write_files

CONFIG = """\
connection: {type: duckdb, path: data.duckdb}
sources:
  accounts: {table: accounts, columns: {account_id: BIGINT, seats: DOUBLE}}
  logins: {table: logins, columns: {account_id: BIGINT, day: DATE}}
  tickets: {table: tickets, columns: {account_id: BIGINT, opened: DATE}}
  churns: {table: churns, columns: {account_id: BIGINT, churned_on: DATE}}
entities:
  account: {key: account_id, source: accounts}
"""
FEATURES = """{{ config(entity='account') }}
SELECT a.account_id, a.seats,
  (SELECT COUNT(*) FROM {{ source('logins') }} AS l WHERE l.account_id = a.account_id
     AND {{ last_n_days('l.day', 30) }}) AS logins_30d,
  (SELECT COUNT(*) FROM {{ source('tickets') }} AS t WHERE t.account_id = a.account_id
     AND {{ last_n_days('t.opened', 90) }}) AS tickets_90d
FROM {{ source('accounts') }} AS a"""
OUTCOME = """{{ config(entity='account') }}
SELECT c.account_id FROM {{ source('churns') }} AS c WHERE {{ last_n_days('c.churned_on', 90) }}"""
TRAIN = dt.date(2026, 6, 30)
AS_OF = dt.date(2026, 11, 23)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("propensity")
    rng = np.random.default_rng(8)
    n = 3000
    seats = rng.integers(1, 200, n).astype(float)
    seats[::97] = np.nan  # missing values: training median in the model and in the SQL
    logins, tickets = [], []
    activity = rng.poisson(12, n)
    trouble = rng.poisson(1.5, n)
    for account in range(n):
        for day in rng.choice(30, size=min(int(activity[account]), 30), replace=False):
            logins.append((account + 1, TRAIN - dt.timedelta(days=int(day))))
        for day in rng.choice(90, size=int(trouble[account]), replace=True):
            tickets.append((account + 1, TRAIN - dt.timedelta(days=int(day))))
    logits = -1.0 - 0.25 * (activity - 12) + 0.6 * (trouble - 1.5) - 0.004 * np.nan_to_num(seats, nan=100)
    churned = rng.random(n) < 1 / (1 + np.exp(-logits))
    churns = [(a + 1, TRAIN + dt.timedelta(days=int(rng.integers(1, 91)))) for a in np.flatnonzero(churned)]
    connection = duckdb.connect(str(root / "data.duckdb"))
    tables = {"accounts": pd.DataFrame({"account_id": np.arange(1, n + 1), "seats": seats}),
              "logins": pd.DataFrame(logins, columns=["account_id", "day"]),
              "tickets": pd.DataFrame(tickets, columns=["account_id", "opened"]),
              "churns": pd.DataFrame(churns, columns=["account_id", "churned_on"])}
    for name, frame in tables.items():
        connection.register("frame", frame)
        connection.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
        connection.unregister("frame")
    connection.close()
    write_files(root, {"segsql.yml": CONFIG, "segments_sql/account_features.sql": FEATURES,
                       "segments_sql/churned_recently.sql": OUTCOME})
    return root


def test_holdout_auc_equals_an_independent_fit(root: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    project = Project.load(root, as_of=AS_OF)
    result = project.propensity("account_features", "churned_recently", TRAIN, 90)
    shown = repr(result)  # one readable line, not the frames and the scores
    assert shown.startswith("Propensity(logistic for churned_recently within 90 days") and "holdout AUC 0." in shown
    assert "\n" not in shown and "dtype" not in shown and len(shown) < 400
    features = Project.load(root, as_of=TRAIN).with_options()
    with features.engine() as engine:
        frame = engine.fetch_arrow(features.compiler.tree("account_features")).to_pandas().set_index("account_id").sort_index()
    churned = set(duckdb.connect(str(root / "data.duckdb"), read_only=True).sql(
        "SELECT account_id FROM churns WHERE churned_on > DATE '2026-06-30' AND churned_on <= DATE '2026-09-28'"
    ).df().account_id)
    y = np.array([k in churned for k in frame.index], dtype=int)
    holdout = np.array([int(hashlib.md5(f"propensity-holdout:{k}".encode()).hexdigest()[:4], 16)
                        < round(0.3 * 65536) for k in frame.index])
    x = frame[["seats", "logins_30d", "tickets_90d"]].astype(float)
    x = x.fillna(x[~holdout].median())
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x[~holdout], y[~holdout])
    auc = roc_auc_score(y[holdout], model.predict_proba(x[holdout])[:, 1])
    assert result.auc == pytest.approx(auc, abs=1e-12)
    assert result.auc > 0.7  # the planted signal is found
    assert result.lift.iloc[0]["lift"] > 1.8 and result.calibration.entities.sum() == holdout.sum()
    assert result.base_rate == pytest.approx(y[holdout].mean())


def test_sql_score_equals_the_model_in_the_engine(root: Path, runner: Any) -> None:
    outcome = runner.invoke(cli, ["propensity", "account_features", "--project", str(root), "--outcome",
                                  "churned_recently", "--train-as-of", str(TRAIN), "--horizon", "90",
                                  "--write", "churn_risk", "--top", "0.1", "--as-of", str(AS_OF)])
    assert outcome.exit_code == 0, outcome.output
    assert "holdout AUC" in outcome.output and "lift by decile" in outcome.output
    assert "model fitted on" not in outcome.output  # not a terminal: no progress bar in the output
    project = Project.load(root, as_of=AS_OF)
    steps: list[tuple[str, int, int]] = []
    result = project.propensity("account_features", "churned_recently", TRAIN, 90,
                                progress=lambda *step: steps.append(step))
    assert [(number, count) for _, number, count in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert steps[1][0].startswith("logistic model fitted on ") and steps[3][0].endswith(f"as of {AS_OF}")
    project.run()
    members = project.members("churn_risk").set_index("account_id")
    assert result.scores is not None
    expected = result.scores.sort_values(ascending=False)
    count = int(np.ceil(0.1 * len(expected)))
    top = set(expected.index[:count])
    assert top <= set(members.index)
    boundary = expected.iloc[count - 1]
    assert all(abs(result.scores[k] - boundary) < 1e-9 for k in set(members.index) - top)  # ties at the cut
    assert np.allclose(members.score.sort_index().values, result.scores[members.index].sort_index().values,
                       rtol=0, atol=1e-9)
    text = (root / "segments_sql" / "predictive" / "churn_risk.sql").read_text()
    assert "EXP(" in text and "COALESCE(f.seats" in text and f"AUC {result.auc:.3f}" in text


def test_other_models_score_in_python_with_a_note(root: Path, runner: Any) -> None:
    project = Project.load(root, as_of=AS_OF)
    result = project.propensity("account_features", "churned_recently", TRAIN, 90, model="gradient_boosting")
    assert result.auc is not None and "Python only" in result.note and result.scores is not None
    with pytest.raises(UsageError, match="cannot be written as SQL"):
        result.score_sql()
    outcome = runner.invoke(cli, ["propensity", "account_features", "--project", str(root), "--outcome",
                                  "churned_recently", "--train-as-of", str(TRAIN), "--horizon", "90", "--model",
                                  "gradient_boosting", "--write", "gb_risk", "--as-of", str(AS_OF)])
    assert outcome.exit_code == 2 and "cannot be written as SQL" in outcome.output


def test_outcome_window_must_be_observed(root: Path) -> None:
    with pytest.raises(UsageError, match="after as_of"):
        Project.load(root, as_of=AS_OF).propensity("account_features", "churned_recently", "2026-10-01", 90)


def test_delong_interval_matches_the_definition() -> None:
    from sklearn.metrics import roc_auc_score

    from segsql.methods.propensity import auc_interval, delong_variance

    rng = np.random.default_rng(12)
    truth = (rng.random(300) < 0.2).astype(int)
    predicted = np.round(rng.random(300) + 0.4 * truth, 1)  # rounded: many ties
    positives, negatives = predicted[truth == 1], predicted[truth == 0]
    psi = (positives[:, None] > negatives[None, :]) + 0.5 * (positives[:, None] == negatives[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)  # DeLong, DeLong & Clarke-Pearson (1988), pair by pair
    expected = v10.var(ddof=1) / len(positives) + v01.var(ddof=1) / len(negatives)
    auc, variance = delong_variance(truth, predicted)
    assert auc == pytest.approx(roc_auc_score(truth, predicted), abs=1e-12)
    assert variance == pytest.approx(expected, rel=1e-12)
    draws = rng.integers(0, 300, (2000, 300))
    boot = [roc_auc_score(truth[d], predicted[d]) for d in draws if 0 < truth[d].sum() < 300]
    assert np.sqrt(variance) == pytest.approx(np.std(boot, ddof=1), rel=0.2)
    low, high = auc_interval(truth, predicted)
    assert (low, high) == pytest.approx((auc - 1.959963984540054 * variance**0.5, auc + 1.959963984540054 * variance**0.5))


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like the issue's demo: few churners and no signal in the features."""
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(3)
    n = 400
    churned = np.flatnonzero(rng.random(n) < 0.12)
    tables = {"accounts": pd.DataFrame({"account_id": np.arange(1, n + 1), "seats": rng.integers(1, 50, n) * 1.0}),
              "logins": pd.DataFrame({"account_id": np.arange(1, n + 1), "day": [TRAIN] * n}),
              "tickets": pd.DataFrame({"account_id": np.arange(1, n + 1), "opened": [TRAIN] * n}),
              "churns": pd.DataFrame({"account_id": churned + 1, "churned_on": [TRAIN + dt.timedelta(days=5)] * len(churned)})}
    connection = duckdb.connect(str(root / "data.duckdb"))
    for name, frame in tables.items():
        connection.register("frame", frame)
        connection.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
        connection.unregister("frame")
    connection.close()
    write_files(root, {"segsql.yml": CONFIG, "segments_sql/account_features.sql": FEATURES,
                       "segments_sql/churned_recently.sql": OUTCOME})
    return root


def test_a_chance_model_is_labelled_and_not_written_without_force(noise: Path, runner: Any) -> None:
    # old code: printed "holdout AUC 0.483" without a word and wrote the "top risk" segment
    arguments = ["propensity", "account_features", "--project", str(noise), "--outcome", "churned_recently",
                 "--train-as-of", str(TRAIN), "--horizon", "90", "--as-of", str(AS_OF), "--write", "churn_risk"]
    result = Project.load(noise, as_of=AS_OF).propensity("account_features", "churned_recently", TRAIN, 90)
    assert result.auc_ci is not None and result.auc_ci[0] <= 0.5 <= result.auc_ci[1]
    assert result.no_better_than_chance and "no better than chance" in result.auc_text()
    outcome = runner.invoke(cli, arguments)
    assert outcome.exit_code == 2 and "no better than chance" in outcome.output and "--force" in outcome.output
    assert not (noise / "segments_sql" / "predictive" / "churn_risk.sql").exists()
    forced = runner.invoke(cli, [*arguments, "--force"])
    assert forced.exit_code == 0 and "no better than chance" in forced.output, forced.output
    text = (noise / "segments_sql" / "predictive" / "churn_risk.sql").read_text()
    assert "no better than chance" in text


def test_a_real_signal_is_not_labelled_chance(root: Path) -> None:
    result = Project.load(root, as_of=AS_OF).propensity("account_features", "churned_recently", TRAIN, 90)
    assert result.auc_ci is not None and result.auc_ci[0] > 0.5 and not result.no_better_than_chance
    assert result.holdout_positives + result.holdout_negatives == result.calibration.entities.sum()


# -- the demo: churn the data shows before it happens (README's example) --------------------------
DEMO_AS_OF = "2026-11-30"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from segsql.demo.project import prepare_demo

    root = tmp_path_factory.mktemp("demo") / "segsql-demo"
    prepare_demo(root, as_of=DEMO_AS_OF)[0].close()  # what `segsql demo --as-of 2026-11-30` builds
    return root


def readme_propensity_example() -> tuple[list[str], str]:
    """The README's `segsql propensity` command (arguments after `segsql`) and the line it shows."""
    import re
    import shlex

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"```bash\n(segsql propensity [^\n]*)\n```\n```text\n([^\n]*)\n```", readme)
    assert found, "README: a bash block with `segsql propensity ...` followed by a text block of its first line"
    return shlex.split(found.group(1))[1:], found.group(2)


def test_the_demo_churn_model_is_better_than_chance_as_the_readme_says(demo: Path, runner: Any) -> None:
    # the demo of #18 had 90 days of events: features at 2026-07-01 saw none (AUC 0.48-0.56)
    arguments, printed = readme_propensity_example()
    arguments[arguments.index("--project") + 1] = str(demo)
    outcome = runner.invoke(cli, arguments)
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output.splitlines()[0] == printed
    result = Project.load(demo).propensity("account_features", "churned_recently", "2026-07-01", 90)
    assert result.auc_ci is not None and result.auc_ci[0] > 0.5 and not result.no_better_than_chance
    assert result.holdout_positives >= 15  # an interval from enough cases, not from a handful
    assert round(float(result.lift.iloc[0]["lift"]), 1) == 4.8  # "lift 4.8" in the README


RANDOM_OUTCOME = """{{ config(entity='account') }}
SELECT a.account_id FROM {{ source('accounts') }} AS a
WHERE {{ split('a.account_id', {'picked': 10, 'rest': 90}, salt='SALT') }} = 'picked'
"""


def test_targets_without_signal_on_the_demo_are_still_chance(demo: Path) -> None:
    # 10% of accounts by a salted hash, five salts: nothing in the features can know them. A 95%
    # interval misses 0.5 one time in twenty by chance, so one of five may; here none does.
    write_files(demo, {f"segments_sql/random_{i}.sql": RANDOM_OUTCOME.replace("SALT", f"no-signal-{i}")
                       for i in range(5)})
    project = Project.load(demo)
    labelled = []
    for index in range(5):
        result = project.propensity("account_features", f"random_{index}", "2026-07-01", 90)
        assert result.holdout_positives >= 15 and result.auc_ci is not None
        labelled.append(result.no_better_than_chance and "no better than chance" in result.auc_text())
    assert sum(labelled) >= 4, labelled
