"""The notebook layer in a real IPython InteractiveShell."""

from __future__ import annotations

import base64
import getpass
import html
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from IPython.core.interactiveshell import InteractiveShell

from segsql import formats
from segsql.demo.project import prepare_demo
from tests.conftest import AS_OF

CELL = "SELECT a.account_id, a.name, a.employees\nFROM {{ source('accounts') }} AS a\nWHERE a.region = 'DACH'\n" \
       "  AND a.employees >= {{ param('min_emp', 500) }}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nb") / "demo"
    project, _ = prepare_demo(root, scale=0.3, seed=5, as_of=AS_OF)
    project.run()
    return root


@pytest.fixture
def shell(demo: Path) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "segsql")
    shell.run_line_magic("segsql", f"project {demo}")
    shell.run_line_magic("segsql", f"as_of {AS_OF}")
    yield shell
    shell.run_line_magic("segsql", "close")
    shell.run_line_magic("segsql", "set --clear")
    shell.run_line_magic("unload_ext", "segsql")
    InteractiveShell.clear_instance()


def run(shell: InteractiveShell, source: str):  # type: ignore[no-untyped-def]
    return shell.run_cell(source, store_history=False)


def published(shell: InteractiveShell, action) -> list[tuple[dict, dict]]:  # type: ignore[no-untyped-def]
    """Every (data, options) a display call sends to the front end while `action()` runs."""
    seen: list[tuple[dict, dict]] = []
    original = shell.display_pub.publish
    shell.display_pub.publish = lambda data, metadata=None, **options: seen.append((data, {**options, "metadata": metadata}))
    try:
        action()
    finally:
        shell.display_pub.publish = original
    return seen


def test_import_segsql_does_not_import_ipython() -> None:
    import subprocess
    import sys

    probe = "import sys, segsql; print(any(m.split('.')[0] in ('IPython', 'ipywidgets') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.parametrize("module", ["ipywidgets", "altair", "vl_convert"])
def test_load_ext_without_a_notebook_dependency_names_the_extra(module: str) -> None:
    import subprocess
    import sys

    probe = (f"import sys; sys.modules[{module!r}] = None\n"  # as if not installed
             "from IPython.core.interactiveshell import InteractiveShell\n"
             "result = InteractiveShell.instance().run_cell('%load_ext segsql')\n"
             "print(type(result.error_in_exec).__name__)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.splitlines()[-1] == "UsageError" and "Traceback" not in done.stdout + done.stderr
    assert f"this needs `{module}`, which is not installed (pip install 'segsql[notebook]')" in done.stderr


def test_status_names_project_connection_and_as_of(shell: InteractiveShell, demo: Path) -> None:
    bundle = shell.run_line_magic("segsql", "")._repr_mimebundle_()
    assert "project saas_demo" in bundle["text/plain"] and "duckdb: data/demo.duckdb" in bundle["text/plain"]
    assert f"as_of {AS_OF}" in bundle["text/plain"]


def test_segment_cell_previews_members(shell: InteractiveShell) -> None:
    result = run(shell, f"%%segment big_dach --entity account --preview 5\n{CELL}")
    assert result.success, result.error_in_exec
    view = result.result
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}  # the static report needs no widget model
    assert view.result.size > 5 and len(view.page) == 5
    assert f"<b>{view.result.size:,}</b> account(s)" in bundle["text/html"]
    assert "size waterfall" in bundle["text/html"] and "a.region = &#x27;DACH&#x27;" in bundle["text/html"]
    first = view.page.account_id.tolist()
    shown = published(shell, view._ipython_display_)
    report, controls = shown[0][0], shown[-1][0]
    assert set(report) == {"text/html", "text/plain"} and shown[0][1]["transient"]["display_id"]
    assert "application/vnd.jupyter.widget-view+json" in controls  # the paging buttons, last
    assert controls["text/plain"] == f"(members 1–5 of {view.result.size:,}; paging needs a running kernel)"
    updates = published(shell, lambda: view.turn(1))
    assert view.page.account_id.tolist() != first and view.offset == 5
    assert f"members 6–10 of {view.result.size:,}" in view._repr_mimebundle_()["text/html"]
    # the page turned in the output already shown (what a saved notebook then keeps), not in a widget
    assert updates[0][1]["update"] and updates[0][1]["transient"] == shown[0][1]["transient"]
    assert f"members 6–10 of {view.result.size:,}" in updates[0][0]["text/html"]


