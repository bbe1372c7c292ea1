"""RFM in SQL against independent computations: pandas, lifetimes, and the published CDNOW summary."""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import warnings
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from segsql import Project
from segsql.compile.rfm import NAMED_SEGMENTS
from tests.conftest import write_files

CONFIG = """\
connection: {type: duckdb, path: data.duckdb}
sources:
  orders: {table: orders, columns: {customer_id: BIGINT, ordered_at: TIMESTAMP, amount: DOUBLE, status: VARCHAR}}
entities:
  customer: {key: customer_id, source: orders}
"""


def run_rfm(root: Path, frame: pd.DataFrame, as_of: str, arguments: str) -> pd.DataFrame:
    write_files(root, {"segsql.yml": CONFIG, "segments_sql/scores.sql":
                       "{{ config(entity='customer') }}\n{{ rfm('orders', at='ordered_at', amount='amount'" +
                       arguments + ") }}"})
    connection = duckdb.connect(str(root / "data.duckdb"))
    connection.register("frame", frame)
    connection.execute("CREATE OR REPLACE TABLE orders AS SELECT customer_id::BIGINT AS customer_id, "
                       "ordered_at::TIMESTAMP AS ordered_at, amount::DOUBLE AS amount, status FROM frame")
    connection.close()
    project = Project.load(root, as_of=as_of)
    project.run()
    return project.members("scores").set_index("customer_id").sort_index()


