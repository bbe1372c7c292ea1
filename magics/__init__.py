"""The Jupyter layer of segsql: `%load_ext segsql` registers the magics defined here.

No SQL text and no engine logic lives here: every magic calls `segsql.Project` and renders
what it returns as ipywidgets, each with a text/html fallback for saved notebooks.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    from magics.core import SegsqlMagics

    ipython.register_magics(SegsqlMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    from magics.core import SegsqlMagics

    ipython.magics_manager.registry.pop(SegsqlMagics.__name__, None)
