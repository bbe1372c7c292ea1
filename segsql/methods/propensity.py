"""Predictive segments: churn (or conversion, upsell) propensity with a time-based split.

- Features: the numeric columns of a features segment evaluated with as_of = T (`train_as_of`).
- Outcome: 1 for entities that are members of the outcome segment evaluated with as_of =
  T + horizon days (e.g. `churned_recently`, whose own window looks back from its as_of), else 0.
  Only entities present in the features at T are labelled.
- Holdout: a deterministic 30% of entities by hash (the split() rule, salt `propensity-holdout`).
- Model: logistic regression (scikit-learn, standardised features, missing values -> training
  median). Report: holdout AUC with its 95% confidence interval (DeLong's variance: from the
  placement values of positives and negatives, AUC ± 1.96·SE, clipped to [0, 1]), calibration
  (10 equal-count bins: mean predicted vs observed rate), lift by decile (observed rate / overall
  rate). A model whose interval includes 0.5 is "no better than chance" on the holdout: it is
  reported so, and no segment is written from it unless forced.
- Export: for the logistic model the score is written as a SQL expression (standardisation folded
  into the coefficients), so scoring runs in the engine on every target:
      score = 1 / (1 + EXP(-(b0 + Σ b_i * COALESCE(x_i, median_i))))
  and a segment of the highest-risk entities (score at or above the `top_share` quantile of the
  scores at as_of) is written. Other models (`model='gradient_boosting'`) score in Python only:
  their scores come back as a DataFrame and no segment file can be written (said so clearly).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlglot import exp

from segsql import formats
from segsql.compile.splits import Split, assign
from segsql.config.inputs import parse_as_of
from segsql.errors import UsageError
from segsql.methods.clustering import StepProgress, require_sklearn
from segsql.methods.features import feature_frame

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine

HOLDOUT_SALT = "propensity-holdout"
MODELS = ("logistic", "gradient_boosting")


MIN_HOLDOUT_CASES = 10  # positive and negative holdout cases each, before an AUC can be called better than chance


@dataclass
class Propensity:
    features: str
    outcome: str
    train_as_of: dt.date
    horizon_days: int
    model: str
    auc: float | None
    base_rate: float
    calibration: pd.DataFrame
    lift: pd.DataFrame
    columns: list[str]
    intercept: float | None = None
    coefficients: dict[str, float] = field(default_factory=dict)  # per raw unit
    medians: dict[str, float] = field(default_factory=dict)
    scores: pd.Series | None = None  # at the project's as_of
    note: str = ""
    auc_ci: tuple[float, float] | None = None
    holdout_positives: int = 0
    holdout_negatives: int = 0

    @property
    def no_better_than_chance(self) -> bool:
        """True when the AUC's interval includes 0.5, there is no AUC, or the holdout has fewer
        than MIN_HOLDOUT_CASES positive or negative cases (DeLong's interval collapses there: one
        positive case gives [1, 1])."""
        too_few = min(self.holdout_positives, self.holdout_negatives) < MIN_HOLDOUT_CASES
        return too_few or self.auc_ci is None or self.auc_ci[0] <= 0.5 <= self.auc_ci[1]

    def auc_text(self) -> str:
        """`0.483 (95% CI 0.33–0.64, 15 positives) — no better than chance`."""
        if self.auc is None or self.auc_ci is None:
            return "n/a"
        text = (f"{self.auc:.3f} (95% CI {self.auc_ci[0]:.3f}–{self.auc_ci[1]:.3f}, "
                f"{self.holdout_positives} positive and {self.holdout_negatives} negative holdout cases)")
        return text + (" — no better than chance" if self.no_better_than_chance else "")

    def _repr_html_(self) -> str:
        auc = self.auc_text()
        note = f"<p><i>{self.note}</i></p>" if self.note else ""
        return (f"<p>{self.model} propensity for <b>{self.outcome}</b> within {self.horizon_days} days, features "
                f"<b>{self.features}</b> at {self.train_as_of}: holdout AUC <b>{auc}</b>, base rate "
                f"{formats.percent(self.base_rate)}</p>{note}<h4>lift by decile</h4>"
                f"{self.lift.to_html(index=False, float_format=formats.number)}"
                f"<h4>calibration</h4>{self.calibration.to_html(index=False, float_format=formats.number)}")

    def __repr__(self) -> str:
        """Short and readable: the model and how good it is, not the frames and the scores."""
        return (f"Propensity({self.model} for {self.outcome} within {self.horizon_days} days, features "
                f"{self.features} at {self.train_as_of}: holdout AUC {self.auc_text()}, base rate "
                f"{formats.percent(self.base_rate)}" + (f"; {self.note}" if self.note else "") + ")")

    def score_sql(self, alias: str = "f") -> exp.Expr:
        """The probability as a SQL expression over the features segment's columns."""
        if self.intercept is None:
            raise UsageError(f"a {self.model} model cannot be written as SQL", None,
                             "use model='logistic' to score in the engine; this model scores in Python only")
        linear: exp.Expr = exp.Literal.number(repr(self.intercept))
        for column, weight in self.coefficients.items():
            value = exp.func("coalesce", exp.column(column, alias), exp.Literal.number(repr(self.medians[column])))
            linear = exp.Add(this=linear, expression=exp.Mul(this=exp.Literal.number(repr(weight)), expression=value))
        exponent = exp.Exp(this=exp.Neg(this=exp.Paren(this=linear)))
        return exp.Div(this=exp.Literal.number("1.0"),
                       expression=exp.Paren(this=exp.Add(this=exp.Literal.number("1.0"), expression=exponent)))


