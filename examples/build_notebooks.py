"""Writes the example notebooks (kept as code so they review well and can't drift from the API).

    python examples/build_notebooks.py
tests/test_notebooks.py fails when a notebook differs from what this script writes.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

STORY = [
    new_markdown_cell(
        "# Segments in a notebook\n\n"
        "Author a segment in a cell, save it as a git-tracked file, preview its members, compare KPIs "
        "across segments, check overlap and run the validation report. Runs top to bottom on the demo data "
        "(no server, no network)."),
    new_code_cell(
        "from pathlib import Path\n\n"
        "from segsql.demo.project import prepare_demo\n\n"
        "project, stats = prepare_demo(Path('segsql-demo-notebook'), scale=0.5, seed=42, as_of='2026-11-23')\n"
        "stats"),
    new_code_cell("%load_ext segsql\n%segsql project segsql-demo-notebook"),
    new_code_cell("%segsql as_of 2026-11-23"),
    new_markdown_cell("Run the starter segments once, so there is membership to compare against."),
    new_code_cell("%segsql run"),
    new_markdown_cell(
        "## Author a segment\n\n"
        "The cell is a segment template (the same language as the files). Errors point at the cell's own line "
        "and column. `--save` writes `segments_sql/dach_power_accounts.sql`."),
    new_code_cell(
        "%%segment dach_power_accounts --entity account --save --force --preview 5\n"
        "SELECT r.account_id, r.matching_count AS power_users, a.plan_tier\n"
        "FROM {{ ref('accounts_with_power_users') }} AS r\n"
        "JOIN {{ source('accounts') }} AS a ON a.account_id = r.account_id\n"
        "WHERE a.region IN {{ var('home_regions') }}\n"
        "  AND a.status = 'customer'"),
    new_code_cell("%segsql run --select dach_power_accounts"),
    new_markdown_cell(
        "## Compare KPIs\n\nEach segment against the rest: value, difference, 95% CI, p-value; `*` marks "
        "differences that stay significant after Benjamini–Hochberg. Pick another baseline in the dropdown."),
    new_code_cell(
        "%segment_compare high_mrr_accounts enterprise_dach dach_power_accounts "
        "--metrics churn_rate,nrr,mrr_per_account,csat"),
    new_markdown_cell("## Overlap"),
    new_code_cell("%segment_overlap power_users dach_users dormant_users integration_users"),
    new_markdown_cell("## Is each segment a good segment?"),
    new_code_cell("%segment_report --select tag:value"),
    new_markdown_cell("## Members as a DataFrame\n\n`NAME << ...` hands the members to Python (PII masked)."),
    new_code_cell(
        "%%segment admins << dach_admins --entity user --preview 3\n"
        "SELECT u.user_id, u.email, u.role\n"
        "FROM {{ source('users') }} AS u\n"
        "WHERE u.role = 'admin' AND u.country IN ('DE', 'AT', 'CH')"),
    new_code_cell("admins.head()"),
]

METHODS = [
    new_markdown_cell(
        "# Analysis methods from the field\n\n"
        "RFM, cohort retention, an A/B split with its readout, a persona profile, clusters explained as SQL "
        "rules and a churn propensity segment, on the demo data. Every method runs in the engine (DuckDB "
        "here; the same calls work on Postgres and Spark). Definitions: docs/methods.md."),
    new_code_cell(
        "from pathlib import Path\n\n"
        "from segsql.demo.project import prepare_demo\n\n"
        "project, _ = prepare_demo(Path('segsql-demo-methods'), scale=1.0, seed=42, as_of='2026-11-23')\n"
        "run = project.run()\n"
        "run.status"),
    new_markdown_cell(
        "## RFM\n\n`rfm_scores` is "
        "`{{ rfm('invoices', at='issued_at', amount='amount', where=\"status = 'paid'\") }}`; "
        "the named segments (`rfm_champions`, `rfm_at_risk_high_value`) are plain WHERE clauses over it."),
    new_code_cell("scores = project.members('rfm_scores')\nscores['rfm_segment'].value_counts()"),
    new_markdown_cell("## Cohort retention (NRR by signup cohort)\n\nRows are cohorts, columns months since; "
                      "periods without activity are zeros."),
    new_code_cell("cohorts = project.cohorts('account', 'mrr_monthly', 'month', revenue='mrr')\ncohorts"),
    new_code_cell("cohorts.triangle('revenue_retention').iloc[-6:, :6].round(2)"),
    new_markdown_cell("The same as a magic, with retention curves:"),
    new_code_cell("%load_ext segsql\n%segsql project segsql-demo-methods\n%segsql as_of 2026-11-23"),
    new_code_cell("%segment_cohorts account mrr_monthly month --revenue mrr --value revenue_retention"),
    new_markdown_cell(
        "## A/B split and readout\n\n`onboarding_experiment` assigns users with `split()`: the sample-ratio "
        "test comes first, then each metric against control."),
    new_code_cell("project.readout('onboarding_experiment', ['reachable_users', 'events_per_active_day'])"),
    new_markdown_cell("## Persona: who is in `enterprise_dach`?"),
    new_code_cell("project.profile('enterprise_dach').head(12)"),
    new_markdown_cell("## Clusters explained as SQL rules\n\n`segsql clusters account_features --write` would "
                      "save each rule as a segment file."),
    new_code_cell("project.cluster('account_features', ks=[2, 3, 4])"),
    new_markdown_cell("## Churn propensity\n\nFeatures at 2026-07-01, outcome: churned within 90 days after. "
                      "The demo's accounts disengage before they cancel (fewer logins and seats in use, more "
                      "tickets), so the model finds them: holdout AUC 0.841 (95% CI 0.746–0.937). "
                      "The logistic score is exported as SQL."),
    new_code_cell(
        "churn = project.propensity('account_features', 'churned_recently', '2026-07-01', 90)\n"
        "churn"),
    new_code_cell("print(churn.score_sql().sql(dialect='postgres')[:300])"),
]

NOTEBOOKS = {"segment_story.ipynb": STORY, "analysis_methods.ipynb": METHODS}


def build(name: str) -> nbformat.NotebookNode:
    notebook = new_notebook(cells=NOTEBOOKS[name])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index:02d}"
    return notebook


def main() -> None:
    for name in NOTEBOOKS:
        nbformat.write(build(name), HERE / name)
        print(f"wrote examples/{name}")


if __name__ == "__main__":
    main()