def test_paging_still_works_after_a_run_closed_the_connection(shell: InteractiveShell) -> None:
    view = run(shell, f"%%segment big_dach --entity account --preview 5\n{CELL}").result
    shell.run_line_magic("segsql", "run --select enterprise_dach")  # closes the preview connection
    view.turn(1)
    assert view.offset == 5 and view.position.value.startswith("members 6–")


def test_error_points_at_the_cell_line_and_fails_the_cell(shell: InteractiveShell) -> None:
    result = run(shell, "%%segment bad --entity account\nSELECT a.account_id\nFROM {{ source('accounts') }} AS a\n"
                        "WHERE a.nope = 1")
    assert not result.success
    assert str(result.error_in_exec) == "cell bad:4:9: unknown column `nope` in `a`"
    assert type(result.error_in_exec).__name__ == "UsageError"


def test_params_from_the_notebook_are_literals(shell: InteractiveShell) -> None:
    shell.user_ns["threshold"] = "1000; DROP TABLE accounts; --"
    result = run(shell, f"%%segment p --entity account --param min_emp=threshold\n{CELL}")
    assert not result.success and "param `min_emp` expects int" in str(result.error_in_exec)
    shell.user_ns["threshold"] = 1000
    result = run(shell, f"%%segment p --entity account --param min_emp=threshold --no-run\n{CELL}")
    assert result.success and "a.employees >= 1000" in result.result._repr_mimebundle_()["text/plain"]
    result = run(shell, f"%%segment p --entity account --param min_emp=nosuch\n{CELL}")
    assert "no variable `nosuch`" in str(result.error_in_exec)


def test_assignment_gives_a_dataframe(shell: InteractiveShell) -> None:
    result = run(shell, f"%%segment members << big_dach --entity account\n{CELL}")
    assert result.success
    frame = shell.user_ns["members"]
    assert list(frame.columns) == ["account_id", "name", "employees"] and len(frame) == result.result.result.size


@pytest.mark.parametrize("name", ["__builtins__", "print", "len", "class", "None"])
def test_assignment_refuses_keywords_builtins_and_special_names(shell: InteractiveShell, name: str) -> None:
    before = shell.user_ns.get("__builtins__")
    result = run(shell, f"%%segment {name} << big_dach --entity account\n{CELL}")
    assert not result.success and "keyword, builtin or special name" in str(result.error_in_exec)
    assert shell.user_ns.get("__builtins__") is before


def test_save_writes_the_file_and_refuses_foreign_changes(shell: InteractiveShell, demo: Path) -> None:
    path = demo / "segments_sql" / "nb_saved.sql"
    result = run(shell, f"%%segment nb_saved --entity account --save --no-run\n{CELL}")
    assert result.success and path.read_text().startswith("{{ config(entity='account') }}\nSELECT")
    result = run(shell, f"%%segment nb_saved --entity account --save --no-run\n{CELL}\n  AND a.employees < 10000")
    assert result.success and "10000" in path.read_text()  # this session wrote it: overwriting is fine
    path.write_text(path.read_text() + "-- edited in git\n")
    result = run(shell, f"%%segment nb_saved --entity account --save --no-run\n{CELL}")
    assert not result.success and "changes this notebook did not make" in str(result.error_in_exec)
    assert path.read_text().endswith("-- edited in git\n")
    result = run(shell, f"%%segment nb_saved --entity account --save --force --no-run\n{CELL}")
    assert result.success and "edited in git" not in path.read_text()
    ran = shell.run_line_magic("segsql", "run --select nb_saved")._repr_mimebundle_()  # the saved file is known
    assert "nb_saved" in ran["text/plain"] and "success" in ran["text/plain"]
    path.unlink()


