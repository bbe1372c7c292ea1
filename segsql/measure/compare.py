"""Compare segments on metrics, overlap, size waterfall and priority lists.

Every function sends one query to the engine: member keys come from each segment's typed result
table, metric values from the metrics' per-entity queries, and only aggregates come back. One
exception: a mean or ratio comparison outside the normal approximation's conditions (a group with
fewer than 30 measured entities, no variance, skewed values or, for a ratio, a denominator that
varies too much; see segsql.measure.stats) needs per-entity
values for its resampling test. compare() then sends one more query for those metrics and groups
only (the segment and its baseline; for `rest` the population), at most RESAMPLE_LIMIT rows; above
that the row says "too few to test". The values stay in memory for the test and are not returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from segsql.compile.keys import EntityKey
from segsql.errors import SegsqlError, UsageError
from segsql.measure import metrics as metrics_module
from segsql.measure import stats
from segsql.run.results import members_as_of, result_table
from segsql.run.results import size as result_size

if TYPE_CHECKING:
    import pandas as pd

    from segsql.compile.compiler import Compiler
    from segsql.engines.base import Engine
    from segsql.measure.metrics import Metric

ALL = "__all__"
RESAMPLE_LIMIT = 100_000  # per-entity values fetched for resampling tests, per metric
SUM_FIELDS = ("num", "den", "num2", "den2", "numden", "num3", "num2den", "numden2", "den3")  # Sufficient after n


COMPARISON_COLUMNS = ["segment", "members", "measured", "value", "baseline", "baseline_members", "diff", "rel_diff",
                      "ci_low", "ci_high", "p_value", "test", "significant", "note", "denominator_total"]


@dataclass
class Comparison:
    """One table per metric: each segment against its baseline, with CI, p-value and BH flag.
    Held as rows; the DataFrames are built on first use, so the CLI's JSON and CSV output does
    not import pandas (0.45 s of CPU, a third of a whole `segsql compare`)."""
    baseline: str
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    roi_rows: list[dict[str, Any]] | None = None

    @cached_property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Built once, on first use (after compare() has filled and flagged the rows)."""
        return {name: _frame(rows, COMPARISON_COLUMNS) for name, rows in self.rows.items()}

    @property
    def roi(self) -> pd.DataFrame | None:
        import pandas as pd

        return None if self.roi_rows is None else pd.DataFrame(self.roi_rows)

    def records(self) -> list[dict[str, Any]]:
        """All metrics in one long list of rows, each with its `metric`."""
        return [{**row, "metric": name} for name, rows in self.rows.items() for row in rows]

    def to_frame(self) -> pd.DataFrame:
        """All metrics in one long table."""
        return _frame(self.records(), [*COMPARISON_COLUMNS, "metric"])


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """Rows as a DataFrame whose `significant` holds True/False/None as Python objects (a column
    of only booleans would become numpy booleans, and `flag is True` would fail)."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    frame["significant"] = pd.Series([row["significant"] for row in rows], index=frame.index, dtype=object)
    return frame


def _entity(compiler: Compiler, segments: list[str]) -> str:
    """The one entity of `segments`, from their config() (they have run, so they validated)."""
    entities = {compiler.entity_of(name) for name in segments}
    if len(entities) != 1:
        raise UsageError(f"segments mix entities ({', '.join(sorted(entities))})", None,
                         "compare segments of one entity; roll users up to accounts with rollup()")
    return entities.pop()


def _groups(compiler: Compiler, engine: Engine, segments: list[str], entity: str, with_all: bool) -> exp.Query:
    """(grp, key) rows: every selected segment's members and, optionally, the population."""
    key = EntityKey(compiler.config.entities[entity].key_columns)  # a composite key compares as its text
    tables = members_as_of(compiler, engine, segments)
    parts: list[exp.Query] = [
        exp.select(exp.Literal.string(name).as_("grp"), key.value().as_("key")).from_(tables[name], copy=False)
        for name in segments]
    if with_all:
        declared = compiler.config.entities[entity]
        if declared.source is None:
            raise UsageError(f"entity `{entity}` has no population source, so there is no `rest` or `all`",
                             None, "compare against a segment: baseline='<segment>'")
        population = exp.select(*key.parts()).distinct().from_(compiler.source_relation(declared.source))
        parts.append(exp.select(exp.Literal.string(ALL).as_("grp"), key.value().as_("key"))
                     .from_(population.subquery("population")))
    union: exp.Query = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False, copy=False)
    return union


