# make demo   the main job: a local Asterisk, `callgate run` on SQLite, and real calls
# make serve  the same, then keep running for a softphone until Ctrl-C
# make test   ruff and the whole test suite, end-to-end tests included
# make bench  the benchmarks (their figures go to docs/benchmarks.md)
#
# Each target installs what it needs: Debian packages (as root), then a .venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: deps demo serve test bench clean-asterisk

$(BIN)/callgate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

deps:
	./scripts/install-system-deps

demo: deps $(BIN)/callgate
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m harness.demo

serve: deps $(BIN)/callgate
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m harness.demo --serve

test: $(BIN)/callgate
	./scripts/install-system-deps --docker
	$(BIN)/ruff check .
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest

bench: deps $(BIN)/callgate
	$(BIN)/pip install --quiet -e '.[test,bench]'
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.core
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.capacity
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.optout_import
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.scrub
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.console
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.load --plot docs/load.png
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.load --fixed --flavours bare null ari agi
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.soak --plot docs/soak.png
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.profile
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.profile --what store
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.profile --what scrub

# Remove the cached Asterisk root (its /proc is mounted while Asterisk may run in it).
clean-asterisk:
	-umount /var/cache/callgate/asterisk-root/proc 2>/dev/null
	rm -rf /var/cache/callgate/asterisk-root