def test_pii_is_masked_unless_unmasked(shell: InteractiveShell, demo: Path) -> None:
    cell = "SELECT u.user_id, u.email FROM {{ source('users') }} AS u WHERE u.role = 'admin'"
    masked = run(shell, f"%%segment admins --entity user\n{cell}").result
    assert masked.result.pii == {"email": "email"}
    assert all(str(v).startswith("email:") for v in masked.page.email)
    assert "@" not in masked._repr_mimebundle_()["text/html"]
    clear = run(shell, f"%%segment admins --entity user --unmask\n{cell}").result
    assert all("@" in v for v in clear.page.email)
    connection = duckdb.connect(str(demo / "data" / "demo.duckdb"), read_only=True)
    audit = connection.execute("SELECT who, segment, columns, via FROM segsql.unmask_audit").fetchall()
    connection.close()
    assert audit == [(getpass.getuser(), "admins", "email", "notebook")]  # the masked preview left no row


def test_trait_values_are_escaped_in_html(shell: InteractiveShell) -> None:
    cell = "SELECT a.account_id, '<img src=x onerror=alert(1)>' AS label FROM {{ source('accounts') }} AS a"
    bundle = run(shell, f"%%segment xss --entity account\n{cell}").result._repr_mimebundle_()
    assert "<img src=x" not in bundle["text/html"]
    assert html.escape("<img src=x onerror=alert(1)>") in bundle["text/html"]


def test_compare_overlap_report_and_run(shell: InteractiveShell) -> None:
    view = shell.run_line_magic("segment_compare", "high_mrr_accounts enterprise_dach --metrics churn_rate,nrr")
    bundle = view._repr_mimebundle_()
    assert "churn_rate (proportion) vs rest" in bundle["text/html"]
    # text/plain carries the CIs, and no exponent notation
    nrr = view.comparison.tables["nrr"].iloc[0]
    assert f"[{formats.points(nrr.ci_low)}, {formats.points(nrr.ci_high)}]" in bundle["text/plain"]
    assert f"{nrr.value:.1%}" in bundle["text/plain"] and "e-0" not in bundle["text/plain"]
    shown = published(shell, view._ipython_display_)
    charts = [data for data, _ in shown if "application/vnd.vegalite.v5+json" in data]
    assert len(charts) == 2 and all(base64.b64decode(c["image/png"]).startswith(b"\x89PNG") for c in charts)
    assert shown[1][1]["metadata"]["image/png"]["width"] > 300  # shown at its CSS size, not doubled
    assert "churn_rate: difference from rest" in charts[0]["text/plain"]
    updates = published(shell, lambda: setattr(view.picker, "value", "all"))
    assert "vs all" in view._repr_mimebundle_()["text/html"]
    assert len(updates) == 3 and all(options["update"] for _, options in updates)
    assert "difference from all" in updates[1][0]["text/plain"]
    overlap_view = shell.run_line_magic("segment_overlap", "power_users dach_users")
    overlap = overlap_view._repr_mimebundle_()
    assert "Jaccard" in overlap["text/html"] and "power_users & dach_users: Jaccard" in overlap["text/plain"]
    assert [c.title for c in overlap_view.charts()] == ["overlap"]
    report = shell.run_line_magic("segment_report", "--select enterprise_dach")._repr_mimebundle_()
    assert "substantial" in report["text/html"]
    # differences read as compare prints them (NRR in pp, money with separators), never 8.47e+03
    distinct = shell.run_line_magic("segment_report", "--select high_mrr_accounts")._repr_mimebundle_()["text/plain"]
    assert re.search(r"nrr [+-][\d.]+ pp \(p[=<]0\.\d+\)", distinct) and not re.search(r"\de[+-]?\d", distinct), distinct
    ran = shell.run_line_magic("segsql", "run --select enterprise_dach")._repr_mimebundle_()
    assert "success" in ran["text/html"]


