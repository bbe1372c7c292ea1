"""compare/overlap/waterfall/prioritize on real DuckDB data, checked against pandas and scipy."""

from __future__ import annotations

import itertools
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportions_ztest

from segsql import ConfigError, Project, UsageError
from tests.conftest import AS_OF, write_files

CONFIG = """\
connection: {type: duckdb, path: data.duckdb}
sources:
  accounts: {table: accounts}
  revenue: {table: revenue}
  tickets: {table: tickets}
entities:
  account: {key: account_id, source: accounts}
"""
METRICS = """\
metrics:
  churned:
    entity: account
    kind: proportion
    source: accounts
    numerator: "MAX(CASE WHEN churned THEN 1 ELSE 0 END)"
    denominator: "1"
  mrr_mean:
    entity: account
    kind: mean
    source: revenue
    numerator: "SUM(mrr)"
  retention:
    entity: account
    kind: ratio
    source: revenue
    numerator: "SUM(mrr)"
    denominator: "NULLIF(SUM(start_mrr), 0)"
  tickets_rate:
    entity: account
    kind: rate
    source: tickets
    numerator: "SUM(n)"
    denominator: "SUM(months)"
  mrr_total:
    entity: account
    kind: sum
    source: revenue
    numerator: "SUM(mrr)"
  nothing:
    entity: account
    kind: mean
    source: revenue
    numerator: "MAX(CASE WHEN mrr < 0 THEN mrr END)"
"""
CFG = "{{ config(entity='account') }}\n"
SEGMENTS = {
    "big": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.employees >= 100",
    "dach": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.region = 'DACH' AND a.employees >= 10 "
                  "AND a.account_id > 5",
    "empty": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.employees < 0",
    "everyone": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a",
    "tiny": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.account_id IN (1, 2, 3)",
    "no_revenue": CFG + "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.account_id NOT IN "
                        "(SELECT r.account_id FROM {{ source('revenue') }} AS r)",
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, pd.DataFrame]:
    root = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(3)
    n = 600
    accounts = pd.DataFrame({
        "account_id": np.arange(1, n + 1), "employees": rng.integers(1, 400, n),
        "region": rng.choice(["DACH", "UKI", "NA"], n), "churned": rng.random(n) < 0.2})
    revenue = pd.DataFrame({"account_id": accounts.account_id, "mrr": rng.lognormal(6, 0.5, n),
                            "start_mrr": rng.lognormal(6, 0.5, n)}).sample(frac=0.9, random_state=1)
    tickets = pd.DataFrame({"account_id": accounts.account_id, "n": rng.poisson(2, n), "months": rng.integers(1, 4, n)})
    connection = duckdb.connect(str(root / "data.duckdb"))
    for name, frame in (("accounts", accounts), ("revenue", revenue), ("tickets", tickets)):
        connection.register("frame", frame)
        connection.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
        connection.unregister("frame")
    connection.close()
    write_files(root, {"segsql.yml": CONFIG, "metrics.yml": METRICS,
                       **{f"segments_sql/{k}.sql": v for k, v in SEGMENTS.items()}})
    project = Project.load(root, as_of=AS_OF)
    project.run()
    merged = accounts.merge(revenue, on="account_id", how="left").merge(tickets, on="account_id", how="left")
    return project, merged


def test_compare_matches_pandas_and_scipy(data: tuple[Project, pd.DataFrame]) -> None:
    project, frame = data
    comparison = project.compare(["big", "dach"], ["churned", "mrr_mean", "retention", "tickets_rate", "mrr_total"])
    big = frame.employees >= 100
    row = comparison.tables["churned"].set_index("segment").loc["big"]
    assert (row.members, row.measured) == (big.sum(), big.sum())
    assert row.value == pytest.approx(frame.churned[big].mean(), abs=1e-12)
    assert row.baseline == pytest.approx(frame.churned[~big].mean(), abs=1e-12)
    _, p_value = proportions_ztest([frame.churned[big].sum(), frame.churned[~big].sum()], [big.sum(), (~big).sum()])
    assert row.p_value == pytest.approx(p_value, abs=1e-9)
    row = comparison.tables["mrr_mean"].set_index("segment").loc["big"]
    values, rest = frame.mrr[big].dropna(), frame.mrr[~big].dropna()
    assert row.measured == len(values)  # accounts without revenue rows are not measured
    assert row.p_value == pytest.approx(scipy_stats.ttest_ind(values, rest, equal_var=False).pvalue, abs=1e-9)
    row = comparison.tables["retention"].set_index("segment").loc["big"]
    assert row.value == pytest.approx(frame.mrr[big].sum() / frame.start_mrr[big].sum(), rel=1e-12)
    row = comparison.tables["tickets_rate"].set_index("segment").loc["big"]
    assert row.value == pytest.approx(frame.n[big].sum() / frame.months[big].sum(), rel=1e-12)
    row = comparison.tables["mrr_total"].set_index("segment").loc["big"]
    assert row.value == pytest.approx(frame.mrr[big].sum(), rel=1e-12) and pd.isna(row.p_value)


