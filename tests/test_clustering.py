"""Clusters to readable SQL rules: k by silhouette, rules measured honestly, written segments run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from segsql import Project
from segsql.cli.main import cli
from tests.conftest import write_files

CONFIG = """\
connection: {type: duckdb, path: data.duckdb}
sources:
  customers: {table: customers, columns: {customer_id: BIGINT, spend: DOUBLE, visits: DOUBLE, tenure: DOUBLE}}
entities:
  customer: {key: customer_id, source: customers}
"""
FEATURES = ("{{ config(entity='customer') }}\n"
            "SELECT c.customer_id, c.spend, c.visits, c.tenure FROM {{ source('customers') }} AS c")
CENTRES = [(50.0, 2.0, 30.0), (400.0, 20.0, 300.0), (1500.0, 8.0, 900.0)]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(4)
    parts = [pd.DataFrame({"spend": rng.normal(s, s * 0.08, 200), "visits": rng.normal(v, v * 0.1, 200),
                           "tenure": rng.normal(t, t * 0.08, 200)}) for s, v, t in CENTRES]
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "customer_id", np.arange(1, len(frame) + 1))
    frame.loc[5, "visits"] = np.nan  # a missing value: imputed for the fit, NULL in SQL
    connection = duckdb.connect(str(tmp_path / "data.duckdb"))
    connection.register("frame", frame)
    connection.execute("CREATE TABLE customers AS SELECT * FROM frame")
    connection.close()
    write_files(tmp_path, {"segsql.yml": CONFIG, "segments_sql/features.sql": FEATURES})
    return tmp_path


def test_k_by_silhouette_and_rules_that_recover_the_clusters(root: Path) -> None:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    project = Project.load(root)
    result = project.cluster("features", ks=[2, 3, 4, 5])
    shown = repr(result)  # readable: the rules as SQL, no syntax-tree or DataFrame dumps
    assert shown.startswith(f"Clustering(features: k = {result.k}, silhouette ") and len(shown.splitlines()) == result.k + 1
    assert "f." in shown and not any(dump in shown for dump in ("exp.", "Column(", "this=", "dtype"))
    data = duckdb.connect(str(root / "data.duckdb"), read_only=True).sql("SELECT * FROM customers").df()
    values = data[["spend", "visits", "tenure"]].fillna(data[["spend", "visits", "tenure"]].median())
    scaled = StandardScaler().fit_transform(values)
    expected = {k: silhouette_score(scaled, KMeans(n_clusters=k, n_init=10, random_state=0).fit(scaled).labels_)
                for k in (2, 3, 4, 5)}
    assert result.k == 3 == max(expected, key=lambda k: expected[k])
    assert result.silhouettes == pytest.approx(expected, rel=1e-9)
    for rule in result.rules:
        assert rule.precision is not None and rule.recall is not None
        assert rule.precision > 0.97 and rule.recall > 0.97, rule
        assert len(rule.sql) < 120  # short enough to read
    assert result.fit is not None and result.fit.agreement > 0.97 and result.fit.none + result.fit.several < 5


def first_match(data: pd.DataFrame, rules: list[Any]) -> pd.Series:
    """The cluster of each row's first matching rule (-1: none), evaluated by pandas on raw values."""
    assigned = pd.Series(-1, index=data.index)
    for rule in reversed(rules):
        condition = rule.sql.replace("f.", "").replace(" AND ", " and ").replace(" OR ", " or ")
        matched = data.eval(condition, engine="python") if condition not in ("TRUE", "FALSE") else condition == "TRUE"
        assigned[matched] = rule.cluster
    return assigned


