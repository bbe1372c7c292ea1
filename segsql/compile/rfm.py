"""RFM (recency, frequency, monetary) per entity from a transactions source, in SQL.

Transactions on or before `as_of` count (a date `as_of` includes the whole day). Two conventions:

classic   days_since_last = as_of - last purchase date (days); recency = days_since_last in the
          unit; frequency = number of transactions (`frequency='transactions'`) or of distinct
          purchase days (`'days'`); monetary = their total (`monetary='total'`) or mean (`'mean'`,
          per transaction).
btyd      the Buy-Till-You-Die/CLV convention of `lifetimes` and PyMC-Marketing: transactions are
          first summed per day; frequency = purchase days - 1 (repeat purchases); recency = last
          - first purchase day; T = as_of - first purchase day; monetary = mean of the repeat
          purchase days' amounts (0 without repeats). With unit='week', recency and T are days / 7
          (Fader & Hardie's CDNOW convention; `lifetimes` with freq='D' divided by 7).

Scores 1..5 (5 best) by quantile: score = ceil(5c / n), n = all entities, c = the entity's
position from worst (1) to best (n). Without ties `lowest` and `highest` give the same scores;
equal values share a score, and `ties` says which position a tie group takes:
  lowest   (default) the first: c = RANK() = 1 + the entities strictly worse, and the best
           value scores 5. On lumpy data (half the customers bought once) the one-time buyers
           get f = 1, the customers who bought on the last day get r = 5 however many they are,
           and a score may go unused (on CDNOW f jumps from 1 to 3) rather than name buyers it
           does not describe
  highest  the last: c = the entities at most as good (the earlier default, also accepted as
           `together`; on CDNOW every one-time buyer gets f = 3 and 8,430 of them are named
           at_risk: "used to buy often")
  split    NTILE(5) with ties broken by the entity key: equal-sized quintiles, but equal values
           may straddle a boundary
All are deterministic (integer counts, same result on every engine). Recency scores on
days_since_last (fewer days = higher score) in both conventions.
With `cuts={'r': [30, 90, 180, 365], 'f': [2, 3, 5, 10], 'm': [...]}` a score is 1 + the number
of cut points reached (recency: 5 for days_since_last <= 30, ..., 1 above 365).

Named segments (rfm_segment; first matching rule wins, scores 1..5):
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from segsql.compile.literals import get_dialect

CONVENTIONS = ("classic", "btyd")
UNITS = ("day", "week")
TIES = ("lowest", "highest", "together", "split")  # `together` is the earlier name of `highest`
NAMED_SEGMENTS: list[tuple[str, str, str]] = [
    ("champions", "bought recently, often and spent the most", "r_score >= 4 AND f_score >= 4 AND m_score >= 4"),
    ("loyal", "buy often, recently enough", "r_score >= 3 AND f_score >= 4"),
    ("at_risk_high_value", "used to buy often and spend much, not lately",
     "r_score <= 2 AND f_score >= 3 AND m_score >= 4"),
    ("at_risk", "used to buy often, not lately", "r_score <= 2 AND f_score >= 3"),
    ("new_customers", "first purchase recently", "r_score >= 4 AND f_score = 1"),
    ("potential_loyalists", "recent, a few purchases", "r_score >= 4 AND f_score <= 3"),
    ("hibernating", "long ago, rarely", "r_score <= 2 AND f_score <= 2"),
    ("need_attention", "everyone else", "TRUE"),
]
__doc__ = (__doc__ or "") + "\n".join(f"  {name:20} {rule}   ({why})" for name, why, rule in NAMED_SEGMENTS) + "\n"


@dataclass(frozen=True)
class RfmSpec:
    table: exp.Table
    key: str
    at: str
    amount: str
    as_of: Any
    convention: str = "classic"
    unit: str = "day"
    monetary: str = "total"
    cuts: tuple[tuple[str, tuple[float, ...]], ...] | None = None
    where: exp.Expr | None = None
    ties: str = "lowest"
    frequency: str = "transactions"
    as_key: str | None = None  # the output column of the key (default: `key`)


def check(convention: str, unit: str, monetary: str, cuts: Any, ties: str = "lowest",
          frequency: str = "transactions") -> tuple[tuple[str, tuple[float, ...]], ...] | None:
    """Validate options (ValueError with the fix)."""
    if frequency not in ("transactions", "days"):
        raise ValueError(f"frequency must be 'transactions' or 'days', got {frequency!r}")
    if frequency != "transactions" and convention == "btyd":
        raise ValueError("the btyd convention always counts repeat purchase days; drop frequency=")
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(TIES)}, got {ties!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if monetary not in ("total", "mean"):
        raise ValueError(f"monetary must be 'total' or 'mean', got {monetary!r}")
    if cuts is None:
        return None
    if not isinstance(cuts, dict) or set(cuts) != {"r", "f", "m"}:
        raise ValueError("cuts must give lists for 'r', 'f' and 'm', e.g. {'r': [30, 90, 180, 365], ...}")
    parsed = []
    for letter in ("r", "f", "m"):
        values = cuts[letter]
        numbers = isinstance(values, list | tuple) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if not numbers or len(values) != 4 or list(values) != sorted(values):
            raise ValueError(f"cuts['{letter}'] must be 4 ascending numbers (scores 1..5)")
        parsed.append((letter, tuple(float(v) for v in values)))
    return tuple(parsed)


def parse_where(text: str | None, dialect: str) -> exp.Expr | None:
    if text is None:
        return None
    return sqlglot.parse_one(str(text), read=get_dialect(dialect), into=exp.Condition)


def _days(later: exp.Expr, earlier: exp.Expr) -> exp.Expr:
    return exp.DateDiff(this=later, expression=earlier, unit=exp.var("DAY"))


def _in_unit(days: exp.Expr, unit: str) -> exp.Expr:
    return days if unit == "day" else exp.Div(this=exp.cast(days, exp.DataType.Type.DOUBLE),
                                              expression=exp.Literal.number(7))


def query(spec: RfmSpec) -> exp.Select:
    """key, first_purchase, last_purchase, days_since_last, recency, frequency, monetary, [t],
    r_score, f_score, m_score, rfm_score, rfm_segment."""
    as_of = exp.cast(exp.Literal.string(spec.as_of.isoformat()), exp.DataType.Type.DATE)
    day = exp.cast(exp.column(spec.at), exp.DataType.Type.DATE)
    condition: exp.Expr = exp.and_(exp.column(spec.key).is_(exp.null()).not_(), day.copy() <= as_of.copy(),
                                   exp.column(spec.amount).is_(exp.null()).not_())
    if spec.where is not None:
        condition = exp.and_(condition, exp.Paren(this=spec.where.copy()))
    transactions = exp.select(exp.column(spec.key).as_("k"), day.as_("d"), exp.column(spec.amount).as_("amount")
                              ).from_(spec.table.copy()).where(condition)
    per_entity = _btyd(transactions, as_of, spec) if spec.convention == "btyd" else _classic(transactions, as_of, spec)
    return _scored(per_entity, spec)


def _classic(transactions: exp.Select, as_of: exp.Expr, spec: RfmSpec) -> exp.Select:
    days_since = _days(as_of.copy(), exp.func("max", exp.column("d")))
    value = exp.func("sum" if spec.monetary == "total" else "avg", exp.column("amount"))
    count = exp.func("count", exp.Star()) if spec.frequency == "transactions" else exp.Count(
        this=exp.Distinct(expressions=[exp.column("d")]))
    return (exp.select(exp.column("k"), exp.func("min", exp.column("d")).as_("first_purchase"),
                       exp.func("max", exp.column("d")).as_("last_purchase"), days_since.as_("days_since_last"),
                       _in_unit(days_since.copy(), spec.unit).as_("recency"),
                       count.as_("frequency"), value.as_("monetary"))
            .from_(transactions.subquery("t")).group_by("k"))


def _btyd(transactions: exp.Select, as_of: exp.Expr, spec: RfmSpec) -> exp.Select:
    daily = exp.select("k", "d", exp.func("sum", exp.column("amount")).as_("amount")).from_(
        transactions.subquery("t")).group_by("k", "d")
    first_day = exp.Window(this=exp.func("row_number"), partition_by=[exp.column("k")],
                           order=exp.Order(expressions=[exp.Ordered(this=exp.column("d"))]))
    numbered = exp.select("k", "d", "amount", first_day.as_("n")).from_(daily.subquery("daily"))
    repeats = exp.Paren(this=exp.func("count", exp.Star()) - 1)  # sqlglot does not add parentheses
    repeat_total = exp.func("sum", exp.If(this=exp.column("n") > 1, true=exp.column("amount"),
                                          false=exp.Literal.number(0)))
    first, last = exp.func("min", exp.column("d")), exp.func("max", exp.column("d"))
    mean_repeat = exp.If(this=repeats.copy() > 0, true=exp.Div(this=exp.cast(repeat_total, exp.DataType.Type.DOUBLE),
                                                               expression=repeats.copy()),
                         false=exp.Literal.number(0))
    return (exp.select(exp.column("k"), first.as_("first_purchase"), last.as_("last_purchase"),
                       _days(as_of.copy(), last.copy()).as_("days_since_last"),
                       _in_unit(_days(last.copy(), first.copy()), spec.unit).as_("recency"),
                       repeats.as_("frequency"), mean_repeat.as_("monetary"),
                       _in_unit(_days(as_of.copy(), first.copy()), spec.unit).as_("t"))
            .from_(numbered.subquery("numbered")).group_by("k"))


def _score(column: str, letter: str, spec: RfmSpec) -> exp.Expr:
    value = exp.column(column)
    lower_is_better = letter == "r"
    cuts = dict(spec.cuts)[letter] if spec.cuts else None
    if cuts is None and spec.ties == "split":
        ordered = exp.Ordered(this=value, desc=lower_is_better)
        return exp.Window(this=exp.func("ntile", exp.Literal.number(5)),
                          order=exp.Order(expressions=[ordered, exp.Ordered(this=exp.column("k"))]))
    if cuts is None:
        return _quantile_score(value, lower_is_better, spec.ties)
    reached = [exp.If(this=(value.copy() <= exp.Literal.number(cut)) if lower_is_better
                      else (value.copy() >= exp.Literal.number(cut)), true=exp.Literal.number(1),
                      false=exp.Literal.number(0)) for cut in cuts]
    total: exp.Expr = exp.Literal.number(1)
    for term in reached:
        total = exp.Add(this=total, expression=term)
    return total


def _quantile_score(value: exp.Expr, lower_is_better: bool, ties: str) -> exp.Expr:
    """floor((5c - 1) / n) + 1 = ceil(5c / n) over a window ordered from worst to best, with
    c = RANK() (`lowest`: the first position of the tie group) or the entities at most as good
    (`highest`: the last position, the RANGE frame includes the peers). With `lowest` the best
    value always scores 5: a large tie group at the top (every customer invoiced this month) is
    the best there is, and its first position would otherwise drag it down to 2."""
    # values are never NULL; NULL order stated as BigQuery's default so every dialect can say it
    order = exp.Order(expressions=[exp.Ordered(this=value, desc=lower_is_better, nulls_first=not lower_is_better)])
    position = exp.Window(this=exp.func("rank") if ties == "lowest" else exp.func("count", exp.Star()), order=order)
    scaled = exp.Sub(this=exp.Mul(this=exp.Literal.number(5), expression=position), expression=exp.Literal.number(1))
    everyone = exp.Window(this=exp.func("count", exp.Star()))
    quotient = exp.Div(this=exp.cast(scaled, exp.DataType.Type.DOUBLE), expression=everyone)
    score = exp.cast(exp.Add(this=exp.func("floor", quotient), expression=exp.Literal.number(1)),
                     exp.DataType.Type.INT)
    if ties != "lowest":
        return score
    best = exp.Window(this=exp.func("min" if lower_is_better else "max", value.copy()))
    return exp.Case(ifs=[exp.If(this=value.copy().eq(best), true=exp.Literal.number(5))], default=score)


def _scored(per_entity: exp.Select, spec: RfmSpec) -> exp.Select:
    columns = ["first_purchase", "last_purchase", "days_since_last", "recency", "frequency", "monetary"]
    if spec.convention == "btyd":
        columns.append("t")
    scored = exp.select(*[exp.column(c) for c in ["k", *columns]],
                        _score("days_since_last", "r", spec).as_("r_score"),
                        _score("frequency", "f", spec).as_("f_score"),
                        _score("monetary", "m", spec).as_("m_score")).from_(per_entity.subquery("e"))
    label = exp.Case()
    for name, _, rule in NAMED_SEGMENTS[:-1]:
        label = label.when(sqlglot.parse_one(rule, into=exp.Condition), exp.Literal.string(name))
    label = label.else_(exp.Literal.string(NAMED_SEGMENTS[-1][0]))
    rfm_score = exp.Add(this=exp.Add(this=exp.Mul(this=exp.column("r_score"), expression=exp.Literal.number(100)),
                                     expression=exp.Mul(this=exp.column("f_score"), expression=exp.Literal.number(10))),
                        expression=exp.column("m_score"))
    return exp.select(exp.column("k").as_(spec.as_key or spec.key), *[exp.column(c) for c in columns],
                      "r_score", "f_score", "m_score", rfm_score.as_("rfm_score"), label.as_("rfm_segment")
                      ).from_(scored.subquery("s"))


def segment_files(entity: str, key: str, source: str, at: str, amount: str, where: str | None = None,
                  convention: str = "classic", unit: str = "day", prefix: str = "rfm",
                  ties: str = "lowest") -> dict[str, str]:
    """Segment files: `{prefix}_scores` (every entity with its scores) and one file per named RFM
    segment whose WHERE is the rule, minus the earlier rules, as editable SQL (members equal the
    rows of the scores with that rfm_segment label until someone edits a rule). `ties` is the
    rfm() tie rule written into the scores segment (`lowest`, the default, is left out)."""
    check(convention, unit, "total", None, ties)
    tags = list(dict.fromkeys(["value", "rfm" if prefix == "rfm" else prefix]))  # `-s tag:PREFIX` picks these
    options = "".join([f", where={where!r}" if where else "", f", convention={convention!r}" if convention != "classic"
                       else "", f", unit={unit!r}" if unit != "day" else "", f", ties={ties!r}" if ties != "lowest"
                       else ""])
    files = {f"{prefix}_scores.sql": (
        "{{ config(\n"
        f"    entity={entity!r},\n"
        f"    description='RFM scores of every {entity} with purchases in {source} ({convention} convention; "
        "rfm_segment names the RFM segment).',\n"
        "    owner='analytics',\n"
        f"    tags={tags!r},\n"
        "    tests={'min_size': 1, 'expect': ['r_score BETWEEN 1 AND 5', 'f_score BETWEEN 1 AND 5']},\n) }}\n"
        f"{{{{ rfm({source!r}, at={at!r}, amount={amount!r}{options}) }}}}\n")}
    earlier: list[exp.Expr] = []
    for name, why, rule in NAMED_SEGMENTS:
        condition = _qualified(rule)
        where_clause = exp.and_(condition, *[exp.Not(this=exp.Paren(this=e.copy())) for e in earlier]) \
            if earlier else condition
        earlier.append(condition)
        files[f"{prefix}_{name}.sql"] = (
            "{{ config(\n"
            f"    entity={entity!r},\n"
            f"    description={f'RFM {name.replace(chr(95), chr(32))}: {why}. Edit the WHERE to change the rule.'!r},\n"
            f"    owner='analytics',\n    tags={tags!r},\n) }}}}\n"
            f"SELECT r.{key}, r.recency, r.frequency, r.monetary, r.r_score, r.f_score, r.m_score\n"
            f"FROM {{{{ ref('{prefix}_scores') }}}} AS r\n"
            f"WHERE {where_clause.sql(pretty=False)}\n")
    return files


def _qualified(rule: str) -> exp.Expr:
    tree = sqlglot.parse_one(rule, into=exp.Condition)
    for column in tree.find_all(exp.Column):
        column.set("table", exp.to_identifier("r"))
    return tree
