"""Generate a realistic, deterministic B2B SaaS dataset into a DuckDB database.

Scale 1 is 2,000 accounts (~11k users, ~0.37M events and ~5k tickets over the last 365 days,
30 months of revenue); events grow linearly with scale (scale 30 gives ≥ 10M events).
Everything is drawn from one numpy Generator seeded with `seed`, so the same seed, scale and
`today` give the same data.

Shapes that matter for segmentation: heavy-tailed company size and revenue (log-normal), churn
higher for smaller plans, monthly expansion and contraction (so NRR/GRR are computable),
trials that convert or not, weekday and signup seasonality, users with very different activity
levels, integrations used by some accounts, support tickets with topic-dependent CSAT, and
marketing consent on about half of the users. Churn has causes that the data shows before it
happens (HEALTH_* below): accounts disengage first (fewer logins, less feature use, seats left
unused, more tickets with lower CSAT) and cancel months later, so features at a past date
predict churn after it (the README's propensity example).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from segsql.engines.duckdb import connect_file

ACCOUNTS_PER_SCALE = 2000
EVENT_DAYS = 365  # product events and tickets: a year, so a model trained months back sees behaviour
HISTORY_MONTHS = 30
# Why accounts churn. Each account has a health per month (latent): a lasting part (product fit)
# plus a part carried over from month to month (AR(1)). Each month a customer in poor health is
# more likely to start disengaging (the tier's churn rate at average health, x e^(-k·health));
# from then on its health drops by HEALTH_DECLINE, and it cancels at a later month end with
# chance CANCEL_WHEN_DISENGAGED per month. Health is what the data shows: logins, feature use,
# seats in use, tickets and CSAT; so the months before a cancellation look different.
HEALTH_FIT_SD = 0.5
HEALTH_PERSISTENCE = 0.75
HEALTH_SHOCK_SD = 0.45
HEALTH_VARIANCE = HEALTH_FIT_SD ** 2 + HEALTH_SHOCK_SD ** 2 / (1 - HEALTH_PERSISTENCE ** 2)
DISENGAGE_PER_HEALTH = 1.2
HEALTH_DECLINE = 2.0
CANCEL_WHEN_DISENGAGED = 0.4

INDUSTRIES = (["software", "finance", "retail", "manufacturing", "health", "education", "media", "logistics"],
              [0.26, 0.12, 0.12, 0.12, 0.10, 0.09, 0.10, 0.09])
COUNTRIES = [("DE", "DACH", .20), ("AT", "DACH", .04), ("CH", "DACH", .05), ("GB", "UKI", .10), ("IE", "UKI", .02),
             ("SE", "Nordics", .04), ("DK", "Nordics", .03), ("NO", "Nordics", .02), ("FI", "Nordics", .02),
             ("NL", "Benelux", .05), ("BE", "Benelux", .03), ("FR", "Southern Europe", .07),
             ("ES", "Southern Europe", .04), ("IT", "Southern Europe", .04), ("US", "North America", .19),
             ("CA", "North America", .03), ("AU", "APAC", .03)]
TIERS = ["starter", "growth", "business", "enterprise"]
TIER_MRR_MEDIAN = np.array([79.0, 450.0, 1800.0, 9000.0])
TIER_MONTHLY_CHURN = np.array([0.07, 0.04, 0.022, 0.011])  # at average health
FEATURES = ["dashboards", "reports", "automation", "api", "export", "alerts", "sso"]
INTEGRATIONS = ["salesforce", "slack", "hubspot", "jira", "zendesk"]
TOPICS = (["billing", "onboarding", "bug", "feature_request", "integration", "performance", "account_access"],
          [0.16, 0.18, 0.22, 0.14, 0.12, 0.08, 0.10])
CHANNELS = ["email", "webinar", "ads", "event", "in_app"]
FIRST = ["Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Lea", "Max",
         "Nina", "Oskar", "Paula", "Rafael", "Sofia", "Tim", "Uma", "Yusuf"]
LAST = ["Müller", "Schmidt", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Keller", "Huber",
        "Smith", "Jones", "Martin", "Rossi", "Jensen", "Novak", "Dubois", "Garcia", "Berg", "Costa"]
WORDS = ["Alpine", "Blue", "Cedar", "Delta", "Echo", "Fjord", "Granite", "Harbor", "Iris", "Juniper",
         "Kestrel", "Lumen", "Meridian", "Nova", "Orbit", "Pine", "Quartz", "River", "Summit", "Tundra"]
SUFFIXES = ["GmbH", "AG", "Ltd", "Inc", "AB", "BV", "SAS", "SpA", "Oy", "ApS"]


@dataclass(frozen=True)
class DemoStats:
    accounts: int
    users: int
    events: int
    today: dt.date


# A long step's progress: (the step just done, its 1-based number, how many steps in all).
StepProgress = Callable[[str, int, int], None]
STEPS = 4  # accounts and revenue, users, activity tables, written


def generate(database: Path, scale: float = 1.0, seed: int = 42, today: dt.date | None = None,
             progress: StepProgress | None = None) -> DemoStats:
    """Write the demo tables into `database` (replacing them) and return their sizes; `progress`
    is called after each of the STEPS steps (`segsql demo --scale 30` takes minutes)."""
    done = iter(range(1, STEPS + 1))

    def step(label: str) -> None:
        if progress is not None:
            progress(label, next(done), STEPS)

    today = today or dt.date.today()
    rng = np.random.default_rng(seed)
    n = max(50, int(ACCOUNTS_PER_SCALE * scale))
    accounts, mrr = _accounts_and_revenue(rng, n, today)
    step("accounts and revenue")
    users = _users(rng, accounts, today)
    step("users")
    tables = {
        "accounts": accounts, "mrr_monthly": mrr, "users": users,
        "events": _events(rng, users, accounts, today),
        "invoices": _invoices(rng, mrr), "tickets": _tickets(rng, users, today),
        "trials": _trials_table(accounts), "marketing_touches": _touches(rng, users, today),
    }
    accounts.pop("_trial_converted_at")
    accounts.pop("_trial_started_at")
    step("events, invoices, tickets, trials, touches")
    _write(database, tables)
    step(f"written to {database.name}")
    return DemoStats(len(accounts["account_id"]), len(users["user_id"]), len(tables["events"]["event_id"]), today)


def _days(today: dt.date, offsets: np.ndarray) -> np.ndarray:
    return (np.datetime64(today, "D") - offsets.astype("timedelta64[D]")).astype("datetime64[D]")


def _month_start(dates: np.ndarray) -> np.ndarray:
    return dates.astype("datetime64[M]").astype("datetime64[D]")


def _accounts_and_revenue(rng: np.random.Generator, n: int, today: dt.date) -> tuple[dict, dict]:  # type: ignore[type-arg]
    ids = np.arange(1, n + 1, dtype=np.int64)
    industry = rng.choice(INDUSTRIES[0], n, p=INDUSTRIES[1])
    country_index = rng.choice(len(COUNTRIES), n, p=np.array([c[2] for c in COUNTRIES]) / sum(c[2] for c in COUNTRIES))
    employees = np.clip(np.round(rng.lognormal(np.log(60), 1.5, n)), 1, 200_000).astype(np.int32)
    band = np.select([employees < 50, employees < 200, employees < 1000], ["1-49", "50-199", "200-999"], "1000+")
    tier_index = np.clip(np.digitize(np.log10(employees) + rng.normal(0, 0.35, n), [1.6, 2.3, 2.9]), 0, 3)
    signup = _signups(rng, n, today)
    had_trial = rng.random(n) < 0.7
    converts = ~had_trial | (rng.random(n) < np.array([0.45, 0.55, 0.65, 0.75])[tier_index])
    trial_end = signup + np.timedelta64(14, "D")
    paid_from = np.where(had_trial, trial_end, signup)
    months = np.arange(np.datetime64(today, "M") - HISTORY_MONTHS, np.datetime64(today, "M") + 1)
    start_mrr = np.round(TIER_MRR_MEDIAN[tier_index] * rng.lognormal(0, 0.6, n), 2)
    rows_account, rows_month, rows_mrr, rows_tier = [], [], [], []
    current = np.where(converts, start_mrr, 0.0)
    active = np.zeros(n, dtype=bool)
    churned_at = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    tier_now = tier_index.copy()
    first_month = paid_from.astype("datetime64[M]")
    health = _Health(rng, n, len(months))
    for index, month in enumerate(months):
        starting = converts & (first_month == month) & ~active & np.isnat(churned_at)
        active |= starting
        if index:
            draw = rng.random(n)
            churn = active & ~starting & health.disengaged & (draw < CANCEL_WHEN_DISENGAGED)
            health.disengage(index, active & ~starting & ~churn, tier_now)
            expand = active & ~starting & ~health.disengaged & (draw > 0.93)
            contract = active & ~starting & ~churn & (draw > 0.90) & (draw <= 0.93)
            current = np.where(expand, np.round(current * rng.uniform(1.1, 1.6, n), 2), current)
            current = np.where(contract, np.round(current * rng.uniform(0.6, 0.95, n), 2), current)
            tier_now = np.where(expand & (current > TIER_MRR_MEDIAN[np.minimum(tier_now + 1, 3)]),
                                np.minimum(tier_now + 1, 3), tier_now)
            # churned_at is the last paid day: the end of the month before MRR drops to zero
            churned_at = np.where(churn, month.astype("datetime64[D]") - np.timedelta64(1, "D"), churned_at)
            active &= ~churn
        health.close_month(index)
        idx = np.nonzero(active)[0]
        rows_account.append(ids[idx])
        rows_month.append(np.full(len(idx), month.astype("datetime64[D]")))
        rows_mrr.append(current[idx])
        rows_tier.append(np.array(TIERS)[tier_now[idx]])
    in_trial = had_trial & (trial_end > np.datetime64(today, "D"))
    status = np.where(active, "customer", np.where(~np.isnat(churned_at), "churned",
                                                   np.where(in_trial, "trial", "lost")))
    current_mrr = np.where(active, current, 0.0)
    names = _company_names(rng, n)
    accounts = {
        "account_id": ids, "name": names, "industry": industry,
        "employees": employees, "employee_band": band,
        "country": np.array([c[0] for c in COUNTRIES])[country_index],
        "region": np.array([c[1] for c in COUNTRIES])[country_index],
        "plan_tier": np.array(TIERS)[tier_now], "signup_date": signup,
        "arr": np.round(current_mrr * 12, 2), "status": status, "churned_at": churned_at,
        "_trial_started_at": np.where(had_trial, signup, np.datetime64("NaT")),
        "_trial_converted_at": np.where(had_trial & converts & (trial_end <= np.datetime64(today, "D")),
                                        trial_end, np.datetime64("NaT")),
        "_health": health.by_month,  # per account and month, from HISTORY_MONTHS before today's month
    }
    mrr = {"account_id": np.concatenate(rows_account), "month": np.concatenate(rows_month),
           "mrr": np.concatenate(rows_mrr), "plan_tier": np.concatenate(rows_tier)}
    return accounts, mrr


def _signups(rng: np.random.Generator, n: int, today: dt.date) -> np.ndarray:
    """Signup days over the history window, more in Q1 and September/October (seasonality)."""
    month_weights = np.array([1.3, 1.2, 1.2, 1.0, 0.9, 0.8, 0.7, 0.8, 1.2, 1.2, 1.0, 0.7])
    age_days = rng.integers(0, HISTORY_MONTHS * 30, n * 3)
    candidate = _days(today, age_days)
    keep = rng.random(n * 3) < month_weights[candidate.astype("datetime64[M]").astype(int) % 12] / 1.3
    signup: np.ndarray = candidate[keep][:n]
    if len(signup) < n:  # vanishingly unlikely; pad deterministically
        signup = np.concatenate([signup, candidate[: n - len(signup)]])
    return signup


def _company_names(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.char.add(np.char.add(np.char.add(rng.choice(WORDS, n), " "), rng.choice(WORDS, n)),
                       np.char.add(" ", rng.choice(SUFFIXES, n)))


class _Health:
    """Each account's health month by month (see HEALTH_* above), and whether it is disengaging."""

    def __init__(self, rng: np.random.Generator, n: int, months: int) -> None:
        self._rng = rng
        self._fit = rng.normal(0, HEALTH_FIT_SD, n)
        self._swing = rng.normal(0, HEALTH_SHOCK_SD / np.sqrt(1 - HEALTH_PERSISTENCE ** 2), n)  # stationary
        self.disengaged = np.zeros(n, dtype=bool)
        self.by_month = np.empty((n, months), dtype=np.float32)

    def disengage(self, index: int, customers: np.ndarray, tier: np.ndarray) -> None:
        """Customers start disengaging in month `index` with a chance that grows as last month's
        health falls: the tier's churn rate on average (E[e^(-k·h)] = e^(k²·var/2), h normal)."""
        scale = TIER_MONTHLY_CHURN[tier] / np.exp(DISENGAGE_PER_HEALTH ** 2 * HEALTH_VARIANCE / 2)
        hazard = scale * np.exp(-DISENGAGE_PER_HEALTH * self.by_month[:, index - 1])
        self.disengaged |= customers & (self._rng.random(len(tier)) < hazard)

    def close_month(self, index: int) -> None:
        if index:
            self._swing = HEALTH_PERSISTENCE * self._swing + self._rng.normal(0, HEALTH_SHOCK_SD, len(self._swing))
        self.by_month[:, index] = self._fit + self._swing - HEALTH_DECLINE * self.disengaged


