# Two commands do all the set-up: `make figures` (the main job) and `make test`.
# Both create .venv idempotently from requirements.lock (pinned versions).

PYTHON ?= python3
CORES ?= all
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.picollm-installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: figures test lint benchmarks setup clean

figures: $(STAMP)  ## run the pipeline on params.yaml and draw every default figure
	$(BIN)/snakemake --cores $(CORES)

test: $(STAMP)  ## run the test suite
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint

benchmarks: $(STAMP)
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

clean:  ## remove generated data, results and Snakemake state (keeps .venv)
	rm -rf data/processed/* data/raw/*.txt results/* .snakemake .picollm