FIT_STEPS = 4  # features and outcome at the training date, model fitted, holdout measured, scored today


def fit(compiler: Compiler, engine: Engine, features: str, outcome: str, train_as_of: dt.date | str, horizon_days: int,
        model: str = "logistic", holdout: float = 0.3, seed: int = 0, progress: StepProgress | None = None
        ) -> Propensity:
    """Fit and measure the model; `progress` is called after each of the FIT_STEPS steps."""
    def step(label: str, number: int) -> None:
        if progress is not None:
            progress(label, number, FIT_STEPS)

    require_sklearn()
    if model not in MODELS:
        raise UsageError(f"unknown model `{model}`", None, f"choose one of {', '.join(MODELS)}")
    if not 0 < holdout < 1:
        raise UsageError("holdout must be a share between 0 and 1", None, "e.g. 0.3")
    train_at = parse_as_of(train_as_of)
    outcome_at = train_at + dt.timedelta(days=horizon_days)
    if outcome_at > compiler.as_of:
        raise UsageError(f"the outcome window ends {outcome_at}, after as_of {compiler.as_of}", None,
                         "train earlier (--train-as-of) or use a shorter --horizon")
    frame, _, columns = feature_frame(compiler, engine, features, train_at)
    positives = _outcome_keys(compiler, engine, outcome, outcome_at)
    labels = np.array([str(k) in positives for k in frame.index], dtype=int)
    if labels.sum() == 0 or labels.sum() == len(labels):
        raise UsageError(f"the outcome `{outcome}` is {'never' if labels.sum() == 0 else 'always'} observed for "
                         f"the entities of `{features}` at {train_at}", None, "check the dates and the horizon")
    step(f"features of {features} at {train_at}, outcome {outcome} at {outcome_at}", 1)
    split = Split(HOLDOUT_SALT, (("holdout", holdout * 100), ("train", 100 - holdout * 100)))
    in_holdout = np.array([assign(k, split) == "holdout" for k in frame.index])
    medians = frame[~in_holdout].median()
    filled = frame.fillna(medians)
    estimator = _estimator(model, seed).fit(filled[~in_holdout].values, labels[~in_holdout])
    step(f"{model} model fitted on {int((~in_holdout).sum()):,} rows", 2)
    predicted = estimator.predict_proba(filled[in_holdout].values)[:, 1]
    result = _report(features, outcome, train_at, horizon_days, model, labels[in_holdout], predicted, columns)
    result.medians = {c: float(medians[c]) for c in columns}
    if model == "logistic":
        scaler, logistic = estimator.named_steps["scale"], estimator.named_steps["model"]
        weights = logistic.coef_[0] / scaler.scale_
        result.coefficients = dict(zip(columns, (float(w) for w in weights), strict=True))
        result.intercept = float(logistic.intercept_[0] - np.sum(weights * scaler.mean_))
    else:
        result.note = "gradient boosting scores in Python only: no SQL expression, no segment file"
    step("holdout measured", 3)
    now, _, _ = feature_frame(compiler, engine, features)
    result.scores = pd.Series(estimator.predict_proba(now.fillna(medians).values)[:, 1], index=now.index, name="score")
    step(f"{len(now):,} {features} rows scored as of {compiler.as_of}", 4)
    return result


def _outcome_keys(compiler: Compiler, engine: Engine, outcome: str, at: dt.date) -> set[str]:
    variant = compiler.with_options(as_of=at)
    compiled = variant.compiled(outcome)
    key = variant.config.entities[compiled.entity].single_key(compiled.entity, "a propensity model")
    query = exp.select(exp.cast(exp.column(key), exp.DataType.Type.VARCHAR)).from_(
        variant.tree(outcome).subquery("o"))
    engine.prepare_sources()
    return {str(row[0]) for row in engine.fetchall(query)}


