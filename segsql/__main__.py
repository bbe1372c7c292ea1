"""`python -m segsql` runs the CLI."""

from segsql.cli import main

main()