def random_orders(n_customers: int = 400, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for customer in range(1, n_customers + 1):
        for _ in range(rng.integers(1, 12)):
            day = dt.datetime(2025, 1, 1) + dt.timedelta(days=int(rng.integers(0, 720)), hours=int(rng.integers(0, 24)))
            rows.append((customer, day, float(rng.integers(1, 50) * 10), "paid" if rng.random() < 0.9 else "refunded"))
    return pd.DataFrame(rows, columns=["customer_id", "ordered_at", "amount", "status"])


def together(values: pd.Series, lower_is_better: bool) -> pd.Series:
    """Quantile scores with ties sharing a score: c = entities at most as good, 1 + floor((5c-1)/n)."""
    n = len(values)
    ordered = -values if lower_is_better else values
    c = ordered.apply(lambda v: int((ordered <= v).sum()))
    return (np.floor((5 * c - 1) / n) + 1).astype(int)


def lowest(values: pd.Series, lower_is_better: bool) -> pd.Series:
    """Ties take the first position of their group: c = 1 + entities strictly worse, ceil(5c/n);
    the best value scores 5."""
    n = len(values)
    ordered = -values if lower_is_better else values
    c = ordered.apply(lambda v: 1 + int((ordered < v).sum()))
    scores = np.ceil(5 * c / n).astype(int)
    return scores.where(ordered != ordered.max(), 5)


def split_ntile(values: pd.Series, lower_is_better: bool) -> pd.Series:
    """NTILE(5) over (value, key): the first n % 5 tiles get one extra row."""
    frame = pd.DataFrame({"v": -values if lower_is_better else values, "k": values.index})
    order = frame.sort_values(["v", "k"]).index
    n, size, extra = len(frame), len(frame) // 5, len(frame) % 5
    tiles, position = {}, 0
    for tile in range(1, 6):
        count = size + (1 if tile <= extra else 0)
        for key in order[position:position + count]:
            tiles[key] = tile
        position += count
    assert position == n
    return pd.Series(tiles).reindex(values.index)


def test_classic_matches_pandas(tmp_path: Path) -> None:
    orders = random_orders()
    as_of = "2026-06-30"
    result = run_rfm(tmp_path, orders, as_of, ", where=\"status = 'paid'\", monetary='mean', ties='highest'")
    paid = orders[(orders.status == "paid") & (orders.ordered_at < pd.Timestamp(as_of) + pd.Timedelta(days=1))]
    grouped = paid.assign(day=paid.ordered_at.dt.normalize()).groupby("customer_id")
    expected = pd.DataFrame({"days_since_last": (pd.Timestamp(as_of) - grouped.day.max()).dt.days,
                             "frequency": grouped.size(), "monetary": grouped.amount.mean()})
    assert list(result.index) == list(expected.index)
    assert (result.days_since_last == expected.days_since_last).all()
    assert (result.frequency == expected.frequency).all()
    assert np.allclose(result.monetary, expected.monetary, rtol=1e-12)
    assert (result.r_score == together(expected.days_since_last, True)).all()
    assert (result.f_score == together(expected.frequency, False)).all()
    assert (result.m_score == together(expected.monetary, False)).all()
    labels = []
    for r, f, m in zip(result.r_score, result.f_score, result.m_score, strict=True):
        for name, _, rule in NAMED_SEGMENTS:
            if rule == "TRUE" or eval(rule.replace("AND", "and").replace(" = ", " == "),
                                      {"r_score": r, "f_score": f, "m_score": m}):
                labels.append(name)
                break
    assert list(result.rfm_segment) == labels
    by_default = run_rfm(tmp_path, orders, as_of, ", where=\"status = 'paid'\", monetary='mean'")
    assert (by_default.r_score == lowest(expected.days_since_last, True)).all()
    assert (by_default.f_score == lowest(expected.frequency, False)).all()
    assert (by_default.m_score == lowest(expected.monetary, False)).all()
    together_alias = run_rfm(tmp_path, orders, as_of, ", where=\"status = 'paid'\", monetary='mean', ties='together'")
    assert (together_alias.f_score == result.f_score).all()
    by_days = run_rfm(tmp_path, orders, as_of, ", where=\"status = 'paid'\", frequency='days'")
    assert (by_days.frequency == grouped.day.nunique()).all() and (by_days.frequency <= result.frequency).all()
    assert (result.rfm_score == result.r_score * 100 + result.f_score * 10 + result.m_score).all()


def test_split_ties_and_cut_points(tmp_path: Path) -> None:
    orders = random_orders(seed=3)
    result = run_rfm(tmp_path, orders, "2026-12-31", ", ties='split'")
    assert (result.f_score == split_ntile(result.frequency, False)).all()
    assert (result.r_score == split_ntile(result.days_since_last, True)).all()
    assert result.groupby("f_score").size().max() - result.groupby("f_score").size().min() <= 1
    cuts = ", cuts={'r': [30, 90, 180, 365], 'f': [2, 3, 5, 10], 'm': [100, 500, 1000, 2000]}"
    fixed = run_rfm(tmp_path, orders, "2026-12-31", cuts)
    days = fixed.days_since_last
    assert (fixed.r_score == 1 + (days <= 30).astype(int) + (days <= 90) + (days <= 180) + (days <= 365)).all()
    assert (fixed.f_score == 1 + sum((fixed.frequency >= c).astype(int) for c in (2, 3, 5, 10))).all()


def test_btyd_matches_lifetimes(tmp_path: Path) -> None:
    orders = random_orders(seed=11)
    result = run_rfm(tmp_path, orders, "2026-12-31", ", convention='btyd'")
    with warnings.catch_warnings():  # lifetimes 0.11 predates pandas 3 and warns on import
        warnings.simplefilter("ignore")
        from lifetimes.utils import summary_data_from_transaction_data

        reference = summary_data_from_transaction_data(orders, "customer_id", "ordered_at",
                                                       monetary_value_col="amount",
                                                       observation_period_end="2026-12-31", freq="D")
    reference = reference.sort_index()
    assert (result.frequency.values == reference.frequency.values).all()
    assert (result.recency.values == reference.recency.values).all()
    assert (result.t.values == reference["T"].values).all()
    assert np.allclose(result.monetary.values, reference.monetary_value.values, rtol=1e-12)


def cdnow() -> pd.DataFrame:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("lifetimes (the CDNOW sample) is not installed: pip install -e '.[dev]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets"
    raw = pd.read_csv(path / "CDNOW_sample.txt", sep=r"\s+", header=None,
                      names=["master_id", "customer_id", "date", "cds", "amount"])
    raw["ordered_at"] = pd.to_datetime(raw.date.astype(str), format="%Y%m%d")
    raw["status"] = "paid"
    return raw[["customer_id", "ordered_at", "amount", "status"]], path


def test_btyd_weeks_reproduce_the_published_cdnow_summary(tmp_path: Path) -> None:
    """Fader & Hardie's CDNOW calibration summary (x, t_x, T in weeks, zbar) as shipped by lifetimes."""
    transactions, path = cdnow()
    result = run_rfm(tmp_path, transactions, "1997-09-30", ", convention='btyd', unit='week'")
    published = pd.read_csv(path / "cdnow_customers_summary_with_transactions.csv").set_index("ID").sort_index()
    assert len(result) == len(published) == 2357
    assert (result.frequency.values == published.x.values).all()
    assert np.allclose(result.recency.values, published.t_x.values, atol=0.005 + 1e-9)
    assert np.allclose(result.t.values, published["T"].values, atol=0.005 + 1e-9)
    assert np.allclose(result.monetary.values, published.zbar.values, atol=0.005 + 1e-9)
    assert math.isclose(result.t.max(), 272 / 7)


def test_bad_rfm_arguments_point_at_the_call(tmp_path: Path) -> None:
    for arguments, message in [(", convention='clv'", "convention must be one of"),
                               (", cuts={'r': [3, 1, 2, 4], 'f': [1, 2, 3, 4], 'm': [1, 2, 3, 4]}", "ascending"),
                               (", where='status ='", "not a SQL condition"),
                               (", frequency='weeks'", "frequency must be"),
                               (", as_key='c.custkey; DROP'", "as_key `c.custkey; DROP` is not a column name")]:
        write_files(tmp_path, {"segsql.yml": CONFIG, "segments_sql/scores.sql":
                               "{{ config(entity='customer') }}\n{{ rfm('orders', at='ordered_at', amount='amount'"
                               + arguments + ") }}"})
        errors = Project.load(tmp_path).validate()
        assert len(errors) == 1 and message in str(errors[0]) and "scores.sql:2:" in str(errors[0]), errors


def test_named_segments_mean_what_they_say_on_lumpy_cdnow(tmp_path: Path) -> None:
    """Half of CDNOW's customers bought once. With the old default (ties take the highest score)
    every one-time buyer had f = 3 and 8,430 of them were `at_risk`/`at_risk_high_value` ("used to
    buy often"); hibernating, new_customers and potential_loyalists were empty."""
    _, path = cdnow()
    raw = pd.read_csv(path / "CDNOW_master.txt", sep=r"\s+", header=0, names=["customer_id", "date", "cds", "amount"])
    raw["ordered_at"] = pd.to_datetime(raw.date.astype(str), format="%Y%m%d")
    raw["status"] = "paid"
    result = run_rfm(tmp_path, raw[["customer_id", "ordered_at", "amount", "status"]], "1998-06-30", "")
    once = result.frequency == 1
    assert len(result) == 23570 and once.sum() == 11908
    assert (result.f_score[once] == 1).all() and (result.f_score[~once] > 1).all()
    by_name = dict(tuple(result.groupby("rfm_segment")))
    # CDNOW is one cohort (first purchases in Q1 1997): nobody is new at 1998-06-30, and nobody is named so
    assert {name for name, _, _ in NAMED_SEGMENTS} - {"new_customers"} == set(by_name)
    assert result.first_purchase.max() < dt.date(1997, 4, 1)
    for often in ("champions", "loyal", "at_risk_high_value", "at_risk"):  # "buy(s)/bought often"
        assert (by_name[often].frequency > 1).all(), often
    recent_days = result.days_since_last.quantile(0.6)  # r >= 4: the most recent 40%
    for recent in ("potential_loyalists", "champions"):
        assert (by_name[recent].days_since_last <= recent_days).all(), recent
    assert (by_name["hibernating"].days_since_last >= result.days_since_last.median()).all()
    assert by_name["hibernating"].frequency.max() <= result.frequency.median() + 1  # long ago, rarely
    old = run_rfm(tmp_path, raw[["customer_id", "ordered_at", "amount", "status"]], "1998-06-30", ", ties='highest'")
    assert (old.f_score[once] == 3).all()
    assert old.rfm_segment[once].isin(["at_risk", "at_risk_high_value"]).sum() == 8430



def test_a_large_tie_group_at_the_best_value_scores_five(tmp_path: Path) -> None:
    """Monthly invoices: most customers were invoiced on the last day. They are the most recent
    there is: r = 5, not the 2 their group's first position would give."""
    import datetime as dt

    rows = [(k, dt.date(2026, 11, 1), 10.0, "paid") for k in range(1, 81)]
    rows += [(k, dt.date(2026, 11 - (k % 9) - 1, 1), 10.0, "paid") for k in range(81, 101)]
    orders = pd.DataFrame(rows, columns=["customer_id", "ordered_at", "amount", "status"])
    result = run_rfm(tmp_path, orders, "2026-11-23", "")
    assert set(result.loc[result.days_since_last == result.days_since_last.min(), "r_score"]) == {5}
    assert (result.r_score == 5).sum() == 80


@pytest.mark.parametrize(("option", "expected"), [([], lowest), (["--ties", "highest"], together),
                                                   (["--ties", "split"], split_ntile)])
def test_rfm_segments_command_writes_the_chosen_tie_rule(tmp_path: Path, option: list[str],
                                                         expected: Callable[[pd.Series, bool], pd.Series]) -> None:
    from click.testing import CliRunner

    from segsql.cli.main import cli

    orders = random_orders(seed=5)
    run_rfm(tmp_path, orders, "2026-06-30", "")  # writes the project and its data
    (tmp_path / "segments_sql" / "scores.sql").unlink()
    result = CliRunner().invoke(cli, ["rfm-segments", "--project", str(tmp_path), "--entity", "customer", "--source",
                                      "orders", "--at", "ordered_at", "--amount", "amount", *option])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "segments_sql" / "rfm" / "rfm_scores.sql").read_text()
    assert ("ties=" in text) == bool(option)
    project = Project.load(tmp_path, as_of="2026-06-30")
    project.run()
    scores = project.members("rfm_scores").set_index("customer_id").sort_index()
    assert (scores.f_score == expected(scores.frequency, False)).all()
    assert (scores.r_score == expected(scores.days_since_last, True)).all()
    assert (lowest(scores.frequency, False) != together(scores.frequency, False)).any()  # the rules differ here


def test_rfm_segments_refuses_an_unknown_tie_rule(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from segsql.cli.main import cli

    result = CliRunner().invoke(cli, ["rfm-segments", "--project", str(tmp_path), "--entity", "customer", "--source",
                                      "orders", "--at", "ordered_at", "--amount", "amount", "--ties", "first"])
    assert result.exit_code == 2 and "'first' is not one of 'lowest', 'highest', 'split'" in result.output
