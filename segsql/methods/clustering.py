"""Clusters the analyst can read: k-means on a features segment, each cluster explained by a short
SQL rule, written out as ordinary segment files.

1. Features: the numeric columns of a segment (key + features), evaluated in the engine; missing
   values are replaced by the column median; features are standardised (z-scores).
2. k-means (scikit-learn, n_init=10, fixed seed) for each k in `ks`; the k with the highest
   silhouette score (computed on up to 5,000 rows) wins unless `k` is given.
3. Per cluster, a decision tree of depth `max_depth` (unscaled features, so thresholds are in the
   data's units) separates the cluster from the rest; the leaves it assigns to the cluster become a
   WHERE clause (OR of ANDs). Precision and recall of the rule against the cluster are measured on
   the same rows and written into the segment's description.
The analyst keeps SQL, not a model binary: edit the rule, rerun, the segment stays a segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlglot import exp

from segsql.errors import UsageError
from segsql.methods.features import feature_frame

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine

SILHOUETTE_SAMPLE = 5000


@dataclass
class ClusterRule:
    cluster: int
    size: int
    condition: exp.Expr  # on columns of alias `f`
    precision: float
    recall: float
    centre: dict[str, float]  # cluster means in the data's units

    @property
    def sql(self) -> str:
        return self.condition.sql()


@dataclass
class Clustering:
    features: str
    k: int
    silhouettes: dict[int, float]
    rules: list[ClusterRule] = field(default_factory=list)
    labels: pd.Series | None = None

    def _repr_html_(self) -> str:
        scores = ", ".join(f"k={k}: {v:.3f}" for k, v in self.silhouettes.items())
        return (f"<p>k-means on <b>{self.features}</b>: k = {self.k} (silhouette {scores})</p>"
                f"{self.summary().to_html(index=False, float_format=lambda v: f'{v:.3g}')}")

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([{"cluster": r.cluster, "size": r.size, "rule": r.sql, "precision": r.precision,
                              "recall": r.recall, **{f"mean_{k}": v for k, v in r.centre.items()}}
                             for r in self.rules])


def require_sklearn() -> Any:
    try:
        import sklearn
    except ImportError:
        raise UsageError("clustering and propensity need scikit-learn", None,
                         "pip install 'segsql[methods]'") from None
    return sklearn


def cluster(compiler: Compiler, engine: Engine, features: str, ks: list[int] | None = None, k: int | None = None,
            max_depth: int = 2, seed: int = 0) -> Clustering:
    require_sklearn()
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler


    raw, _, columns = feature_frame(compiler, engine, features)
    frame = raw
    if len(frame) < 10:
        raise UsageError(f"segment `{features}` has {len(frame)} rows; clustering needs at least 10", None)
    filled = frame.fillna(frame.median())
    scaled = StandardScaler().fit_transform(filled.values)
    candidates = [k] if k is not None else (ks or list(range(2, 9)))
    if any(c < 2 or c >= len(frame) for c in candidates):
        raise UsageError("k must be at least 2 and below the number of rows", None, "e.g. --k 2-6")
    scores: dict[int, float] = {}
    models = {}
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(scaled), size=min(len(scaled), SILHOUETTE_SAMPLE), replace=False)
    for count in candidates:
        model = KMeans(n_clusters=count, n_init=10, random_state=seed).fit(scaled)
        models[count] = model
        scores[count] = float(silhouette_score(scaled[sample], model.labels_[sample]))
    best = max(scores, key=lambda c: (scores[c], -c))
    labels = pd.Series(models[best].labels_, index=frame.index, name="cluster")
    result = Clustering(features, best, scores, labels=labels)
    for number in range(best):
        result.rules.append(_explain(filled, raw, columns, labels, number, max_depth, seed))
    return result


def _explain(frame: pd.DataFrame, raw: pd.DataFrame, columns: list[str], labels: pd.Series, number: int,
             depth: int, seed: int) -> ClusterRule:
    """Fit on median-filled values; measure the rule on the raw ones, as SQL sees them (NULL never
    satisfies a comparison)."""
    from sklearn.tree import DecisionTreeClassifier

    target = (labels == number).to_numpy()
    tree = DecisionTreeClassifier(max_depth=depth, random_state=seed,
                                  min_samples_leaf=max(5, len(frame) // 100)).fit(frame[columns].values, target)
    paths = _positive_paths(tree, columns)
    if not paths:
        condition: exp.Expr = exp.false()
    else:
        condition = exp.or_(*[exp.and_(*[_test(c, op, v) for c, op, v in path]) if path else exp.true()
                              for path in paths])
    chosen = _evaluate(raw, paths)
    hits = int((chosen & target).sum())
    precision = hits / int(chosen.sum()) if chosen.sum() else 0.0
    recall = hits / int(target.sum()) if target.sum() else 0.0
    centre = {c: float(frame.loc[target, c].mean()) for c in columns}
    return ClusterRule(number, int(target.sum()), condition, precision, recall, centre)


Path = list[tuple[str, str, float]]


def _positive_paths(tree: Any, columns: list[str]) -> list[Path]:
    """Root-to-leaf conditions of the leaves whose majority is the cluster."""
    inner = tree.tree_

    def walk(node: int, path: Path) -> tuple[list[Path], bool]:
        """(positive paths below node, whether every leaf below is positive)."""
        if inner.children_left[node] == -1:
            counts = inner.value[node][0]
            positive = bool(len(counts) > 1 and counts[1] > counts[0])
            return ([path] if positive else []), positive
        column, threshold = columns[inner.feature[node]], _round(float(inner.threshold[node]))
        left, left_all = walk(inner.children_left[node], [*path, (column, "<=", threshold)])
        right, right_all = walk(inner.children_right[node], [*path, (column, ">", threshold)])
        if left_all and right_all:  # both sides in the cluster: the split says nothing
            return [path], True
        return left + right, False

    return walk(0, [])[0]


def _round(value: float) -> float:
    """Thresholds with 6 significant digits: readable, and evaluated identically in SQL and pandas."""
    return float(f"{value:.6g}")


def _test(column: str, op: str, value: float) -> exp.Expr:
    left, right = exp.column(column, "f"), exp.Literal.number(repr(value))
    return exp.LTE(this=left, expression=right) if op == "<=" else exp.GT(this=left, expression=right)


def _evaluate(frame: pd.DataFrame, paths: list[Path]) -> np.ndarray:
    chosen = np.zeros(len(frame), dtype=bool)
    for path in paths:
        mask = np.ones(len(frame), dtype=bool)
        for column, op, value in path:
            values = frame[column].to_numpy()
            mask &= values <= value if op == "<=" else values > value
        chosen |= mask
    return chosen


def segment_files(compiler: Compiler, result: Clustering, prefix: str) -> dict[str, str]:
    """One segment per cluster: the rule as the WHERE over the features segment."""
    entity = compiler.compiled(result.features).entity
    key = compiler.config.entities[entity].key
    files = {}
    for rule in result.rules:
        typical = ", ".join(f"{c} ≈ {v:,.3g}" for c, v in list(rule.centre.items())[:4])
        description = (f"Cluster {rule.cluster + 1} of {result.k} (k-means on {result.features}, silhouette "
                       f"{result.silhouettes[result.k]:.2f}): {rule.size:,} members; this rule has precision "
                       f"{rule.precision:.2f} and recall {rule.recall:.2f} against the cluster. Typical: {typical}.")
        columns = ", ".join(f"f.{c}" for c in rule.centre)
        files[f"{prefix}_{rule.cluster + 1}.sql"] = (
            "{{ config(\n"
            f"    entity={entity!r},\n    description={description!r},\n    owner='analytics',\n"
            "    tags=['cluster'],\n) }}\n"
            f"SELECT f.{key}, {columns}\nFROM {{{{ ref({result.features!r}) }}}} AS f\n"
            f"WHERE {rule.condition.sql(pretty=False)}\n")
    return files
