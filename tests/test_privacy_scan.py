"""GDPR acceptance: during a full demo session without --unmask, no generated email address
appears in CLI output, logs, widget HTML or docs HTML. A control proves the scan would see them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from IPython.core.interactiveshell import InteractiveShell

from tests.conftest import AS_OF

SEGSQL = [sys.executable, "-c", "from segsql.cli import main; main()"]


def segsql(*args: str, cwd: Path) -> str:
    """Run the CLI as a user would; return stdout + stderr (where warnings and logs go)."""
    done = subprocess.run([*SEGSQL, "--debug", *args], cwd=cwd, capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], str]:
    """A demo project and everything the session printed."""
    base = tmp_path_factory.mktemp("scan")
    captured = [segsql("demo", "demo", "--scale", "0.3", "--as-of", AS_OF, cwd=base)]
    root = base / "demo"
    connection = duckdb.connect(str(root / "data" / "demo.duckdb"), read_only=True)
    emails = [row[0] for row in connection.sql("SELECT email FROM users").fetchall()]
    segments = [row[0] for row in connection.sql("SELECT DISTINCT segment FROM segsql.membership").fetchall()]
    connection.close()
    options = ["--project", str(root), "--as-of", AS_OF]
    captured.append(segsql("run", *options, cwd=base))
    captured.append(segsql("validate", *options, cwd=base))
    captured.append(segsql("list", "--format", "json", *options, cwd=base))
    captured.append(segsql("test", *options, cwd=base))
    for name in segments:
        captured.append(segsql("show", name, "--all", *options, cwd=base))
    for output_format in ("csv", "json"):  # the segment that outputs an email column, in every format
        captured.append(segsql("show", "dach_users", "--all", "--format", output_format, *options, cwd=base))
    captured.append(segsql("history", "dach_users", *options, cwd=base))
    captured.append(segsql("compare", "dach_users", "power_users", "--metrics", "reachable_users", *options, cwd=base))
    captured.append(segsql("export", "dach_users", "--purpose", "marketing_email", *options, cwd=base))
    captured.append(segsql("forget", "--entity", "user", "--key", "100045", *options, cwd=base))
    captured.append(segsql("docs", *options, cwd=base))
    return root, emails, "\n".join(captured)


def leaked(text: str, emails: list[str]) -> list[str]:
    return [email for email in emails if email in text]


def test_cli_output_and_logs_carry_no_email(session: tuple[Path, list[str], str]) -> None:
    _, emails, output = session
    assert len(emails) > 500
    assert "dach_users" in output and "email:" in output  # masked values were printed
    assert "unknown command" not in output.lower() and "internal error" not in output
    assert leaked(output, emails) == []


def test_docs_html_carries_no_email(session: tuple[Path, list[str], str]) -> None:
    root, emails, _ = session
    pages = list((root / "target" / "docs").rglob("*.html"))
    assert len(pages) == 1 + len(list((root / "segments_sql").rglob("*.sql")))
    assert leaked("".join(page.read_text() for page in pages), emails) == []


def test_widget_html_carries_no_email(session: tuple[Path, list[str], str]) -> None:
    root, emails, _ = session
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "segsql")
        shell.run_line_magic("segsql", f"project {root}")
        shell.run_line_magic("segsql", f"as_of {AS_OF}")
        cell = "SELECT u.user_id, u.email, lower(u.email) AS contact FROM {{ source('users') }} AS u"
        preview = shell.run_cell(f"%%segment everyone --entity user --preview 50\n{cell}", store_history=False)
        assert preview.success, preview.error_in_exec
        html = preview.result._repr_mimebundle_()["text/html"]
        compare = shell.run_line_magic("segment_compare", "dach_users power_users --metrics reachable_users")
        html += compare._repr_mimebundle_()["text/html"]
        assert "email:" in html  # the columns are there, masked (the renamed one too, by lineage)
        assert leaked(html, emails) == []
    finally:
        shell.run_line_magic("segsql", "close")
        shell.run_line_magic("unload_ext", "segsql")
        InteractiveShell.clear_instance()


def test_the_scan_would_catch_a_leak(session: tuple[Path, list[str], str]) -> None:
    """Control: with --unmask (logged) the same command prints addresses, so the scan is real."""
    root, emails, _ = session
    output = segsql("show", "dach_users", "--unmask", "--format", "csv", "--project", str(root), cwd=root)
    assert leaked(output, emails)
    assert "--unmask" in output  # the warning log line


def test_engine_errors_quoting_a_value_are_scrubbed(session: tuple[Path, list[str], str]) -> None:
    root, emails, _ = session
    broken = root / "segments_sql" / "zz_broken.sql"
    broken.write_text("{{ config(entity='user') }}\nSELECT u.user_id FROM {{ source('users') }} AS u "
                      "WHERE CAST(u.email AS INTEGER) > 0")
    try:
        output = segsql("run", "--select", "zz_broken", "--project", str(root), cwd=root)
    finally:
        broken.unlink()
    assert "Could not convert" in output or "Conversion Error" in output, output
    assert ("email:" in output or "'…'" in output) and leaked(output, emails) == []


def test_export_files_hold_emails_only_for_consented_members(session: tuple[Path, list[str], str]) -> None:
    """Activation is where addresses may leave: only declared columns, only with consent."""
    root, _, _ = session
    import pandas as pd

    members = pd.read_csv(root / "exports" / "dach_users" / "members.csv", dtype={"entity_key": str})
    connection = duckdb.connect(str(root / "data" / "demo.duckdb"), read_only=True)
    consented = {str(r[0]) for r in connection.sql("SELECT user_id FROM users WHERE marketing_consent").fetchall()}
    connection.close()
    assert list(members.columns) == ["segment", "entity", "entity_key", "email", "country"]
    assert set(members.entity_key) <= consented
    summary = json.loads(pd.read_csv(root / "exports" / "dach_users" / "segments.csv").to_json(orient="records"))
    assert summary[0]["dropped_no_consent"] > 0
