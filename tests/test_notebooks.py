"""Example notebooks: current with their builder, run top to bottom in a real kernel, and their
static HTML export (no widget state) still shows sizes and KPIs in a real browser."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from tests.browser import browser_page, screenshot
from tests.conftest import REPO

EXAMPLES = REPO / "examples"
NOTEBOOKS = sorted(p.name for p in EXAMPLES.glob("*.ipynb"))
pytestmark = pytest.mark.slow


def test_notebooks_match_their_builder() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_notebooks", EXAMPLES / "build_notebooks.py")
    assert spec and spec.loader
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    assert sorted(builder.NOTEBOOKS) == NOTEBOOKS
    for name in NOTEBOOKS:
        on_disk = nbformat.read(EXAMPLES / name, as_version=4)
        assert on_disk == builder.build(name), f"run `python examples/build_notebooks.py` ({name})"
        assert not any(cell.get("outputs") for cell in on_disk.cells), f"{name} is committed with outputs"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, nbformat.NotebookNode]]:
    done = {}
    for name in NOTEBOOKS:
        folder = tmp_path_factory.mktemp(name.removesuffix(".ipynb"))
        shutil.copy(EXAMPLES / name, folder / name)
        notebook = nbformat.read(folder / name, as_version=4)
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(folder)}}).execute()
        nbformat.write(notebook, folder / name)
        done[name] = (folder, notebook)
    return done


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom_in_a_kernel(executed: dict, name: str) -> None:
    _, notebook = executed[name]
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors


def html_of(outputs: list) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in outputs)


def test_story_outputs_carry_html_fallbacks(executed: dict) -> None:
    _, notebook = executed["segment_story.ipynb"]
    by_source = {cell.source.splitlines()[0]: cell for cell in notebook.cells if cell.cell_type == "code"}
    preview = html_of(by_source["%%segment dach_power_accounts --entity account --save --force --preview 5"].outputs)
    assert "account(s)" in preview and "size waterfall" in preview and "compiled SQL" in preview
    compare = html_of(next(c for k, c in by_source.items() if k.startswith("%segment_compare")).outputs)
    assert "churn_rate (proportion) vs rest" in compare and "<svg" in compare
    masked = html_of(by_source["%%segment admins << dach_admins --entity user --preview 3"].outputs)
    assert "email:" in masked and "@" not in masked


def test_static_html_export_shows_numbers_in_a_browser(executed: dict) -> None:
    folder, notebook = executed["segment_story.ipynb"]
    notebook.metadata.pop("widgets", None)  # as saved by a frontend that cannot store widget state
    body, _ = HTMLExporter().from_notebook_node(notebook)
    page_path = folder / "segment_story.html"
    page_path.write_text(body, encoding="utf-8")
    preview_cell = next(c for c in notebook.cells if c.source.startswith("%%segment dach_power_accounts"))
    size = next(o for o in preview_cell.outputs if "text/plain" in o.get("data", {}))["data"]["text/plain"]
    size_line = size.splitlines()[1]  # "segment dach_power_accounts: N account(s) (...)"
    members = size_line.split(": ")[1].split(" ")[0]
    with browser_page() as page:
        page.goto(page_path.as_uri())
        text = page.inner_text("body")
        screenshot(page, "static-export")
    assert f"{members} account(s)" in text
    assert "churn_rate (proportion) vs rest" in text and "significant after Benjamini" in text


def test_methods_notebook_shows_each_method(executed: dict) -> None:
    _, notebook = executed["analysis_methods.ipynb"]
    by_source = {cell.source.splitlines()[0]: cell for cell in notebook.cells if cell.cell_type == "code"}
    assert "champions" in by_source["scores = project.members('rfm_scores')"].outputs[0]["data"]["text/plain"]
    triangle = html_of(by_source["cohorts = project.cohorts('account', 'mrr_monthly', 'month', revenue='mrr')"].outputs)
    assert "segsql-cohorts" in triangle and "100%" in triangle
    curves = html_of(by_source["%segment_cohorts account mrr_monthly month --revenue mrr --value revenue_retention"]
                     .outputs)
    assert "<polyline" in curves and "segsql-cohorts" in curves
    readout = html_of(next(c for k, c in by_source.items() if k.startswith("project.readout(")).outputs)
    assert "SRM test p =" in readout and "treatment" in readout
    clusters = html_of(by_source["project.cluster('account_features', ks=[2, 3, 4])"].outputs)
    assert "k-means on <b>account_features</b>" in clusters and "f." in clusters
    churn = html_of(by_source["churn = project.propensity('account_features', 'churned_recently', '2026-07-01', 90)"]
                    .outputs)
    assert "holdout AUC" in churn and "lift by decile" in churn
    sql = by_source["print(churn.score_sql().sql(dialect='postgres')[:300])"].outputs[0]["text"]
    assert "EXP(" in sql and "COALESCE(f." in sql
