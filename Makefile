# Two commands do all the set-up on a fresh machine:
#   make demo   the stub with demo data plus the app, signed in as the demo governor
#   make test   the whole test suite (installs what it needs first)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

PACKAGES := governor_app sync backend_stub

.PHONY: demo test lint bench screenshots clean-venv bytecode

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The packages' bytecode, as installing a wheel compiles it. The editable install compiles
# none, and where PYTHONDONTWRITEBYTECODE is set Python never writes it: every start of
# the app compiled its modules again (~0.1 s of the cold start). Only changed files are
# compiled again; a stale .pyc is never used (Python checks the source's time). The
# benchmarks that start the app compile it themselves (bench._coldstart.installed_bytecode).
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q $(PACKAGES)

demo: bytecode
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
