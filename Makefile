# `make check` is what CI runs: lint, the import contract, types, tests.
PYTHON ?= python3

.PHONY: check lint imports types test docs goldens bench

check: lint imports types test

lint:
	ruff check .

imports:         ## the layer contract in pyproject.toml ([tool.importlinter]): names any import that breaks it
	lint-imports

types:
	mypy

test:
	$(PYTHON) -m pytest

docs:            ## regenerate docs/ from the code (CLI --help, builtin docstrings)
	$(PYTHON) -m segsql.cli.docgen

goldens:         ## rewrite tests/golden/ from the current compiler (review the diff!)
	SEGSQL_UPDATE_GOLDENS=1 $(PYTHON) -m pytest tests/test_golden.py -q

bench:
	$(PYTHON) benchmarks/compile.py
