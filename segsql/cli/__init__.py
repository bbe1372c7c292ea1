"""The `segsql` command line: a thin shell over `segsql.Project` (arguments in, one line per
error and an exit code out).

Imports: anything in `segsql`; nothing imports this but `segsql.__main__` and the notebook
layer's argument parsers (which share its options).
"""

from segsql.cli import analysis as _analysis  # noqa: F401 (registers the commands)
from segsql.cli import commands as _commands  # noqa: F401 (registers the commands)
from segsql.cli import methods as _methods  # noqa: F401 (registers the commands)
from segsql.cli.main import cli, main

__all__ = ["cli", "main"]