def compare(compiler: Compiler, engine: Engine, metrics: dict[str, Metric], segments: list[str],
            metric_names: list[str], baseline: str = "rest", costs: dict[str, float] | None = None,
            roi_metric: str | None = None) -> Comparison:
    """Compare each segment with `baseline` ('rest', 'all' or a segment) on every metric."""
    if not segments:
        raise UsageError("name at least one segment to compare", None, "e.g. compare(['power_users'], ...)")
    wanted = [*metric_names, *([roi_metric] if roi_metric else [])]
    chosen = metrics_module.resolve(metrics, list(dict.fromkeys(wanted)))
    targets = list(dict.fromkeys(segments))
    if baseline not in ("rest", "all") and baseline not in targets:
        compiler.segment(baseline)
    names = list(dict.fromkeys([*targets, *([baseline] if baseline not in ("rest", "all") else [])]))
    entity = _entity(compiler, names)
    for metric in chosen:
        if metric.entity != entity:
            raise UsageError(f"metric `{metric.name}` is about {metric.entity}s, the segments are {entity}s", None,
                             "pick metrics of the segments' entity")
    engine.prepare_sources()
    sufficient = _sufficient(compiler, engine, names, entity, chosen, baseline in ("rest", "all"))
    comparison = Comparison(baseline=baseline)
    groups = _groups(compiler, engine, names, entity, baseline in ("rest", "all"))
    for metric in chosen:
        if metric.name in metric_names:
            values = _values_for_small_groups(compiler, engine, groups, metric, targets, baseline, sufficient)
            comparison.rows[metric.name] = _rows(metric, targets, baseline, sufficient, values)
    _flag_significance(comparison)
    if costs:
        comparison.roi_rows = _roi(metrics, targets, costs, roi_metric, sufficient)
    return comparison


def _sufficient(compiler: Compiler, engine: Engine, names: list[str], entity: str, chosen: list[Metric],
                with_all: bool) -> dict[str, dict[str, stats.Sufficient]]:
    """One query: group sizes and per-metric sums for every group; returns grp -> metric -> sums."""
    result = sufficient_by_group(compiler, engine, _groups(compiler, engine, names, entity, with_all), chosen)
    for name in names:  # an empty segment has no rows in the groups
        result.setdefault(name, {m.name: stats.Sufficient() for m in chosen})
    return result


def sufficient_by_group(compiler: Compiler, engine: Engine, groups: exp.Query,
                        chosen: list[Metric]) -> dict[str, dict[str, stats.Sufficient]]:
    """Sizes and per-metric sums of each `grp` of a (grp, key) query, in one engine query."""
    query = exp.select(exp.column("grp", "g"), exp.func("count", exp.Star()).as_("members")).from_(
        groups.subquery("g")).group_by(exp.column("grp", "g"))
    for index, metric in enumerate(chosen):
        alias = f"m{index}"
        values = metrics_module.entity_query(compiler, metric)
        measured = exp.select("*").from_(values.subquery("v")).where(exp.and_(
            exp.column("den").is_(exp.null()).not_(), exp.column("num").is_(exp.null()).not_()))
        query = query.join(measured.subquery(alias), on=exp.column("key", alias).eq(exp.column("key", "g")),
                           join_type="left", copy=False)
        query = query.select(exp.func("count", exp.column("den", alias)).as_(f"{alias}_n"), append=True, copy=False)
        query = query.select(*[exp.func("sum", product).as_(f"{alias}_{label}")
                               for label, product in _powers(exp.column("num", alias), exp.column("den", alias))],
                             append=True, copy=False)
    width = 1 + len(SUM_FIELDS)
    result: dict[str, dict[str, stats.Sufficient]] = {}
    for row in engine.fetchall(query):
        grp, members = row[0], int(row[1])
        result[grp] = {}
        for index, metric in enumerate(chosen):
            cells = row[2 + index * width: 2 + (index + 1) * width]
            result[grp][metric.name] = stats.Sufficient(members, int(cells[0] or 0),
                                                        *(float(v or 0.0) for v in cells[1:]))
    return result


