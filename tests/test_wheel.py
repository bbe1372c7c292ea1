"""What `pip install segsql` gives a user: the sdist and wheel built by `python -m build` hold every
file the code needs, declare every import, and the wheel, installed into a fresh venv outside the
checkout, runs the README's commands, the methods, the docs, the magics and the example notebooks.

The venv reuses the third-party packages of the environment running the tests (a `.pth` file
naming its site-packages, so no download) but not its `.pth` files: an editable install of this
checkout there is invisible to the venv, which `test_segsql_in_the_venv_is_the_wheel` proves.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from segsql.errors import EXTRAS
from tests.conftest import AS_OF, REPO

BUILD_TIMEOUT = 600  # seconds; sdist, then the wheel from the sdist, without build isolation
STEP_TIMEOUT = 300  # seconds per command run in the venv
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGES = {"segsql": "segsql", "magics": "segsql/magics", "segments_sql": "segsql/starter/segments_sql"}


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = STEP_TIMEOUT,
        expect: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == expect, f"{args}: exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def source_files() -> list[str]:
    """The checkout as a fresh clone has it (tracked and new files, nothing ignored)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO).stdout
    return sorted(name for name in listed.split("\0") if name and (REPO / name).is_file())


def installed_name(relative: str) -> str | None:
    """Where a runtime file of the checkout belongs in the wheel (None: not a runtime file)."""
    top, _, rest = relative.partition("/")
    if top not in PACKAGES or "__pycache__" in relative:
        return None
    if top == "segments_sql" and not relative.endswith((".sql", ".yml")):
        return None
    if top != "segments_sql" and not relative.endswith((".py", ".yml")):
        return None
    return f"{PACKAGES[top]}/{rest}"


# -- dependencies: every import declared, every optional one behind the extra its error names ------

def requirements() -> dict[str, set[str]]:
    """Distribution names per extra ('' for the base dependencies), as in pyproject.toml."""
    project = PYPROJECT["project"]
    declared = {"": {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}}
    for extra, items in project["optional-dependencies"].items():
        declared[extra] = {canonicalize_name(Requirement(r).name) for r in items}
    return declared


def third_party_imports() -> dict[str, list[str]]:
    """Top-level module -> the files importing it, for segsql/ and magics/."""
    found: dict[str, list[str]] = {}
    for path in sorted([*(REPO / "segsql").rglob("*.py"), *(REPO / "magics").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top not in ("segsql", "__future__"):
                    found.setdefault(top, []).append(str(path.relative_to(REPO)))
    return found


def test_every_runtime_import_is_a_declared_dependency() -> None:
    declared = set().union(*requirements().values())
    providers = metadata.packages_distributions()
    imports = third_party_imports()
    assert {"numpy", "sklearn", "IPython", "ipywidgets", "psycopg", "pyspark"} <= set(imports)
    undeclared = {module: files for module, files in imports.items()
                  if not {canonicalize_name(d) for d in providers.get(module, [])} & declared}
    assert not undeclared, f"imported but not in pyproject.toml dependencies or extras: {undeclared}"


def test_every_optional_module_names_the_extra_that_installs_it() -> None:
    declared, providers = requirements(), metadata.packages_distributions()
    for module, extra in EXTRAS.items():
        distributions = {canonicalize_name(d) for d in providers.get(module, [])}
        # py4j comes with pyspark; everything else is named in the extra itself
        assert distributions & declared[extra] or module == "py4j", (module, extra)
        assert not distributions & declared[""], f"{module} is a base dependency, not optional"
    optional = {module for module in third_party_imports() if not {
        canonicalize_name(d) for d in providers.get(module, [])} & declared[""]}
    assert optional <= set(EXTRAS), f"optional imports without an install hint: {optional - set(EXTRAS)}"


def test_all_extra_installs_every_other_extra() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    (requirement,) = extras["all"]
    assert Requirement(requirement).extras == set(extras) - {"all", "dev"}


# -- the built distributions -------------------------------------------------------------------

@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path
    sources: list[str]


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """sdist and wheel (built from the sdist) of a clean copy of the checkout: no stale
    egg-info or build/ folder can add files that package discovery would miss."""
    root = tmp_path_factory.mktemp("build")
    sources = source_files()
    for relative in sources:
        (root / "source" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, root / "source" / relative)
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(root / "dist"), str(root / "source")],
        cwd=root, timeout=BUILD_TIMEOUT)
    (wheel,) = (root / "dist").glob("*.whl")
    (sdist,) = (root / "dist").glob("*.tar.gz")
    return Built(wheel, sdist, sources)