def _users(rng: np.random.Generator, accounts: dict, today: dt.date) -> dict:  # type: ignore[type-arg]
    per_account = 1 + np.minimum(rng.poisson(np.sqrt(accounts["employees"]) / 2.2), 150)
    account_id = np.repeat(accounts["account_id"], per_account)
    n = len(account_id)
    position = np.arange(n) - np.repeat(np.cumsum(per_account) - per_account, per_account)
    roles = np.where(position == 0, "admin", rng.choice(["member", "analyst", "viewer", "admin"], n,
                                                        p=[0.55, 0.2, 0.17, 0.08]))
    account_index = account_id - 1
    # the first user (the admin) signs the account up; colleagues follow over four months
    joined = np.where(position == 0, 0, rng.integers(0, 120, n))
    signup = accounts["signup_date"][account_index] + joined.astype("timedelta64[D]")
    signup = np.minimum(signup, np.datetime64(today, "D"))
    first = rng.choice(FIRST, n)
    last = rng.choice(LAST, n)
    user_id = np.arange(1, n + 1, dtype=np.int64) + 100_000
    ascii_last = np.char.replace(np.char.lower(last), "ü", "ue")
    email = np.char.add(np.char.add(np.char.add(np.char.lower(first), "."), ascii_last),
                        np.char.add(np.char.add(user_id.astype(str), "@"),
                                    np.char.add(np.char.lower(accounts["name"][account_index].astype(str)).astype(str)
                                                .astype("U40"), ".example")))
    email = np.char.replace(email, " ", "-")
    activity = rng.beta(0.6, 2.2, n)  # most users light, a few very active
    status = accounts["status"][account_index]
    gone = np.isin(status, ["churned", "lost"])
    last_seen_offset = np.where(gone, rng.integers(60, 400, n), np.floor(rng.exponential(3 / (activity + 0.05))))
    last_seen_day = _days(today, np.minimum(last_seen_offset, 900).astype(np.int64))
    last_seen = last_seen_day.astype("datetime64[s]") + rng.integers(7 * 3600, 20 * 3600, n).astype("timedelta64[s]")
    return {
        "user_id": user_id, "account_id": account_id, "email": email,
        "full_name": np.char.add(np.char.add(first, " "), last), "role": roles,
        "country": accounts["country"][account_index], "signup_date": signup,
        "last_seen_at": last_seen, "marketing_consent": rng.random(n) < 0.55,
        "_activity": activity, "_health": accounts["_health"][account_index],
        "_until": _last_day_of_use(accounts)[account_index],
    }


