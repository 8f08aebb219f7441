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

# The completion tests run the real zsh and fish (Debian packages; bash is always there).
system-deps:
	@command -v zsh >/dev/null && command -v fish >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zsh fish)

test: lint system-deps
	$(BIN)/python -m pytest

# bench_sockets.py needs root: it makes 100k sockets inside a private network namespace.
# All run; the target fails if any misses its goal.
bench: install
	status=0; \
	$(BIN)/python bench/bench_check.py || status=1; \
	$(BIN)/python bench/bench_boot.py || status=1; \
	$(BIN)/python bench/bench_sockets.py || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
