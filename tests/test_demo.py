"""The demo dataset: deterministic for a seed, and shaped like B2B SaaS data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from segsql.demo.generate import generate

TODAY = dt.date(2026, 11, 23)
TABLES = ["accounts", "account_history", "users", "events", "mrr_monthly", "invoices", "tickets", "trials", "marketing_touches"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    path = tmp_path_factory.mktemp("demo") / "d.duckdb"
    generate(path, scale=0.5, seed=7, today=TODAY)
    return duckdb.connect(str(path), read_only=True)


def fingerprint(connection: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    return {t: connection.execute(f"SELECT count(*), sum(hash(t)) FROM {t} AS t").fetchone() for t in TABLES}


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path, demo: duckdb.DuckDBPyConnection) -> None:
    generate(tmp_path / "again.duckdb", scale=0.5, seed=7, today=TODAY)
    generate(tmp_path / "other.duckdb", scale=0.5, seed=8, today=TODAY)
    again = duckdb.connect(str(tmp_path / "again.duckdb"), read_only=True)
    other = duckdb.connect(str(tmp_path / "other.duckdb"), read_only=True)
    assert fingerprint(again) == fingerprint(demo)
    assert fingerprint(other) != fingerprint(demo)


def scalar(connection: duckdb.DuckDBPyConnection, sql: str) -> float:
    return connection.execute(sql).fetchone()[0]


def test_b2b_saas_shapes(demo: duckdb.DuckDBPyConnection) -> None:
    assert scalar(demo, "SELECT count(*) FROM accounts") == 1000
    # DACH is present and the largest region
    regions = demo.execute("SELECT region, count(*) FROM accounts GROUP BY 1 ORDER BY 2 DESC").fetchall()
    assert regions[0][0] == "DACH"
    # heavy-tailed revenue: the top 10% of customers hold far more than 10% of ARR
    top_share = scalar(demo, """SELECT sum(arr) FILTER (WHERE r <= n / 10) / sum(arr) FROM
        (SELECT arr, row_number() OVER (ORDER BY arr DESC) AS r, count(*) OVER () AS n FROM accounts WHERE arr > 0)""")
    assert top_share > 0.4
    # churn is higher for smaller plans
    churn = dict(demo.execute("""SELECT plan_tier, avg(CASE WHEN status = 'churned' THEN 1 ELSE 0 END)
        FROM accounts WHERE status IN ('customer', 'churned') GROUP BY 1""").fetchall())
    assert churn["starter"] > churn["enterprise"]
    # expansion and contraction exist month over month, so NRR is computable
    changes = demo.execute("""SELECT sum(CASE WHEN mrr > prev THEN 1 ELSE 0 END), sum(CASE WHEN mrr < prev THEN 1 ELSE 0 END)
        FROM (SELECT mrr, lag(mrr) OVER (PARTITION BY account_id ORDER BY month) AS prev FROM mrr_monthly)""").fetchone()
    assert changes[0] > 0 and changes[1] > 0
    # weekday seasonality: fewer logins on weekends
    weekend = scalar(demo, "SELECT avg(CASE WHEN dayofweek(occurred_at) IN (0, 6) THEN 1.0 ELSE 0 END) FROM events")
    assert weekend < 2 / 7 * 0.6
    # consent on about half the users; CSAT answered on most tickets, lower for bugs
    assert 0.45 < scalar(demo, "SELECT avg(marketing_consent::INT) FROM users") < 0.65
    csat = dict(demo.execute("SELECT topic, avg(csat) FROM tickets GROUP BY 1").fetchall())
    assert csat["bug"] < csat["onboarding"]
    # trials convert sometimes; every converted trial ended before today
    assert 0 < scalar(demo, "SELECT avg((converted_at IS NOT NULL)::INT) FROM trials") < 1
    assert scalar(demo, f"SELECT count(*) FROM trials WHERE converted_at > DATE '{TODAY}'") == 0
    # no activity after an account churned
    assert scalar(demo, """SELECT count(*) FROM events e JOIN accounts a USING (account_id)
        WHERE a.churned_at IS NOT NULL AND CAST(e.occurred_at AS DATE) > a.churned_at""") == 0
    # integrations: salesforce and slack users exist
    assert scalar(demo, "SELECT count(DISTINCT integration) FROM events WHERE integration IS NOT NULL") == 5


def test_demo_command_runs_the_starter_library(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from segsql.cli import cli

    result = CliRunner().invoke(cli, ["demo", str(tmp_path / "d"), "--scale", "0.3", "--as-of", str(TODAY)])
    assert result.exit_code == 0, result.stderr
    assert "success" in result.stdout and "power_users" in result.stdout
    assert "600 accounts" in result.stderr
    assert "written to demo.duckdb" not in result.stderr and "\x1b[" not in result.stderr  # not a terminal: no bar
    again = CliRunner().invoke(cli, ["demo", str(tmp_path / "d"), "--scale", "0.3", "--as-of", str(TODAY)])
    assert again.exit_code == 0, again.stderr


def test_generation_reports_each_step(tmp_path: Path) -> None:
    steps: list[tuple[str, int, int]] = []
    generate(tmp_path / "small.duckdb", scale=0.01, seed=1, today=TODAY, progress=lambda *step: steps.append(step))
    assert [(number, count) for _, number, count in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert steps[0][0] == "accounts and revenue" and steps[-1][0] == "written to small.duckdb"


def test_the_demo_command_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from segsql.cli import cli

    # TTY_COMPATIBLE=1: rich treats stderr as a terminal (what a person at a shell has)
    result = CliRunner(env={"TTY_COMPATIBLE": "1"}).invoke(cli, ["demo", str(tmp_path / "d"), "--scale", "0.01",
                                                                 "--as-of", str(TODAY)])
    assert result.exit_code == 0, result.stderr
    assert "demo data: written to demo.duckdb" in result.stderr and "4/4" in result.stderr
    assert "written to" not in result.stdout  # the bar is on stderr; stdout keeps the run summary


def test_churn_is_preceded_by_what_the_data_shows(demo: duckdb.DuckDBPyConnection) -> None:
    """Accounts disengage before they cancel (#18): logins per account fall month by month towards
    the last paid month, fewer of their users log in at all, and their tickets score lower."""
    logins = dict(demo.execute("""SELECT datediff('month', date_trunc('month', e.occurred_at),
            date_trunc('month', a.churned_at)) AS months_before, count(*) / count(DISTINCT a.account_id)
        FROM events AS e JOIN accounts AS a USING (account_id)
        WHERE a.status = 'churned' AND e.event_type = 'login' AND a.churned_at >= DATE '2026-04-30'
        GROUP BY 1""").fetchall())
    assert logins[0] < logins[1] < logins[3] < logins[5]
    assert logins[0] < 0.6 * logins[5]
    # seats in use: share of an account's users with a login in a month, last paid month vs customers now
    seats = demo.execute("""SELECT avg(active::DOUBLE / users) FILTER (WHERE status = 'churned'),
            avg(active::DOUBLE / users) FILTER (WHERE status = 'customer')
        FROM (SELECT a.account_id, a.status, count(DISTINCT u.user_id) AS users,
                     count(DISTINCT e.user_id) AS active
              FROM accounts AS a JOIN users AS u ON u.account_id = a.account_id
                AND u.signup_date <= coalesce(a.churned_at, DATE '2026-11-23') - 30
              LEFT JOIN events AS e ON e.user_id = u.user_id AND e.event_type = 'login'
                AND CAST(e.occurred_at AS DATE) > coalesce(a.churned_at, DATE '2026-11-23') - 30
                AND CAST(e.occurred_at AS DATE) <= coalesce(a.churned_at, DATE '2026-11-23')
              WHERE a.status IN ('churned', 'customer') AND coalesce(a.churned_at, DATE '2026-11-23') > DATE '2026-01-31'
              GROUP BY 1, 2)""").fetchone()
    assert seats[0] < 0.7 * seats[1]
    csat = demo.execute("""SELECT avg(t.csat) FILTER (WHERE a.status = 'churned' AND t.opened_at > a.churned_at - 90),
            avg(t.csat) FILTER (WHERE a.status = 'customer')
        FROM tickets AS t JOIN accounts AS a USING (account_id)""").fetchone()
    assert csat[0] < csat[1] - 0.4
