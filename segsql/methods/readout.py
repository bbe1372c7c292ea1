"""Experiment readouts on a split segment: metrics per group against the control (lift, 95% CI,
p-value, Benjamini–Hochberg), a sample-ratio-mismatch test and the balance of traits.

Groups: the members of the segment's last run, or, given the experiment's first day (`start`),
the members the split assigned that day: the segment evaluated as of it, with the point-in-time
reads of docs/point-in-time.md, so members who qualified only later are not counted as treated.
Metrics are measured as of the readout's as_of.

SRM: chi-square goodness of fit of the group sizes against the split's declared shares; p below
0.001 (the usual threshold) means assignment or logging is broken and the readout is not to be
trusted. Balance: standardised mean difference per numeric trait (|SMD| > 0.1 is imbalance) and a
chi-square test of independence per categorical trait (p < 0.001).

Metrics use the tests of segsql.measure.stats, chosen per row (column `test`): outside the normal
approximation's conditions (a group with fewer than 30 measured entities, no variance, values
too skewed or a ratio's denominator too variable) a mean or ratio gets the permutation test, for
which one more query fetches the per-entity values of the groups involved (at most
RESAMPLE_LIMIT rows, else "too few to test").

CUPED (`cuped=True`, `segsql readout --cuped`): each metric's difference is adjusted by the same
metric in a pre-period (segsql.measure.cuped; one more query per metric). The pre-period is the
metric's own window (90 days, one month, ...) evaluated at an earlier as_of:
  start=DATE     as_of = the day before the experiment started: the same-length window, ending
                 before any member was treated (the default to prefer)
  pre_days=N     as_of = the readout's as_of − N days (N at least the experiment's age, or the
                 covariate includes treated days and absorbs part of the effect)
Rows then show the adjusted diff, lift, CI and p-value (test `CUPED (delta method, Welch t)`),
`theta`, the `variance_reduction` achieved (1 − adjusted variance ÷ unadjusted delta-method
variance) and `pre_covered` (members with a pre-period value); value and control_value stay
unadjusted.
Without cuped the readout is the same as before, column for column.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlglot import exp

from segsql import formats
from segsql.compile.catalog import is_numeric
from segsql.config.inputs import parse_as_of
from segsql.engines import storage
from segsql.errors import UsageError, did_you_mean
from segsql.measure import cuped, stats
from segsql.measure.compare import RESAMPLE_LIMIT, as_values, sufficient_by_group, values_by_group
from segsql.measure.metrics import resolve
from segsql.run.runner import deduplicated

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.compile.splits import Split
    from segsql.engines.base import Engine
    from segsql.measure.metrics import Metric

SRM_ALPHA = 0.001
SMD_LIMIT = 0.1


@dataclass
class Readout:
    segment: str
    column: str
    control: str
    sizes: pd.DataFrame  # group, members, expected_share, observed_share
    srm_p_value: float | None
    metrics: pd.DataFrame  # metric, group, value, control_value, lift, ci_low, ci_high, p_value, significant
    balance: pd.DataFrame  # trait, kind, group, statistic, flagged
    pre_period_as_of: dt.date | None = None  # CUPED's covariate date (None: no CUPED)

    @property
    def sample_ratio_mismatch(self) -> bool:
        return self.srm_p_value is not None and self.srm_p_value < SRM_ALPHA

    def _repr_html_(self) -> str:
        srm = formats.p_value(self.srm_p_value) or "n/a"
        warning = " <b style='color:#a4262c'>sample-ratio mismatch: do not trust this readout</b>" \
            if self.sample_ratio_mismatch else ""
        adjusted = "" if self.pre_period_as_of is None else \
            f" (CUPED: each metric adjusted by its value as of {self.pre_period_as_of})"
        shown = {"float_format": formats.number, "formatters": {"p_value": formats.p_value}}
        return (f"<h4>{self.segment}: groups by {self.column}</h4>{self.sizes.to_html(index=False, **shown)}"
                f"<p>SRM test p = {srm}{warning}</p><h4>against {self.control}{adjusted}</h4>"
                f"{self.metrics.to_html(index=False, **shown)}"
                f"<h4>balance of traits</h4>{self.balance.to_html(index=False, **shown)}")

    def __repr__(self) -> str:
        """Short and readable: groups, the sample-ratio test and each metric against the control."""
        groups = ", ".join(f"{r.group} {formats.count(r.members)}" for r in self.sizes.itertuples(index=False))
        verdict = " MISMATCH: do not trust this readout" if self.sample_ratio_mismatch else ""
        lines = [f"Readout({self.segment} by {self.column}: {groups}; SRM test p = "
                 f"{formats.p_value(self.srm_p_value) or 'n/a'}{verdict})"]
        lines += [f"  {r.metric} {r.group} vs {self.control}: {formats.number(r.value)} vs "
                  f"{formats.number(r.control_value)}, p = {formats.p_value(r.p_value) or 'n/a'}"
                  + (" *" if r.significant is True else "") for r in self.metrics.itertuples(index=False)]
        return "\n".join(lines)


def split_column(compiler: Compiler, name: str, column: str | None) -> tuple[str, Split | None]:
    """The output column holding the split's group (the projection built by split()) and its spec."""
    compiled = compiler.compiled(name)
    if column is not None:
        if column.lower() not in compiled.columns:
            raise UsageError(f"segment `{name}` has no column `{column}`", None,
                             did_you_mean(column, compiled.columns))
        found = column.lower()
    else:
        with_split = [s.alias_or_name.lower() for s in compiled.tree.selects if s.find(exp.MD5) is not None]
        if len(with_split) != 1:
            raise UsageError(f"cannot tell which column of `{name}` holds the split group", None,
                             "name the column holding the group: --column NAME (Python: column='NAME')")
        found = with_split[0]
    specs = set(compiled.splits)  # the same split() may appear in SELECT and WHERE
    spec = specs.pop() if len(specs) == 1 else None
    return found, spec


