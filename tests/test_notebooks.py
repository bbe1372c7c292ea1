"""Example notebooks: current with their builder, run top to bottom in a real kernel, and their
nbconvert HTML (saved as executed, widget state included) still shows sizes, KPIs and charts in a
real browser with no network."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests import tour
from tests.browser import ARTIFACTS, browser_page, evaluate, screenshot
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
def executed(tmp_path_factory: pytest.TempPathFactory, tour_template: Path) -> dict[str, tuple[Path, nbformat.NotebookNode]]:
    """The example notebooks and the tour of the other magics (tests/tour.py), each run by nbclient
    in a folder of its own and saved as executed."""
    done = {}
    for name in [*NOTEBOOKS, tour.NOTEBOOK]:
        folder = tmp_path_factory.mktemp(name.removesuffix(".ipynb"))
        if name == tour.NOTEBOOK:
            tour.tour_folder(tour_template, folder)
        else:
            shutil.copy(EXAMPLES / name, folder / name)
        notebook = nbformat.read(folder / name, as_version=4)
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(folder)}}).execute()
        nbformat.write(notebook, folder / name)
        done[name] = (folder, notebook)
    return done


@pytest.mark.parametrize("name", [*NOTEBOOKS, tour.NOTEBOOK])
def test_notebook_runs_top_to_bottom_in_a_kernel(executed: dict, name: str) -> None:
    _, notebook = executed[name]
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors


def html_of(outputs: list) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in outputs)


def charts_of(outputs: list) -> list[dict]:
    return [o["data"] for o in outputs if "application/vnd.vegalite.v5+json" in o.get("data", {})]


def test_story_outputs_are_static_first(executed: dict) -> None:
    _, notebook = executed["segment_story.ipynb"]
    assert notebook.metadata.get("widgets"), "nbclient saved the widget state (the case that showed nothing)"
    by_source = {cell.source.splitlines()[0]: cell for cell in notebook.cells if cell.cell_type == "code"}
    preview = by_source["%%segment dach_power_accounts --entity account --save --force --preview 5"].outputs
    assert "account(s)" in html_of(preview) and "size waterfall" in html_of(preview) and "compiled SQL" in html_of(preview)
    widget = "application/vnd.jupyter.widget-view+json"
    # numbers live in plain outputs; the one widget output (the paging buttons) holds none and says so
    assert not any(widget in o.get("data", {}) and "text/html" in o["data"] for o in preview)
    controls = [o for o in preview if widget in o.get("data", {})]
    assert len(controls) == 1 and "paging needs a running kernel" in controls[0]["data"]["text/plain"]
    compare = next(c for k, c in by_source.items() if k.startswith("%segment_compare")).outputs
    assert "churn_rate (proportion) vs rest" in html_of(compare)
    charts = charts_of(compare)
    assert len(charts) == 4 and all(base64.b64decode(c["image/png"]).startswith(b"\x89PNG") for c in charts)
    assert "difference from rest" in charts[0]["text/plain"]
    legend = charts[0]["application/vnd.vegalite.v5+json"]["layer"][0]["encoding"]["color"]
    assert legend["title"] == "after Benjamini–Hochberg at 5%"  # the legend explains the colours
    masked = html_of(by_source["%%segment admins << dach_admins --entity user --preview 3"].outputs)
    assert "email:" in masked and "@" not in masked


def _offline(page: Any) -> list[str]:
    """Cut the page off the network (only file: and data: loads); returns the URLs it tried."""
    tried: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith(("file:", "data:")):
            request_route.continue_()
        else:
            tried.append(url)
            request_route.abort()

    page.route("**/*", route)
    page.context.set_offline(True)
    return tried


MAGIC = re.compile("%segsql|%segment")


def _nbconvert(folder: Path, name: str) -> Path:
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", name], cwd=folder, check=True,
                   capture_output=True, timeout=300)
    return folder / name.replace(".ipynb", ".html")


# Each chart output (a PNG <img>): its size once loaded, and how many of its pixels are drawn
# (not white, not transparent), read back through a canvas.
CHART_PIXELS = """() => Promise.all(Array.from(document.querySelectorAll('.jp-RenderedImage img')).map(async img => {
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    if (pixels[i + 3] > 0 && (pixels[i] < 235 || pixels[i + 1] < 235 || pixels[i + 2] < 235)) drawn++;
  }
  return {width: img.naturalWidth, height: img.naturalHeight, drawn};
}))"""


@pytest.mark.browser
def test_nbconvert_html_of_executed_notebooks_shows_numbers_and_charts_offline(executed: dict) -> None:
    """As saved by nbclient, widget state included: `jupyter nbconvert --to html`, opened in
    Chromium without network, shows the sizes, KPI values and non-empty charts."""
    folder, notebook = executed["segment_story.ipynb"]
    preview = next(c for c in notebook.cells if c.source.startswith("%%segment dach_power_accounts"))
    size_text = next(o for o in preview.outputs if "text/plain" in o.get("data", {}))["data"]["text/plain"]
    members = size_text.splitlines()[1].split(": ")[1].split(" ")[0]  # "segment NAME: 1,234 account(s) (...)"
    compare = next(c for c in notebook.cells if c.source.startswith("%segment_compare"))
    churn = compare.outputs[0]["data"]["text/plain"].splitlines()[3].split()  # the first churn_rate row
    methods_folder, _ = executed["analysis_methods.ipynb"]
    tour_folder, _ = executed[tour.NOTEBOOK]
    pages = {"story": _nbconvert(folder, "segment_story.ipynb"),
             "methods": _nbconvert(methods_folder, "analysis_methods.ipynb"),
             "tour": _nbconvert(tour_folder, tour.NOTEBOOK)}
    texts, sizes, shots = {}, {}, {}
    with browser_page() as page:
        _offline(page)
        for name, path in pages.items():
            page.goto(path.as_uri())
            texts[name] = page.inner_text("body")
            sizes[name] = evaluate(page, CHART_PIXELS, 30_000)
            screenshot(page, f"nbconvert-{name}")
            shots[name] = []
            for index, cell in enumerate(page.locator(".jp-CodeCell", has_text=MAGIC).all()):
                shots[name].append(ARTIFACTS / f"nbconvert-{name}-{index:02d}.png")  # each magic's output
                cell.screenshot(path=str(shots[name][-1]))
    story = texts["story"]
    assert f"{members} account(s)" in story
    assert churn[0] == "high_mrr_accounts" and churn[2].endswith("%") and churn[2] in story  # its churn rate
    assert "churn_rate (proportion) vs rest" in story and "significant after Benjamini" in story
    assert "cohort revenue_retention by month" in texts["methods"] and "holdout AUC" in texts["methods"]
    assert "diff against main" in texts["tour"] and "m.mrr >= 3000" in texts["tour"]
    assert "cohort revenue_retention by month" in texts["tour"] and "accounts_with_power_users" in texts["tour"]
    assert [len(shots[name]) for name in pages] == [9, 2, tour.MAGIC_CELLS]  # every cell that runs a magic
    for name, count in (("story", 5), ("methods", 2), ("tour", 2)):  # 4 compare charts + overlap; heat map + curves
        drawn = [s for s in sizes[name] if s["width"] > 100 and s["height"] > 50 and s["drawn"] > 2000]
        assert len(drawn) >= count, (name, sizes[name])


def test_methods_notebook_shows_each_method(executed: dict) -> None:
    _, notebook = executed["analysis_methods.ipynb"]
    by_source = {cell.source.splitlines()[0]: cell for cell in notebook.cells if cell.cell_type == "code"}
    assert "champions" in by_source["scores = project.members('rfm_scores')"].outputs[0]["data"]["text/plain"]
    triangle = html_of(by_source["cohorts = project.cohorts('account', 'mrr_monthly', 'month', revenue='mrr')"].outputs)
    assert "segsql-cohorts" in triangle and "100%" in triangle
    cohorts = by_source["%segment_cohorts account mrr_monthly month --revenue mrr --value revenue_retention"].outputs
    assert "segsql-cohorts" in html_of(cohorts)
    # each chart's text starts with its name (notes, if any, follow it in brackets; points on later lines)
    names = [c["text/plain"].splitlines()[0].split(" (")[0] for c in charts_of(cohorts)]
    assert names == ["revenue retention by cohort", "revenue retention curves"]
    readout = html_of(next(c for k, c in by_source.items() if k.startswith("project.readout(")).outputs)
    assert "SRM test p =" in readout and "treatment" in readout
    clusters = html_of(by_source["project.cluster('account_features', ks=[2, 3, 4])"].outputs)
    assert "k-means on <b>account_features</b>" in clusters and "f." in clusters
    churn = html_of(by_source["churn = project.propensity('account_features', 'churned_recently', '2026-07-01', 90)"]
                    .outputs)
    assert "holdout AUC" in churn and "lift by decile" in churn
    # the figure the notebook's text states, from the demo's churn signal (not a chance model)
    assert "holdout AUC <b>0.841 (95% CI 0.746–0.937" in churn and "no better than chance" not in churn
    sql = by_source["print(churn.score_sql().sql(dialect='postgres')[:300])"].outputs[0]["text"]
    assert "EXP(" in sql and "COALESCE(f." in sql


def test_run_all_twice_in_one_kernel(tmp_path: Path) -> None:
    """"Run All" again in the same kernel: the demo is rebuilt under the open session (it once
    failed in cell 1 with DuckDB's ConnectionException: the preview held the file read-only)."""
    shutil.copy(EXAMPLES / "segment_story.ipynb", tmp_path / "segment_story.ipynb")
    notebook = nbformat.read(tmp_path / "segment_story.ipynb", as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        for _ in range(2):
            for index, cell in enumerate(notebook.cells):
                cell.outputs = []
                client.execute_cell(cell, index)  # raises CellExecutionError on an error output
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors and "account(s)" in html_of(notebook.cells[7].outputs)
