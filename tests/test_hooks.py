"""Run hooks against a real HTTP server on loopback and a real command."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from segsql import Project
from segsql.cli.main import cli
from segsql.errors import ConfigError
from tests.conftest import write_files
from tests.test_history import SEGMENT, set_active


class Receiver:
    """A webhook endpoint: records bodies; answers `failures` times with HTTP 500 first."""

    def __init__(self, failures: int = 0):
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.headers.append(dict(self.headers))
                if receiver.failures > 0:
                    receiver.failures -= 1
                    self.send_response(500)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def project_with_hooks(root: Path, hooks: str) -> Path:
    config = ("connection: {type: duckdb, path: data.duckdb}\nsources:\n  accounts: {table: accounts}\n"
              "  users: {table: users}\nentities:\n  account: {key: account_id, source: accounts}\n" + hooks)
    write_files(root, {"segsql.yml": config, "segments_sql/active.sql": SEGMENT})
    return root


def run(root: Path, active: list[int]) -> Any:
    set_active(root, active)
    return Project.load(root, as_of="2026-11-23").run()


def test_webhook_receives_entered_and_exited_keys(tmp_path: Path, receiver: Receiver,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    root = project_with_hooks(tmp_path, f"hooks:\n  - {{name: csm-alert, segments: [active], url: '{receiver.url}',"
                                        " token_env: HOOK_TOKEN}\n")
    first = run(root, [1, 2, 3])
    second = run(root, [2, 3, 4, 5])
    third = run(root, [2, 3, 4, 5])  # nothing changed: no call
    assert [h.status for h in first.hooks + second.hooks] == ["ok", "ok"]
    assert third.hooks[0].status == "skipped (no changes)"
    assert len(receiver.bodies) == 2
    body = receiver.bodies[1]
    assert body["run_id"] == second.run_id and body["as_of"] == "2026-11-23"
    segment = body["segments"][0]
    assert (segment["entered"], segment["exited"], segment["size"]) == (["4", "5"], ["1"], 4)
    assert receiver.bodies[0]["segments"][0]["entered"] == ["1", "2", "3"]
    assert receiver.headers[0]["Authorization"] == "Bearer s3cret"


def test_failing_webhook_is_retried_then_succeeds(tmp_path: Path) -> None:
    flaky = Receiver(failures=2)
    try:
        root = project_with_hooks(tmp_path, f"hooks:\n  - {{segments: [active], url: '{flaky.url}', retries: 2,"
                                            " backoff_seconds: 0.01}\n")
        result = run(root, [1])
    finally:
        flaky.close()
    assert (result.hooks[0].status, result.hooks[0].attempts) == ("ok", 3)
    assert len(flaky.bodies) == 1


def test_a_hook_that_keeps_failing_never_rolls_back_the_run(tmp_path: Path, runner: Any) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = project_with_hooks(tmp_path, f"hooks:\n  - {{name: crm, segments: [active], url: 'http://127.0.0.1:{port}/',"
                                        " retries: 1, backoff_seconds: 0.01, timeout_seconds: 2}\n")
    set_active(root, [1, 2])
    result = runner.invoke(cli, ["run", "--project", str(root), "--as-of", "2026-11-23"])
    assert result.exit_code == 0, result.output
    assert "hook crm failed after 2 attempt(s): cannot reach" in result.output
    assert Project.load(root).members("active")["account_id"].tolist() == [1, 2]


def test_command_hook_gets_the_payload_on_stdin(tmp_path: Path) -> None:
    script = tmp_path / "notify.py"
    script.write_text("import sys, pathlib\npathlib.Path('received.json').write_text(sys.stdin.read())\n")
    root = project_with_hooks(tmp_path, f"hooks:\n  - {{segments: [active], command: ['{sys.executable}', 'notify.py']}}\n")
    run(root, [2, 4])
    payload = json.loads((root / "received.json").read_text())
    assert payload["segments"][0]["entered"] == ["2", "4"]
    assert set(payload["segments"][0]) == {"segment", "entity", "size", "entered", "exited", "entered_count",
                                           "exited_count", "truncated"}  # keys only, no trait columns


def test_failing_command_reports_its_exit_code_and_stderr(tmp_path: Path) -> None:
    root = project_with_hooks(tmp_path, f"hooks:\n  - {{segments: [active], retries: 0, command: "
                                        f"['{sys.executable}', '-c', 'import sys; sys.exit(\"boom\")']}}\n")
    result = run(root, [1])
    assert result.ok
    assert result.hooks[0].status == "failed" and result.hooks[0].error == "exit code 1: boom"


def test_max_keys_truncates_lists_but_not_counts(tmp_path: Path, receiver: Receiver) -> None:
    root = project_with_hooks(tmp_path, f"hooks:\n  - {{segments: [active], url: '{receiver.url}', max_keys: 2}}\n")
    run(root, [1, 2, 3, 4, 5])
    segment = receiver.bodies[0]["segments"][0]
    assert (segment["entered"], segment["entered_count"], segment["truncated"]) == (["1", "2"], 5, True)


def test_unknown_watched_segment_is_a_config_error_before_running(tmp_path: Path) -> None:
    root = project_with_hooks(tmp_path, "hooks:\n  - segments: [actve]\n    url: 'http://127.0.0.1:9/'\n")
    set_active(root, [1])
    with pytest.raises(ConfigError) as error:
        Project.load(root).run()
    assert "watches unknown segment `actve`" in str(error.value) and "segsql.yml:8" in str(error.value)
    assert "active" in (error.value.hint or "")


@pytest.mark.parametrize(("hook", "message"), [
    ("{segments: [active]}", "exactly one of `command` or `url`"),
    ("{segments: [active], url: 'ftp://x'}", "must start with http"),
    ("{segments: [], url: 'http://x'}", "hooks.0.segments"),
])
def test_bad_hook_config_is_located(tmp_path: Path, hook: str, message: str) -> None:
    root = project_with_hooks(tmp_path, f"hooks:\n  - {hook}\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Project.load(root)


def test_a_redirecting_webhook_gets_no_token_elsewhere_and_fails(tmp_path: Path, receiver: Receiver,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A 302 to another address is a failed delivery: the token and payload are not re-sent."""

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(302)
            self.send_header("Location", receiver.url)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    redirector = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=redirector.serve_forever, daemon=True).start()
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    try:
        url = f"http://127.0.0.1:{redirector.server_address[1]}/hook"
        root = project_with_hooks(tmp_path, f"hooks:\n  - {{segments: [active], url: '{url}', token_env: HOOK_TOKEN,"
                                            " retries: 0}\n")
        result = run(root, [1, 2])
    finally:
        redirector.shutdown()
        redirector.server_close()
    assert result.ok and result.hooks[0].status == "failed"
    assert "HTTP 302" in (result.hooks[0].error or "") and "not followed" in (result.hooks[0].error or "")
    assert receiver.headers == [] and receiver.bodies == []  # the redirect target saw nothing