def test_preview_warns_about_the_keys_a_run_refuses(shell: InteractiveShell, demo: Path) -> None:
    users = "SELECT u.account_id FROM {{ source('users') }} AS u"
    view = run(shell, f"%%segment per_user --entity account\n{users}").result
    with duckdb.connect(str(demo / "data" / "demo.duckdb"), read_only=True) as connection:  # closed: later tests write
        rows, accounts = connection.execute("SELECT count(*), count(DISTINCT account_id) FROM users").fetchall()[0]
    warning = (f"segment `per_user` returned {rows - accounts:,} duplicate `account_id` value(s); members would "
               "count twice: `%segsql run` will refuse it")
    assert rows > accounts and view.result.size == rows
    assert warning in view._repr_mimebundle_()["text/plain"] and html.escape(warning) in view.html()
    deduped = run(shell, "%%segment per_user\n{{ config(entity='account', duplicates='dedupe') }}\n" + users).result
    assert deduped.result.size == accounts and deduped.result.key_problem is None
    nulls = run(shell, "%%segment no_key --entity account\nSELECT CAST(NULL AS BIGINT) AS account_id").result
    assert "returned 1 row(s) with a NULL `account_id`" in nulls._repr_mimebundle_()["text/plain"]


def test_help_is_printed_once(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(shell, "%segment_compare --help")
    out, err = capsys.readouterr()
    assert not result.success and (out + err).count("Compare segments on metrics against a baseline.") == 1


def test_usage_errors_are_clean(shell: InteractiveShell) -> None:
    for source, fragment in [
        ("%segsql nonsense", "unknown %segsql command"),
        ("%segment_compare a --metrics", "requires an argument"),
        ("%segment_compare high_mrr_accounts --metrics nope", "unknown metric `nope`"),
        ("%%segment 1bad --entity account\nSELECT 1 AS account_id", "not a plain identifier"),
        ("%%segment x --preview 0 --entity account\nSELECT 1 AS account_id", "--preview"),
    ]:
        result = run(shell, source)
        assert not result.success and fragment in str(result.error_in_exec), (source, result.error_in_exec)


def test_connect_to_a_notebook_connection_and_a_profile(shell: InteractiveShell, demo: Path) -> None:
    import duckdb

    shell.user_ns["con"] = duckdb.connect(str(demo / "data" / "demo.duckdb"), read_only=True)
    status = shell.run_line_magic("segsql", "connect con")._repr_mimebundle_()["text/plain"]
    assert "notebook connection `con`" in status
    view = run(shell, f"%%segment big_dach --entity account\n{CELL}").result
    assert view.result.size > 0
    shell.run_line_magic("segsql", "close")
    shell.user_ns.pop("con").close()  # the notebook's own connection: later tests write the file
    result = run(shell, "%segsql connect nosuchprofile_or_file.duckdb")
    assert result.success  # a path: the project now points at that DuckDB file
    assert "nosuchprofile_or_file.duckdb" in shell.run_line_magic("segsql", "")._repr_mimebundle_()["text/plain"]
    shell.run_line_magic("segsql", f"project {demo}")


def test_cohort_magic_shows_triangle_and_curves(shell: InteractiveShell) -> None:
    shell.user_ns["cohorts"] = "the user's own"
    view = shell.run_line_magic("segment_cohorts", "account mrr_monthly month --revenue mrr --value revenue_retention")
    bundle = view._repr_mimebundle_()
    assert "segsql-cohorts" in bundle["text/html"] and "cohort revenue_retention by month" in bundle["text/html"]
    assert [c.title for c in view.charts()] == ["revenue retention by cohort", "revenue retention curves"]
    first_row = bundle["text/plain"].splitlines()[1].split()  # cohort, then month 0, 1, ... as percentages
    assert first_row[1] == "100.0%" and all(v.endswith("%") for v in first_row[1:]), first_row
    assert shell.user_ns["cohorts"] == "the user's own"  # not overwritten
    shell.run_line_magic("segment_cohorts", "retention << account mrr_monthly month --revenue mrr")
    frame = shell.user_ns["retention"].frame
    assert {"cohort", "period_index", "revenue_retention"} <= set(frame.columns)
    revenue = shell.run_line_magic("segment_cohorts", "account mrr_monthly month --revenue mrr --value revenue")
    assert "%" not in revenue.charts()[0].text and "%</td>" not in revenue.html()  # money, not a percentage
    failed = shell.run_cell("%segment_cohorts account mrr_monthly month --period quarter", store_history=False)
    assert not failed.success and "quarter" in str(failed.error_in_exec)


def _diff_statuses(shell: InteractiveShell) -> dict[str, str]:
    """segment -> status, read from %segment_diff's text (`NAME (changed, account): ...`, `unchanged: A, B`)."""
    text = shell.run_line_magic("segment_diff", "--base main")._repr_mimebundle_()["text/plain"]
    statuses = dict(re.findall(r"^(\w+) \((\w+), ", text, flags=re.M))
    for line in re.findall(r"^unchanged: (.*)$", text, flags=re.M):
        statuses.update({name: "unchanged" for name in line.split(", ")})
    return statuses


def test_files_edited_added_or_deleted_between_magics_are_seen(tmp_path: Path) -> None:
    from tests.test_gitdiff import committed_repo, segment

    root = committed_repo(tmp_path / "repo", {"engaged": segment("WHERE a.score >= 50"),
                                              "legacy": segment("WHERE a.score < 5")}, accounts=300)
    segments = root / "segments_sql"
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "segsql")
        shell.run_line_magic("segsql", f"project {root}")
        listed = lambda: shell.run_line_magic("segsql", "list")._repr_mimebundle_()["text/plain"]  # noqa: E731
        assert "engaged" in listed() and _diff_statuses(shell) == {"engaged": "unchanged", "legacy": "unchanged"}
        (segments / "engaged.sql").write_text(segment("WHERE a.score >= 40"))  # edited outside the notebook
        assert _diff_statuses(shell)["engaged"] == "changed"
        (segments / "fresh.sql").write_text(segment("WHERE a.score = 7"))
        (segments / "legacy.sql").unlink()
        assert "fresh" in listed() and "legacy" not in listed()
        assert _diff_statuses(shell) == {"engaged": "changed", "fresh": "added", "legacy": "removed"}
        ran = shell.run_line_magic("segsql", "run")._repr_mimebundle_()["text/plain"]
        assert "fresh" in ran and "legacy" not in ran
        report = shell.run_line_magic("segment_report", "")._repr_mimebundle_()["text/plain"]
        assert "fresh" in report and "legacy" not in report  # no error about the deleted file
        (segments / "fresh.sql").write_text("{{ config(entity='account') }}\nSELECT a.nope FROM {{ source('accounts') }} AS a")
        assert "error: unknown column `nope`" in listed()
        session = shell.magics_manager.registry["SegsqlMagics"].session
        (segments / "engaged.sql").touch()  # a newer mtime, the same text: nothing to reload
        assert session.refresh() is False
    finally:
        shell.run_line_magic("unload_ext", "segsql")
        InteractiveShell.clear_instance()


