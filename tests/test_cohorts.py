"""Cohort retention against a pandas re-implementation: gaps as zeros, weeks, start dates, revenue, segments."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from segsql import Project
from segsql.errors import UsageError
from tests.conftest import write_files

CONFIG = """\
connection: {type: duckdb, path: data.duckdb}
sources:
  customers: {table: customers, columns: {customer_id: BIGINT, started_on: DATE, plan: VARCHAR}}
  activity: {table: activity, columns: {customer_id: BIGINT, seen_at: TIMESTAMP, mrr: DOUBLE}}
entities:
  customer: {key: customer_id, source: customers}
"""
AS_OF = dt.date(2026, 6, 15)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, pd.DataFrame, pd.DataFrame]:
    root = tmp_path_factory.mktemp("cohorts")
    rng = np.random.default_rng(5)
    customers = pd.DataFrame({"customer_id": np.arange(1, 301),
                              "started_on": [dt.date(2025, 1, 1) + dt.timedelta(days=int(d))
                                             for d in rng.integers(0, 500, 300)],
                              "plan": rng.choice(["pro", "free"], 300)})
    rows = []
    for customer, start in zip(customers.customer_id, customers.started_on, strict=True):
        for offset in range(0, 600, int(rng.integers(10, 60))):
            if rng.random() < 0.7:  # gaps: some periods without activity
                seen = dt.datetime.combine(start, dt.time(9)) + dt.timedelta(days=offset, hours=int(rng.integers(0, 14)))
                rows.append((customer, seen, float(rng.integers(1, 20) * 10)))
    rows.append((1, dt.datetime(2024, 12, 1), 5.0))  # activity before the start date
    activity = pd.DataFrame(rows, columns=["customer_id", "seen_at", "mrr"])
    connection = duckdb.connect(str(root / "data.duckdb"))
    for name, frame in (("customers", customers), ("activity", activity)):
        connection.register("frame", frame)
        connection.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
        connection.unregister("frame")
    connection.close()
    write_files(root, {"segsql.yml": CONFIG, "segments_sql/pro.sql":
                       "{{ config(entity='customer') }}\nSELECT c.customer_id FROM {{ source('customers') }} AS c "
                       "WHERE c.plan = 'pro'"})
    loaded = Project.load(root, as_of=AS_OF)
    loaded.run()
    return loaded, customers, activity


def month_index(cohort: pd.Series, when: pd.Series) -> pd.Series:
    return (when.dt.year * 12 + when.dt.month) - (cohort.dt.year * 12 + cohort.dt.month)


def reference(activity: pd.DataFrame, starts: pd.DataFrame | None, period: str) -> pd.DataFrame:
    """The definitions, written independently with pandas."""
    seen = activity[activity.seen_at.dt.date <= AS_OF].copy()
    freq = {"month": "M", "week": "W-SUN"}[period]
    seen["p"] = seen.seen_at.dt.to_period(freq).dt.start_time
    if starts is None:
        cohort = seen.groupby("customer_id").p.min().rename("c")
    else:
        cohort = pd.to_datetime(starts.set_index("customer_id").started_on).dt.to_period(freq).dt.start_time.rename("c")
    seen = seen.join(cohort, on="customer_id")
    seen = seen[seen.p >= seen.c]
    seen["period_index"] = month_index(seen.c, seen.p) if period == "month" else (seen.p - seen.c).dt.days // 7
    active = seen.groupby(["c", "period_index"]).agg(active=("customer_id", "nunique"), revenue=("mrr", "sum"))
    sizes = cohort.value_counts().sort_index()
    last = pd.Timestamp(AS_OF).to_period(freq).start_time
    rows = []
    for c, size in sizes.items():
        count = (month_index(pd.Series([c]), pd.Series([last]))[0] if period == "month" else (last - c).days // 7) + 1
        for index in range(count):
            hit = active.loc[(c, index)] if (c, index) in active.index else None
            rows.append((c.date(), index, size, 0 if hit is None else int(hit.active),
                         0.0 if hit is None else float(hit.revenue)))
    return pd.DataFrame(rows, columns=["cohort", "period_index", "cohort_size", "active", "revenue"])


@pytest.mark.parametrize("period", ["month", "week"])
def test_first_activity_cohorts_match_pandas(project: tuple[Project, pd.DataFrame, pd.DataFrame], period: str) -> None:
    loaded, _, activity = project
    result = loaded.cohorts("customer", "activity", "seen_at", period=period, revenue="mrr").frame
    expected = reference(activity, None, period)
    assert len(result) == len(expected)
    assert (result[["period_index", "cohort_size", "active"]].values == expected[["period_index", "cohort_size",
                                                                                 "active"]].values).all()
    assert list(result.cohort) == list(expected.cohort)
    assert np.allclose(result.revenue, expected.revenue)
    assert (result.active == 0).any()  # gaps are rows with zero, not missing rows
    zero = result[result.period_index == 0]
    assert (zero.retention == 1).all() and (zero.revenue_retention == 1).all()


def test_start_date_cohorts_ignore_earlier_activity(project: tuple[Project, pd.DataFrame, pd.DataFrame]) -> None:
    loaded, customers, activity = project
    result = loaded.cohorts("customer", "activity", "seen_at", start_source="customers", start_at="started_on").frame
    expected = reference(activity, customers[pd.to_datetime(customers.started_on).dt.date <= AS_OF], "month")
    assert (result[["period_index", "cohort_size", "active"]].values == expected[["period_index", "cohort_size",
                                                                                 "active"]].values).all()
    assert result.cohort_size.groupby(result.cohort).first().sum() == 300


def test_split_by_segment(project: tuple[Project, pd.DataFrame, pd.DataFrame]) -> None:
    loaded, customers, activity = project
    result = loaded.cohorts("customer", "activity", "seen_at", segments=["pro"])
    pro = set(customers[customers.plan == "pro"].customer_id)
    expected = reference(activity[activity.customer_id.isin(pro)], None, "month")
    assert set(result.frame.segment) == {"pro"}
    assert (result.frame[["cohort_size", "active"]].values == expected[["cohort_size", "active"]].values).all()
    html = result._repr_html_()
    assert "<h4>pro</h4>" in html and "100%" in html


def test_bad_cohort_arguments(project: tuple[Project, pd.DataFrame, pd.DataFrame]) -> None:
    loaded, _, _ = project
    with pytest.raises(UsageError, match="unknown period `quarter`"):
        loaded.cohorts("customer", "activity", "seen_at", period="quarter")
    with pytest.raises(UsageError, match=r"unknown source `activty`.*activity"):
        loaded.cohorts("customer", "activty", "seen_at")
    with pytest.raises(UsageError, match="both start_source and start_at"):
        loaded.cohorts("customer", "activity", "seen_at", start_source="customers")