def pre_period_as_of(as_of: dt.date, cuped: bool, start: dt.date | str | None, pre_days: int | None) -> dt.date | None:
    """CUPED's covariate date: the day before `start`, or `pre_days` before as_of (one of them);
    None without CUPED."""
    if not cuped:
        if pre_days is not None:
            raise UsageError("--pre-days sets CUPED's pre-period, and CUPED is off", None,
                             "add --cuped (Python: cuped=True)")
        return None
    if (start is None) == (pre_days is None):
        raise UsageError("CUPED needs the pre-period: the experiment's start or a number of days back, not "
                         + ("both" if start is not None else "neither"), None,
                         "--start YYYY-MM-DD (Python: start=...) or --pre-days N (pre_days=N)")
    if pre_days is not None:
        if pre_days < 1:
            raise UsageError(f"--pre-days must be at least 1, got {pre_days}", None, "e.g. --pre-days 90")
        return as_of - dt.timedelta(days=pre_days)
    began = parse_as_of(start)
    if began > as_of:
        raise UsageError(f"the experiment start {began} is after the readout's as_of {as_of}", None,
                         "give the day the split went live, or a later --as-of")
    return began - dt.timedelta(days=1)


def experiment_start(as_of: dt.date, start: dt.date | str | None) -> dt.date | None:
    """The experiment's first day, checked against the readout's date (None: not given)."""
    if start is None:
        return None
    began = parse_as_of(start)
    if began > as_of:
        raise UsageError(f"the experiment start {began} is after the readout's as_of {as_of}", None,
                         "give the day the split went live, or a later --as-of")
    return began


def _assigned(compiler: Compiler, engine: Engine, name: str, started: dt.date | None, key: str) -> exp.Expr:
    """Where the groups' members are: the last run's results, or with `started` the members the
    segment had on that day (evaluated as of it, point-in-time), one row per non-NULL key."""
    if started is None:
        table = storage.segment_table(name)
        if not engine.table_exists(table):
            raise UsageError(f"segment `{name}` has no results yet", None, f"run `segsql run --select {name}` first")
        return table
    on_start = compiler.with_options(as_of=started).tree(name)
    return deduplicated(on_start, key, list(compiler.compiled(name).columns)).subquery("assigned")