def test_baselines(data: tuple[Project, pd.DataFrame]) -> None:
    project, frame = data
    big = frame.employees >= 100
    dach = (frame.region == "DACH") & (frame.employees >= 10) & (frame.account_id > 5)
    all_row = project.compare(["big"], ["churned"], baseline="all").tables["churned"].iloc[0]
    assert all_row.baseline == pytest.approx(frame.churned.mean(), abs=1e-12)
    seg_row = project.compare(["big"], ["churned"], baseline="dach").tables["churned"].iloc[0]
    assert seg_row.baseline == pytest.approx(frame.churned[dach].mean(), abs=1e-12)
    assert seg_row.value == pytest.approx(frame.churned[big].mean(), abs=1e-12)


def test_edge_segments_give_notes_not_nan_surprises(data: tuple[Project, pd.DataFrame]) -> None:
    project, _ = data
    table = project.compare(["empty", "everyone"], ["churned", "mrr_mean"]).tables
    empty, everyone = table["churned"].set_index("segment").loc["empty"], table["churned"].set_index("segment").loc["everyone"]
    assert empty.members == 0 and empty.note == "no member has a value" and empty.significant is None
    assert everyone.note == "baseline: no member has a value" and everyone.value is not None


def test_metric_that_is_null_for_everyone(data: tuple[Project, pd.DataFrame]) -> None:
    project, _ = data
    row = project.compare(["big"], ["nothing"]).tables["nothing"].iloc[0]
    assert row.measured == 0 and pd.isna(row.value) and row.note == "no member has a value"
    assert row.significant is None and pd.isna(row.p_value)


