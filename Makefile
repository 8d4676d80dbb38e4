# make demo   install into .venv and check one call against examples/callgate.toml
# make test   install into .venv and run the whole test suite
# make bench  run the core and import benchmarks (figures go to docs/benchmarks.md by hand)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench

$(BIN)/callgate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/callgate
	$(BIN)/callgate --config examples/callgate.toml --db demo.db \
		check --from 0612345678 --to 0612345678 --purpose service

test: $(BIN)/callgate
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: $(BIN)/callgate
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/core.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/optout_import.py
