"""Experiment design for a segment: how small an effect on a metric an A/B test inside the
segment can detect (MDE), or how many members it needs for a given effect, from the segment's
own values of the metric. In the terms of the domain (DOMAIN.md, "A/B tests inside segments":
split a segment into control/treatment, compare a KPI, measure lift): the KPI is a metric of
metrics.yml (conversion rate, churn rate, NRR, CSAT, MRR per account, ...), the lift the MDE
relative to the KPI's value, and the split the segment's split() (segsql readout reads it out).

Inputs: the members of the segment's last run, the metric's per-entity values at `as_of` (the
history the test will see; `--as-of` picks an earlier date), and the group shares: the
segment's own split() if it has one, else `shares` (percents, e.g. {'control': 50,
'treatment': 50}, the default). The first group is the control; each other group gets one
row against it. Only the sums of the values leave the engine (one query).

Per row: the expected measured entities of each group (n = measured × share; eligible
entities for a proportion), the MDE up and down at the given power and α (two-sided; the
readout flags significance after Benjamini–Hochberg, so several metrics or groups need a
little more), as an absolute difference and relative to the baseline; with `effect`
(absolute) or `lift` (relative, 0.05 = +5%) also the total measured entities needed and the
factor against the segment's. Formulas: segsql.measure.power.

Refused: an unknown segment or metric, a sum metric, α outside (0, 1), power outside (α, 1),
fewer than 30 measured members (too few to estimate the variance). Noted: a group that would
have fewer than 30 measured entities, or values so skewed (or, for a ratio, a denominator so
variable) that the readout would use its permutation test (Cochran's rule, see
segsql.measure.stats): the normal MDE is then optimistic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlglot import exp

from segsql.compile.splits import parse_groups
from segsql.errors import UsageError
from segsql.measure import power as power_math
from segsql.measure import stats
from segsql.measure.compare import sufficient_by_group
from segsql.measure.metrics import resolve
from segsql.run.results import result_table

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine
    from segsql.measure.metrics import Metric

DEFAULT_SHARES = {"control": 50.0, "treatment": 50.0}
OVERDISPERSED = 1.5  # a rate's per-member variance over its Poisson variance worth a note


@dataclass
class PowerAnalysis:
    segment: str
    metric: str
    kind: str
    baseline: float
    sd: float
    measured: int          # measured members (eligible, for a proportion)
    members: int
    alpha: float
    power: float
    shares_from: str       # "split()", "shares" or "default 50/50"
    effect: float | None   # absolute effect asked about, if any
    rows: pd.DataFrame     # group, share, control_n, group_n, mde_up, mde_down, relative_mde_up, ...
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """A one-line summary per group, as the CLI prints it."""
        lines = []
        def shown(value: float | None, sign: str) -> str:
            return "none" if value is None or pd.isna(value) else f"{sign}{value:.4g}"

        for row in self.rows.itertuples():
            relative = "" if row.relative_mde_up is None or pd.isna(row.relative_mde_up) else \
                f"{row.relative_mde_up:+.1%} of "
            line = (f"{row.group} vs control: detects {shown(row.mde_up, '+')} / {shown(row.mde_down, '-')} "
                    f"({relative}{self.baseline:.4g}) with {self.power:.0%} power at alpha {self.alpha:g}")
            if self.effect is not None:
                line += f"; {self.effect:+.4g} needs {row.needed_total:,} measured ({row.needed_factor:.2f}x)"
            lines.append(line)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        notes = "".join(f"<p>note: {note}</p>" for note in self.notes)
        return (f"<h4>{self.segment}: power on {self.metric} ({self.kind})</h4><p>baseline {self.baseline:.4g}, "
                f"per-member sd {self.sd:.4g}, {self.measured:,} measured of {self.members:,} members; "
                f"alpha {self.alpha:g}, power {self.power:.0%}; shares from {self.shares_from}</p>"
                f"{self.rows.to_html(index=False, float_format=lambda v: f'{v:.4g}')}{notes}")


def power(compiler: Compiler, engine: Engine, metrics: dict[str, Metric], name: str, metric_name: str,
          shares: dict[str, float] | None = None, alpha: float = 0.05, power: float = 0.8,
          effect: float | None = None, lift: float | None = None) -> PowerAnalysis:
    """MDE per treatment group (and the sample for `effect`/`lift`) for an A/B test inside `name`."""
    power_math.check_levels(alpha, power)
    if effect is not None and lift is not None:
        raise UsageError("give the effect as an absolute difference or as a lift, not both", None,
                         "--effect 0.02 (in the metric's units) or --lift 0.05 (+5%)")
    metric = resolve(metrics, [metric_name])[0]
    entity = compiler.entity_of(name)
    if metric.entity != entity:
        raise UsageError(f"metric `{metric.name}` is about {metric.entity}s, `{name}` holds {entity}s", None,
                         "pick a metric of the segment's entity (`segsql metrics`)")
    if metric.kind not in power_math.KINDS:
        raise UsageError(f"metric `{metric.name}` is a sum (descriptive, no test), so it has no power", None,
                         "use a mean metric of the same values, e.g. MRR per account")
    groups, shares_from = _shares(compiler, name, shares)
    key = compiler.config.entities[entity].single_key(entity, "a power analysis")
    engine.prepare_sources()
    members = exp.select(exp.Literal.string("segment").as_("grp"), exp.column(key).as_("key")).from_(
        result_table(compiler, engine, name))
    sums = sufficient_by_group(compiler, engine, members, [metric]).get("segment", {}).get(metric.name)
    spread = power_math.variability(metric.kind, sums) if sums is not None and sums.n else None
    if sums is None or spread is None or spread.measured < stats.MIN_ASYMPTOTIC_N:
        measured = 0 if spread is None else spread.measured
        raise UsageError(f"segment `{name}` has {measured} member(s) measured on `{metric.name}`: too few to estimate "
                         f"its variance (a power analysis needs {stats.MIN_ASYMPTOTIC_N})", None,
                         "use a larger segment, or an earlier --as-of with more history")
    if effect is None and lift is not None:
        if spread.baseline == 0:
            raise UsageError("a lift is relative to the baseline, which is 0", None, "give --effect instead")
        effect = lift * spread.baseline
    rows, notes = _rows(spread, sums, groups, alpha, power, effect)
    return PowerAnalysis(name, metric.name, metric.kind, spread.baseline, spread.sd, spread.measured, sums.members,
                         alpha, power, shares_from, effect, rows, notes)


def _shares(compiler: Compiler, name: str, shares: dict[str, float] | None) -> tuple[list[tuple[str, float]], str]:
    """(group, share in 0..1) with the control first, and where the shares came from."""
    if shares is not None:
        try:
            parsed = parse_groups(shares)
        except ValueError as error:
            raise UsageError(f"shares: {error}", None, "e.g. --shares control=50,treatment=50") from None
        return [(group, percent / 100) for group, percent in parsed], "shares"
    splits = set(compiler.compiled(name).splits)
    if len(splits) == 1:
        return list(splits.pop().expected_shares().items()), "split()"
    return [(group, percent / 100) for group, percent in DEFAULT_SHARES.items()], "default 50/50"


def _rows(spread: power_math.Variability, sums: stats.Sufficient, groups: list[tuple[str, float]], alpha: float,
          power: float, effect: float | None) -> tuple[pd.DataFrame, list[str]]:
    (control, control_share), notes, rows = groups[0], [], []
    variance, third, cv = stats.unit_moments(spread.kind, sums)
    for group, share in groups[1:]:
        n1, n0 = spread.measured * share, spread.measured * control_share
        up, down = power_math.mde(spread, n1, n0, alpha, power)
        row: dict[str, Any] = {"group": group, "share": share, "control_n": n0, "group_n": n1, "mde_up": up,
                               "mde_down": down,
                               "relative_mde_up": up / spread.baseline if up is not None and spread.baseline else None}
        if effect is not None:
            total = math.ceil(power_math.sample_size(spread, effect, share, control_share, alpha, power))
            row.update(needed_total=total, needed_factor=total / spread.measured)
        rows.append(row)
        notes += _approximation_notes(spread.kind, group, control, n1, n0, variance, third, cv)
    if spread.dispersion is not None and spread.dispersion > OVERDISPERSED:
        notes.append(f"events vary {spread.dispersion:.1f} times more between members than a Poisson process "
                     "allows: the readout's Poisson test is liberal for this metric")
    return pd.DataFrame(rows), list(dict.fromkeys(notes))


def _approximation_notes(kind: str, group: str, control: str, n1: float, n0: float, variance: float, third: float,
                         cv: float) -> list[str]:
    """Where the readout would not use the normal approximation this MDE assumes."""
    notes = [f"`{label}` would have {n:.0f} measured: the readout would use an exact or permutation test, "
             f"with less power than this" for label, n in ((group, n1), (control, n0)) if n < stats.MIN_ASYMPTOTIC_N]
    if notes or kind not in ("mean", "ratio"):
        return notes
    skew = stats.difference_skewness(variance, third, max(int(n1), 2), max(int(n0), 2))
    if abs(skew) > stats.MAX_SKEW:
        notes.append(f"`{group}` vs `{control}`: values too skewed for the normal approximation (skewness of the "
                     f"difference {skew:.2f}); the readout would use the permutation test, this MDE is optimistic")
    if kind != "mean" and cv / math.sqrt(min(n1, n0)) > stats.MAX_DENOMINATOR_CV:
        notes.append(f"`{group}` vs `{control}`: the ratio's denominator varies too much at these sizes for the delta "
                     "method; the readout would use the permutation test, this MDE is optimistic")
    return notes
