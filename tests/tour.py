"""The magics the example notebooks do not show, in a notebook of their own for the browser tests:
`%segsql list`, `%segment_diff` (it needs a git repository, which no example has) and
`%segment_cohorts`. `tour_folder` writes the notebook beside a copy of the demo project that is
a git repository with one segment edited since its commit, so the diff is a real one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tests.conftest import AS_OF

NOTEBOOK = "magics_tour.ipynb"
PROJECT = "segsql-demo-tour"
EDITED = Path("segments_sql") / "value" / "high_mrr_accounts.sql"
# The edit under review: the MRR threshold raised, so some members leave the segment.
EDIT = ("{{ param('min_mrr', 2000) }}", "{{ param('min_mrr', 3000) }}")

CELLS = [
    new_markdown_cell("# The other magics\n\nThe segment list, what an edit does to membership before it is "
                      "merged, and cohort retention."),
    new_code_cell(f"%load_ext segsql\n%segsql project {PROJECT}\n%segsql as_of {AS_OF}"),
    new_code_cell("%segsql list"),
    new_markdown_cell("## What does my edit change?\n\n`high_mrr_accounts` now needs MRR of at least 3,000: "
                      "the members it would lose, against the last commit."),
    new_code_cell("%segment_diff --base main -s high_mrr_accounts -s enterprise_dach"),
    new_markdown_cell("## Cohort retention"),
    new_code_cell("%segment_cohorts account mrr_monthly month --revenue mrr --value revenue_retention"),
]
# Code cells of the tour that run a magic (all of them): project, list, diff, cohorts.
MAGIC_CELLS = 4


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=segsql tests", "-c", "user.email=tests@example.org", *args], cwd=root,
                   check=True, capture_output=True, timeout=60)


def build_template(folder: Path) -> Path:
    """The demo project (scale 0.5) committed on `main`, then one segment file edited in the
    working tree; returns the project folder."""
    from segsql.demo.project import prepare_demo

    root = folder / PROJECT
    prepare_demo(root, scale=0.5, seed=42, as_of=AS_OF)
    (root / ".gitignore").write_text("data/\ntarget/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "the demo's segments")
    edited = root / EDITED
    text = edited.read_text()
    assert EDIT[0] in text, "the starter segment changed: pick another edit"
    edited.write_text(text.replace(*EDIT))
    return root


def tour_folder(template: Path, folder: Path) -> Path:
    """`folder` with the tour notebook and a copy of the project `template`; returns the notebook."""
    shutil.copytree(template, folder / PROJECT)
    notebook = new_notebook(cells=CELLS)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"tour-{index:02d}"
    nbformat.write(notebook, folder / NOTEBOOK)
    return folder / NOTEBOOK
