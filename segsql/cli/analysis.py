"""compare, overlap, waterfall, prioritize, validate-segments, metrics: thin shells over Project."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from segsql import formats
from segsql.cli.commands import _fail
from segsql.cli.main import EXIT_FAILURE, cli
from segsql.cli.options import TABLE_FORMATS, engine_options, open_project, selection_options
from segsql.cli.render import (
    difference_formatter,
    emit,
    emit_records,
    flag_text,
    number_formatter,
    p_value_text,
)
from segsql.errors import UsageError


@cli.command()
@click.argument("segments", nargs=-1, required=True)
@click.option("--metrics", "-m", "metric_list", required=True, metavar="M1,M2",
              help="Metrics to compare (see `segsql metrics`).")
@click.option("--baseline", default="rest", show_default=True, help="rest, all, or a segment name.")
@click.option("--cost", "costs", multiple=True, metavar="SEGMENT=AMOUNT", help="Cost per segment, for ROI.")
@click.option("--roi-metric", metavar="METRIC", help="Sum metric of attributed revenue, for ROI.")
@click.option("--format", "output_format", type=TABLE_FORMATS, default="table", show_default=True)
@engine_options
def compare(segments: tuple[str, ...], metric_list: str, baseline: str, costs: tuple[str, ...],
            roi_metric: str | None, output_format: str, project_dir: Path, var_pairs: tuple[str, ...],
            vars_json: str | None, as_of: str | None, target: str | None = None) -> None:
    """Compare segments with a baseline on metrics: value, difference, 95% CI, p-value, the test
    used and a Benjamini–Hochberg flag (*), one table per metric, aggregated in one engine query
    (one more, bounded, for the per-entity values of small groups' permutation tests; tests and
    their conditions: docs/metrics.md)."""
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    names = [m.strip() for m in metric_list.split(",") if m.strip()]
    comparison = project.compare(list(segments), names, baseline, _costs(costs), roi_metric)
    if output_format != "table":
        from segsql.measure.compare import COMPARISON_COLUMNS

        emit_records(comparison.records(), [*COMPARISON_COLUMNS, "metric"], output_format)
        return
    for name, table in comparison.tables.items():
        metric = project.metrics[name]
        shown = table[["segment", "members", "measured", "value", "baseline", "diff", "ci_low", "ci_high",
                       "p_value", "significant", "test", "note"]]
        number = number_formatter(metric.kind, metric.spec.unit)
        change = difference_formatter(metric.kind, metric.spec.unit)
        emit(shown, "table", title=f"{name} ({metric.kind}) vs {baseline}: {metric.spec.description[:80]}",
              formatters={"value": number, "baseline": number, "diff": change, "ci_low": change, "ci_high": change,
                          "p_value": p_value_text, "significant": flag_text})
    if comparison.roi is not None:
        emit(comparison.roi, "table", title="ROI = (revenue − cost) ÷ cost")


def _costs(pairs: tuple[str, ...]) -> dict[str, float] | None:
    return _numbers(list(pairs), "--cost", "--cost power_users=5000") or None


def _numbers(pairs: list[str], option: str, example: str) -> dict[str, float]:
    """NAME=NUMBER pairs of an option into a mapping (UsageError naming the option)."""
    numbers: dict[str, float] = {}
    for pair in pairs:
        name, sep, number = pair.partition("=")
        try:
            numbers[name.strip()] = float(number)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"{option} `{pair}` is not NAME=NUMBER", None, f"e.g. {example}")
    return numbers


@cli.command()
@click.argument("segments", nargs=-1, required=True)
@click.option("--format", "output_format", type=TABLE_FORMATS, default="table", show_default=True)
@engine_options
def overlap(segments: tuple[str, ...], output_format: str, project_dir: Path, var_pairs: tuple[str, ...],
            vars_json: str | None, as_of: str | None, target: str | None = None) -> None:
    """Pairwise shared members and Jaccard index of two or more segments (one query)."""
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    frame = project.overlap(list(segments))
    emit(frame[frame["left"] < frame["right"]] if output_format == "table" else frame, output_format,
          formatters={"jaccard": lambda v: formats.number(v, 3)})


@cli.command()
@click.argument("name")
@click.option("--format", "output_format", type=TABLE_FORMATS, default="table", show_default=True)
@engine_options
def waterfall(name: str, output_format: str, project_dir: Path, var_pairs: tuple[str, ...],
              vars_json: str | None, as_of: str | None, target: str | None = None) -> None:
    """How many members remain after each top-level AND condition of a segment's WHERE."""
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    emit(project.waterfall(name), output_format, title=f"size waterfall of {name}")


