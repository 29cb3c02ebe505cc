# `make demo`: fresh venv, install, analyze a shipped preset.  `make test`: install with the test extra; lint (ruff),
# types (mypy), then every test.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

$(BIN)/python:
	$(PY) -m venv $(VENV)

demo: $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/tmath analyze llama-3.1-8b

test: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/python scripts/gen_symbols_doc.py --check
	$(BIN)/python scripts/gen_reference_doc.py --check
	$(BIN)/ruff check
	$(BIN)/mypy
	$(BIN)/python -m pytest -p no:cacheprovider

bench: $(BIN)/python
	$(BIN)/python benchmarks/bench_analyze.py

.PHONY: demo test bench