def _last_day_of_use(accounts: dict) -> np.ndarray:  # type: ignore[type-arg]
    """Per account, the last day its users used the product: the last paid day of a churned
    account, the end of the trial of a lost one, NaT while it is a customer or in a trial."""
    status = accounts["status"]
    trial_end = accounts["signup_date"] + np.timedelta64(14, "D")
    return np.where(status == "churned", accounts["churned_at"],
                    np.where(status == "lost", trial_end, np.datetime64("NaT"))).astype("datetime64[D]")


def _month_index(today: dt.date, days: np.ndarray) -> np.ndarray:
    """Column of `_health` for each day (its months start HISTORY_MONTHS before today's month)."""
    first = np.datetime64(today, "M") - HISTORY_MONTHS
    return (days.astype("datetime64[M]") - first).astype(np.int64)


def _seat_use(health: np.ndarray) -> np.ndarray:
    """Chance that a user of an account of this health uses the product at all in a month:
    0.86 at average health, 0.57 one unit below, 0.23 two below (low seat utilisation)."""
    return 1 / (1 + np.exp(-(1.8 + 1.5 * health)))


def _events(rng: np.random.Generator, users: dict, accounts: dict, today: dt.date) -> dict:  # type: ignore[type-arg]
    """One login per active user-day, then feature and integration events. A user is active on a
    day with chance activity x weekday x the account's engagement that month, only in months the
    user uses a seat, from the user's signup to the account's last day of use."""
    health = users["_health"]
    uses_seat = rng.random(health.shape) < _seat_use(health)
    chance = (users["_activity"][:, None] * np.exp(0.45 * health) * uses_seat).astype(np.float32)
    start, until = users["signup_date"], users["_until"]
    end = np.where(np.isnat(until), np.datetime64(today, "D"), until)
    day_list = _days(today, np.arange(EVENT_DAYS - 1, -1, -1))  # oldest first: event ids in time order
    weekend = np.isin(day_list.astype(int) % 7, [2, 3])  # 1970-01-01 was a Thursday: 2,3 = Sat,Sun
    months = _month_index(today, day_list)
    by_month = np.ascontiguousarray(chance.T)
    picked: list[np.ndarray] = []
    for day, month, quiet in zip(day_list, months, weekend, strict=True):
        p = by_month[month] * (0.3 if quiet else 1.0)
        picked.append(np.flatnonzero((rng.random(len(p)) < p) & (start <= day) & (day <= end)))
    user_index = np.concatenate(picked)
    event_day = np.repeat(day_list, [len(part) for part in picked])
    # healthier accounts do more per session: feature use declines with health, like logins
    month = np.repeat(months, [len(part) for part in picked])
    count = 1 + rng.poisson(0.4 * np.exp(0.3 * health[user_index, month]))
    user_index = np.repeat(user_index, count)
    timestamps = np.repeat(event_day, count).astype("datetime64[s]") + \
        rng.integers(6 * 3600, 22 * 3600, len(user_index)).astype("timedelta64[s]")
    first_of_day = np.concatenate([[True], np.diff(np.repeat(np.arange(len(count)), count)) != 0])
    has_integration = rng.random(len(accounts["account_id"])) < 0.35
    favourite = rng.integers(0, len(INTEGRATIONS), len(accounts["account_id"]))
    n = len(user_index)
    account_index = users["account_id"][user_index] - 1
    integrates = ~first_of_day & has_integration[account_index] & (rng.random(n) < 0.25)
    uses_feature = ~first_of_day & ~integrates
    feature = rng.choice(len(FEATURES), n, p=[.28, .22, .15, .1, .12, .08, .05])
    return {
        "event_id": np.arange(1, n + 1, dtype=np.int64), "user_id": users["user_id"][user_index],
        "account_id": users["account_id"][user_index], "occurred_at": timestamps,
        "event_type": _labels(["feature_used", "login", "integration_used"], first_of_day + 2 * integrates),
        "feature": _labels([None, *FEATURES], np.where(uses_feature, feature + 1, 0)),
        "integration": _labels([None, *INTEGRATIONS], np.where(integrates, favourite[account_index] + 1, 0)),
        "platform": _labels(["web", "mobile", "desktop"], rng.choice(3, n, p=[0.7, 0.2, 0.1])),
    }


