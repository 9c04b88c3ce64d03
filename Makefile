# lstmgen: `make demo` and `make test` do all set-up themselves (Python 3.10+ and pip are enough).
#   make demo    lean .venv (the package and its default dependencies only), then build/verify/inspect the example
#   make test    ruff, mypy + the whole suite in .venv-test (with the framework oracles), then the runtime tests again
#                under tflite-runtime 2.14 where a wheel exists for this Python
#   make test-fast  the suite without the tests marked slow, for the inner loop (`make test` runs everything)
#   make bench   benchmarks/ (whole processes: wall time and peak memory); the comparison with onnx2tf and TF's
#                converter runs only with LSTMGEN_PEER_PYTHON set to a venv holding them (bench_peers.py --help)
#   make lint    ruff and mypy only
#   make fuzz    10,000 mutated models through inspect/verify/run (counts crashes, internal errors, hangs),
#                then 2,000 mutations of each weight-file kind through the readers (counts internal errors)
# Other Pythons: PYTHON=python3.12 make test (the venvs are rebuilt when the interpreter changes).
PYTHON ?= python3
PIP_FLAGS := --disable-pip-version-check -q
# Names the interpreter the venvs were made with; rewritten (so the venvs rebuild) only when $(PYTHON) changes.
PY_STAMP := .python-stamp

# The user's environment: what `pip install lstmgen` gives (numpy, flatbuffers, click, ai-edge-litert).
VENV := .venv
BIN  := $(VENV)/bin
# The test environment: the package + every oracle (torch, onnxruntime, h5py, tflite-micro, ...) + ruff/pytest.
TEST_VENV := .venv-test
TEST_BIN  := $(TEST_VENV)/bin
# The runtime tests again under tflite-runtime 2.14 (numpy < 2); its wheels exist for CPython 3.9-3.11 only.
TFL_VENV := .venv-tflite-runtime
TFL_BIN  := $(TFL_VENV)/bin
TFL_PIN  := tflite-runtime==2.14.0
TORCH_PIN ?= torch==2.13.0+cpu

.PHONY: demo test test-fast test-main test-tflite-runtime test-wheel wheel docs lint bench fuzz clean help FORCE

help:
	@echo "make demo   lean .venv with lstmgen, then build, verify and inspect the example model (examples/)"
	@echo "make test   ruff, mypy + the whole test suite in .venv-test (also the runtime tests under tflite-runtime 2.14)"
	@echo "make test-fast  the inner loop: the suite without the tests marked slow (pytest -m 'not slow')"
	@echo "make bench  run the benchmarks in benchmarks/"
	@echo "make lint   ruff and mypy only"
	@echo "make fuzz   10,000 mutated models: crashes, internal errors and hangs counted (all must be 0)"
	@echo "make wheel  the wheel and sdist as users get them, into build/dist"
	@echo "make docs   the API reference of the public names (pdoc), into build/docs"

$(PY_STAMP): FORCE
	@v="$$($(PYTHON) -c 'import sys; print(sys.executable, sys.version.split()[0])')" || exit 1; \
	  [ "$$(cat $@ 2>/dev/null)" = "$$v" ] || { echo "$$v" > $@; echo "Python: $$v (the venvs will be rebuilt)"; }
FORCE:

$(BIN)/.installed: pyproject.toml $(PY_STAMP)
	@# --clear: a venv left by another Python (a failed `PYTHON=python3.9 make demo`) is rebuilt, not reused
	$(PYTHON) -m venv --clear $(VENV)
	@echo "installing lstmgen and its dependencies into $(VENV) (pip's output: $(VENV)/install.log)"
	@{ $(BIN)/pip install $(PIP_FLAGS) --upgrade pip && $(BIN)/pip install $(PIP_FLAGS) -e . ; } \
	  > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	touch $@

$(TEST_BIN)/.installed: pyproject.toml $(PY_STAMP)
	$(PYTHON) -m venv --clear $(TEST_VENV)
	$(TEST_BIN)/pip install $(PIP_FLAGS) --upgrade pip
	@# torch first, and only its CPU build (+cpu): the plain PyPI build pulls ~3 GB of CUDA libraries. Where no CPU
	@# wheel exists for this Python, the torch oracle tests skip themselves (pytest -ra lists them).
	$(TEST_BIN)/pip install $(PIP_FLAGS) '$(TORCH_PIN)' || echo "NOTE: no $(TORCH_PIN) wheel for this Python:" \
	  "the tests that need torch will be skipped"
	$(TEST_BIN)/pip install $(PIP_FLAGS) -e '.[test]'
	touch $@

# Writes .skipped (with the reason) instead of failing where tflite-runtime has no wheel for this Python/platform.
$(TFL_BIN)/.installed: pyproject.toml $(PY_STAMP)
	rm -f $(TFL_VENV)/.skipped
	$(PYTHON) -m venv --clear $(TFL_VENV)
	$(TFL_BIN)/pip install $(PIP_FLAGS) --upgrade pip
	@if $(TFL_BIN)/pip download $(PIP_FLAGS) --no-deps --only-binary=:all: -d $(TFL_VENV)/wheel '$(TFL_PIN)' \
	      >$(TFL_VENV)/pip-download.log 2>&1; then \
	  $(TFL_BIN)/pip install $(PIP_FLAGS) 'numpy<2' flatbuffers tflite click pytest pyyaml h5py matplotlib jsonschema \
	    '$(TFL_PIN)' && $(TFL_BIN)/pip install $(PIP_FLAGS) --no-deps -e . ; \
	else \
	  echo "no $(TFL_PIN) wheel for $$($(TFL_BIN)/python -c 'import platform; print("CPython", platform.python_version(), platform.machine())')" \
	    "(the last tflite-runtime release has wheels for CPython 3.9-3.11 on Linux)" > $(TFL_VENV)/.skipped; \
	fi
	touch $@

