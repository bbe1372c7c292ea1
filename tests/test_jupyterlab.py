"""The example notebook run in JupyterLab 4 and Notebook 7 in headless Chromium: the outputs and
widgets render the numbers, and every magic's output is saved as a screenshot (test-artifacts/,
kept by CI)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests import tour
from tests.browser import ARTIFACTS, browser_page, evaluate, require_chromium, screenshot
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.browser]
TOKEN = "segsql-test-token"
KERNEL_IDLE = """() => {
  const widget = window.jupyterapp.shell.currentWidget;
  const kernel = widget && widget.sessionContext && widget.sessionContext.session && widget.sessionContext.session.kernel;
  return Boolean(kernel) && kernel.status === 'idle';
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def jupyter_server(app: str, tmp_path_factory: pytest.TempPathFactory, tour_template: Path) -> Iterator[tuple[str, Path]]:
    """`python -m jupyterlab` or `python -m notebook` (7) on a free port, serving a folder with the
    story notebook and the tour of the other magics (tests/tour.py); yields (base URL, folder).
    Stopped (bounded waits) when the block ends."""
    require_chromium()
    root = tmp_path_factory.mktemp(app)
    shutil.copy(REPO / "examples" / "segment_story.ipynb", root / "segment_story.ipynb")
    tour.tour_folder(tour_template, root)
    # no "get notified about Jupyter news?" toast over the screenshots (and no request for it)
    notification = root / ".settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port = free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / ".runtime"), "JUPYTER_CONFIG_DIR": str(root / ".config"),
           "JUPYTERLAB_SETTINGS_DIR": str(root / ".settings"), "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces")}
    expose = "--LabApp.expose_app_in_browser=True" if app == "jupyterlab" else \
        "--JupyterNotebookApp.expose_app_in_browser=True"
    log = root.parent / f"{app}-server.log"
    log_file = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", app, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", expose,
         "--ServerApp.port_retries=0", *(["--allow-root"] if os.geteuid() == 0 else [])],
        # the server's log goes to a file: a pipe nobody reads fills at 64 KB and then blocks the server
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"{app} exited: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail(f"{app} did not start within 60 s")
        yield base, root
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
        log_file.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, tour_template: Path) -> Iterator[tuple[str, Path]]:
    with jupyter_server("jupyterlab", tmp_path_factory, tour_template) as served:
        yield served


def run_all_cells(page: Any, url: str, last_output: str = "segment validation report") -> None:
    """Open the notebook, wait for its kernel, run every cell and wait until the last output (a
    report titled `last_output`) is in."""
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.serviceManager", timeout=60_000)
    page.wait_for_function(KERNEL_IDLE, timeout=120_000)  # queue cells only once the kernel is up
    # resolves when every cell has run (it hung for 11 minutes once, unbounded)
    evaluate(page, "() => window.jupyterapp.commands.execute('notebook:run-all-cells')", 300_000)
    page.wait_for_selector(f".jp-RenderedHTMLCommon :text('{last_output}')", timeout=240_000)


