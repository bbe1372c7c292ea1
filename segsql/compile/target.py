"""Write compiled SQL and the manifest to target/, reusing unchanged results by content hash.

A segment is recompiled only when something that can change its output changed: its template,
the templates it refs, macros, segsql.yml, overrides, `as_of`, the versions of segsql and
sqlglot, or the files/database the catalog was read from. Files are written atomically.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlglot

from segsql.compile.parallel import run_parallel, worker_count
from segsql.errors import SegsqlError
from segsql.version import __version__

if TYPE_CHECKING:
    from segsql.compile.compiler import Compiler

TARGET_DIR = "target"
CACHE_FILE = ".segsql_cache.json"
MANIFEST_KEY = "#manifest"  # not a valid segment name, so it cannot clash


@dataclass
class CompileReport:
    """What `compile` did: per-segment outputs, errors, and how many came from the cache."""
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> dialect -> sql
    manifest: dict[str, Any] = field(default_factory=dict)
    errors: list[SegsqlError] = field(default_factory=list)
    reused: int = 0


def write_target(compiler: Compiler, names: list[str], dialects: list[str],
                 workers: int | None = None) -> CompileReport:
    """Compile `names` for `dialects`; write target/ only when every one of them is valid.

    Segments whose inputs are unchanged are taken from the cache; the rest are compiled, on
    several cores when there are many (`workers`: default one per core, 1 to stay in process)."""
    report = CompileReport(errors=list(compiler.files.problems))
    target = compiler.root / TARGET_DIR
    cache = _load_cache(target)
    fingerprint = _fingerprint(compiler, dialects)
    validated: dict[str, str | None] = {}  # name -> key when its cache entry is still valid
    entries: dict[str, dict[str, Any]] = {}
    reused: set[str] = set()
    todo: list[str] = []
    for name in names:
        if _cached_key(compiler, name, fingerprint, cache, validated) is not None:
            entries[name] = cache[name]
            reused.add(name)
        else:
            todo.append(name)
    for name, result in _compile_entries(compiler, todo, dialects, fingerprint, workers).items():
        if isinstance(result, SegsqlError):
            report.errors.append(result)
        else:
            entries[name] = result
    if report.errors:
        return report
    report.reused = len(reused)
    report.outputs = {name: entry["sql"] for name, entry in entries.items()}
    report.manifest = _manifest(compiler, entries, dialects)
    _write_outputs(compiler, target, entries, dialects, reused)
    manifest_key = _sha(json.dumps([dialects, sorted((n, e["key"]) for n, e in entries.items())]))
    manifest_path = target / "manifest.json"
    if cache.get(MANIFEST_KEY) != manifest_key or not manifest_path.exists():
        atomic_write(manifest_path, json.dumps(report.manifest, indent=2, sort_keys=True) + "\n")
    if len(reused) < len(entries) or cache.get(MANIFEST_KEY) != manifest_key:
        cache.update(entries)
        cache[MANIFEST_KEY] = manifest_key
        atomic_write(target / CACHE_FILE, json.dumps(cache, sort_keys=True))
    return report


def _compile_entries(compiler: Compiler, names: list[str], dialects: list[str], fingerprint: str,
                     workers: int | None) -> dict[str, dict[str, Any] | SegsqlError]:
    count = worker_count(len(names)) if workers is None else max(1, workers)
    if count > 1:
        work = functools.partial(_worker_entry, dialects=dialects, fingerprint=fingerprint)
        results = run_parallel(compiler, names, work, count)
        return {name: results[name] for name in names}
    computed: dict[str, str | None] = {}
    out: dict[str, dict[str, Any] | SegsqlError] = {}
    for name in names:
        try:
            out[name] = _compile_entry(compiler, name, dialects, fingerprint, computed)
        except SegsqlError as error:
            out[name] = error
    return out


def _worker_entry(compiler: Compiler, name: str, *, dialects: list[str], fingerprint: str) -> dict[str, Any]:
    return _compile_entry(compiler, name, dialects, fingerprint, {})


def _compile_entry(compiler: Compiler, name: str, dialects: list[str], fingerprint: str,
                   keys: dict[str, str | None]) -> dict[str, Any]:
    compiled = compiler.compiled(name)
    own = _own_hash(compiler, name, fingerprint)
    key = _combine(own, [_key_of(compiler, ref, fingerprint, keys) for ref in compiled.refs])
    keys[name] = key
    sql = {dialect: compiler.to_sql(name, dialect) + "\n" for dialect in dialects}
    return {
        "own": own, "key": key, "refs": compiled.refs, "sql": sql,
        "segment": {
            "name": name, "path": compiled.path, "entity": compiled.entity,
            "description": compiled.config.description, "owner": compiled.config.owner,
            "tags": compiled.config.tags, "refs": compiled.refs, "upstream": compiled.upstream,
            "sources": compiled.sources, "params": _jsonable(compiled.params),
            "vars": _jsonable(compiled.vars),
            "columns": [{"name": c, "type": t} for c, t in compiled.columns.items()],
            "template_hash": _sha(compiler.segment(name).read()),
            "compiled_hash": _sha(sql[dialects[0]]),
        },
    }


def _key_of(compiler: Compiler, name: str, fingerprint: str, keys: dict[str, str | None]) -> str:
    if keys.get(name) is None:
        compiled = compiler.compiled(name)
        own = _own_hash(compiler, name, fingerprint)
        keys[name] = _combine(own, [_key_of(compiler, r, fingerprint, keys) for r in compiled.refs])
    result = keys[name]
    assert result is not None
    return result


def _cached_key(compiler: Compiler, name: str, fingerprint: str, cache: dict[str, Any],
                keys: dict[str, str | None]) -> str | None:
    """The segment's cache key when its cached entry is still valid, else None."""
    if name in keys:
        return keys[name]
    keys[name] = None  # guards against cycles while checking
    entry = cache.get(name)
    if not entry or name not in compiler.segments:
        return None
    try:
        own = _own_hash(compiler, name, fingerprint)
    except SegsqlError:
        return None
    if own != entry.get("own"):
        return None
    ref_keys = [_cached_key(compiler, ref, fingerprint, cache, keys) for ref in entry.get("refs", [])]
    if any(k is None for k in ref_keys):
        return None
    key = _combine(own, [k for k in ref_keys if k])
    if key != entry.get("key"):
        return None
    keys[name] = key
    return key


