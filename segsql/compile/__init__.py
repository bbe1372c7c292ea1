"""Render and compile: segment files and macros are read (files.py), rendered with sandboxed
Jinja (templating.py, builtins.py, literals.py, sourcemap.py), parsed and checked with sqlglot
(checks.py, catalog.py), assembled with their refs and transpiled (compiler.py, portability.py),
selected (selection.py), traced (lineage.py) and written to target/ (target.py, parallel.py).
`Compiler` is what every later stage reads segments through.

Imports: `segsql.config` and `segsql.errors`. Never an engine, a run or anything above.
"""
