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

NOTEBOOKS = {"segment_story.ipynb": STORY}


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