def _labels(names: list[str | None], codes: np.ndarray) -> np.ndarray:
    """names[code] per row as an object array (shared str objects, None = NULL): a fraction of
    the time and memory of fixed-width numpy strings for a million rows of a few labels."""
    labels: np.ndarray = np.array(names, dtype=object)[codes]
    return labels


def _invoices(rng: np.random.Generator, mrr: dict) -> dict:  # type: ignore[type-arg]
    n = len(mrr["account_id"])
    return {"invoice_id": np.arange(1, n + 1, dtype=np.int64), "account_id": mrr["account_id"],
            "issued_at": mrr["month"], "amount": mrr["mrr"],
            "status": rng.choice(["paid", "open", "overdue"], n, p=[0.94, 0.04, 0.02])}


def _tickets(rng: np.random.Generator, users: dict, today: dt.date) -> dict:  # type: ignore[type-arg]
    """Tickets over the last EVENT_DAYS while the user's account uses the product: more from
    active users and from accounts in poor health, whose CSAT is lower too."""
    months = _month_index(today, _days(today, np.arange(EVENT_DAYS)))
    columns = np.arange(months.min(), months.max() + 1)
    health = users["_health"][:, columns]
    # 0.6 + 2 x activity a year at average health (E[e^(-0.6·h)] = e^(0.18·var)), e^0.6 more per unit lower
    per_month = (0.6 + 2 * users["_activity"])[:, None] / 12 * np.exp(-0.6 * health - 0.18 * HEALTH_VARIANCE)
    count = rng.poisson(per_month).ravel()
    cell = np.repeat(np.arange(len(count)), count)
    user_index, column = cell // len(columns), cell % len(columns)
    month_start = np.datetime64(today, "M") - HISTORY_MONTHS + columns[column]
    length = ((month_start + 1).astype("datetime64[D]") - month_start.astype("datetime64[D]")).astype(np.int64)
    day = month_start.astype("datetime64[D]") + (rng.random(len(cell)) * length).astype("timedelta64[D]")
    until = users["_until"][user_index]
    keep = (day > np.datetime64(today, "D") - EVENT_DAYS) & (day <= np.datetime64(today, "D")) & \
        (day >= users["signup_date"][user_index]) & (np.isnat(until) | (day <= until))
    user_index, day, mood = user_index[keep], day[keep], health[user_index[keep], column[keep]]
    n = len(user_index)
    topic = rng.choice(TOPICS[0], n, p=TOPICS[1])
    mean_score = np.select([topic == "bug", topic == "billing", topic == "performance"], [3.2, 3.5, 3.3], 4.2)
    score = np.clip(np.round(rng.normal(mean_score + 0.5 * mood, 0.9)), 1, 5).astype(np.int32)
    answered = rng.random(n) < 0.6
    opened = day.astype("datetime64[s]") + rng.integers(8 * 3600, 18 * 3600, n).astype("timedelta64[s]")
    return {"ticket_id": np.arange(1, n + 1, dtype=np.int64), "account_id": users["account_id"][user_index],
            "user_id": users["user_id"][user_index], "opened_at": opened, "topic": topic,
            "csat": pa.array(score, mask=~answered)}