def _own_hash(compiler: Compiler, name: str, fingerprint: str) -> str:
    return _sha(fingerprint + "\0" + compiler.segment(name).read())


def _combine(own: str, ref_keys: list[str]) -> str:
    return _sha("\0".join([own, *ref_keys]))


def _fingerprint(compiler: Compiler, dialects: list[str]) -> str:
    """Everything outside the segment files that can change a compiled result."""
    parts: list[str] = [__version__, getattr(sqlglot, "__version__", "?"), ",".join(dialects),
                        compiler.as_of.isoformat(), json.dumps(_jsonable(compiler.overrides), sort_keys=True),
                        (compiler.root / "segsql.yml").read_text(encoding="utf-8")]
    macros = compiler.root / "macros"
    for path in sorted(macros.rglob("*.sql")) if macros.is_dir() else []:
        parts.append(path.read_text(encoding="utf-8", errors="replace"))
    parts.extend(_catalog_stats(compiler))
    return _sha("\0".join(parts))


def _catalog_stats(compiler: Compiler) -> list[str]:
    """Size and mtime of the files the catalog is read from (database file, source files)."""
    paths: list[Path] = []
    connection_path = getattr(compiler.config.connection, "path", None)
    if connection_path and connection_path != ":memory:":
        paths.append(compiler.root / connection_path)
    paths.extend(compiler.root / s.path for s in compiler.config.sources.values() if s.path)
    stats = []
    for path in paths:
        try:
            stat = path.stat()
            stats.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
        except OSError:
            stats.append(f"{path}:missing")
    return stats


def _manifest(compiler: Compiler, entries: dict[str, dict[str, Any]], dialects: list[str]) -> dict[str, Any]:
    return {
        "segsql_version": __version__,
        "project": compiler.config.name,
        "dialect": compiler.config.dialect,
        "targets": dialects,
        "as_of": compiler.as_of.isoformat(),
        "segments": {name: entries[name]["segment"] for name in sorted(entries)},
    }


def _write_outputs(compiler: Compiler, target: Path, entries: dict[str, dict[str, Any]],
                   dialects: list[str], reused: set[str]) -> None:
    for name, entry in entries.items():
        relative = Path(compiler.segment(name).shown_path).relative_to("segments_sql")
        for dialect in dialects:
            path = target / "compiled" / dialect / relative
            if name in reused and path.exists():
                continue  # unchanged since the file was written
            if not path.exists() or path.read_text(encoding="utf-8") != entry["sql"][dialect]:
                atomic_write(path, entry["sql"][dialect])


def _load_cache(target: Path) -> dict[str, Any]:
    try:
        loaded = json.loads((target / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; outputs follow the umask
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))
