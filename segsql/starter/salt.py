"""The project's erasure salt: random, created by `segsql init` (or the first erasure), kept in
`.segsql/erasure_salt` with mode 0600 and out of git (`segsql init` writes the .gitignore line)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SALT_FILE = Path(".segsql") / "erasure_salt"


def write_salt(root: Path) -> Path:
    """Create the salt file under `root` (never replacing one)."""
    path = root / SALT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():  # the folder keeps itself out of git, whatever the project's .gitignore says
        ignore.write_text("*\n", encoding="utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    return path


def project_salt(root: Path) -> str:
    """The salt of the project in `root`, created on first use."""
    path = root / SALT_FILE
    if not path.exists():
        write_salt(root)
    return path.read_text().strip()