def _trials_table(accounts: dict) -> dict:  # type: ignore[type-arg]
    had = ~np.isnat(accounts["_trial_started_at"])
    started = accounts["_trial_started_at"][had]
    return {"trial_id": np.arange(1, int(had.sum()) + 1, dtype=np.int64), "account_id": accounts["account_id"][had],
            "started_at": started, "ended_at": started + np.timedelta64(14, "D"),
            "converted_at": accounts["_trial_converted_at"][had], "plan_tier": accounts["plan_tier"][had]}


def _touches(rng: np.random.Generator, users: dict, today: dt.date) -> dict:  # type: ignore[type-arg]
    per_user = rng.poisson(1.5, len(users["user_id"]))
    user_index = np.repeat(np.arange(len(users["user_id"])), per_user)
    n = len(user_index)
    occurred = _days(today, rng.integers(0, 180, n)).astype("datetime64[s]") + \
        rng.integers(8 * 3600, 18 * 3600, n).astype("timedelta64[s]")
    return {"touch_id": np.arange(1, n + 1, dtype=np.int64), "user_id": users["user_id"][user_index],
            "account_id": users["account_id"][user_index], "occurred_at": occurred,
            "channel": rng.choice(CHANNELS, n, p=[0.45, 0.12, 0.2, 0.08, 0.15]),
            "campaign": rng.choice(["spring_launch", "autumn_webinar", "dach_roadshow", "nurture", "upsell_q4"], n)}


