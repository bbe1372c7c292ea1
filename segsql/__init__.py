"""segsql: customer segments as Jinja-templated SQL, validated with sqlglot before they run."""

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
from segsql.project import Project

__version__ = "0.1.0"

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


def load_ipython_extension(ipython: object) -> None:
    """`%load_ext segsql`: register the notebook magics (IPython is imported only here)."""
    import importlib

    # by name: the package's source is the top-level `magics/` folder, which mypy checks as `magics`
    importlib.import_module("segsql.magics").load_ipython_extension(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """`%unload_ext segsql`: remove the notebook magics."""
    import importlib

    importlib.import_module("segsql.magics").unload_ipython_extension(ipython)
