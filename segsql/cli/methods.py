"""Commands for the field's analysis methods: RFM segment files, cohorts, clusters, propensity,
profiles. Each parses arguments, calls Project or segsql.methods, prints."""

from __future__ import annotations

from pathlib import Path

import click

from segsql.cli.main import cli
from segsql.cli.options import open_project, project_dir_option
from segsql.cli.render import step_progress
from segsql.errors import UsageError


@cli.command(name="rfm-segments")
@project_dir_option
@click.option("--entity", required=True, help="The entity the transactions belong to (e.g. account).")
@click.option("--source", required=True, help="The transactions source (e.g. invoices).")
@click.option("--at", "at", required=True, help="Its timestamp or date column.")
@click.option("--amount", required=True, help="Its amount column.")
@click.option("--where", help="A SQL condition on the transactions, e.g. \"status = 'paid'\".")
@click.option("--convention", type=click.Choice(["classic", "btyd"]), default="classic", show_default=True)
@click.option("--unit", type=click.Choice(["day", "week"]), default="day", show_default=True)
@click.option("--ties", type=click.Choice(["lowest", "highest", "split"]), default="lowest", show_default=True,
              help="Scores of equal values: the lowest of their group (one-time buyers get f = 1), the highest, or "
                   "split into equal-sized quintiles by key (docs/methods.md, RFM).")
@click.option("--folder", default="segments_sql/rfm", show_default=True, help="Where to write, in the project.")
@click.option("--prefix", default="rfm", show_default=True, help="Segment name prefix.")
@click.option("--force", is_flag=True, help="Overwrite files that exist (they may hold your edits).")
def rfm_segments(project_dir: Path, entity: str, source: str, at: str, amount: str, where: str | None,
                 convention: str, unit: str, ties: str, folder: str, prefix: str, force: bool) -> None:
    """Write an RFM scores segment and one segment per named RFM segment (champions, loyal, at
    risk, ...) whose rules are plain, editable SQL. Validates them before writing anything."""
    from segsql.compile.rfm import segment_files
    from segsql.config.models import NAME_PATTERN
    from segsql.methods.writing import write_segments

    project = open_project(project_dir, (), None, None)
    if entity not in project.config.entities:
        raise UsageError(f"unknown entity `{entity}`", None, f"entities: {', '.join(project.config.entities)}")
    if not NAME_PATTERN.match(prefix):
        raise UsageError(f"--prefix `{prefix}` is not a plain identifier", None, "e.g. --prefix rfm")
    key = project.config.entities[entity].single_key(entity, "rfm segments")
    files = segment_files(entity, key, source, at, amount, where, convention, unit, prefix, ties)
    target = write_segments(project.compiler, files, folder, force)
    click.echo(f"wrote {len(files)} segment file(s) to {target}; edit their WHERE clauses, "
               f"then `segsql run -s tag:{prefix}`")


def _k_range(text: str | None) -> tuple[list[int] | None, int | None]:
    """`--k 4` (fixed) or `--k 2-6` (choose by silhouette)."""
    if text is None:
        return None, None
    low, sep, high = text.partition("-")
    try:
        if sep:
            return list(range(int(low), int(high) + 1)), None
        return None, int(text)
    except ValueError:
        raise UsageError(f"--k `{text}` is not a number or a range", None, "e.g. --k 4 or --k 2-6") from None


@cli.command()
@click.argument("features")
@project_dir_option
@click.option("--k", "k_text", metavar="K|LOW-HIGH", help="Clusters: a number, or a range to choose from by "
              "silhouette (default 2-8).")
