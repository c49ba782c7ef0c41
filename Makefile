# geneae developer entry points. Every target builds .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# On the development machine this pin resolves to a local CPU wheel; an unpinned torch
# pulls several GB of CUDA packages. Override e.g. with TORCH_SPEC="torch==2.5.1".
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test test-long lint format bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/geneae demo

# Test files run in TEST_WORKERS processes (pytest-xdist), each file's tests in one of
# them so that module fixtures (trained runs) are built once: 1.5x faster on 2 cores.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

# Tests that train for minutes (pytest marker `long`), kept out of `make test` (CI budget).
test-long: $(STAMP)
	$(BIN)/python -m pytest -q -m long

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# BENCH_ARGS passes options through, e.g. BENCH_ARGS="--jobs 2" or "quality --seeds 0".
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
