"""Segment profiles against pandas: medians, means, category shares and the representation index."""

from __future__ import annotations

from pathlib import Path

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
  accounts:
    table: accounts
    columns: {account_id: BIGINT, name: VARCHAR, employees: INTEGER, industry: VARCHAR, signed: DATE, email: VARCHAR}
    pii: {email: email}
entities:
  account: {key: account_id, source: accounts}
"""


@pytest.fixture
def project(tmp_path: Path) -> tuple[Project, pd.DataFrame]:
    rng = np.random.default_rng(2)
    n = 500
    frame = pd.DataFrame({"account_id": np.arange(1, n + 1), "name": [f"Company {i}" for i in range(n)],
                          "employees": rng.integers(1, 5000, n),
                          "industry": rng.choice(["software", "retail", None, "health"], n, p=[0.4, 0.3, 0.1, 0.2]),
                          "signed": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 600, n), unit="D"),
                          "email": [f"ceo{i}@example.org" for i in range(n)]})
    connection = duckdb.connect(str(tmp_path / "data.duckdb"))
    connection.register("frame", frame)
    connection.execute("CREATE TABLE accounts AS SELECT account_id::BIGINT AS account_id, name, employees::INT AS "
                       "employees, industry, signed::DATE AS signed, email FROM frame")
    connection.close()
    write_files(tmp_path, {"segsql.yml": CONFIG, "segments_sql/big.sql": "{{ config(entity='account') }}\n"
                           "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.employees >= 2500"})
    loaded = Project.load(tmp_path)
    loaded.run()
    return loaded, frame


def test_profile_matches_pandas(project: tuple[Project, pd.DataFrame]) -> None:
    loaded, frame = project
    result = loaded.profile("big")
    assert set(result.trait) == {"employees", "industry"}  # no key, names, dates or personal data
    inside, rest = frame[frame.employees >= 2500], frame[frame.employees < 2500]
    numeric = result[result.trait == "employees"].set_index("value")
    assert numeric.loc["median", "segment"] == pytest.approx(inside.employees.median())
    assert numeric.loc["median", "rest"] == pytest.approx(rest.employees.median())
    assert numeric.loc["mean", "index"] == pytest.approx(inside.employees.mean() / rest.employees.mean() * 100)
    shares = result[result.trait == "industry"].set_index("value")
    for category in ("software", "retail", "health"):
        seg = (inside.industry == category).mean()
        oth = (rest.industry == category).mean()
        assert shares.loc[category, "segment"] == pytest.approx(seg)
        assert shares.loc[category, "index"] == pytest.approx(seg / oth * 100)
    assert shares.loc["(missing)", "segment"] == pytest.approx(inside.industry.isna().mean())
    assert shares.segment.sum() == pytest.approx(1.0)


def test_named_traits_and_errors(project: tuple[Project, pd.DataFrame]) -> None:
    loaded, _ = project
    assert set(loaded.profile("big", traits=["signed"]).trait) == {"signed"}
    emails = loaded.profile("big", traits=["email"])
    assert len(emails) and all(str(v).startswith("email:") for v in emails.value) and "@" not in emails.to_string()
    with pytest.raises(UsageError, match=r"no column `employes`.*employees"):
        loaded.profile("big", traits=["employes"])
