"""The segment validation report: the field's criteria for a good segment, made measurable.

  substantial  size ≥ min_size and share ≥ min_share
  distinct     significantly different from the rest on at least one target metric (after
               Benjamini–Hochberg over all segments × target metrics)
  measurable   target metrics computable for ≥ min_measured_share of members
  accessible   share of members reachable (contact channel and marketing consent) ≥ threshold
  stable       members kept since the previous successful run: Jaccard ≥ min_jaccard
Each check is pass / warn / fail with the numbers behind it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlglot import exp

from segsql import formats
from segsql.engines import storage
from segsql.errors import SegsqlError
from segsql.measure.compare import compare
from segsql.run.results import size as result_size

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine
    from segsql.measure.metrics import Metric

PASS, WARN, FAIL = "pass", "warn", "fail"


def segment_report(compiler: Compiler, engine: Engine, metrics: dict[str, Metric],
                   segments: list[str]) -> pd.DataFrame:
    """One row per segment and criterion: verdict and the numbers behind it."""
    rules = compiler.config.segment_validation
    rows: list[dict[str, Any]] = []
    by_entity: dict[str, list[str]] = {}
    for name in segments:
        by_entity.setdefault(compiler.compiled(name).entity, []).append(name)
    for entity, names in sorted(by_entity.items()):
        targets = {m: metrics[m] for m in rules.target_metrics if m in metrics and metrics[m].entity == entity}
        reach = rules.reachable.get(entity)
        wanted = [*targets, *([reach] if reach else [])]
        comparison = compare(compiler, engine, metrics, names, wanted, baseline="rest") if wanted else None
        history, entered = _sizes(engine, names), _entered(engine, names)
        for name in names:
            rows.extend(_rows(compiler, engine, name, comparison, targets, reach, history.get(name, []),
                              entered.get(name)))
    return pd.DataFrame(rows, columns=["segment", "criterion", "verdict", "value", "threshold", "detail"])


def _rows(compiler: Compiler, engine: Engine, name: str, comparison: Any, targets: dict[str, Metric], reach: str | None,
          sizes: list[tuple[int, int | None]], entered: int | None) -> list[dict[str, Any]]:
    rules = compiler.config.segment_validation
    size, population = sizes[0] if sizes else (result_size(compiler, engine, name), None)
    share = size / population if population else None
    out = [_row(name, "substantial", PASS if size >= rules.min_size and (share is None or share >= rules.min_share)
                else FAIL, size, f"≥ {rules.min_size} members, ≥ {rules.min_share:.1%}",
                f"{size:,} members" + (f", {share:.1%} of {population:,}" if share is not None else ""))]
    if comparison is None:
        out.append(_row(name, "distinct", WARN, None, "", "no target_metrics configured"))
        out.append(_row(name, "measurable", WARN, None, "", "no target_metrics configured"))
    else:
        out.extend(_distinct_and_measurable(name, comparison, targets, rules))
    out.append(_accessible(name, comparison, reach, rules))
    out.append(_stable(name, sizes, rules, entered))
    return out


def _row(name: str, criterion: str, verdict: str, value: Any, threshold: str, detail: str) -> dict[str, Any]:
    return {"segment": name, "criterion": criterion, "verdict": verdict, "value": value,
            "threshold": threshold, "detail": detail}


def _distinct_and_measurable(name: str, comparison: Any, targets: dict[str, Metric],
                             rules: Any) -> list[dict[str, Any]]:
    differing, coverage = [], []
    for metric, definition in targets.items():
        row = comparison.tables[metric].set_index("segment").loc[name]
        if row["significant"] is True:  # as compare prints it: NRR in pp, money with separators, no exponent
            difference = formats.difference(row["diff"], definition.kind, definition.spec.unit)
            p_value = formats.p_value(row["p_value"])
            differing.append(f"{metric} {difference} (p{'' if p_value.startswith('<') else '='}{p_value})")
        coverage.append((metric, row["measured"] / row["members"] if row["members"] else 0.0))
    distinct = _row(name, "distinct", PASS if differing else FAIL, len(differing),
                    "≥ 1 target metric significant vs rest (BH)",
                    "; ".join(differing) or "no target metric differs significantly from the rest")
    worst = min(coverage, key=lambda c: c[1]) if coverage else (None, 1.0)
    measurable = _row(name, "measurable", PASS if worst[1] >= rules.min_measured_share else WARN,
                      round(worst[1], 4), f"≥ {rules.min_measured_share:.0%} of members measured",
                      f"lowest coverage: {worst[0]} {worst[1]:.0%}" if worst[0] else "")
    return [distinct, measurable]


def _accessible(name: str, comparison: Any, reach: str | None, rules: Any) -> dict[str, Any]:
    if comparison is None or reach is None:
        return _row(name, "accessible", WARN, None, "", "no reachable metric configured for this entity")
    row = comparison.tables[reach].set_index("segment").loc[name]
    value = row["value"]
    if value is None or pd.isna(value):
        return _row(name, "accessible", FAIL, None, f"≥ {rules.min_reachable_share:.0%}", "no member measured")
    verdict = PASS if value >= rules.min_reachable_share else FAIL
    return _row(name, "accessible", verdict, round(float(value), 4), f"≥ {rules.min_reachable_share:.0%} reachable",
                f"{value:.0%} of members have a contact channel and consent")


def _stable(name: str, sizes: list[tuple[int, int | None]], rules: Any, entered: int | None) -> dict[str, Any]:
    """Members kept between the last two runs: the Jaccard index of the two member sets (sizes
    alone would call a segment stable whose members all changed)."""
    threshold = f"Jaccard ≥ {rules.min_jaccard:.2f} with the previous run"
    if len(sizes) < 2:
        return _row(name, "stable", WARN, None, threshold, "only one successful run so far")
    current, previous = sizes[0][0], sizes[1][0]
    if entered is None:  # no history to compare members with: sizes only
        change = abs(current - previous) / previous if previous else (0.0 if current == 0 else 1.0)
        verdict = PASS if change <= rules.max_size_change else WARN
        return _row(name, "stable", verdict, round(change, 4), f"≤ {rules.max_size_change:.0%} size change",
                    f"{previous:,} -> {current:,} members since the previous run (no history to compare members)")
    union = previous + entered
    jaccard = (current - entered) / union if union else 1.0
    left = previous - (current - entered)
    verdict = PASS if jaccard >= rules.min_jaccard else WARN
    return _row(name, "stable", verdict, round(jaccard, 4), threshold,
                f"{previous:,} -> {current:,} members: {entered:,} entered, {left:,} left since the previous run")


def _entered(engine: Engine, names: list[str]) -> dict[str, int]:
    """Members that entered each segment in its last successful run (from the history)."""
    if not engine.table_exists(storage.table("history")):
        return {}
    last = (exp.select(exp.column("segment", "s"), exp.func("max", exp.column("run_id", "s")).as_("run_id"))
            .from_(storage.table("run_segments").as_("s"))
            .join(storage.table("runs").as_("r"), on=exp.column("run_id", "r").eq(exp.column("run_id", "s")))
            .where(exp.and_(exp.column("status", "r").eq(exp.Literal.string(storage.SUCCESS)),
                            exp.column("segment", "s").isin(*[exp.Literal.string(n) for n in names])))
            .group_by(exp.column("segment", "s")))
    query = (exp.select(exp.column("segment", "l"), exp.func("count", exp.column("entity_key", "h")))
             .from_(last.subquery("l"))
             .join(storage.table("history").as_("h"), join_type="left",
                   on=exp.and_(exp.column("segment", "h").eq(exp.column("segment", "l")),
                               exp.column("run_id", "h").eq(exp.column("run_id", "l"))))
             .group_by(exp.column("segment", "l")))
    try:
        return {str(segment): int(count) for segment, count in engine.fetchall(query)}
    except SegsqlError:
        return {}


def _sizes(engine: Engine, names: list[str]) -> dict[str, list[tuple[int, int | None]]]:
    """(size, population) of the last two successful runs of each segment, newest first."""
    if not engine.table_exists(storage.table("run_segments")):
        return {}
    runs, segments = storage.table("runs"), storage.table("run_segments")
    query = (exp.select(exp.column("segment", "s"), exp.column("row_count", "s"), exp.column("population", "s"))
             .from_(segments.as_("s")).join(runs.as_("r"), on=exp.column("run_id", "r").eq(exp.column("run_id", "s")))
             .where(exp.and_(exp.column("status", "r").eq(exp.Literal.string(storage.SUCCESS)),
                             exp.column("segment", "s").isin(*[exp.Literal.string(n) for n in names])))
             .order_by(exp.Ordered(this=exp.column("started_at", "r"), desc=True)))
    found: dict[str, list[tuple[int, int | None]]] = {}
    try:
        for segment, rows, population in engine.fetchall(query):
            found.setdefault(segment, []).append((int(rows), None if population is None else int(population)))
    except SegsqlError:
        return {}
    return found
