# The README's two commands: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# MLServer and Triton's Python client pin versions the project's venv must not take (protobuf,
# uvloop, ...): a venv of their own, used only by the tests that run them (they skip without it).
MLSERVER_VENV := .venv-mlserver
MLSERVER_STAMP := $(MLSERVER_VENV)/.installed

.PHONY: run test lint bench venv mlserver-venv clean help

help:
	@echo "make run    set up .venv and run the whole pipeline on the bundled data"
	@echo "make test   set up .venv and run the test suite"
	@echo "make lint   ruff + mypy --strict"
	@echo "make bench  run the benchmarks (JSON under benchmarks/results/)"

venv: $(STAMP)

# torch first and alone: pip then takes the CPU build on this machine's disk, and the
# project's own `torch==2.13.0` pin is already satisfied (no CUDA download).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

mlserver-venv: $(MLSERVER_STAMP)

$(MLSERVER_STAMP): Makefile
	@test -x $(MLSERVER_VENV)/bin/python || $(PYTHON) -m venv $(MLSERVER_VENV) || python3 -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(MLSERVER_VENV)/bin/python -m pip install --quiet "mlserver==1.7.1" "mlserver-mlflow==1.7.1" \
	  "uvloop<0.22" "mlflow>=3.1,<4" onnx onnxruntime "tritonclient[grpc]==2.73.0"
	@touch $(MLSERVER_STAMP)

run: $(STAMP)
	$(VENV)/bin/finmlops run

test: $(STAMP) $(MLSERVER_STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) $(MLSERVER_VENV) .finmlops .pytest_cache .mypy_cache .ruff_cache
