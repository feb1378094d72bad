# Two commands do all the set-up on a fresh machine:
#   make demo   the stub with demo data plus the app, signed in as the demo governor
#   make test   the whole test suite (installs what it needs first)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench screenshots clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/governor demo $(ARGS)

# The tests drive Debian tools (chromium, promtool, wast2json, haproxy, redis-server):
# installed when missing and we may (root); see scripts/debian-tools.sh.
test: $(STAMP)
	@bash scripts/debian-tools.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

clean-venv:
	rm -rf $(VENV)