@cli.command()
@click.argument("segments", nargs=-1, required=True)
@click.option("--suppress", metavar="SEGMENT", help="Members of this segment are removed from every list.")
@click.option("--format", "output_format", type=TABLE_FORMATS, default="table", show_default=True)
@engine_options
def prioritize(segments: tuple[str, ...], suppress: str | None, output_format: str, project_dir: Path,
               var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None, target: str | None = None) -> None:
    """Assign each entity only to the first listed segment it belongs to (mutually exclusive)."""
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    result = project.prioritize(list(segments), suppress)
    emit(result.counts, output_format, title=f"priority assignment ({result.suppressed:,} member rows suppressed)")


@cli.command(name="validate-segments")
@engine_options
@selection_options
@click.option("--format", "output_format", type=TABLE_FORMATS, default="table", show_default=True)
def validate_segments(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None,
                      select: tuple[str, ...], exclude: tuple[str, ...], output_format: str,
                      target: str | None = None) -> None:
    """Is each segment substantial, distinct, measurable, accessible and stable? Prints a
    pass/warn/fail table with the numbers behind each verdict; exit 1 if any check fails."""
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    errors = project.validate(project.select(list(select), list(exclude)))
    if errors:
        _fail(errors)
    report = project.segment_report(project.select(list(select), list(exclude)))
    emit(report, output_format, title="segment validation")
    failed = report[report["verdict"] == "fail"]
    click.echo(f"{len(report) - len(failed)} passed or warned, {len(failed)} failed", err=True)
    if len(failed):
        sys.exit(EXIT_FAILURE)


@cli.command(name="metrics")
@engine_options
@click.option("--format", "output_format", type=TABLE_FORMATS, default="table", show_default=True)
def metrics_(project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None,
             output_format: str, target: str | None = None) -> None:
    """List the project's metrics with entity, kind, period and definition."""
    from segsql.measure.metrics import describe

    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    import pandas as pd  # loaded by the commands that print tables, not by `segsql --help`

    frame = pd.DataFrame([describe(m) for m in project.metrics.values()])
    emit(frame[["name", "entity", "kind", "period", "description"]] if output_format == "table" else frame,
          output_format)


@cli.command()
@click.argument("name")
@engine_options
@click.option("--metrics", "-m", "metric_list", required=True, metavar="M1,M2", help="Metrics from metrics.yml.")
@click.option("--column", help="The column holding the group (default: the split() column).")
@click.option("--control", help="The reference group (default: the first group of the split).")
@click.option("--cuped", is_flag=True, help="Adjust each metric by its own pre-period value per member (CUPED); "
              "needs --start or --pre-days.")
@click.option("--start", metavar="DATE", help="The experiment's first day: the groups are the members assigned "
              "that day (not the last run's); with --cuped the covariate is each metric as of the day before.")
@click.option("--pre-days", "pre_days", type=int, metavar="N",
              help="CUPED's covariate is each metric as of N days before --as-of (N ≥ the experiment's age).")
@click.option("--format", "output_format", type=TABLE_FORMATS, default="table", show_default=True,
              help="csv/json: the metric rows on stdout (sizes and the sample-ratio test go to stderr).")