@pytest.mark.slow
def test_wheel_holds_every_runtime_file_under_the_segsql_namespace(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
        wheel_metadata = wheel.read(f"segsql-{PYPROJECT['project']['version']}.dist-info/METADATA").decode()
    expected = {name for name in map(installed_name, built.sources) if name}
    assert {"segsql/compile/splits.py", "segsql/magics/core.py", "segsql/starter/segsql.yml",
            "segsql/starter/segments_sql/experiments/onboarding_experiment.test.yml"} <= expected
    assert sorted(expected - names) == []
    assert {name.split("/")[0] for name in names} == {"segsql", f"segsql-{PYPROJECT['project']['version']}.dist-info"}
    assert "Requires-Dist: numpy" in wheel_metadata and "Provides-Extra: all" in wheel_metadata


@pytest.mark.slow
def test_sdist_holds_the_sources_the_wheel_is_built_from(built: Built) -> None:
    with tarfile.open(built.sdist) as sdist:
        names = {name.partition("/")[2] for name in sdist.getnames()}
    expected = {relative for relative in built.sources if installed_name(relative)}
    assert sorted(expected - names) == []
    assert {"pyproject.toml", "setup.py", "README.md"} <= names


# -- the wheel in a fresh venv -------------------------------------------------------------------

@dataclass(frozen=True)
class Venv:
    python: Path
    work: Path  # the current folder for every command: outside the checkout
    env: dict[str, str]

    def segsql(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        return run([str(self.python.parent / "segsql"), *args], self.work, self.env, expect=expect)

    def python_code(self, code: str, timeout: int = STEP_TIMEOUT) -> str:
        script = self.work / "_script.py"
        script.write_text(code, encoding="utf-8")
        return run([str(self.python), str(script)], self.work, self.env, timeout=timeout).stdout


def dependency_dirs() -> list[str]:
    """site-packages of the environment running the tests: third-party packages for the venv."""
    candidates = [*site.getsitepackages(), site.getusersitepackages()]
    return [path for path in candidates if path in sys.path and Path(path).is_dir()]


@pytest.fixture(scope="session")
def venv(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    root = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], cwd=root)
    python = root / "venv" / "bin" / "python"
    # installed before the venv can see any other segsql, so pip has nothing to replace
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
         "--disable-pip-version-check", str(built.wheel)], cwd=root)
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=root).stdout
    # path lines only: Python adds them to sys.path without running the .pth files found there
    (Path(purelib.strip()) / "_segsql_test_dependencies.pth").write_text("\n".join(dependency_dirs()) + "\n")
    work = root / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}", PYTHONNOUSERSITE="1", NO_COLOR="1",
               COLUMNS="200", JUPYTER_PATH=str(_kernel_spec(root / "jupyter", python)),
               JUPYTER_CONFIG_DIR=str(root / "jupyter-config"), JUPYTER_RUNTIME_DIR=str(root / "jupyter-runtime"))
    return Venv(python, work, env)


def _kernel_spec(folder: Path, python: Path) -> Path:
    """A `python3` kernel that runs on the venv's interpreter (found before any system-wide one)."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (segsql wheel)", "language": "python"}))
    return folder


PROBE = """
import importlib, importlib.util, json, sys
import segsql, segsql.cli, segsql.magics, segsql.magics.core, segsql.compile.splits, segsql.methods.clustering
from segsql.starter.scaffold import starter_segments_dir
print(json.dumps({"modules": {n: getattr(m, "__file__", None) for n, m in sys.modules.items()
                              if n == "segsql" or n.startswith("segsql.")},
                  "magics": importlib.util.find_spec("magics") is not None,
                  "library": str(starter_segments_dir()), "prefix": sys.prefix}))