def test_the_demo_can_be_rebuilt_after_previews_in_the_same_kernel(shell: InteractiveShell, demo: Path) -> None:
    """"Run All" twice: cell 1 (prepare_demo) writes the database the previews read."""
    assert run(shell, f"%%segment big_dach --entity account --preview 5\n{CELL}").success
    rebuilt = run(shell, f"from segsql.demo.project import prepare_demo\n"
                         f"prepare_demo(__import__('pathlib').Path({str(demo)!r}), scale=0.3, seed=5, as_of={AS_OF!r})")
    assert rebuilt.success, rebuilt.error_in_exec
    view = run(shell, f"%%segment big_dach --entity account --preview 5\n{CELL}").result
    view.turn(1)  # paging reopens the file, and lets go of it again
    assert view.offset == 5 and run(shell, "__import__('segsql').Project.load(" + repr(str(demo)) + ").run()").success


def test_a_database_a_notebook_holds_names_the_way_out(shell: InteractiveShell, demo: Path) -> None:
    database = demo / "data" / "demo.duckdb"
    shell.user_ns["mine"] = duckdb.connect(str(database), read_only=True)  # the user's own connection
    shell.run_line_magic("segsql", "connect mine")
    try:
        failed = run(shell, f"from segsql.demo.project import prepare_demo\nprepare_demo(__import__('pathlib').Path("
                            f"{str(demo)!r}), scale=0.3, seed=5, as_of={AS_OF!r})")
        assert type(failed.error_in_exec).__name__ == "EngineError"
        assert "already open in this process with other settings (read-only)" in str(failed.error_in_exec)
        assert "`%segsql close`" in str(failed.error_in_exec)
    finally:
        shell.run_line_magic("segsql", "close")
        shell.user_ns.pop("mine").close()
        shell.run_line_magic("segsql", f"project {demo}")