def _powers(num: exp.Column, den: exp.Column) -> list[tuple[str, exp.Expr]]:
    """The products summed per group, in the order of stats.Sufficient's fields after `n`."""
    def product(*factors: exp.Column) -> exp.Expr:
        result: exp.Expr = factors[0].copy()
        for factor in factors[1:]:
            result = exp.Mul(this=result, expression=factor.copy())
        return result

    parts = {"num": (num,), "den": (den,), "num2": (num, num), "den2": (den, den), "numden": (num, den),
             "num3": (num, num, num), "num2den": (num, num, den), "numden2": (num, den, den), "den3": (den, den, den)}
    return [(label, product(*parts[label])) for label in SUM_FIELDS]


Sums = dict[str, dict[str, stats.Sufficient]]
PerEntity = dict[str, dict[Any, tuple[float, float]]]  # grp -> key -> (num, den)


def values_by_group(compiler: Compiler, engine: Engine, groups: exp.Query, metric: Metric,
                    wanted: list[str]) -> PerEntity:
    """Per-entity (num, den) of the measured members of the `wanted` groups of a (grp, key)
    query, at most RESAMPLE_LIMIT rows (UsageError above: the caller checks the sizes first)."""
    measured = exp.select("*").from_(metrics_module.entity_query(compiler, metric).subquery("v")).where(exp.and_(
        exp.column("den").is_(exp.null()).not_(), exp.column("num").is_(exp.null()).not_()))
    query = (exp.select(exp.column("grp", "g"), exp.column("key", "g"), exp.column("num", "m"),
                        exp.column("den", "m"))
             .from_(groups.subquery("g"))
             .join(measured.subquery("m"), on=exp.column("key", "m").eq(exp.column("key", "g")))
             .where(exp.column("grp", "g").isin(*[exp.Literal.string(name) for name in wanted]))
             .limit(RESAMPLE_LIMIT + 1))
    result: PerEntity = {name: {} for name in wanted}
    rows = engine.fetchall(query)
    if len(rows) > RESAMPLE_LIMIT:
        raise UsageError(f"more than {RESAMPLE_LIMIT:,} values to resample", None)
    for grp, key, num, den in rows:
        result[grp][key] = (float(num), float(den))
    return result


def _small(metric: Metric, targets: list[str], baseline: str, sufficient: Sums) -> list[str]:
    """Segments whose comparison on `metric` needs the resampling test."""
    return [name for name in targets if name != baseline and stats.needs_values(
        metric.kind, sufficient[name][metric.name], _baseline(name, metric.name, baseline, sufficient))]


def _values_for_small_groups(compiler: Compiler, engine: Engine, groups: exp.Query, metric: Metric,
                             targets: list[str], baseline: str,
                             sufficient: Sums) -> dict[str, tuple[stats.Values, stats.Values]]:
    """(segment values, baseline values) for the comparisons that need resampling, if few enough."""
    small = _small(metric, targets, baseline, sufficient)
    if not small:
        return {}
    reference = ALL if baseline in ("rest", "all") else baseline
    wanted = list(dict.fromkeys([*small, reference]))
    if sum(sufficient[name][metric.name].n for name in wanted) > RESAMPLE_LIMIT:
        return {}
    fetched = values_by_group(compiler, engine, groups, metric, wanted)
    pairs = {}
    for name in small:
        own = fetched[name]
        other = {k: v for k, v in fetched[reference].items() if baseline != "rest" or k not in own}
        pairs[name] = (as_values(own), as_values(other))
    return pairs


def as_values(by_key: dict[Any, tuple[float, float]]) -> stats.Values:
    """In key order, so the seeded resampling gives the same p whatever order the engine returns."""
    pairs = [by_key[key] for key in sorted(by_key)]
    return stats.Values.of([p[0] for p in pairs], [p[1] for p in pairs])


def _baseline(name: str, metric: str, baseline: str, sufficient: Sums) -> stats.Sufficient:
    if baseline == "all":
        return sufficient[ALL][metric]
    if baseline == "rest":
        return sufficient[ALL][metric] - sufficient[name][metric]
    return sufficient[baseline][metric]


