"""The `segsql` command line: a thin shell over `segsql.Project`."""

from segsql.cli import analysis as _analysis  # noqa: F401 (registers the commands)
from segsql.cli import commands as _commands  # noqa: F401 (registers the commands)
from segsql.cli import methods as _methods  # noqa: F401 (registers the commands)
from segsql.cli.main import cli, main

__all__ = ["cli", "main"]
