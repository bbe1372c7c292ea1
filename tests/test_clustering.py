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
    data = duckdb.connect(str(root / "data.duckdb"), read_only=True).sql("SELECT * FROM customers").df()
    values = data[["spend", "visits", "tenure"]].fillna(data[["spend", "visits", "tenure"]].median())
    scaled = StandardScaler().fit_transform(values)
    expected = {k: silhouette_score(scaled, KMeans(n_clusters=k, n_init=10, random_state=0).fit(scaled).labels_)
                for k in (2, 3, 4, 5)}
    assert result.k == 3 == max(expected, key=lambda k: expected[k])
    assert result.silhouettes == pytest.approx(expected, rel=1e-9)
    for rule in result.rules:
        assert rule.precision > 0.97 and rule.recall > 0.97, rule
        assert len(rule.sql) < 120  # short enough to read


def test_written_cluster_segments_select_what_the_rule_says(root: Path, runner: Any) -> None:
    outcome = runner.invoke(cli, ["clusters", "features", "--project", str(root), "--k", "3", "--write"])
    assert outcome.exit_code == 0, outcome.output
    assert "wrote 3 segment file(s)" in outcome.output
    project = Project.load(root)
    result = project.cluster("features", k=3)
    project.run()
    data = duckdb.connect(str(root / "data.duckdb"), read_only=True).sql("SELECT * FROM customers").df()
    for rule in result.rules:
        members = set(project.members(f"cluster_{rule.cluster + 1}").customer_id)
        condition = rule.sql.replace("f.", "").replace(" AND ", " and ").replace(" OR ", " or ")
        selected = set(data.query(condition.replace("(", "(").replace("<=", "<="), engine="python").customer_id)
        assert members == selected
        truth = set(result.labels[result.labels == rule.cluster].index)
        assert len(members & truth) / len(members) == pytest.approx(rule.precision)
        assert len(members & truth) / len(truth) == pytest.approx(rule.recall)
        text = (root / "segments_sql" / "clusters" / f"cluster_{rule.cluster + 1}.sql").read_text()
        assert f"precision {rule.precision:.2f} and recall {rule.recall:.2f}" in text
    again = runner.invoke(cli, ["clusters", "features", "--project", str(root), "--k", "3", "--write"])
    assert again.exit_code == 2 and "--force" in again.output


def test_bad_clustering_input(root: Path, runner: Any) -> None:
    write_files(root, {"segments_sql/keys_only.sql": "{{ config(entity='customer') }}\n"
                       "SELECT c.customer_id FROM {{ source('customers') }} AS c"})
    outcome = runner.invoke(cli, ["clusters", "keys_only", "--project", str(root)])
    assert outcome.exit_code == 2 and "no numeric columns" in outcome.output
    outcome = runner.invoke(cli, ["clusters", "features", "--project", str(root), "--k", "two"])
    assert outcome.exit_code == 2 and "--k `two`" in outcome.output