def _estimator(model: str, seed: int) -> Any:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if model == "logistic":
        from sklearn.linear_model import LogisticRegression

        return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=1000))])
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed)


def _report(features: str, outcome: str, train_at: dt.date, horizon: int, model: str, truth: np.ndarray,
            predicted: np.ndarray, columns: list[str]) -> Propensity:
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(truth, predicted)) if 0 < truth.sum() < len(truth) else None
    interval = auc_interval(truth, predicted) if auc is not None else None
    order = np.argsort(-predicted, kind="stable")
    deciles = np.array_split(order, 10)
    base = float(truth.mean())
    lift = pd.DataFrame([{"decile": i + 1, "entities": len(part), "observed_rate": float(truth[part].mean()),
                          "lift": float(truth[part].mean()) / base if base else None}
                         for i, part in enumerate(deciles) if len(part)])
    bins = np.array_split(np.argsort(predicted, kind="stable"), 10)
    calibration = pd.DataFrame([{"bin": i + 1, "entities": len(part), "mean_predicted": float(predicted[part].mean()),
                                 "observed_rate": float(truth[part].mean())}
                                for i, part in enumerate(bins) if len(part)])
    return Propensity(features, outcome, train_at, horizon, model, auc, base, calibration, lift, columns,
                      auc_ci=interval, holdout_positives=int(truth.sum()),
                      holdout_negatives=int(len(truth) - truth.sum()))


def delong_variance(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """(AUC, DeLong variance). Placement values: V10_i = share of negatives scored below
    positive i (ties count 1/2), V01_j = share of positives scored above negative j;
    Var = var(V10)/m + var(V01)/n (m positives, n negatives, sample variances)."""
    from scipy.stats import rankdata

    positives, negatives = predicted[truth == 1], predicted[truth == 0]
    m, n = len(positives), len(negatives)
    pooled = rankdata(np.concatenate([positives, negatives]))  # midranks: ties count 1/2
    within_pos, within_neg = rankdata(positives), rankdata(negatives)
    v10 = (pooled[:m] - within_pos) / n
    v01 = 1 - (pooled[m:] - within_neg) / m
    auc = float(v10.mean())
    spread_pos = float(np.var(v10, ddof=1)) if m > 1 else 0.0
    spread_neg = float(np.var(v01, ddof=1)) if n > 1 else 0.0
    return auc, spread_pos / m + spread_neg / n


def auc_interval(truth: np.ndarray, predicted: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """AUC ± z·SE (DeLong), clipped to [0, 1]."""
    from scipy.stats import norm

    auc, variance = delong_variance(truth, predicted)
    margin = float(norm.ppf((1 + confidence) / 2)) * variance ** 0.5
    return max(0.0, auc - margin), min(1.0, auc + margin)


def segment_file(compiler: Compiler, result: Propensity, name: str, top_share: float,
                 force: bool = False) -> dict[str, str]:
    """The highest-risk entities now: the top `top_share` of today's scores (threshold halfway
    between the last score in and the first score out). Refused for a model no better than
    chance unless `force`."""
    assert result.scores is not None
    if result.no_better_than_chance and not force:
        raise UsageError(f"not writing `{name}`: holdout AUC {result.auc_text()}", None,
                         "add features or a longer history; --force writes the segment anyway")
    if not 0 < top_share < 1:
        raise UsageError("--top must be a share between 0 and 1", None, "e.g. --top 0.1 for the riskiest 10%")
    ordered = np.sort(result.scores.values)[::-1]
    count = max(1, int(np.ceil(top_share * len(ordered))))
    # halfway to the next score: the engine's float arithmetic may differ in the last bits
    threshold = float(ordered[-1] if count >= len(ordered) else (ordered[count - 1] + ordered[count]) / 2)
    entity = compiler.compiled(result.features).entity
    key = compiler.config.entities[entity].single_key(entity, "a propensity model")
    score = result.score_sql("f").sql(pretty=False)
    description = (f"Top {top_share:.0%} by {result.model} propensity for `{result.outcome}` within "
                   f"{result.horizon_days} days (trained on features at {result.train_as_of}; holdout AUC "
                   f"{result.auc_text()}). The score is plain SQL; refit to update the coefficients.")
    return {f"{name}.sql": (
        "{{ config(\n"
        f"    entity={entity!r},\n    description={description!r},\n    owner='analytics',\n"
        "    tags=['predictive'],\n) }}\n"
        f"SELECT f.{key}, {score} AS score\nFROM {{{{ ref({result.features!r}) }}}} AS f\n"
        f"WHERE {score} >= {threshold!r}\n")}