def _arrow(columns: dict) -> pa.Table:  # type: ignore[type-arg]
    arrays = {}
    for name, values in columns.items():
        if name.startswith("_"):
            continue
        if isinstance(values, pa.Array):
            arrays[name] = values
        elif values.dtype.kind == "M":
            # plain TIMESTAMP (microseconds), as every warehouse has; dates stay dates
            stamps = values if values.dtype == np.dtype("datetime64[D]") else values.astype("datetime64[us]")
            arrays[name] = pa.array(stamps, mask=np.isnat(stamps))
        elif values.dtype.kind in "UO":  # from the array itself: a list of a million strings is slow
            arrays[name] = pa.array(values, type=pa.string())
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)


# `accounts` as it was over time (SCD-2, valid_to exclusive, NULL = current), derived from the
# same draws: a trial until it converts (or, without a trial, from signup), one version per month
# of MRR (plan and ARR of that month), then churned (from the day after the last paid day) or
# lost (trial ended unpaid). Its versions valid today equal `accounts` row for row
# (tests/test_point_in_time.py).
ACCOUNT_HISTORY = """
CREATE OR REPLACE TABLE account_history AS
WITH paid AS (
    SELECT m.account_id, greatest(m.month, a.signup_date, coalesce(t.converted_at, a.signup_date)) AS valid_from,
           'customer' AS status, m.plan_tier, round(m.mrr * 12, 2) AS arr, CAST(NULL AS DATE) AS churned_at
    FROM mrr_monthly AS m JOIN accounts AS a USING (account_id) LEFT JOIN trials AS t USING (account_id)
), first_paid AS (
    SELECT account_id, min(valid_from) AS first_from, arg_min(plan_tier, valid_from) AS first_tier
    FROM paid GROUP BY account_id
), versions AS (
    SELECT * FROM paid
    UNION ALL
    SELECT a.account_id, a.signup_date, 'trial', coalesce(f.first_tier, a.plan_tier), 0.0, NULL
    FROM accounts AS a LEFT JOIN first_paid AS f USING (account_id)
    WHERE f.first_from IS NULL OR f.first_from > a.signup_date
    UNION ALL
    SELECT account_id, CAST(churned_at + INTERVAL 1 DAY AS DATE), 'churned', plan_tier, 0.0, churned_at
    FROM accounts WHERE status = 'churned'
    UNION ALL
    SELECT account_id, CAST(signup_date + INTERVAL 14 DAY AS DATE), 'lost', plan_tier, 0.0, NULL
    FROM accounts WHERE status = 'lost'
)
SELECT a.account_id, a.name, a.industry, a.employees, a.employee_band, a.country, a.region,
       v.plan_tier, a.signup_date, v.arr, v.status, v.churned_at, v.valid_from,
       lead(v.valid_from) OVER (PARTITION BY v.account_id ORDER BY v.valid_from) AS valid_to
FROM versions AS v JOIN accounts AS a USING (account_id)
ORDER BY a.account_id, v.valid_from
"""


def _write(database: Path, tables: dict) -> None:  # type: ignore[type-arg]
    """Replace the demo tables in one transaction (readers never see half a dataset)."""
    database.parent.mkdir(parents=True, exist_ok=True)
    connection = connect_file(str(database))  # a lock held elsewhere: who holds it, how to free it
    try:
        connection.execute("BEGIN TRANSACTION")
        for name, columns in tables.items():
            frame = _arrow(columns)
            connection.register("_demo_frame", frame)
            connection.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _demo_frame")  # names are constants
            connection.unregister("_demo_frame")
        connection.execute(ACCOUNT_HISTORY)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()