def screenshot_each_magic(page: Any, prefix: str) -> list[Path]:
    """One PNG per code cell that runs a magic (its source and outputs), in notebook order."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 3000})  # a tall cell fits: no header drawn over it
    saved = []
    for index, cell in enumerate(page.locator(".jp-CodeCell").filter(has_text=re.compile("%segsql|%segment")).all()):
        cell.scroll_into_view_if_needed()
        path = ARTIFACTS / f"{prefix}-magic-{index:02d}.png"
        cell.screenshot(path=str(path))
        saved.append(path)
    return saved


def test_widgets_render_sizes_and_kpis_in_jupyterlab(lab: tuple[str, Path]) -> None:
    base, root = lab
    with browser_page() as page:
        run_all_cells(page, f"{base}/lab/tree/segment_story.ipynb?token={TOKEN}")
        # textContent, not innerText: JupyterLab 4 does not lay out cells scrolled out of view.
        preview = page.locator(".jp-RenderedHTMLCommon", has_text="segment dach_power_accounts").first
        preview_text = preview.text_content() or ""
        compare = page.locator(".jp-RenderedHTMLCommon", has_text="churn_rate (proportion) vs rest").first
        compare_text = compare.text_content() or ""
        preview.scroll_into_view_if_needed()
        screenshot(page, "jupyterlab-preview")
        compare.scroll_into_view_if_needed()
        # JupyterLab draws the Vega-Lite spec itself (interactive), not the PNG
        chart = page.locator(".jp-Cell", has_text="%segment_compare").locator(".vega-embed").first
        chart.wait_for(timeout=60_000)
        chart.scroll_into_view_if_needed()
        page.wait_for_function("() => Array.from(document.querySelectorAll('.vega-embed canvas, .vega-embed svg'))"
                               ".some(e => e.getBoundingClientRect().width > 200)", timeout=60_000)
        charts_drawn = page.locator(".jp-Cell", has_text="%segment_compare").locator(".vega-embed").count()
        screenshot(page, "jupyterlab-compare")
        dropdown = page.locator(".widget-dropdown select").first
        dropdown.select_option("all")  # re-renders the report and the charts shown above it, in place
        page.wait_for_selector(".jp-RenderedHTMLCommon :text('churn_rate (proportion) vs all')", timeout=30_000)
        next_button = page.locator("button", has_text="next ▶").first
        next_button.scroll_into_view_if_needed()
        next_button.click()
        page.wait_for_selector(".widget-label:has-text('members 6–')", timeout=30_000)
        page.wait_for_selector(".jp-RenderedHTMLCommon :text('members 6–')", timeout=30_000)
        screenshot(page, "jupyterlab-after-interaction")
        magics = screenshot_each_magic(page, "jupyterlab")
    assert "account(s)" in preview_text and "of 1,000" in preview_text
    assert "high_mrr_accounts" in compare_text and "significant after Benjamini" in compare_text
    assert charts_drawn == 4  # one per metric
    assert (root / "segsql-demo-notebook" / "segments_sql" / "dach_power_accounts.sql").exists()
    assert len(magics) == MAGIC_CELLS and all(path.stat().st_size > 5_000 for path in magics)


# Code cells of segment_story.ipynb that run a magic: %load_ext/%segsql project, as_of, run,
# %%segment (twice), run --select, %segment_compare, _overlap, _report.
MAGIC_CELLS = 9


def test_outputs_render_in_notebook_7(tmp_path_factory: pytest.TempPathFactory, tour_template: Path) -> None:
    with jupyter_server("notebook", tmp_path_factory, tour_template) as (base, _), browser_page() as page:
        run_all_cells(page, f"{base}/notebooks/segment_story.ipynb?token={TOKEN}")
        preview = page.locator(".jp-RenderedHTMLCommon", has_text="segment dach_power_accounts").first
        preview_text = preview.text_content() or ""
        compare_text = page.locator(".jp-RenderedHTMLCommon", has_text="churn_rate (proportion) vs rest").first \
            .text_content() or ""
        charts = page.locator(".jp-Cell", has_text="%segment_compare").locator(".vega-embed, img")
        charts.first.wait_for(timeout=60_000)
        screenshot(page, "notebook7-story")
        magics = screenshot_each_magic(page, "notebook7")
        diff_text, tour_magics = run_the_tour(page, f"{base}/notebooks/{tour.NOTEBOOK}?token={TOKEN}", "notebook7")
    assert "account(s)" in preview_text and "of 1,000" in preview_text
    assert "high_mrr_accounts" in compare_text and "significant after Benjamini" in compare_text
    assert len(magics) == MAGIC_CELLS and all(path.stat().st_size > 5_000 for path in magics)
    assert_the_tour_shown(diff_text, tour_magics)


def run_the_tour(page: Any, url: str, prefix: str) -> tuple[str, list[Path]]:
    """The tour notebook (%segsql list, %segment_diff, %segment_cohorts) run in the same server:
    the diff report's text and one screenshot per magic cell ({prefix}-tour-magic-NN.png)."""
    run_all_cells(page, url, "cohort revenue_retention by month")
    cohorts = page.locator(".jp-Cell", has_text="%segment_cohorts")
    cohorts.locator(".vega-embed, .jp-RenderedImage img").first.wait_for(timeout=60_000)
    diff_text = page.locator(".jp-RenderedHTMLCommon", has_text="diff against main").first.text_content() or ""
    return diff_text, screenshot_each_magic(page, f"{prefix}-tour")


def assert_the_tour_shown(diff_text: str, magics: list[Path]) -> None:
    assert "high_mrr_accounts" in diff_text and "changed" in diff_text and "m.mrr >= 3000" in diff_text
    assert len(magics) == tour.MAGIC_CELLS and all(path.stat().st_size > 5_000 for path in magics)


def test_the_other_magics_render_in_jupyterlab(lab: tuple[str, Path]) -> None:
    """%segsql list, %segment_diff against a real git commit and %segment_cohorts (the magics the
    story notebook does not use), each shot."""
    base, _ = lab
    with browser_page() as page:
        # `reset`: a fresh workspace, else JupyterLab reopens the story notebook of the test before
        # on top and "run all" runs that one again
        diff_text, magics = run_the_tour(page, f"{base}/lab/tree/{tour.NOTEBOOK}?token={TOKEN}&reset", "jupyterlab")
        charts = page.locator(".jp-Cell", has_text="%segment_cohorts").locator(".vega-embed").count()
    assert_the_tour_shown(diff_text, magics)
    assert charts == 2  # heat map and curves, drawn by JupyterLab from the Vega-Lite spec
