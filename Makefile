# lstmgen: `make demo` and `make test` do all set-up themselves (Python 3.10+ and pip are enough).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Second environment: the runtime tests again under tflite-runtime 2.14 (it needs numpy < 2).
TFL_VENV := .venv-tflite-runtime
TFL_BIN  := $(TFL_VENV)/bin
PIP_FLAGS := --disable-pip-version-check -q

.PHONY: demo test test-main test-tflite-runtime lint bench clean help

help:
	@echo "make demo   build, verify and inspect the example model (examples/)"
	@echo "make test   lint + the whole test suite (also under tflite-runtime 2.14)"
	@echo "make bench  run the benchmarks in benchmarks/"

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/pip install $(PIP_FLAGS) torch==2.13.0  # first, so nothing pulls a newer (CUDA) torch
	$(BIN)/pip install $(PIP_FLAGS) -e '.[test]'
	touch $@

$(TFL_BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TFL_VENV)
	$(TFL_BIN)/pip install $(PIP_FLAGS) --upgrade pip
	$(TFL_BIN)/pip install $(PIP_FLAGS) 'numpy<2' flatbuffers tflite click pytest h5py matplotlib jsonschema 'tflite-runtime==2.14.0'
	$(TFL_BIN)/pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

demo: $(BIN)/.installed
	@mkdir -p build
	$(BIN)/lstmgen build --config examples/cell.toml -o build/demo.tflite
	$(BIN)/lstmgen inspect build/demo.tflite

lint: $(BIN)/.installed
	$(BIN)/ruff check lstmgen tests benchmarks examples
	$(BIN)/mypy

test-main: $(BIN)/.installed
	$(BIN)/python -m pytest

test-tflite-runtime: $(TFL_BIN)/.installed
	LSTMGEN_RUNTIME=tflite-runtime $(TFL_BIN)/python -m pytest -m runtime -p no:cacheprovider

test: lint test-main test-tflite-runtime

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_build.py

clean:
	rm -rf $(VENV) $(TFL_VENV) build .pytest_cache