"""


@pytest.mark.slow
def test_segsql_in_the_venv_is_the_wheel(venv: Venv) -> None:
    probe = json.loads(venv.python_code(PROBE))
    prefix = Path(probe["prefix"])
    outside = {n: f for n, f in probe["modules"].items() if f is not None and prefix not in Path(f).parents}
    assert len(probe["modules"]) > 20 and not outside, outside
    assert REPO not in Path(probe["library"]).parents and prefix in Path(probe["library"]).parents
    assert probe["magics"] is False  # no top-level `magics` package
    run([str(venv.python), "-m", "pip", "check"], venv.work, venv.env)


@pytest.mark.slow
def test_cli_from_the_wheel(venv: Venv) -> None:
    assert venv.segsql("--version").stdout.strip().endswith(PYPROJECT["project"]["version"])
    venv.segsql("demo")  # the README's first command
    assert "power_users" in venv.segsql("show", "power_users", "--project", "segsql-demo").stdout
    assert venv.segsql("validate", "--project", "segsql-demo").returncode == 0
    venv.segsql("test", "--project", "segsql-demo")  # the starter library's .test.yml files
    readout = venv.segsql("readout", "onboarding_experiment", "--project", "segsql-demo",
                          "--metrics", "reachable_users")  # split(): segsql.compile.splits, readout: segsql.methods
    assert "control" in readout.stdout
    assert "cluster" in venv.segsql("clusters", "account_features", "--project", "segsql-demo").stdout
    venv.segsql("docs", "--project", "segsql-demo", "--out", "catalog")
    assert (venv.work / "catalog" / "index.html").is_file()


@pytest.mark.slow
def test_init_from_the_wheel_says_what_to_do_next(venv: Venv) -> None:
    created = venv.segsql("init", "fresh")
    assert "segsql demo fresh" in created.stderr
    venv.segsql("validate", "--project", "fresh")
    first_run = venv.segsql("run", "--project", "fresh", expect=1)
    assert "no table for source(s) accounts" in first_run.stderr and "internal error" not in first_run.stderr
    venv.segsql("demo", "fresh", "--scale", "0.2")  # fills the project's empty database
    assert "success" in venv.segsql("run", "--project", "fresh", "--select", "onboarding_experiment").stdout
    venv.segsql("init", "fresh", expect=2)


@pytest.mark.slow
def test_readme_python_from_the_wheel(venv: Venv) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "Project.load" in b)
    project = venv.work / "readme" / "segsql-demo"
    venv.segsql("demo", str(project), "--scale", "0.3", "--as-of", AS_OF)  # as the README's first command
    git = ["git", "-c", "user.name=segsql", "-c", "user.email=segsql@example.invalid"]
    run(["git", "init", "-q", "-b", "main"], project, venv.env)
    run(["git", "add", "-A"], project, venv.env)
    run([*git, "commit", "-q", "-m", "project"], project, venv.env)  # project.diff(base="main")
    script = project.parent / "readme.py"
    script.write_text(block, encoding="utf-8")
    run([str(venv.python), str(script)], project.parent, venv.env)


MAGICS = """
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "segsql")
shell.run_line_magic("segsql", "project segsql-demo")
result = shell.run_cell("%%segment wheel_dach --entity account --preview 3\\n"
                        "SELECT a.account_id FROM {{ source('accounts') }} AS a WHERE a.region = 'DACH'")
assert result.success, result.error_in_exec
print(result.result._repr_mimebundle_()["text/plain"])
cohorts = shell.run_cell("%segment_cohorts account mrr_monthly month --revenue mrr --value revenue_retention")
assert cohorts.success, cohorts.error_in_exec
"""


@pytest.mark.slow
def test_magics_from_the_wheel_in_ipython(venv: Venv) -> None:
    if not (venv.work / "segsql-demo").exists():
        venv.segsql("demo", "--scale", "0.3")
    assert "account(s)" in venv.python_code(MAGICS)


NOTEBOOK = """
import json, sys
import nbformat
from nbclient import NotebookClient

notebook = nbformat.read(sys.argv[1], as_version=4)
notebook.cells.append(nbformat.v4.new_code_cell("import segsql, sys; print(sys.prefix, segsql.__file__)"))
NotebookClient(notebook, timeout=300, kernel_name="python3", startup_timeout=120).execute()
errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
print(json.dumps({"errors": errors, "kernel": notebook.cells[-1].outputs[0]["text"].split()}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "examples").glob("*.ipynb")))
def test_example_notebook_runs_from_the_wheel(venv: Venv, name: str) -> None:
    folder = venv.work / name.removesuffix(".ipynb")
    folder.mkdir()
    shutil.copy(REPO / "examples" / name, folder / name)
    (folder / "_run.py").write_text(NOTEBOOK, encoding="utf-8")
    outcome = json.loads(run([str(venv.python), "_run.py", name], folder, venv.env, timeout=900).stdout)
    assert outcome["errors"] == []
    prefix, module = map(Path, outcome["kernel"])
    assert prefix == venv.python.parent.parent and prefix in module.parents  # the kernel ran on the wheel