demo: $(BIN)/.installed
	@mkdir -p build
	$(BIN)/lstmgen build --config examples/cell.toml -o build/demo.tflite
	$(BIN)/lstmgen verify build/demo.tflite
	$(BIN)/lstmgen inspect build/demo.tflite
	@echo
	@echo "lstmgen is installed in $(VENV) ($$(du -sh $(VENV) | cut -f1)). Use it with:"
	@echo "  . $(VENV)/bin/activate && lstmgen --help"
	@echo "or without activating:  $(BIN)/lstmgen build --help"

lint: $(TEST_BIN)/.installed
	$(TEST_BIN)/ruff check lstmgen tests benchmarks examples docs
	$(TEST_BIN)/mypy

test-main: $(TEST_BIN)/.installed
	$(TEST_BIN)/python -m pytest

# The inner loop: everything but the tests marked slow (the README, the oracles over every fixture, fuzzing).
test-fast: $(TEST_BIN)/.installed
	$(TEST_BIN)/python -m pytest -m "not slow"

test-tflite-runtime: $(TFL_BIN)/.installed
	@if [ -f $(TFL_VENV)/.skipped ]; then \
	  echo "SKIPPED: the runtime tests under tflite-runtime: $$(cat $(TFL_VENV)/.skipped)"; \
	else \
	  LSTMGEN_RUNTIME=tflite-runtime $(TFL_BIN)/python -m pytest -m runtime -p no:cacheprovider; \
	fi

test: lint test-main test-tflite-runtime test-wheel

# The package as users get it: wheel and sdist built by setuptools' PEP 517 hooks (the test venv has
# setuptools, from the test extra; nothing is downloaded to build), the wheel installed (not editable) into a fresh venv with
# its default dependencies only, then tests/test_wheel.py runs the installed commands from outside the checkout.
WHEEL_DIR  := build/dist
WHEEL_VENV := .venv-wheel
wheel: $(TEST_BIN)/.installed
	@# build/lib holds the previous build's modules: a module deleted since would still be packaged
	rm -rf $(WHEEL_DIR) build/lib build/bdist.* && mkdir -p $(WHEEL_DIR)
	@# one hook per process: build_wheel rewrites sys.argv, which the second call would read its folder from
	for hook in build_wheel build_sdist; do \
	  $(TEST_BIN)/python -c "import sys; from setuptools import build_meta; getattr(build_meta, sys.argv[1])(sys.argv[2])" \
	    $$hook $(WHEEL_DIR) >> $(WHEEL_DIR)/build.log 2>&1 || { cat $(WHEEL_DIR)/build.log; exit 1; }; \
	done
	@ls -l $(WHEEL_DIR)

test-wheel: wheel
	$(PYTHON) -m venv --clear $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/pip install $(PIP_FLAGS) $(WHEEL_DIR)/lstmgen-*.whl
	LSTMGEN_WHEEL_VENV=$(WHEEL_VENV) LSTMGEN_WHEEL_DIR=$(WHEEL_DIR) $(TEST_BIN)/python -m pytest tests/test_wheel.py \
	  -p no:cacheprovider -q

# API reference (pdoc) of the public names, in its own venv: pdoc is no dependency of lstmgen.
DOCS_VENV := .venv-docs
$(DOCS_VENV)/bin/.installed: pyproject.toml $(PY_STAMP)
	$(PYTHON) -m venv --clear $(DOCS_VENV)
	$(DOCS_VENV)/bin/pip install $(PIP_FLAGS) pdoc -e .
	touch $@

docs: $(DOCS_VENV)/bin/.installed
	rm -rf build/docs
	$(DOCS_VENV)/bin/python docs/make_api_docs.py build/docs
	@echo "API reference: build/docs/index.html"

# Writes build/bench/*.json, then rewrites the marked numbers in README.md and docs/measurements.md.
bench: $(TEST_BIN)/.installed
	@mkdir -p build/bench
	$(TEST_BIN)/python benchmarks/bench_build.py --json > build/bench/build.json
	$(TEST_BIN)/python benchmarks/bench_quant.py --json > build/bench/quant.json
	$(TEST_BIN)/python benchmarks/bench_process.py --output build/bench/process.json
	$(TEST_BIN)/python benchmarks/bench_forms.py --json build/bench/forms.json
	@# against onnx2tf and TF's converter: only with a peer venv (LSTMGEN_PEER_PYTHON=/path/bin/python), else skipped
	rm -f build/bench/peers.json
	$(TEST_BIN)/python benchmarks/bench_peers.py --json build/bench/peers.json
	$(TEST_BIN)/python docs/update_numbers.py build/bench

fuzz: $(TEST_BIN)/.installed
	$(TEST_BIN)/python tests/fuzz_models.py --count $${FUZZ_COUNT:-10000} --seed $${FUZZ_SEED:-0} --jobs 2
	$(TEST_BIN)/python tests/fuzz_weights.py --count $${FUZZ_WEIGHTS_COUNT:-2000} --seed $${FUZZ_SEED:-0}

clean:
	rm -rf $(VENV) $(TEST_VENV) $(TFL_VENV) $(WHEEL_VENV) $(DOCS_VENV) build .pytest_cache $(PY_STAMP)
