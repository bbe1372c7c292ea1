"""`segsql docs`: the static catalog, rendered in headless Chromium."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from segsql import Project
from tests.browser import browser_page, screenshot
from tests.conftest import write_files

CONFIG = """\
name: chain
connection: {type: duckdb, path: data.duckdb}
sources:
  users: {table: users, pii: {email: email}}
  events: {table: events}
entities:
  user: {key: user_id, source: users}
"""
SEGMENTS = {
    "base_users": "{{ config(entity='user', description='Users with an email.', owner='growth', tags=['core']) }}\n"
                  "SELECT u.user_id, u.email AS contact FROM {{ source('users') }} AS u WHERE u.email IS NOT NULL",
    "active": "{{ config(entity='user', tests={'min_size': 1}) }}\nSELECT b.user_id, b.contact FROM {{ ref('base_users') }} AS b "
              "JOIN {{ source('events') }} AS e ON e.user_id = b.user_id GROUP BY b.user_id, b.contact",
    "very_active": "{{ config(entity='user') }}\nSELECT a.user_id FROM {{ ref('active') }} AS a WHERE a.user_id > 2",
    "vip": "{{ config(entity='user', description='Top of the chain.') }}\n"
           "SELECT v.user_id FROM {{ ref('very_active') }} AS v WHERE v.user_id < 9",
    "loner": "{{ config(entity='user') }}\nSELECT u.user_id FROM {{ source('users') }} AS u WHERE u.user_id = 1",
}
EMAILS = [f"person{k}@example.org" for k in range(1, 11)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    write_files(root, {"segsql.yml": CONFIG, **{f"segments_sql/{n}.sql": t for n, t in SEGMENTS.items()},
                       "segments_sql/active.test.yml": "unit_tests:\n  - name: joins events\n    given:\n"
                       "      users: [{user_id: 1, email: a@b.example}]\n      events: [{user_id: 1}]\n"
                       "    expect: [1]\n"})
    connection = duckdb.connect(str(root / "data.duckdb"))
    connection.execute("CREATE TABLE users AS SELECT range AS user_id, 'person' || range || '@example.org' AS email "
                       "FROM range(1, 11)")
    connection.execute("CREATE TABLE events AS SELECT range % 10 + 1 AS user_id FROM range(0, 30)")
    connection.close()
    Project.load(root, as_of="2026-11-23").run()
    Project.load(root, as_of="2026-11-23").run()
    Project.load(root, as_of="2026-11-23").build_docs(root / "site")
    return root


def test_lineage_of_a_three_level_ref_chain_renders_in_chromium(site: Path) -> None:
    with browser_page() as page:
        page.goto((site / "site" / "segments" / "very_active.html").as_uri())
        nodes = page.eval_on_selector_all("svg.lineage g.node", "els => els.map(e => e.dataset.node)")
        edges = page.eval_on_selector_all("svg.lineage path.edge", "els => els.map(e => e.dataset.edge)")
        assert sorted(nodes) == ["active", "base_users", "events", "users", "very_active", "vip"]
        assert sorted(edges) == ["active->very_active", "base_users->active", "events->active", "users->base_users",
                                 "very_active->vip"]
        assert page.locator("svg.lineage g.node.current").get_attribute("data-node") == "very_active"
        boxes = {n: page.locator(f"svg.lineage g.node[data-node='{n}'] rect").bounding_box() for n in nodes}
        assert all(box and box["width"] > 100 for box in boxes.values())  # drawn, not just in the DOM
        assert boxes["base_users"]["x"] < boxes["active"]["x"] < boxes["very_active"]["x"] < boxes["vip"]["x"]
        assert page.locator("svg.lineage g.node[data-node='vip'] text").text_content() == "vip"
        screenshot(page, "docs-very-active")
        page.locator("svg.lineage g.node[data-node='base_users'] a").click()
        page.wait_for_url("**/base_users.html")
        text = page.locator("main").inner_text()
        assert "Users with an email." in text and "growth" in text and "core" in text
        assert "contact\tVARCHAR\temail" in text  # renamed PII traced by column lineage
        assert page.locator("svg.sizes").get_attribute("data-runs") == "2"


def test_index_lists_segments_and_filters(site: Path) -> None:
    with browser_page() as page:
        page.goto((site / "site" / "index.html").as_uri())
        rows = page.locator("#segments tbody tr")
        assert rows.count() == 5
        page.fill("#filter", "top of the chain")
        visible = [r for r in rows.all() if r.is_visible()]
        assert [r.locator("td").first.inner_text().strip() for r in visible] == ["vip"]
        assert page.locator("svg.lineage g.node").count() == 7  # 5 segments + 2 sources


def test_segment_page_shows_sql_tests_and_columns_read(site: Path) -> None:
    page = (site / "site" / "segments" / "active.html").read_text()
    assert "unit: joins events" in page and "data: min_size = 1" in page
    assert "{{ ref(&#x27;base_users&#x27;) }}" in page  # template, escaped
    assert "WITH base_users AS" in page  # compiled, refs inlined
    assert "<td>users</td><td>email <span class=pii>email</span>, user_id </td>" in page


def test_docs_never_contain_member_values(site: Path) -> None:
    text = "".join(p.read_text() for p in (site / "site").rglob("*.html"))
    assert not [email for email in EMAILS if email in text]
    assert "a@b.example" not in text  # test fixtures are not published


def test_docs_serve_over_http(site: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "from segsql.cli import main; main()", "docs", "--project", str(site), "--serve",
                                "--port", "0", "--out", str(site / "served")], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = ""
        for line in process.stdout:
            if line.startswith("serving "):
                url = line.split()[1]
                break
        assert url.startswith("http://127.0.0.1:")
        with browser_page() as page:
            page.goto(url)
            assert page.locator("#segments tbody tr").count() == 5
            page.locator("a", has_text="vip").first.click()
            page.wait_for_url("**/segments/vip.html")
            assert "Top of the chain." in page.locator("main").inner_text()
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_a_broken_segment_gets_a_page_with_its_error(tmp_path: Path) -> None:
    config = CONFIG.replace("{table: users,", "{table: users, columns: {user_id: BIGINT, email: VARCHAR},")
    write_files(tmp_path, {"segsql.yml": config, "segments_sql/broken.sql":
                           "{{ config(entity='user') }}\nSELECT u.user_id FROM {{ source('users') }} AS u WHERE u.nope"})
    Project.load(tmp_path).build_docs(tmp_path / "site")
    page = (tmp_path / "site" / "segments" / "broken.html").read_text()
    assert "does not validate" in page and "segments_sql/broken.sql:2:" in page


def test_docs_never_replace_a_folder_they_did_not_build(site: Path, runner) -> None:  # type: ignore[no-untyped-def]
    from segsql.cli.main import cli

    for out, message in [(site / "segsql.yml", "is a file"), (site, "holds files segsql did not write")]:
        result = runner.invoke(cli, ["docs", "--project", str(site), "--out", str(out)])
        assert result.exit_code == 2 and message in result.output, result.output
    assert (site / "segsql.yml").is_file() and (site / "segments_sql").is_dir()
    again = runner.invoke(cli, ["docs", "--project", str(site), "--out", str(site / "site")])
    assert again.exit_code == 0, again.output  # its own earlier build is replaced


def _points_on(path: str, steps: int = 40) -> list[tuple[float, float]]:
    """Points along an SVG path of M, L and C (cubic) segments with absolute coordinates."""
    import re

    points: list[tuple[float, float]] = []
    here = (0.0, 0.0)
    for command, numbers in re.findall(r"([MLC])([^MLC]*)", path):
        values = [float(v) for v in re.findall(r"-?[\d.]+", numbers)]
        pairs = list(zip(values[::2], values[1::2], strict=True))
        if command == "C":
            (ax, ay), (bx, by), (cx, cy) = pairs
            for i in range(1, steps):
                t = i / steps
                weights = ((1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3)
                points.append((sum(w * p for w, p in zip(weights, (here[0], ax, bx, cx), strict=True)),
                               sum(w * p for w, p in zip(weights, (here[1], ay, by, cy), strict=True))))
        elif command == "L":
            points += [(here[0] + (pairs[0][0] - here[0]) * i / steps, here[1] + (pairs[0][1] - here[1]) * i / steps)
                       for i in range(1, steps)]
        here = pairs[-1]
    return points


def test_no_lineage_edge_crosses_another_segments_box(starter_project: Path) -> None:
    """The index graph of the starter library: edges that skip a column (accounts ->
    accounts_with_power_users, high_mrr_accounts -> enterprise_expansion_targets) once ran
    straight through the boxes of the column between."""
    import re

    from segsql.docs.svg import NODE_H, NODE_W

    index = Project.load(starter_project).build_docs(starter_project / "site").read_text()
    graph = index[index.index("<svg class='lineage'"):]
    boxes = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in re.finditer(
        r"data-node='([^']+)'>(?:<a [^>]*>)?<rect x='([\d.]+)' y='([\d.]+)'", graph)}
    edges = re.findall(r"data-edge='([^']+)' marker-end='url\(#arrow\)' d='([^']+)'", graph)
    assert len(boxes) > 20 and len(edges) > 20
    crossing = []
    for label, path in edges:
        ends = label.replace("&gt;", ">").split("->")
        for x, y in _points_on(path):
            hit = [n for n, (bx, by) in boxes.items() if n not in ends and bx < x < bx + NODE_W and by < y < by + NODE_H]
            if hit:
                crossing.append((label, hit[0]))
                break
    assert crossing == []


def test_size_chart_has_axes_ticks_and_titles() -> None:
    import datetime as dt

    from segsql.docs.svg import size_chart

    runs = [(dt.datetime(2026, 11, day, 6), size) for day, size in ((1, 1180), (8, 1744), (15, 1502))]
    chart = size_chart(runs)
    assert ">0</text>" in chart and ">1,000</text>" in chart and ">2,000</text>" in chart  # round ticks from zero
    assert ">members</text>" in chart and ">run (UTC date)</text>" in chart
    assert all(f">2026-11-{day:02d}</text>" in chart for day in (1, 8, 15))
    assert "<title>2026-11-08 06:00 UTC: 1,744 members</title>" in chart