def test_written_cluster_segments_are_the_first_matching_rule(root: Path, runner: Any) -> None:
    # old code: each segment was its rule on its own (rows could be in two segments), precision and
    # recall measured on the rows the trees were fitted on
    outcome = runner.invoke(cli, ["clusters", "features", "--project", str(root), "--k", "5", "--write", "--force"])
    assert outcome.exit_code == 0, outcome.output
    assert "wrote 5 segment file(s)" in outcome.output and "first match in cluster order" in outcome.output
    assert "k-means with k" not in outcome.output  # not a terminal: no progress bar in the output
    project = Project.load(root)
    steps: list[tuple[str, int, int]] = []
    result = project.cluster("features", k=5, progress=lambda *step: steps.append(step))
    assert [(number, count) for _, number, count in steps] == [(1, 3), (2, 3), (3, 3)]
    assert steps[1][0] == "k-means with k = 5" and steps[2][0] == "rules for 5 clusters"
    project.run()
    data = duckdb.connect(str(root / "data.duckdb"), read_only=True).sql("SELECT * FROM customers").df()
    data = data.set_index("customer_id")
    assigned = first_match(data, result.rules)
    seen: set[int] = set()
    for rule in result.rules:
        members = set(project.members(f"cluster_{rule.cluster + 1}").customer_id)
        assert members == set(assigned.index[assigned == rule.cluster]) and not members & seen
        seen |= members
    assert result.held_out is not None and result.fit is not None and result.labels is not None
    held, truth = assigned[result.held_out], result.labels[result.held_out]
    assert 0.2 * len(data) < len(held) < 0.4 * len(data)
    assert result.fit.agreement == pytest.approx((held == truth).mean(), abs=1e-12)
    matches = sum((first_match(data, [r]) == r.cluster).astype(int) for r in result.rules)[result.held_out]
    assert (result.fit.several, result.fit.none) == ((matches >= 2).sum(), (matches == 0).sum())
    for rule in result.rules:
        chosen, target = held == rule.cluster, truth == rule.cluster
        assert rule.precision == (pytest.approx((chosen & target).sum() / chosen.sum()) if chosen.sum() else None)
        assert rule.recall == pytest.approx((chosen & target).sum() / target.sum())
    assert f"agreement {result.fit.agreement:.1%}" in outcome.output
    again = runner.invoke(cli, ["clusters", "features", "--project", str(root), "--k", "5", "--write"])
    assert again.exit_code == 2 and "--force" in again.output


def test_constant_and_imprecise_rules_are_not_written_unless_forced(root: Path) -> None:
    from sqlglot import exp

    from segsql.errors import UsageError
    from segsql.methods.clustering import segment_files

    project = Project.load(root)
    result = project.cluster("features", k=3)
    assert result.problems() == []
    good = result.rules[0]
    result.rules[1].condition, result.rules[1].paths = exp.false(), []  # the 6-account cluster
    result.rules[2].precision = 0.3
    with pytest.raises(UsageError, match="2 rule") as caught:
        segment_files(project.compiler, result, "cluster")
    assert "cluster 2: the rule is FALSE" in caught.value.message and "precision 0.30" in caught.value.message
    assert "--force" in (caught.value.hint or "")
    files = segment_files(project.compiler, result, "cluster", force=True)
    assert good.sql in files["cluster_1.sql"] and "COALESCE((FALSE), FALSE)" in files["cluster_3.sql"]
    # the table `segsql clusters` prints numbers them as the files and messages do (it said 0, 1, 2)
    assert list(result.summary()["cluster"]) == [int(f.removeprefix("cluster_").removesuffix(".sql")) for f in files]


def test_bad_clustering_input(root: Path, runner: Any) -> None:
    write_files(root, {"segments_sql/keys_only.sql": "{{ config(entity='customer') }}\n"
                       "SELECT c.customer_id FROM {{ source('customers') }} AS c"})
    outcome = runner.invoke(cli, ["clusters", "keys_only", "--project", str(root)])
    assert outcome.exit_code == 2 and "no numeric columns" in outcome.output
    outcome = runner.invoke(cli, ["clusters", "features", "--project", str(root), "--k", "two"])
    assert outcome.exit_code == 2 and "--k `two`" in outcome.output
