"""One number formatter per kind of quantity (segsql.formats), and the outputs of #19 it fixes
in the CLI and the notebook's static HTML."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from segsql import formats
from segsql.activate.diffreport import DiffReport, SegmentDiff
from segsql.cli import cli


def test_the_docstring_examples_hold() -> None:
    failures, tried = doctest.testmod(formats)
    assert tried > 10 and failures == 0


@pytest.mark.parametrize(("value", "kind", "unit", "shown"), [
    (10360.25, "mean", "", "10,360"),  # was 1.036e+04
    (12417.4, "mean", "currency", "12,417"),
    (0.07679135, "ratio", "", "0.07679"),  # was 7.679135e-02
    (1.393, "ratio", "percent", "139.3%"),  # NRR, was 1.393
    (0.9521, "ratio", "percent", "95.2%"),  # GRR
    (2 / 5688, "proportion", "", "<0.1%"),  # was 0.0%
    (5686 / 5688, "proportion", "", ">99.9%"),  # was 100.0%
    (0.0, "proportion", "", "0%"),
    (1744168.0, "sum", "currency", "1,744,168"),
    (872.345, "mean", "currency", "872.35"),
    (float("inf"), "ratio", "currency", "n/a"),  # an undefined LTV is not infinite
    (None, "mean", "", ""),
    (float("nan"), "mean", "", ""),
])
def test_metric_values_read_by_kind(value: float | None, kind: str, unit: str, shown: str) -> None:
    assert formats.metric(value, kind, unit) == shown


def test_differences_of_percentages_are_points_and_signed() -> None:
    assert formats.difference(-0.0345, "proportion") == "-3.5 pp"
    assert formats.difference(0.765, "ratio", "percent") == "+76.5 pp"
    assert formats.difference(9804.2, "mean", "currency") == "+9,804"
    assert formats.interval(7192.0, 12417.4, "mean", "currency") == "[+7,192, +12,417]"


def test_no_formatter_prints_exponent_notation() -> None:
    for value in (1.036e4, 7.679135e-2, 1.2e-7, 3.4e12, -5.5e-5):
        for shown in (formats.number(value), formats.cell(value), formats.p_value(abs(value)),
                      formats.metric(value, "mean", "currency")):
            assert not re.search(r"\de[+-]?\d", shown), (value, shown)


def test_member_table_values_lose_float_noise_but_keys_stay_whole() -> None:
    assert formats.cell(83959.07999999997) == "83,959.08"  # `show` printed 83959.07999999997
    assert formats.cell(0.30000000000000004) == "0.3"
    assert formats.cell(1234567) == "1234567"  # an id: no separators


def test_notebook_tables_align_text_left_and_numbers_right() -> None:
    from segsql.magics.widgets import html

    rendered = html.table(["segment", "size", "share", "note"], [["power_users", 1234, "12.5%", "ok"],
                                                                 ["dormant", 5, "<0.1%", "few"]])
    assert "<th>segment</th>" in rendered and "<th class=num>size</th>" in rendered
    assert "<td>power_users</td><td class='num'>1234</td><td class='num'>12.5%</td><td>ok</td>" in rendered
    assert "<td class='num'>&lt;0.1%</td>" in rendered
    assert "text-align:left" in html.STYLE  # JupyterLab's default right-aligns every cell


def test_diff_table_lists_changed_segments_first() -> None:
    from segsql.magics.widgets import html

    segments = [SegmentDiff(f"a{i:02d}", "unchanged", "account", 10, 10) for i in range(20)]
    segments += [SegmentDiff("z_changed", "changed", "account", 1000, 1250, 300, 50),
                 SegmentDiff("y_added", "added", "account", None, 7, 7)]
    rendered = html.git_diff(DiffReport("main", "abc123", segments), "banner")
    names = re.findall(r"<tr><td>([a-z0-9_]+)</td>", rendered)
    assert names[:2] == ["z_changed", "y_added"] and names[2:] == [f"a{i:02d}" for i in range(20)]
    assert "<td class='num'>1,250</td>" in rendered


SHOWN = """{{ config(entity='account') }}
SELECT a.account_id, CAST('83959.07999999997' AS DOUBLE) AS mrr_total
FROM {{ source('accounts') }} AS a
WHERE a.account_id IS NOT NULL
"""


@pytest.mark.slow
def test_cli_tables_use_the_formatter(tmp_path: Path) -> None:
    from segsql.demo.project import prepare_demo

    root = tmp_path / "demo"
    prepare_demo(root, scale=0.5, seed=3, as_of="2026-11-23")  # 1,000 accounts
    (root / "segments_sql" / "shown_totals.sql").write_text(SHOWN)
    runner = CliRunner()
    ran = runner.invoke(cli, ["run", "--project", str(root), "--as-of", "2026-11-23"])
    assert ran.exit_code == 0, ran.output
    size = re.search(r"shown_totals\s*│\s*account\s*│\s*([\d,]+)", ran.stdout)
    assert size and "," in size.group(1)  # the run table: 1,000 not 1000
    shown = runner.invoke(cli, ["show", "shown_totals", "--project", str(root), "--limit", "3"])
    assert shown.exit_code == 0, shown.output
    assert "83,959.08" in shown.stdout and "83959.07999999997" not in shown.stdout
    waterfall = runner.invoke(cli, ["waterfall", "shown_totals", "--project", str(root), "--as-of", "2026-11-23"])
    assert waterfall.exit_code == 0, waterfall.output
    assert re.search(r"│\s+1,000 │", waterfall.stdout), waterfall.stdout  # every account, right-aligned
    compare = runner.invoke(cli, ["compare", "high_mrr_accounts", "--metrics", "nrr,mrr_per_account",
                                  "--project", str(root), "--as-of", "2026-11-23"])
    assert compare.exit_code == 0, compare.output
    assert not re.search(r"\de[+-]\d", compare.stdout) and re.search(r"\d+\.\d%", compare.stdout)
