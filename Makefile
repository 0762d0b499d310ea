# The two commands of the README: `make run` and `make test`. Both set everything up on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
# Debian packages the test suite runs for real (binary:package).
SYSTEM_DEPS := prometheus:prometheus prometheus-alertmanager:prometheus-alertmanager \
	promtool:prometheus amtool:prometheus-alertmanager chromium:chromium \
	initdb:postgresql sshd:openssh-server ssh-keygen:openssh-client \
	prometheus-node-exporter:prometheus-node-exporter
BENCH_DEPS := wrk:wrk

.PHONY: run test install system-deps lint bench evals clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/aiops serve

system-deps:
	@scripts/install-debian-deps $(SYSTEM_DEPS)

lint: $(STAMP)
	$(VENV)/bin/ruff check aiops tests bench
	$(VENV)/bin/ruff format --check aiops tests bench
	$(VENV)/bin/mypy

test: $(STAMP) system-deps lint
	$(VENV)/bin/pytest

bench: $(STAMP)
	@scripts/install-debian-deps $(BENCH_DEPS)
	$(VENV)/bin/python bench/intake.py

# The evaluation suite; with MINIMAX_API_KEY set it also runs the real model.
evals: $(STAMP)
	$(VENV)/bin/python bench/evals.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