def test_compare_is_one_engine_query(data: tuple[Project, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    from segsql.engines.duckdb import DuckDBEngine

    project, _ = data
    calls: list[str] = []
    original = DuckDBEngine.fetchall

    def counting(self, statement, params=()):  # type: ignore[no-untyped-def]
        calls.append(self.sql(statement))
        return original(self, statement, params)

    monkeypatch.setattr(DuckDBEngine, "fetchall", counting)
    project.compare(["big", "dach", "empty"], ["churned", "mrr_mean", "retention", "tickets_rate"])
    # one aggregation over the data, besides catalog and run-record lookups (the dates of the runs)
    aggregations = [sql for sql in calls if "information_schema" not in sql and "segsql.runs" not in sql]
    assert len(aggregations) == 1, aggregations


def test_overlap_matches_sets(data: tuple[Project, pd.DataFrame]) -> None:
    project, frame = data
    big = set(frame.account_id[frame.employees >= 100])
    dach = set(frame.account_id[(frame.region == "DACH") & (frame.employees >= 10) & (frame.account_id > 5)])
    row = project.overlap(["big", "dach", "empty"]).set_index(["left", "right"]).loc[("big", "dach")]
    assert row.shared == len(big & dach) and row.jaccard == pytest.approx(len(big & dach) / len(big | dach))
    empty_row = project.overlap(["big", "empty"]).set_index(["left", "right"]).loc[("empty", "empty")]
    assert empty_row.shared == 0 and pd.isna(empty_row.jaccard)


def test_waterfall_counts_each_condition(data: tuple[Project, pd.DataFrame]) -> None:
    project, frame = data
    steps = project.waterfall("dach")
    after_region = frame.region == "DACH"
    after_size = after_region & (frame.employees >= 10)
    expected = [len(frame), after_region.sum(), after_size.sum(), (after_size & (frame.account_id > 5)).sum()]
    assert steps.remaining.tolist() == expected
    assert steps.removed.tolist() == [0, *[a - b for a, b in itertools.pairwise(expected)]]
    assert steps.condition.tolist()[1] == "a.region = 'DACH'"
    assert steps.condition.tolist()[0] == "distinct account_id in FROM/JOIN"  # members, as every later step counts
    with pytest.raises(UsageError, match="no WHERE"):
        project.waterfall("everyone")


def test_prioritize_assigns_each_entity_once(data: tuple[Project, pd.DataFrame]) -> None:
    project, frame = data
    big = set(frame.account_id[frame.employees >= 100])
    dach = set(frame.account_id[(frame.region == "DACH") & (frame.employees >= 10) & (frame.account_id > 5)])
    result = project.prioritize(["dach", "big"])
    assert result.counts.assigned.tolist() == [len(dach), len(big - dach)]
    suppressed = project.prioritize(["dach", "big"], suppress="dach")
    assert suppressed.counts.assigned.tolist() == [0, len(big - dach)]
    assert suppressed.suppressed == len(dach) + len(big & dach)


def test_roi(data: tuple[Project, pd.DataFrame]) -> None:
    project, frame = data
    roi = project.compare(["big"], ["churned"], costs={"big": 1000.0}, roi_metric="mrr_total").roi
    revenue = frame.mrr[frame.employees >= 100].sum()
    assert roi.iloc[0].roi == pytest.approx((revenue - 1000) / 1000)
    with pytest.raises(UsageError, match="must be a sum metric"):
        project.compare(["big"], ["churned"], costs={"big": 1.0}, roi_metric="churned")


def test_unknown_metric_and_mixed_entities(data: tuple[Project, pd.DataFrame]) -> None:
    project, _ = data
    with pytest.raises(Exception, match="unknown metric `churnd`") as caught:
        project.compare(["big"], ["churnd"])
    assert caught.value.hint == "did you mean `churned`?"


@pytest.mark.parametrize(("metrics_yml", "fragment", "line"), [
    ("metrics:\n  m:\n    entity: acount\n    kind: mean\n    source: accounts\n    numerator: x\n", "unknown entity", 3),
    ("metrics:\n  m:\n    entity: account\n    kind: median\n    source: accounts\n    numerator: x\n", "`metrics.m.kind`", 4),
    ("metrics:\n  m:\n    entity: account\n    kind: proportion\n    source: accounts\n    numerator: '1'\n",
     "needs a 0/1 `denominator`", 4),
    ("metrics:\n  m:\n    entity: account\n    kind: mean\n    source: accounts\n    numerator: SUM(nope)\n",
     "unknown column `nope`", 2),
])
def test_metric_config_errors(tmp_path: Path, metrics_yml: str, fragment: str, line: int) -> None:
    write_files(tmp_path, {"segsql.yml": CONFIG.replace("connection: {type: duckdb, path: data.duckdb}\n", "")
                           .replace("{table: accounts}", "{table: accounts, columns: {account_id: BIGINT}}"),
                           "metrics.yml": metrics_yml})
    project = Project.load(tmp_path, as_of=AS_OF)
    with pytest.raises(ConfigError) as caught:
        from segsql.measure.metrics import entity_query

        entity_query(project.compiler, project.metrics["m"])
    assert fragment in caught.value.message and caught.value.line == line and caught.value.path == "metrics.yml"


def test_tiny_segment_gets_a_permutation_test_from_one_more_query(data: tuple[Project, pd.DataFrame],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from segsql.measure import compare as compare_module
    from segsql.measure.stats import Values, permutation_p_value

    project, frame = data
    row = project.compare(["tiny"], ["retention", "mrr_mean"]).tables["retention"].iloc[0]
    measured = frame[frame.mrr.notna()]
    own, rest = measured[measured.account_id <= 3], measured[measured.account_id > 3]
    assert row.measured == len(own) and row.test.startswith("permutation test")
    expected = permutation_p_value(Values.of(own.mrr, own.start_mrr), Values.of(rest.mrr, rest.start_mrr))
    assert row.p_value == pytest.approx(expected, abs=1e-12)  # same values, same seed
    monkeypatch.setattr(compare_module, "RESAMPLE_LIMIT", 10)
    row = project.compare(["tiny"], ["retention"]).tables["retention"].iloc[0]
    assert pd.isna(row.p_value) and row.test == "none (too few to test)" and "members measured" in row.note


def test_sum_over_accounts_without_rows_is_zero(data: tuple[Project, pd.DataFrame]) -> None:
    project, frame = data
    row = project.compare(["no_revenue"], ["mrr_total"]).tables["mrr_total"].iloc[0]
    assert row.members == frame.mrr.isna().sum() and row.measured == 0
    assert row.value == 0 and "sum is 0" in row.note


def test_cli_json_output_needs_no_dataframe_library_and_keeps_full_precision(data: tuple[Project, pd.DataFrame]) -> None:
    """`segsql compare --format json` as a whole process imports neither pandas nor scipy nor
    statsmodels (together ~1.7 s of CPU, four times the query; issue #20), and writes every digit
    (pandas' to_json kept 10 decimals: a p-value of 4e-12 became 0)."""
    import json
    import subprocess
    import sys

    from tests.test_cli import _imported_after

    project, _ = data
    arguments = ["compare", "big", "dach", "tiny", "--metrics", "churned,mrr_mean,retention,tickets_rate,mrr_total",
                 "--project", str(project.root), "--as-of", str(AS_OF), "--format", "json"]
    assert _imported_after(*arguments) & {"pandas", "scipy", "statsmodels"} == set()
    done = subprocess.run([sys.executable, "-m", "segsql", *arguments], capture_output=True, text=True, timeout=300,
                          check=True)
    printed = json.loads(done.stdout)
    expected = project.compare(["big", "dach", "tiny"], ["churned", "mrr_mean", "retention", "tickets_rate",
                                                         "mrr_total"]).records()
    assert [(row["metric"], row["segment"]) for row in printed] == [(row["metric"], row["segment"]) for row in expected]
    columns = ("value", "diff", "ci_low", "ci_high", "p_value")
    for shown, row in zip(printed, expected, strict=True):
        for column in columns:
            # DuckDB's parallel float sums vary in the last bits between processes, and a difference
            # of two close values (diff, its CI) magnifies that: 1e-9, not equality
            assert shown[column] == (None if row[column] is None else pytest.approx(row[column], rel=1e-9, abs=0))
    small = [row[c] for row in printed for c in columns if isinstance(row[c], float) and 0 < abs(row[c]) < 1e-2]
    assert small and all(round(value, 10) != value for value in small)  # more digits than pandas' 10 decimals
