"""Run hooks: after a successful run, tell a command or a webhook who entered and left the
watched segments (e.g. alert an account's CSM when a key account enters `at_risk_accounts`).

The payload (JSON, on the command's stdin or as the POST body):
  {"project": ..., "run_id": ..., "as_of": "YYYY-MM-DD", "hook": ...,
   "segments": [{"segment": ..., "entity": ..., "size": n, "entered": [keys], "exited": [keys],
                 "entered_count": n, "exited_count": n, "truncated": false}]}
A key is its text; for a composite key, an object {"order_id": "1001", "line_no": "3"} (values as text).

Keys only: trait columns (which may be personal data) never leave through a hook. The run has
committed before any hook is called, so a failing hook is retried (`retries`, exponential
backoff), reported, and never undoes the run.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from segsql.compile.keys import EntityKey
from segsql.config.yamlfile import read_yaml_file
from segsql.engines import storage
from segsql.engines.records import HookOutcome, RunResult
from segsql.errors import ConfigError, did_you_mean
from segsql.privacy.masking import scrub

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler
    from segsql.config.models import Hook
    from segsql.engines.base import Engine

log = logging.getLogger("segsql.hooks")


def fire(compiler: Compiler, engine: Engine, result: RunResult) -> list[HookOutcome]:
    """Call every hook watching a segment of this run; never raises."""
    outcomes = []
    ran = {plan.name: plan for plan in result.segments if plan.status == storage.SUCCESS and not plan.point_in_time}
    for hook in compiler.config.hooks:
        watched = [name for name in hook.segments if name in ran]
        if not watched:
            continue
        try:
            segments = [_changes(engine, result.run_id, name, ran[name].entity, ran[name].rows, hook.max_keys,
                                 EntityKey(compiler.config.entities[ran[name].entity].key_columns))
                        for name in watched]
        except Exception as error:  # reading history failed: report, the run stands
            outcomes.append(HookOutcome(hook.label, "failed", 0, f"reading the changes: {error}"))
            continue
        if hook.only_changes and not any(s["entered_count"] or s["exited_count"] for s in segments):
            outcomes.append(HookOutcome(hook.label, "skipped (no changes)", 0))
            continue
        payload = {"project": compiler.config.name, "run_id": result.run_id, "as_of": result.as_of.isoformat(),
                   "hook": hook.label, "segments": segments}
        outcomes.append(_deliver(compiler, hook, json.dumps(payload, default=str).encode()))
    return outcomes


def _changes(engine: Engine, run_id: str, name: str, entity: str, size: int | None, max_keys: int,
             key: EntityKey) -> dict[str, Any]:
    history = storage.table("history")
    mine = exp.column("segment").eq(exp.Placeholder())
    entered = exp.select("entity_key").from_(history).where(
        exp.and_(mine, exp.column("run_id").eq(exp.Placeholder()))).order_by("entity_key")
    exited = exp.select("entity_key").from_(history.copy()).where(
        exp.and_(mine.copy(), exp.column("closed_by_run").eq(exp.Placeholder()))).order_by("entity_key")
    entered_keys = [str(row[0]) for row in engine.fetchall(entered, [name, run_id])]
    exited_keys = [str(row[0]) for row in engine.fetchall(exited, [name, run_id])]
    return {"segment": name, "entity": entity, "size": size,
            "entered": _sent(key, entered_keys[:max_keys]), "exited": _sent(key, exited_keys[:max_keys]),
            "entered_count": len(entered_keys), "exited_count": len(exited_keys),
            "truncated": len(entered_keys) > max_keys or len(exited_keys) > max_keys}


def _sent(key: EntityKey, stored: list[str]) -> list[Any]:
    """Keys as the payload carries them: the text of a one-column key, an object of the key's
    columns (values as text) for a composite key."""
    if not key.composite:
        return stored
    return [dict(zip(key.columns, key.decode(value), strict=True)) for value in stored]


def _deliver(compiler: Compiler, hook: Hook, body: bytes) -> HookOutcome:
    attempts, error = 0, None
    for attempt in range(hook.retries + 1):
        attempts = attempt + 1
        error = _call_command(compiler, hook, body) if hook.command is not None else _post(hook, body)
        if error is None:
            return HookOutcome(hook.label, "ok", attempts)
        log.warning("hook %s failed (attempt %d of %d): %s", hook.label, attempts, hook.retries + 1, scrub(error))
        if attempt < hook.retries:
            time.sleep(hook.backoff_seconds * 2 ** attempt)
    return HookOutcome(hook.label, "failed", attempts, scrub(error or ""))


def _call_command(compiler: Compiler, hook: Hook, body: bytes) -> str | None:
    argv = hook.command if isinstance(hook.command, list) else shlex.split(hook.command or "")
    try:
        done = subprocess.run(argv, input=body, cwd=compiler.root, capture_output=True, timeout=hook.timeout_seconds,
                              check=False)
    except FileNotFoundError:
        return f"command not found: {argv[0]}"
    except subprocess.TimeoutExpired:
        return f"timed out after {hook.timeout_seconds:g}s"
    if done.returncode != 0:
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return f"exit code {done.returncode}" + (f": {last[0][:200]}" if last[0] else "")
    return None


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are failures: following one would send the bearer token to another host and
    turn the POST into a GET without the payload."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects)


def _post(hook: Hook, body: bytes) -> str | None:
    assert hook.url is not None
    headers = {"Content-Type": "application/json", "User-Agent": "segsql-hook"}
    if hook.token_env:
        token = os.environ.get(hook.token_env)
        if not token:
            return f"environment variable {hook.token_env} (token_env) is not set"
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(hook.url, data=body, headers=headers, method="POST")
    try:
        with NO_REDIRECTS.open(request, timeout=hook.timeout_seconds) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        if 300 <= error.code < 400:
            return (f"HTTP {error.code}: redirected to {error.headers.get('Location', '?')}, not followed "
                    "(the payload and token go only to the configured url)")
        return f"HTTP {error.code} {error.reason}"
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"cannot reach {hook.url}: {reason}"
    return None if 200 <= status < 300 else f"HTTP {status}"


def check_hooks(compiler: Compiler) -> None:
    """Hooks must watch segments that exist (checked before a run starts)."""
    for index, hook in enumerate(compiler.config.hooks):
        for position, name in enumerate(hook.segments):
            if name not in compiler.segments:
                located = read_yaml_file(compiler.root / "segsql.yml", "segsql.yml")
                raise ConfigError(f"hook `{hook.label}` watches unknown segment `{name}`",
                                  located.locate(("hooks", index, "segments", position)),
                                  did_you_mean(name, compiler.segments) or "run `segsql list` to see them")