LOCK_HOLDER = "import duckdb, sys\nconnection = duckdb.connect(sys.argv[1])\nprint('ready', flush=True)\nsys.stdin.read()"


def test_a_database_another_process_holds_names_it_and_the_way_out(shell: InteractiveShell, demo: Path) -> None:
    import subprocess
    import sys

    from click.testing import CliRunner

    from segsql.cli.main import cli

    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(demo / "data" / "demo.duckdb")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        expected = f"is in use by another process (PID {holder.pid}, "
        failed = run(shell, f"%%segment big_dach --entity account\n{CELL}")
        assert type(failed.error_in_exec).__name__ == "UsageError" and expected in str(failed.error_in_exec)
        assert "run `%segsql close` there" in str(failed.error_in_exec)
        done = CliRunner().invoke(cli, ["run", "--project", str(demo)])
        assert done.exit_code == 1 and expected in done.output and "%segsql close" in done.output
        assert "-readonly" not in done.output + str(failed.error_in_exec)  # DuckDB's hint about its own CLI
        assert "Traceback" not in done.output
    finally:
        holder.communicate("", timeout=30)


@pytest.mark.parametrize(("where", "column"), [
    ("a.signup_date > 5", 7),  # Binder Error: Cannot compare values of type DATE and INTEGER_LITERAL
    ("a.employees > 1 AND CAST(a.name AS INT) > 5", 27),  # Conversion Error: Could not convert string
])
def test_runtime_engine_errors_point_at_the_cell_line(shell: InteractiveShell, where: str, column: int) -> None:
    """Validation passes; DuckDB refuses it when it runs, giving LINE 1 and carets in the SQL
    segsql generated: reported at the cell's own line (the magic's line is line 1)."""
    result = run(shell, f"%%segment late --entity account\nSELECT a.account_id\nFROM {{{{ source('accounts') }}}} AS a\n"
                        f"WHERE {where}")
    assert not result.success and type(result.error_in_exec).__name__ == "UsageError"
    assert str(result.error_in_exec).startswith(f"cell late:4:{column}: DuckDB: "), result.error_in_exec


def test_a_run_shows_its_progress_in_place_and_clears_it(shell: InteractiveShell) -> None:
    shown = published(shell, lambda: shell.run_line_magic("segsql", "run -s enterprise_dach -s high_mrr_accounts"))
    texts = [data["text/plain"] for data, _ in shown]
    assert texts[0].startswith("running segments █") and "1/2 · " in texts[0] and texts[0].endswith(" members)")
    assert "2/2 · " in texts[1] and texts[-1] == ""  # updated in place, then emptied: the saved notebook keeps the run
    assert all(options["update"] for _, options in shown[1:])
