"""Metrics: per-entity numerator/denominator queries declared in metrics.yml.

Every metric reduces to one row per entity with a numerator `num` and a denominator `den`; an
entity with no row, or with `num` or `den` NULL, is not measured (a metric leaves entities out
with `NULLIF(..., 0)` or a CASE without ELSE, e.g. NRR over accounts active at the start).
The kind fixes how segments are compared (segsql.stats):
  proportion  num and den are 0/1 (den = 1: eligible; num = 1: has the property)  -> Σnum/Σden
  mean        den = 1 (default); the value is num                                -> mean of num
  ratio       any num and den                                                     -> Σnum/Σden
  rate        num = events, den = exposure (e.g. account-months)                  -> Σnum/Σden
  sum         den = 1 (default); descriptive, no test                             -> Σnum

    metrics:
      churn_rate:
        entity: account
        kind: proportion
        source: mrr_monthly
        description: Monthly logo churn ...
        numerator: "MAX(CASE WHEN month = {{ month_start(1) }} AND mrr > 0 THEN 1 ELSE 0 END) * ..."
        denominator: "MAX(CASE WHEN month = {{ month_start(1) }} AND mrr > 0 THEN 1 ELSE 0 END)"
        where: "month >= {{ month_start(1) }}"      # optional filter on source rows
        scale: 100                                  # optional display multiplier
        unit: percent                               # optional: percent, currency or count (how values
                                                    # read; default: a proportion is a percent)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlglot
from pydantic import Field
from sqlglot import exp

from segsql.compile import checks
from segsql.compile.builtins import table_for_source
from segsql.config.models import NAME_PATTERN, Strict, validate_model
from segsql.config.yamlfile import LocatedYaml, read_yaml_file
from segsql.errors import ConfigError, Location, SegsqlError, did_you_mean

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler

KINDS = ("proportion", "mean", "ratio", "rate", "sum")
METRICS_FILE = "metrics.yml"
METRICS_DIR = "metrics"


class MetricSpec(Strict):
    entity: str
    kind: Literal["proportion", "mean", "ratio", "rate", "sum"]
    source: str
    numerator: str
    denominator: str | None = None
    where: str | None = None
    description: str = ""
    period: str = ""
    scale: float = 1.0
    # how values read (segsql.formats): percent (NRR 1.393 -> 139.3%), currency, count; default by kind
    unit: Literal["", "percent", "currency", "count"] = ""


class MetricsFile(Strict):
    metrics: dict[str, MetricSpec] = Field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """A declared metric with where it was declared."""
    name: str
    spec: MetricSpec
    location: Location

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def entity(self) -> str:
        return self.spec.entity


def metric_files(root: Path) -> list[Path]:
    files = [root / METRICS_FILE] if (root / METRICS_FILE).is_file() else []
    folder = root / METRICS_DIR
    files += sorted(folder.rglob("*.yml")) if folder.is_dir() else []
    return files


def load_metrics(compiler: Compiler) -> dict[str, Metric]:
    """Every metric of the project; names unique across files, entities and sources known."""
    metrics: dict[str, Metric] = {}
    for path in metric_files(compiler.root):
        shown = str(path.relative_to(compiler.root))
        located = read_yaml_file(path, shown)
        parsed: MetricsFile = validate_model(MetricsFile, located.data or {}, located)
        for name, spec in parsed.metrics.items():
            where = located.locate(("metrics", name))
            _check(compiler, name, spec, located, metrics, where)
            metrics[name] = Metric(name, spec, where)
    return metrics


def _check(compiler: Compiler, name: str, spec: MetricSpec, located: LocatedYaml,
           known: dict[str, Metric], where: Location) -> None:
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"metric name `{name}` must be a plain identifier", where)
    if name in known:
        raise ConfigError(f"metric `{name}` is defined twice (also at {known[name].location})", where)
    if spec.entity not in compiler.config.entities:
        where = located.locate(("metrics", name, "entity"))
        raise ConfigError(f"metric `{name}`: unknown entity `{spec.entity}`", where,
                          did_you_mean(spec.entity, compiler.config.entities))
    if spec.source not in compiler.config.sources:
        where = located.locate(("metrics", name, "source"))
        raise ConfigError(f"metric `{name}`: unknown source `{spec.source}`", where,
                          did_you_mean(spec.source, compiler.config.sources))
    if spec.kind == "proportion" and spec.denominator is None:
        spec_where = located.locate(("metrics", name, "kind"))
        raise ConfigError(f"metric `{name}`: a proportion needs a 0/1 `denominator` saying who is eligible",
                          spec_where, "use '1' when every entity with a row is eligible")


def entity_query(compiler: Compiler, metric: Metric) -> exp.Select:
    """One row per entity: key, num, den (validated against the source's columns)."""
    spec = metric.spec
    key_column = compiler.config.entities[spec.entity].single_key(spec.entity, f"metric `{metric.name}`",
                                                                    metric.location)
    parts = {field: _expression(compiler, metric, field, getattr(spec, field))
             for field in ("numerator", "denominator", "where") if getattr(spec, field) is not None}
    query = exp.select(
        exp.column(key_column).as_("key"),
        exp.cast(parts["numerator"], exp.DataType.Type.DOUBLE).as_("num"),
        exp.cast(parts.get("denominator", exp.Literal.number(1)), exp.DataType.Type.DOUBLE).as_("den"),
    ).from_(table_for_source(spec.source, compiler.config.sources[spec.source].table, compiler.config.dialect)
            ).group_by(exp.column(key_column))
    if "where" in parts:
        query = query.where(parts["where"])
    _validate(compiler, metric, query)
    compiler.read_as_of(query)  # every source it reads, also in subqueries, as of the date
    return query


def _expression(compiler: Compiler, metric: Metric, field: str, text: str) -> exp.Expr:
    """Render the field's Jinja with the segment helpers, then parse it as one SQL expression."""
    where = Location(metric.location.path, metric.location.line, metric.location.col)
    sql = compiler.render_snippet(text, f"{metric.location.path}:{metric.name}.{field}", where)
    try:
        return sqlglot.parse_one(sql, dialect=compiler.config.dialect)
    except sqlglot.errors.ParseError as error:
        detail = error.errors[0]["description"] if error.errors else str(error)
        raise ConfigError(f"metric `{metric.name}` {field}: {detail}", where) from None


def _validate(compiler: Compiler, metric: Metric, query: exp.Select) -> None:
    try:
        all_scopes = checks.scopes(query)
        checks.check_read_only(query)
        checks.check_tables(all_scopes, compiler.catalog)
        checks.check_columns(all_scopes, compiler.catalog)
    except checks.RuleError as problem:
        raise ConfigError(f"metric `{metric.name}`: {problem.message}", metric.location, problem.hint) from None


def resolve(metrics: dict[str, Metric], names: list[str]) -> list[Metric]:
    unknown = [n for n in names if n not in metrics]
    if unknown:
        raise SegsqlError(f"unknown metric `{unknown[0]}`", None,
                          did_you_mean(unknown[0], metrics) or f"metrics are: {', '.join(sorted(metrics))}")
    return [metrics[n] for n in names]


def describe(metric: Metric) -> dict[str, Any]:
    """The documentation row of a metric (docs/metrics.md is generated from these)."""
    spec = metric.spec
    return {"name": metric.name, "entity": spec.entity, "kind": spec.kind, "source": spec.source,
            "period": spec.period, "description": spec.description, "numerator": spec.numerator,
            "denominator": spec.denominator or "1", "where": spec.where or ""}