def readout(compiler: Compiler, engine: Engine, metrics: dict[str, Metric], name: str, metric_names: list[str],
            column: str | None = None, control: str | None = None,
            pre_period: dt.date | None = None, started: dt.date | None = None) -> Readout:
    """Each group against `control` on every metric; with `pre_period` (a date) CUPED-adjusted by
    each metric's value as of that date; with `started` (the experiment's first day) the groups
    are the members assigned on that day, not those of the last run."""
    column, spec = split_column(compiler, name, column)
    entity = compiler.compiled(name).entity
    key = compiler.config.entities[entity].single_key(entity, "an experiment readout")
    chosen = resolve(metrics, metric_names)
    for metric in chosen:
        if metric.entity != entity:
            raise UsageError(f"metric `{metric.name}` is about {metric.entity}s, `{name}` holds {entity}s", None)
    engine.prepare_sources()
    table = _assigned(compiler, engine, name, started, key)
    groups = exp.select(exp.cast(exp.column(column), exp.DataType.Type.VARCHAR).as_("grp"),
                        exp.column(key).as_("key")).from_(table.copy())
    sums = sufficient_by_group(compiler, engine, groups, chosen)
    balance = _balance(compiler, engine, name, column, key, table)
    names = list(spec.expected_shares()) if spec else sorted(sums)
    control = control or names[0]
    if control not in sums:
        raise UsageError(f"no member is in group `{control}`", None, f"groups: {', '.join(sorted(sums))}")
    sizes, p_value = _srm(sums, names, spec)
    rows = []
    covariate = None if pre_period is None else compiler.with_options(as_of=pre_period)
    for metric in chosen:
        present = [g for g in names if g != control and g in sums]
        values = _resampling_values(compiler, engine, groups, metric, present, control, sums)
        joint = {} if covariate is None else cuped.joint_by_group(compiler, covariate, engine, groups, metric)
        for group in present:
            result = stats.compare(metric.kind, sums[group][metric.name], sums[control][metric.name],
                                   values.get(group))
            row = {"metric": metric.name, "group": group, "value": result.value, "control_value": result.baseline,
                   "lift": result.rel_diff, "diff": result.diff, "ci_low": result.ci_low, "ci_high": result.ci_high,
                   "p_value": result.p_value, "test": result.test, "note": result.note}
            if covariate is not None:
                row.update(_adjusted(result, joint.get(group, cuped.Joint()), joint.get(control, cuped.Joint())))
            rows.append(row)
    columns = ["metric", "group", "value", "control_value", "lift", "diff", "ci_low", "ci_high", "p_value", "test",
               "note", *(CUPED_COLUMNS if covariate is not None else [])]
    frame = pd.DataFrame(rows, columns=columns)
    frame["significant"] = stats.benjamini_hochberg(list(frame["p_value"])) if len(frame) else []
    return Readout(name, column, control, sizes, p_value, frame, balance, pre_period)


CUPED_COLUMNS = ["theta", "variance_reduction", "pre_covered"]


def _adjusted(result: stats.Result, group: cuped.Joint, control: cuped.Joint) -> dict[str, Any]:
    """The row's CUPED columns, and its diff, lift, CI, p and test replaced when CUPED applies."""
    covered = group.covered + control.covered
    share = covered / (group.n + control.n) if group.n + control.n else None
    adjusted = cuped.adjust(group, control, result)
    if adjusted.problem:
        note = "; ".join(part for part in (result.note, f"CUPED {adjusted.problem}") if part)
        return {"theta": None, "variance_reduction": None, "pre_covered": share, "note": note}
    lift = adjusted.diff / result.baseline if adjusted.diff is not None and result.baseline else None
    return {"diff": adjusted.diff, "lift": lift, "ci_low": adjusted.ci_low, "ci_high": adjusted.ci_high,
            "p_value": adjusted.p_value, "test": cuped.TEST, "theta": adjusted.theta,
            "variance_reduction": adjusted.variance_reduction, "pre_covered": share}


