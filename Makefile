# `make run`: virtualenv + install + `tcptune check` on this machine.
# `make test`: dev tools, the shells, lint + the whole test suite.   `make bench`: benchmarks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run install dev system-deps test lint format bench mutation clean

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

# Debian packages the tests run for real: zsh and fish (completion; bash is always there),
# prometheus (promtool) and prometheus-node-exporter (the metrics tests), systemd
# (systemd-analyze verifies the units; no running systemd needed), iproute2 (ss, nstat, ip netns),
# openssh-server (tests/test_ansible_ssh.py runs sshd inside network namespaces it makes, never
# as a service), podman, runc and debootstrap (tests/test_containers.py runs tcptune in real
# containers, on a Debian root file system debootstrap makes once and keeps in
# /var/cache/tcptune-tests). No service is started: policy-rc.d answers 101 during the install
# (Debian's way for images and chroots; made for the install only if the machine has none), and
# before openssh-server is installed /etc/ssh/sshd_not_to_be_run (Debian's switch, read by the
# init script and the systemd units) is made; its units are disabled after, and the target fails
# if an sshd then listens in this network namespace. strace: the fault-injection test runs apply
# and revert under it. patch: the diff `apply --dry-run` shows is applied with GNU patch.
SYSTEM_DEPS := zsh fish strace patch prometheus prometheus-node-exporter systemd iproute2 openssh-server \
  podman runc debootstrap
POLICY_RC := /usr/sbin/policy-rc.d
system-deps:
	@missing=$$(for p in $(SYSTEM_DEPS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; \
	done); \
	[ -z "$$missing" ] || { \
	  echo "installing:" $$missing; \
	  case " $$missing " in *" openssh-server "*) \
	    mkdir -p /etc/ssh && touch /etc/ssh/sshd_not_to_be_run || exit 1;; esac; \
	  made=; if [ ! -e $(POLICY_RC) ]; then \
	    printf '#!/bin/sh\nexit 101\n' > $(POLICY_RC) && chmod 755 $(POLICY_RC) && made=1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null; status=$$?; \
	  [ -z "$$made" ] || rm -f $(POLICY_RC); \
	  case " $$missing " in *" openssh-server "*) \
	    if [ -d /run/systemd/system ]; then systemctl disable --now ssh.service ssh.socket; \
	    elif command -v systemctl >/dev/null; then systemctl disable ssh.service; \
	    else update-rc.d ssh disable; fi;; esac; \
	  if ss -Hltnp | grep '"sshd"'; then \
	    echo 'system-deps: the install left an sshd listening: stop it' >&2; exit 1; fi; \
	  exit $$status; }

test: lint system-deps
	$(BIN)/python -m pytest

# bench_sockets.py needs root and gcc: it builds bench/floor.c and bench/make_time_wait.c, then
# makes 100k and 1M TIME_WAIT sockets, each case in a private network namespace;
# bench_all_netns.py: 100 namespaces of 1,000 sockets each for `sockets --all-netns`.
# All run; the target fails if any misses its goal.
bench: install
	status=0; \
	$(BIN)/python bench/bench_check.py || status=1; \
	$(BIN)/python bench/bench_boot.py || status=1; \
	$(BIN)/python bench/bench_sockets.py || status=1; \
	$(BIN)/python bench/bench_all_netns.py || status=1; \
	exit $$status

# Mutation testing of the pure core and transaction.py with mutmut (config: [tool.mutmut] in
# pyproject.toml; docs/mutation.md). Not part of `make test`: the whole set takes about two hours
# on 2 cores. MUTANTS narrows it, e.g. make mutation MUTANTS='tcptune.plan* tcptune.drift*'.
# Results stay in mutants/ (`.venv/bin/mutmut results`, `.venv/bin/mutmut show NAME`).
MUTANTS ?=
mutation: dev
	$(BIN)/mutmut run $(MUTANTS)
	$(BIN)/python tests/mutation_score.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache mutants
