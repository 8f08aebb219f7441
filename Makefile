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
# tests/test_ansible_ssh.py runs Debian's sshd inside network namespaces it makes (iproute2's
# `ip netns`, veth pairs), never as a service. Where no sshd is installed yet, installing
# openssh-server starts and enables none: /etc/ssh/sshd_not_to_be_run (Debian's switch, read by the
# init script and the systemd units) is made first, a policy-rc.d refusing every start is in place
# during the install (the machine's own, or one put there and taken away after), the units are
# disabled after, and the target fails if an sshd then listens in this network namespace.
SSHD := /usr/sbin/sshd
POLICY_RC := /usr/sbin/policy-rc.d

system-deps:
	@command -v zsh >/dev/null && command -v fish >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zsh fish)
	@command -v ip >/dev/null && command -v ss >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2)
	@test -x $(SSHD) || { \
	  mkdir -p /etc/ssh && touch /etc/ssh/sshd_not_to_be_run || exit 1; \
	  placed=; \
	  if [ ! -e $(POLICY_RC) ]; then \
	    printf '#!/bin/sh\nexit 101\n' > $(POLICY_RC) && chmod 755 $(POLICY_RC) && placed=1; \
	  fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends openssh-server; status=$$?; \
	  if [ -n "$$placed" ]; then rm -f $(POLICY_RC); fi; \
	  if [ -d /run/systemd/system ]; then systemctl disable --now ssh.service ssh.socket; \
	  elif command -v systemctl >/dev/null; then systemctl disable ssh.service; \
	  else update-rc.d ssh disable; fi; \
	  if ss -Hltnp | grep '"sshd"'; then \
	    echo 'system-deps: the openssh-server install left an sshd listening: stop it' >&2; \
	    exit 1; fi; \
	  exit $$status; }

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