def _resampling_values(compiler: Compiler, engine: Engine, groups: exp.Query, metric: Metric, present: list[str],
                       control: str, sums: dict[str, Any]) -> dict[str, tuple[stats.Values, stats.Values]]:
    """Per-entity values for the groups whose comparison with the control needs resampling."""
    small = [g for g in present if stats.needs_values(metric.kind, sums[g][metric.name], sums[control][metric.name])]
    wanted = [*small, control]
    if not small or sum(sums[g][metric.name].n for g in wanted) > RESAMPLE_LIMIT:
        return {}
    fetched = values_by_group(compiler, engine, groups, metric, wanted)
    return {group: (as_values(fetched[group]), as_values(fetched[control])) for group in small}


def _srm(sums: dict[str, Any], names: list[str], spec: Split | None) -> tuple[pd.DataFrame, float | None]:
    from scipy.stats import chisquare

    counts = {group: next(iter(sums[group].values())).members if sums.get(group) else 0 for group in names}
    total = sum(counts.values())
    expected = spec.expected_shares() if spec else {g: 1 / len(names) for g in names}
    sizes = pd.DataFrame({"group": names, "members": [counts[g] for g in names],
                          "expected_share": [expected[g] for g in names],
                          "observed_share": [counts[g] / total if total else None for g in names]})
    if spec is None or total == 0:
        return sizes, None
    result = chisquare([counts[g] for g in names], [expected[g] * total for g in names])
    return sizes, float(result.pvalue)


def _balance(compiler: Compiler, engine: Any, name: str, column: str, key: str, table: exp.Expr) -> pd.DataFrame:
    """Per trait (output column other than key and group): SMD against the first group, or a
    chi-square test for text traits."""
    from scipy.stats import chi2_contingency

    compiled = compiler.compiled(name)
    traits = {c: t for c, t in compiled.columns.items() if c not in (column, key.lower())}
    rows: list[dict[str, Any]] = []
    for trait, kind in traits.items():
        if is_numeric(kind):
            value = exp.cast(exp.column(trait), exp.DataType.Type.DOUBLE)
            query = exp.select(exp.column(column), exp.func("count", value), exp.func("avg", value),
                               exp.func("sum", value.copy() * value.copy())).from_(table.copy()).group_by(column)
            stats_by = {str(r[0]): (int(r[1]), float(r[2] or 0), float(r[3] or 0)) for r in engine.fetchall(query)}
            groups = sorted(stats_by)
            base = stats_by[groups[0]] if groups else None
            for group in groups[1:]:
                smd = _smd(stats_by[group], base) if base else None
                rows.append({"trait": trait, "kind": "numeric (SMD)", "group": group, "statistic": smd,
                             "flagged": smd is not None and abs(smd) > SMD_LIMIT})
        elif kind is None or "CHAR" in kind.upper() or "TEXT" in kind.upper() or "BOOL" in kind.upper():
            query = exp.select(exp.column(column), exp.cast(exp.column(trait), exp.DataType.Type.VARCHAR),
                               exp.func("count", exp.Star())).from_(table.copy()).group_by(column, trait)
            counts = pd.DataFrame(engine.fetchall(query), columns=["grp", "value", "n"])
            pivot = counts.pivot_table(index="grp", columns="value", values="n", fill_value=0, dropna=False)
            if pivot.shape[0] > 1 and pivot.shape[1] > 1:
                p_value = float(chi2_contingency(pivot.to_numpy()).pvalue)
                rows.append({"trait": trait, "kind": "categorical (chi-square p)", "group": "all",
                             "statistic": p_value, "flagged": p_value < SRM_ALPHA})
    return pd.DataFrame(rows, columns=["trait", "kind", "group", "statistic", "flagged"])


def _smd(group: tuple[int, float, float], base: tuple[int, float, float]) -> float | None:
    def variance(n: int, mean: float, squares: float) -> float:
        return (squares - n * mean * mean) / (n - 1) if n > 1 else 0.0

    pooled = ((variance(*group) + variance(*base)) / 2) ** 0.5
    return None if pooled == 0 else (group[1] - base[1]) / pooled