def readout(name: str, project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None,
            metric_list: str, column: str | None, control: str | None, cuped: bool, start: str | None,
            pre_days: int | None, output_format: str, target: str | None = None) -> None:
    """Experiment readout for a segment with split(): group sizes with the sample-ratio-mismatch
    test, each metric per group against the control (lift, 95% CI, p-value), trait balance;
    with --cuped the differences adjusted by each member's pre-period value and the variance
    reduction achieved (docs/methods.md). Exit 1 on a sample-ratio mismatch."""
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    metrics = [m.strip() for m in metric_list.split(",") if m.strip()]
    result = project.readout(name, metrics, column, control, cuped, start, pre_days)
    srm = "n/a" if result.srm_p_value is None else f"{result.srm_p_value:.4g}"
    verdict = f"sample-ratio mismatch test p = {srm}" + (" -- MISMATCH: do not trust this readout"
                                                          if result.sample_ratio_mismatch else "")
    if output_format != "table":
        click.echo(verdict, err=True)
        emit(result.metrics, output_format)
    else:
        emit(result.sizes, "table", title=f"{name}: groups by {result.column}")
        click.echo(verdict)
        adjusted = "" if result.pre_period_as_of is None else \
            f" (CUPED: adjusted by each metric as of {result.pre_period_as_of})"
        emit(result.metrics.drop(columns=["note"]), "table", title=f"against {result.control}{adjusted}",
             formatters={"p_value": p_value_text, "significant": flag_text, "variance_reduction": percent_text,
                         "pre_covered": percent_text})
        for row in result.metrics.itertuples():
            if row.note:
                click.echo(f"note: {row.metric} {row.group}: {row.note}")
        if len(result.balance):
            flags = {column: flag_text for column in result.balance.columns if result.balance[column].dtype == bool}
            emit(result.balance, "table", title="balance of traits", formatters=flags)
    if result.sample_ratio_mismatch:
        sys.exit(EXIT_FAILURE)


@cli.command()
@click.argument("name")
@engine_options
@click.option("--metric", "-m", "metric", required=True, metavar="METRIC", help="A metric from metrics.yml.")
@click.option("--shares", metavar="GROUP=PCT,...", help="Planned group shares, control first (default: the "
              "segment's split(), else control=50,treatment=50).")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Two-sided significance level.")
@click.option("--power", "power_level", type=float, default=0.8, show_default=True, help="Wanted power.")
@click.option("--effect", type=float, metavar="X", help="Also: members needed to detect this absolute difference.")
@click.option("--lift", type=float, metavar="X", help="Also: members needed to detect this relative change "
              "(0.05 = +5%).")
@click.option("--format", "output_format", type=TABLE_FORMATS, default="table", show_default=True)
def power(name: str, project_dir: Path, var_pairs: tuple[str, ...], vars_json: str | None, as_of: str | None,
          metric: str, shares: str | None, alpha: float, power_level: float, effect: float | None,
          lift: float | None, output_format: str, target: str | None = None) -> None:
    """Experiment design for an A/B test inside segment NAME: the minimum detectable effect on a
    metric per treatment group at --power and --alpha, from the members' own values of the
    metric (their variance as of --as-of), or with --effect/--lift the members needed
    (formulas: docs/methods.md)."""
    project = open_project(project_dir, var_pairs, vars_json, as_of, target)
    result = project.power(name, metric, _shares(shares), alpha, power_level, effect, lift)
    if output_format != "table":
        emit(result.rows, output_format)
        return
    click.echo(f"{name}: {metric} ({result.kind}) baseline {result.baseline:.4g}, per-member sd {result.sd:.4g}, "
               f"{result.measured:,} measured of {result.members:,} members; shares from {result.shares_from}")
    emit(result.rows, "table", title=f"minimum detectable effect, {power_level:.0%} power, alpha {alpha:g} (two-sided)")
    click.echo(result.text())
    for note in result.notes:
        click.echo(f"note: {note}")


def _shares(text: str | None) -> dict[str, float] | None:
    return None if text is None else _numbers(text.split(","), "--shares", "--shares control=50,treatment=50")


def percent_text(value: float | None) -> str:
    return formats.percent(value)
