"""The layer contract (pyproject.toml [tool.importlinter]) is real: it fails on an upward import,
an import cycle and a notebook import in the core, naming the import; every stage says its job."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_of_the_code(tmp_path: Path) -> Path:
    for folder in ("segsql", "magics"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    command = [str(LINT_IMPORTS)] if LINT_IMPORTS.exists() else [sys.executable, "-m", "importlinter.cli"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([*command, "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_tree_keeps_the_contract(tmp_path: Path) -> None:
    done = _lint(_copy_of_the_code(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(("module", "line", "named"), [
    ("segsql/compile/literals.py", "from segsql.project import Project", "segsql.compile.literals -> segsql.project"),
    ("segsql/engines/duckdb.py", "from segsql.engines import postgres", "segsql.engines.duckdb -> segsql.engines.postgres"),
    ("segsql/run/results.py", "import IPython", "segsql.run.results -> IPython"),
    ("segsql/compile/catalog.py", "from segsql.compile import compiler", ".catalog -> .compiler"),
])
def test_a_broken_contract_fails_and_names_the_import(tmp_path: Path, module: str, line: str, named: str) -> None:
    root = _copy_of_the_code(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    done = _lint(root)
    assert done.returncode != 0
    assert named in done.stdout, done.stdout[-3000:]


def test_every_stage_states_its_job_and_what_it_may_import() -> None:
    for init in sorted((REPO / "segsql").glob("*/__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(docstring) > 40, f"{init.parent.name}/ has no docstring stating its job"
        assert "Imports:" in docstring, f"{init.parent.name}/__init__.py does not say what it may import"


def test_architecture_md_names_every_stage_and_module() -> None:
    text = (REPO / "ARCHITECTURE.md").read_text()
    missing = [str(path.relative_to(REPO)) for path in sorted((REPO / "segsql").rglob("*.py"))
               if path.stem not in ("__init__", "__main__") and path.stem not in text]
    missing += [f"segsql/{init.parent.name}/" for init in (REPO / "segsql").glob("*/__init__.py")
                if f"segsql/{init.parent.name}/" not in text]
    assert not missing, f"ARCHITECTURE.md does not mention {missing}"
