"""What a notebook has open: the project, the connection previews run on, overrides, saves, and
what the segment files looked like (so an edit outside the notebook is seen by the next magic)."""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segsql import Project, UsageError
from segsql.engines.base import Engine


@dataclass
class NotebookSession:
    """State of the magics in one kernel: the connection previews run on (read-only; a DuckDB
    file is released after every magic, a server connection kept, `%segsql close` drops either)
    and the fingerprints of the segment files, checked before every magic."""

    project: Project | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    as_of: dt.date | None = None
    saved: dict[Path, str] = field(default_factory=dict)  # file -> hash of what this session wrote
    _engine: Engine | None = None
    _connection_label: str = ""
    _files: dict[Path, tuple[int, int, str]] = field(default_factory=dict)  # file -> (mtime_ns, size, sha)

    def open_project(self, path: str) -> Project:
        self.close()
        self.project = Project.load(path, vars=self.overrides, as_of=self.as_of)
        self._files = _fingerprint(self.project.root, {})
        return self.project

    def refresh(self) -> bool:
        """Before each magic: reload the segment files and macros when one was added, deleted or
        edited since the last magic (mtime and size say which to hash; the hash decides, so a
        touched but unchanged file keeps the caches). True when something changed."""
        if self.project is None:
            return False
        seen = _fingerprint(self.project.root, self._files)
        changed = {path: sha for path, (_, _, sha) in seen.items()} != \
            {path: sha for path, (_, _, sha) in self._files.items()}
        self._files = seen
        if changed:
            self.project.rescan()
        return changed

    def release(self) -> None:
        """After each magic: an embedded database file (DuckDB) is let go, so the notebook's own
        Python cells (prepare_demo, Project.run), a `segsql run` in a terminal or another kernel
        can open it for writing. A server connection stays open; a lent one is never closed here."""
        if self._engine is not None and self._engine.capabilities.in_process \
                and not getattr(self._engine, "borrowed", False):
            self.close()

    def current(self) -> Project:
        if self.project is None:
            raise UsageError("no segsql project is open", None, "run `%segsql project PATH` first")
        return self.project.with_options(vars=self.overrides, as_of=self.as_of or self.project.as_of)

    def use_connection(self, connection: Any, label: str) -> None:
        """Previews run on a DuckDB connection object from the notebook."""
        from segsql.engines.duckdb import DuckDBEngine

        project = self.current()
        if project.config.connection.type != "duckdb":
            raise UsageError("a notebook connection object can only stand in for a DuckDB project", None)
        self.close()
        self._engine = DuckDBEngine.borrow(project.config, project.root, connection)
        self._connection_label = label

    def engine(self) -> Engine:
        if self._engine is None:
            project = self.current()
            self._engine = project.connect(read_only=True)
            self._engine.prepare_sources()
            self._connection_label = _describe_connection(project)
        return self._engine

    def audit_unmask(self, project: Project, name: str, columns: list[str]) -> None:
        """The audit row of an unmasked preview: on a lent notebook connection (it is the data
        the preview reads), else through the project (the preview connection is reopened)."""
        if self._engine is not None and getattr(self._engine, "borrowed", False):
            self._engine.record_unmask(getpass.getuser(), name, columns, "notebook")
            return
        self.close()  # the project's database takes one writer: the read-only preview connection goes
        project.audit_unmask(name, columns, "notebook")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self._engine = None
        self._connection_label = ""

    def banner(self) -> str:
        """Where things run: shown in every output so nobody wonders which data a number came from."""
        if self.project is None:
            return "segsql: no project open"
        project = self.current()
        connection = self._connection_label or _describe_connection(project)
        return (f"segsql · project {project.config.name} ({project.root}) · {connection} · as_of {project.as_of}"
                + (f" · overrides {self.overrides}" if self.overrides else ""))

    def check_save(self, path: Path, text: str, force: bool) -> None:
        """Refuse to overwrite a file changed outside this session (or never written by it)."""
        if not path.exists() or force:
            return
        on_disk = path.read_text(encoding="utf-8")
        if on_disk == text:
            return
        if self.saved.get(path) != _sha(on_disk):
            raise UsageError(f"{path} has changes this notebook did not make", None,
                             "review the file (e.g. git diff), then save with --force to overwrite it")

    def record_save(self, path: Path, text: str) -> None:
        self.saved[path] = _sha(text)


def _fingerprint(root: Path, before: dict[Path, tuple[int, int, str]]) -> dict[Path, tuple[int, int, str]]:
    """(mtime_ns, size, sha256) of every segment file and macro; a file whose mtime and size are
    unchanged keeps its earlier hash (not read again)."""
    from segsql.compile.files import MACROS_DIR, SEGMENTS_DIR

    found: dict[Path, tuple[int, int, str]] = {}
    for folder in (root / SEGMENTS_DIR, root / MACROS_DIR):
        for path in sorted(folder.rglob("*.sql")) if folder.is_dir() else []:
            try:
                status = path.stat()
                known = before.get(path)
                if known is not None and known[:2] == (status.st_mtime_ns, status.st_size):
                    found[path] = known
                else:
                    found[path] = (status.st_mtime_ns, status.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
            except OSError:  # deleted (or unreadable) while listing: reported when compiled, if still there
                continue
    return found


def _describe_connection(project: Project) -> str:
    connection = project.config.connection
    where = getattr(connection, "path", None) or getattr(connection, "dbname", None) or connection.type
    return f"{connection.type}: {where}"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
