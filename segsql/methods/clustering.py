"""Clusters the analyst can read: k-means on a features segment, each cluster explained by a short
SQL rule, written out as ordinary segment files.

1. Features: the numeric columns of a segment (key + features), evaluated in the engine; missing
   values are replaced by the column median; features are standardised (z-scores).
2. k-means (scikit-learn, n_init=10, fixed seed) for each k in `ks`; the k with the highest
   silhouette score (computed on up to 5,000 rows) wins unless `k` is given.
3. Per cluster, a decision tree of depth `max_depth` (unscaled features, so thresholds are in the
   data's units) separates the cluster from the rest; the leaves it assigns to the cluster become a
   WHERE clause (OR of ANDs). The trees are fitted on 70% of the rows (seeded); the other 30%
   (held out) measure the rules.
4. Written as segments the rules are mutually exclusive, first match in cluster order: segment i
   holds the rows that match rule i and none of rules 1..i-1 (a rule on a NULL feature does not
   match). Per cluster, precision (share of the segment's held-out rows in the cluster) and
   recall (share of the cluster's held-out rows in the segment) are of this exclusive rule.
   Overall: agreement = share of held-out rows whose first matching rule is their cluster (rows
   no rule matches count as misses); also the held-out rows matching several rules and none.
5. Refused when writing (unless forced): a constant rule (TRUE or FALSE: the tree found no split
   for the cluster), and a rule with held-out precision below PRECISION_FLOOR or not measurable
   (no held-out row selected).
The analyst keeps SQL, not a model binary: edit the rule, rerun, the segment stays a segment.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlglot import exp

from segsql import formats
from segsql.errors import UsageError
from segsql.methods.features import feature_frame

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine

SILHOUETTE_SAMPLE = 5000
HOLDOUT_SHARE = 0.3
PRECISION_FLOOR = 0.5


@dataclass
class ClusterRule:
    cluster: int
    size: int
    condition: exp.Expr  # on columns of alias `f`, on its own (may overlap other rules)
    precision: float | None  # of the exclusive rule, on held-out rows (None: selects none of them)
    recall: float | None  # None: no held-out row is in the cluster
    centre: dict[str, float]  # cluster means in the data's units
    paths: list[list[tuple[str, str, float]]] = field(default_factory=list)

    @property
    def sql(self) -> str:
        return self.condition.sql()

    def __repr__(self) -> str:
        return (f"ClusterRule(cluster {self.cluster + 1}: {formats.count(self.size)} members, held-out precision "
                f"{_share(self.precision)}, recall {_share(self.recall)}; {self.sql})")

    @property
    def constant(self) -> bool:
        return isinstance(self.condition, exp.Boolean)

    def problem(self) -> str:
        """Why this rule should not become a segment ("" when it may)."""
        if self.constant:
            return f"cluster {self.cluster + 1}: the rule is {self.sql} (no split separates it)"
        if self.precision is None:
            return f"cluster {self.cluster + 1}: the rule selects no held-out row, its precision is unknown"
        if self.precision < PRECISION_FLOOR:
            return f"cluster {self.cluster + 1}: held-out precision {self.precision:.2f} < {PRECISION_FLOOR}"
        return ""


@dataclass(frozen=True)
class Fit:
    """How the rules together match the clusters on the held-out rows (first match wins)."""
    rows: int
    agreement: float
    several: int  # rows matching two or more rules
    none: int  # rows matching no rule

    def text(self) -> str:
        return (f"on {self.rows:,} held-out rows: agreement {self.agreement:.1%} (first matching rule = cluster), "
                f"{self.several:,} rows match several rules, {self.none:,} match none")


@dataclass
class Clustering:
    features: str
    k: int
    silhouettes: dict[int, float]
    rules: list[ClusterRule] = field(default_factory=list)
    labels: pd.Series | None = None
    fit: Fit | None = None
    held_out: pd.Index | None = None  # keys of the rows that measure the rules

    def _repr_html_(self) -> str:
        scores = ", ".join(f"k={k}: {v:.3f}" for k, v in self.silhouettes.items())
        fit = f"<p>rules {html.escape(self.fit.text())}</p>" if self.fit else ""
        return (f"<p>k-means on <b>{html.escape(self.features)}</b>: k = {self.k} (silhouette {scores})</p>{fit}"
                f"{self.summary().to_html(index=False, float_format=formats.number)}")

    def __repr__(self) -> str:
        """Short and readable (the rules as SQL text, not their syntax trees)."""
        silhouette = self.silhouettes.get(self.k)
        lines = [f"Clustering({self.features}: k = {self.k}, silhouette {_share(silhouette)}"
                 + (f"; rules {self.fit.text()}" if self.fit else "") + ")"]
        lines += [f"  cluster {r.cluster + 1}: {formats.count(r.size)} members, precision {_share(r.precision)}, "
                  f"recall {_share(r.recall)}: {r.sql}" for r in self.rules]
        return "\n".join(lines)

    def problems(self) -> list[str]:
        return [problem for rule in self.rules if (problem := rule.problem())]

    def summary(self) -> pd.DataFrame:
        """Per cluster: size, its rule on its own, and the held-out precision/recall of the
        exclusive rule (first match in cluster order). Clusters are numbered from 1, as the
        messages and the segment files (`cluster_1.sql`) name them."""
        return pd.DataFrame([{"cluster": r.cluster + 1, "size": r.size, "rule": r.sql, "precision": r.precision,
                              "recall": r.recall, **{f"mean_{k}": v for k, v in r.centre.items()}}
                             for r in self.rules])


def require_sklearn() -> Any:
    try:
        import sklearn
    except ImportError:
        raise UsageError("clustering and propensity need scikit-learn", None,
                         "pip install 'segsql[methods]'") from None
    return sklearn


# A long step's progress: (the step just done, its 1-based number, how many steps in all).
StepProgress = Callable[[str, int, int], None]


def cluster(compiler: Compiler, engine: Engine, features: str, ks: list[int] | None = None, k: int | None = None,
            max_depth: int = 2, seed: int = 0, progress: StepProgress | None = None) -> Clustering:
    """k-means for each k of `ks` (one step each for `progress`, after reading the features),
    the best by silhouette, each of its clusters explained by a rule (one step more)."""
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
    steps = len(candidates) + 2
    if progress is not None:
        progress(f"read {len(frame):,} rows of {features}", 1, steps)
    for number, count in enumerate(candidates, start=2):
        model = KMeans(n_clusters=count, n_init=10, random_state=seed).fit(scaled)
        models[count] = model
        scores[count] = float(silhouette_score(scaled[sample], model.labels_[sample]))
        if progress is not None:
            progress(f"k-means with k = {count}", number, steps)
    best = max(scores, key=lambda c: (scores[c], -c))
    labels = pd.Series(models[best].labels_, index=frame.index, name="cluster")
    result = Clustering(features, best, scores, labels=labels)
    held_out = np.random.default_rng(seed).random(len(frame)) < HOLDOUT_SHARE
    for number in range(best):
        rule = _explain(filled[~held_out], columns, labels[~held_out], number, max_depth, seed)
        rule.size = int((labels == number).sum())
        result.rules.append(rule)
    result.fit = _measure(result.rules, raw[held_out], labels[held_out].to_numpy())
    result.held_out = frame.index[held_out]
    if progress is not None:
        progress(f"rules for {best} clusters", steps, steps)
    return result


def _explain(frame: pd.DataFrame, columns: list[str], labels: pd.Series, number: int, depth: int,
             seed: int) -> ClusterRule:
    """The rule for cluster `number`, fitted on the training rows' median-filled values."""
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
    centre = {c: float(frame.loc[target, c].mean()) for c in columns}
    return ClusterRule(number, int((labels == number).sum()), condition, None, None, centre, paths)


