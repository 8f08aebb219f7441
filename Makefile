# `make run`: virtualenv + install + `tcptune check` on this machine.
# `make test`: dev tools, the shells, lint + the whole test suite.   `make bench`: benchmarks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run install dev system-deps test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

# Exit 1 means "findings worth reading", not a failed build.
run: install
	$(BIN)/tcptune check || [ $$? -eq 1 ]

lint: dev
	$(BIN)/ruff check tcptune tests bench
	$(BIN)/ruff format --check tcptune tests bench

format: dev
	$(BIN)/ruff format tcptune tests bench
	$(BIN)/ruff check --fix tcptune tests bench

# The completion tests run the real zsh and fish (Debian packages; bash is always there); the
# fault-injection test runs apply and revert under strace.
system-deps:
	@command -v zsh >/dev/null && command -v fish >/dev/null && command -v strace >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zsh fish strace)

test: lint system-deps
	$(BIN)/python -m pytest

# bench_sockets.py needs root: it makes 100k sockets inside a private network namespace.
# Both run; the target fails if either misses its goal.
bench: install
	status=0; \
	$(BIN)/python bench/bench_check.py || status=1; \
	$(BIN)/python bench/bench_sockets.py || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
