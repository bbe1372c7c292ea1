# `make check` is what CI runs: lint, types, tests.
PYTHON ?= python3

.PHONY: check lint types test docs goldens bench

check: lint types test

lint:
	ruff check .

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