@click.option("--depth", type=click.IntRange(1, 4), default=2, show_default=True, help="Rule depth (readability).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--write", "write", is_flag=True, help="Write one segment file per cluster.")
@click.option("--folder", default="segments_sql/clusters", show_default=True)
@click.option("--prefix", default="cluster", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite existing files; write constant or imprecise rules too.")
@click.option("--as-of", "as_of", metavar="DATE",
              help="Evaluation date of the features (default `as_of:` in segsql.yml, else today).")
def clusters(features: str, project_dir: Path, k_text: str | None, depth: int, seed: int, write: bool, folder: str,
             prefix: str, force: bool, as_of: str | None) -> None:
    """k-means on the numeric columns of segment FEATURES, each cluster explained by a short SQL
    rule (a shallow decision tree) with its precision and recall on held-out rows, and the rules'
    overall agreement with the clusters; --write saves them as mutually exclusive segments (first
    match in cluster order), refusing constant or imprecise rules unless --force."""
    from segsql.cli.render import print_table
    from segsql.methods.clustering import segment_files
    from segsql.methods.writing import write_segments

    project = open_project(project_dir, (), None, as_of)
    ks, k = _k_range(k_text)
    with step_progress("clusters") as progress:
        result = project.cluster(features, ks=ks, k=k, max_depth=depth, seed=seed, progress=progress)
    click.echo("silhouette by k: " + ", ".join(f"{c}: {v:.3f}" for c, v in result.silhouettes.items())
               + f" -> k = {result.k}")
    summary = result.summary()[["cluster", "size", "precision", "recall", "rule"]].round(3).astype(object)
    print_table(list(summary.columns), summary.values.tolist(),
                title=f"clusters of {features} (precision, recall: held-out rows, first matching rule)")
    if result.fit:
        click.echo(f"rules {result.fit.text()}")
    for problem in result.problems():
        click.echo(f"warning: {problem}")
    if write:
        target = write_segments(project.compiler, segment_files(project.compiler, result, prefix, force), folder, force)
        click.echo(f"wrote {result.k} segment file(s) to {target}: mutually exclusive, first match in cluster order")


@cli.command()
@click.argument("features")
@project_dir_option
@click.option("--outcome", required=True,
              help="Segment whose membership at train date + horizon is the label.")
@click.option("--train-as-of", "train_as_of", required=True, metavar="DATE",
              help="Date of the training features.")
@click.option("--horizon", type=click.IntRange(min=1), required=True, metavar="DAYS",
              help="Outcome window length.")
@click.option("--model", type=click.Choice(["logistic", "gradient_boosting"]), default="logistic", show_default=True)
@click.option("--write", "write_name", metavar="NAME",
              help="Write segment NAME with the top --top share by score.")
@click.option("--top", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1, show_default=True)
@click.option("--folder", default="segments_sql/predictive", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing file; write even a model no better than chance.")
@click.option("--as-of", "as_of", metavar="DATE", help="Scoring date (default `as_of:` in segsql.yml, else today).")
def propensity(features: str, project_dir: Path, outcome: str, train_as_of: str, horizon: int, model: str,
               write_name: str | None, top: float, folder: str, force: bool, as_of: str | None) -> None:
    """Fit a churn/conversion/upsell propensity model with a time-based split (features at
    --train-as-of, outcome within --horizon days after); print holdout AUC, calibration and lift
    by decile; --write saves a segment of the highest scores with the score as plain SQL."""
    from segsql.cli.render import print_table
    from segsql.methods.propensity import segment_file
    from segsql.methods.writing import write_segments

    project = open_project(project_dir, (), None, as_of)
    with step_progress("propensity") as progress:
        result = project.propensity(features, outcome, train_as_of, horizon, model, progress=progress)
    click.echo(f"{model} model, features {features} at {result.train_as_of}, outcome {outcome} within {horizon} "
               f"days: holdout AUC {result.auc_text()}, base rate {result.base_rate:.1%}")
    if result.note:
        click.echo(f"note: {result.note}")
    lift = result.lift.round(3).astype(object)
    print_table(list(lift.columns), lift.values.tolist(), title="lift by decile (holdout)")
    print_table(list(result.calibration.columns), result.calibration.round(3).astype(object).values.tolist(),
                title="calibration (holdout)")
    if write_name:
        files = segment_file(project.compiler, result, write_name, top, force)
        target = write_segments(project.compiler, files, folder, force)
        click.echo(f"wrote {write_name} to {target}")