def _measure(rules: list[ClusterRule], raw: pd.DataFrame, truth: np.ndarray) -> Fit:
    """Precision/recall of each exclusive rule and the overall fit on held-out raw values, as
    SQL sees them (NULL never satisfies a comparison)."""
    matches = np.array([_evaluate(raw, rule.paths) for rule in rules]).reshape(len(rules), len(raw))
    first = np.where(matches.any(axis=0), matches.argmax(axis=0), -1)
    for index, rule in enumerate(rules):
        chosen, target = first == index, truth == rule.cluster
        hits = int((chosen & target).sum())
        rule.precision = hits / int(chosen.sum()) if chosen.sum() else None
        rule.recall = hits / int(target.sum()) if target.sum() else None
    covered = matches.sum(axis=0)
    agreement = float((first == truth).mean()) if len(truth) else 0.0
    return Fit(len(truth), agreement, int((covered >= 2).sum()), int((covered == 0).sum()))


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
            values = frame[column].to_numpy(dtype=float)
            mask &= values <= value if op == "<=" else values > value
        chosen |= mask
    return chosen


def exclusive_conditions(rules: list[ClusterRule]) -> list[exp.Expr]:
    """Rule i AND NOT rule j for every earlier j (first match wins; a NULL match counts as none)."""
    conditions = []
    for index, rule in enumerate(rules):
        earlier = [exp.not_(exp.func("coalesce", exp.paren(other.condition.copy()), exp.false()))
                   for other in rules[:index]]
        conditions.append(exp.and_(exp.paren(rule.condition.copy()), *earlier) if earlier else rule.condition.copy())
    return conditions


def segment_files(compiler: Compiler, result: Clustering, prefix: str, force: bool = False) -> dict[str, str]:
    """One segment per cluster: the exclusive rule (first match in cluster order) as the WHERE
    over the features segment. Constant or imprecise rules are refused unless `force`."""
    problems = result.problems()
    if problems and not force:
        raise UsageError(f"{len(problems)} rule(s) should not become segments: {'; '.join(problems)}", None,
                         "try another --k or --depth, or --force to write them anyway")
    entity = compiler.compiled(result.features).entity
    key = compiler.config.entities[entity].single_key(entity, "clustering")
    fit = f" Together the rules, {result.fit.text()}." if result.fit else ""
    files = {}
    for rule, condition in zip(result.rules, exclusive_conditions(result.rules), strict=True):
        typical = ", ".join(f"{c} ≈ {v:,.3g}" for c, v in list(rule.centre.items())[:4])
        earlier = f"rows that match none of the rules of clusters 1-{rule.cluster} and " if rule.cluster else ""
        description = (f"Cluster {rule.cluster + 1} of {result.k} (k-means on {result.features}, silhouette "
                       f"{result.silhouettes[result.k]:.2f}): {rule.size:,} members; this segment holds "
                       f"the {earlier}match its rule: held-out precision {_share(rule.precision)} and recall "
                       f"{_share(rule.recall)} against the cluster.{fit} Typical: {typical}.")
        columns = ", ".join(f"f.{c}" for c in rule.centre)
        files[f"{prefix}_{rule.cluster + 1}.sql"] = (
            "{{ config(\n"
            f"    entity={entity!r},\n    description={description!r},\n    owner='analytics',\n"
            "    tags=['cluster'],\n) }}\n"
            f"SELECT f.{key}, {columns}\nFROM {{{{ ref({result.features!r}) }}}} AS f\n"
            f"WHERE {condition.sql(pretty=False)}\n")
    return files


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"

