"""segsql: customer segments as Jinja-templated SQL, validated with sqlglot before they run."""

import importlib

from segsql.errors import (
    ConfigError,
    EngineError,
    SegsqlError,
    SelectionError,
    SqlError,
    TemplateError,
    UsageError,
    ValidationError,
)
from segsql.version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from segsql.project import Project

__all__ = [
    "ConfigError",
    "EngineError",
    "Project",
    "SegsqlError",
    "SelectionError",
    "SqlError",
    "TemplateError",
    "UsageError",
    "ValidationError",
    "__version__",
]


def __getattr__(name: str) -> object:
    """`segsql.Project` is imported on first use, so `segsql --help` and `import segsql.errors`
    don't pay for the whole pipeline (pydantic models, Jinja, sqlglot)."""
    if name == "Project":
        from segsql.project import Project

        return Project
    raise AttributeError(f"module 'segsql' has no attribute {name!r}")


def load_ipython_extension(ipython: object) -> None:
    """`%load_ext segsql`: register the notebook magics (IPython is imported only here). By module
    name, so nothing in the core imports the notebook layer (whose source is the top-level
    `magics/` folder that mypy and the import contract check as `magics`)."""
    importlib.import_module("segsql.magics").load_ipython_extension(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """`%unload_ext segsql`: remove the notebook magics."""
    importlib.import_module("segsql.magics").unload_ipython_extension(ipython)
