"""The example notebook run in JupyterLab in headless Chromium: the widgets render the numbers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import browser_page, evaluate, require_chromium, screenshot
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


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    require_chromium()
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(REPO / "examples" / "segment_story.ipynb", root / "segment_story.ipynb")
    port = free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / ".runtime"), "JUPYTER_CONFIG_DIR": str(root / ".config"),
           "JUPYTERLAB_SETTINGS_DIR": str(root / ".settings"), "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces")}
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.port_retries=0", *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"jupyterlab exited: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
                time.sleep(0.5)
        else:
            pytest.fail("jupyterlab did not start within 60 s")
        yield base, root
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def test_widgets_render_sizes_and_kpis_in_jupyterlab(lab: tuple[str, Path]) -> None:
    base, root = lab
    with browser_page() as page:
        page.goto(f"{base}/lab/tree/segment_story.ipynb?token={TOKEN}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.serviceManager", timeout=60_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator, .jp-KernelStatus", timeout=60_000)
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)  # queue cells only once the kernel is up
        # resolves when every cell has run (it hung for 11 minutes once, unbounded)
        evaluate(page, "() => window.jupyterapp.commands.execute('notebook:run-all-cells')", 300_000)
        page.wait_for_selector(".jp-RenderedHTMLCommon :text('segment validation report')", timeout=240_000)
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
    assert "account(s)" in preview_text and "of 1,000" in preview_text
    assert "high_mrr_accounts" in compare_text and "significant after Benjamini" in compare_text
    assert charts_drawn == 4  # one per metric
    assert (root / "segsql-demo-notebook" / "segments_sql" / "dach_power_accounts.sql").exists()
