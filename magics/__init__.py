"""The Jupyter layer of segsql: `%load_ext segsql` registers the magics defined here.

No SQL text and no engine logic lives here: every magic calls `segsql.Project` and renders
what it returns as ipywidgets, each with a text/html fallback for saved notebooks.

The source lives in the repository's top-level `magics/` folder and installs as `segsql.magics`
(setup.py), so imports inside this package are relative.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    try:
        from .core import SegsqlMagics
    except ModuleNotFoundError as error:  # ipywidgets: one line with the pip command, no traceback
        from IPython.core.error import UsageError

        from segsql.errors import missing_dependency

        missing = missing_dependency(error)
        if missing is None:
            raise
        raise UsageError(f"%load_ext segsql: {missing}") from None
    ipython.register_magics(SegsqlMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    from .core import SegsqlMagics

    ipython.magics_manager.registry.pop(SegsqlMagics.__name__, None)