def _rows(metric: Metric, targets: list[str], baseline: str, sufficient: dict[str, dict[str, stats.Sufficient]],
          values: dict[str, tuple[stats.Values, stats.Values]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in targets:
        group = sufficient[name][metric.name]
        base = _baseline(name, metric.name, baseline, sufficient)
        if name == baseline:
            continue
        try:
            result = stats.compare(metric.kind, group, base, values.get(name))
        except ValueError as error:
            raise SegsqlError(f"metric `{metric.name}`: {error}", metric.location) from None
        note = result.note or ("baseline is empty" if base.members == 0 else "")
        rows.append({
            "segment": name, "members": group.members, "measured": group.n, "value": result.value,
            "baseline": result.baseline, "baseline_members": base.members, "diff": result.diff,
            "rel_diff": result.rel_diff, "ci_low": result.ci_low, "ci_high": result.ci_high,
            "p_value": result.p_value, "test": result.test, "significant": None, "note": note,
            "denominator_total": group.den,
        })
    return rows


def _flag_significance(comparison: Comparison) -> None:
    """Benjamini–Hochberg across every p-value of the call."""
    cells = [row for rows in comparison.rows.values() for row in rows]
    flags = stats.benjamini_hochberg([row["p_value"] for row in cells])
    for row, flag in zip(cells, flags, strict=True):
        row["significant"] = flag


def _roi(metrics: dict[str, Metric], targets: list[str], costs: dict[str, float], roi_metric: str | None,
         sufficient: dict[str, dict[str, stats.Sufficient]]) -> list[dict[str, Any]]:
    """ROI = (attributed revenue − cost) ÷ cost, revenue = the sum metric over the segment's members."""
    if roi_metric is None:
        raise UsageError("ROI needs a revenue metric", None, "pass roi_metric='expansion_arr' (a sum metric)")
    metric = metrics[roi_metric]
    if metric.kind != "sum":
        raise UsageError(f"ROI revenue metric `{roi_metric}` must be a sum metric, not {metric.kind}", None)
    rows = []
    for name, cost in costs.items():
        if name not in targets:
            raise UsageError(f"cost given for `{name}`, which is not compared", None, f"compare {name} too")
        if cost <= 0:
            raise UsageError(f"cost for `{name}` must be positive, got {cost}", None)
        revenue = sufficient[name][roi_metric].num
        rows.append({"segment": name, "revenue": revenue, "cost": cost, "roi": (revenue - cost) / cost})
    return rows


def overlap(compiler: Compiler, engine: Engine, segments: list[str]) -> pd.DataFrame:
    """Pairwise shared members and Jaccard index, in one query."""
    import pandas as pd

    if len(segments) < 2:
        raise UsageError("overlap needs at least two segments", None)
    entity = _entity(compiler, segments)
    groups = _groups(compiler, engine, segments, entity, with_all=False).subquery("a")
    other = _groups(compiler, engine, segments, entity, with_all=False).subquery("b")
    query = (exp.select(exp.column("grp", "a").as_("left"), exp.column("grp", "b").as_("right"),
                        exp.func("count", exp.Star()).as_("shared"))
             .from_(groups).join(other, on=exp.column("key", "a").eq(exp.column("key", "b")))
             .group_by(exp.column("grp", "a"), exp.column("grp", "b")))
    shared = {(left, right): int(count) for left, right, count in engine.fetchall(query)}
    sizes = {name: shared.get((name, name), 0) for name in segments}
    rows = []
    for left in segments:
        for right in segments:
            both = shared.get((left, right), 0)
            union = sizes[left] + sizes[right] - both
            rows.append({"left": left, "right": right, "left_size": sizes[left], "right_size": sizes[right],
                         "shared": both, "jaccard": both / union if union else None})
    return pd.DataFrame(rows)


def waterfall(compiler: Compiler, engine: Engine, name: str, size: int | None = None) -> pd.DataFrame:
    """Members left after each top-level AND condition of the segment's WHERE, in order.
    The final `size` (after GROUP BY/HAVING) is the last run's unless given (a preview's)."""
    import pandas as pd

    compiled = compiler.compiled(name)
    key = compiler.config.entities[compiled.entity].single_key(compiled.entity, "a waterfall")
    tree = compiler.tree(name)
    if not isinstance(tree, exp.Select) or tree.args.get("where") is None:
        raise UsageError(f"segment `{name}` has no WHERE clause on its outer SELECT", None,
                         "a waterfall splits the WHERE's top-level AND conditions")
    conditions = list(tree.args["where"].this.flatten()) if isinstance(tree.args["where"].this, exp.And) \
        else [tree.args["where"].this]
    key_expression = _key_expression(tree, key)
    base = tree.copy()
    for clause in ("where", "group", "having", "order", "limit", "offset", "qualify", "distinct"):
        base.set(clause, None)
    steps: list[exp.Expr] = [exp.Count(this=exp.Distinct(expressions=[key_expression.copy()]))]
    cumulative: exp.Expr | None = None
    for condition in conditions:
        cumulative = condition.copy() if cumulative is None else exp.and_(cumulative, condition.copy())
        steps.append(exp.Count(this=exp.Distinct(expressions=[
            exp.Case(ifs=[exp.If(this=cumulative.copy(), true=key_expression.copy())])])))
    base.set("expressions", [step.as_(f"step{index}") for index, step in enumerate(steps)])
    dialect = compiler.config.dialect
    engine.prepare_sources()
    counts = [int(c) for c in engine.fetchall(base)[0]]
    # every step counts distinct keys (members), the first too: "all rows" mixed rows and members
    labels = [f"distinct {key} in FROM/JOIN"] + [c.sql(dialect=dialect) for c in conditions]
    rows = [{"step": index, "condition": label, "remaining": count,
             "removed": (counts[index - 1] - count) if index else 0}
            for index, (label, count) in enumerate(zip(labels, counts, strict=True))]
    if tree.args.get("having") is not None or tree.args.get("group") is not None:
        final = result_size(compiler, engine, name) if size is None else size
        rows.append({"step": len(rows), "condition": "GROUP BY / HAVING (final)",
                     "remaining": final, "removed": counts[-1] - final})
    return pd.DataFrame(rows)


def _key_expression(tree: exp.Select, key: str) -> exp.Expr:
    for projection in tree.expressions:
        if projection.alias_or_name.lower() == key.lower():
            found: exp.Expr = projection.this if isinstance(projection, exp.Alias) else projection
            return found
    raise UsageError(f"cannot find the entity key `{key}` among the outer SELECT's columns", None)


@dataclass
class Priority:
    """Mutually exclusive assignment: each entity to the first listed segment it is in."""
    counts: pd.DataFrame
    query: exp.Select
    suppressed: int


def prioritize(compiler: Compiler, engine: Engine, ordered: list[str], suppress: str | None = None) -> Priority:
    """Assign every member of `ordered` to its first segment; members of `suppress` to none."""
    import pandas as pd

    if not ordered:
        raise UsageError("give at least one segment in priority order", None)
    entity = _entity(compiler, [*ordered, *([suppress] if suppress else [])])
    key = EntityKey(compiler.config.entities[entity].key_columns)
    parts = [exp.select(exp.Literal.string(name).as_("segment"), exp.Literal.number(rank).as_("priority"),
                        key.value().as_("key")).from_(result_table(compiler, engine, name))
             for rank, name in enumerate(ordered)]
    union: exp.Query = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    rank = exp.Window(this=exp.func("row_number"), partition_by=[exp.column("key")],
                      order=exp.Order(expressions=[exp.Ordered(this=exp.column("priority"))]))
    ranked = exp.select("segment", "key", rank.as_("rank_in_key")).from_(union.subquery("u"))
    excluded: exp.Expr = exp.Literal.number(0)
    if suppress:
        table = result_table(compiler, engine, suppress)
        ranked = ranked.where(exp.column("key").isin(query=exp.select(key.value()).from_(table)).not_())
        excluded = exp.select(exp.func("count", exp.Star())).from_(union.subquery("s")).where(
            exp.column("key").isin(query=exp.select(key.value()).from_(table.copy()))).subquery()
    assigned = exp.select("segment", "key").from_(ranked.subquery("r")).where(exp.column("rank_in_key").eq(1))
    counts_query = exp.select("segment", exp.func("count", exp.Star()).as_("assigned"),
                              excluded.as_("suppressed_rows")).from_(assigned.subquery("a")).group_by("segment")
    rows = engine.fetchall(counts_query)
    assigned_counts = {segment: int(count) for segment, count, _ in rows}
    suppressed = int(rows[0][2]) if rows else 0
    counts = pd.DataFrame([{"priority": rank, "segment": name, "assigned": assigned_counts.get(name, 0)}
                           for rank, name in enumerate(ordered)])
    return Priority(counts=counts, query=assigned, suppressed=suppressed)


def metric_docs(metrics: dict[str, Metric]) -> list[dict[str, Any]]:
    return [metrics_module.describe(m) for m in metrics.values()]
