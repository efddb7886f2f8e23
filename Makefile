# The README's two commands: `make run` and `make test`. Both create .venv when missing and
# install the project with the versions pinned in requirements.lock (`make lock` rewrites it).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# plotly.js's official partial bundle (scatter + bar), inlined by the report instead of the
# 4.8 MB full bundle of the plotly package: keeps each report under 2 MB.
PLOTLY_NPM := plotly.js-basic-dist-min@4.1.1
PLOTLY_JS := $(VENV)/share/finmlops/plotly-basic.min.js
# MLServer and Triton's Python client pin versions the project's venv must not take (protobuf,
# uvloop, ...): a venv of their own, used only by the tests that run them (they skip without it).
MLSERVER_VENV := .venv-mlserver
MLSERVER_STAMP := $(MLSERVER_VENV)/.installed

.PHONY: run test lint bench lock proto venv mlserver-venv clean help

help:
	@echo "make run    set up .venv and run the whole pipeline on the bundled data"
	@echo "make test   set up .venv and run the test suite"
	@echo "make lint   ruff + mypy --strict + lint-imports (the layering)"
	@echo "make bench  run the benchmarks (JSON under benchmarks/results/; needs wrk)"
	@echo "make lock   re-resolve every dependency into $(LOCK) after editing pyproject.toml"

venv: $(STAMP) $(PLOTLY_JS)

# The lock is a constraints file: pip installs what .[dev] needs at the locked versions.
# torch is pinned to the CPU build (2.13.0+cpu), which pip takes from the wheel folder in its
# configuration (find-links), so no CUDA build is ever downloaded.
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c $(LOCK) -e ".[dev]"
	@touch $(STAMP)

$(PLOTLY_JS):
	@mkdir -p $(@D)
	cd $(@D) && npm pack --silent $(PLOTLY_NPM) >/dev/null \
	  && tar -xzf plotly.js-basic-dist-min-*.tgz --strip-components=1 package/plotly-basic.min.js \
	  && rm -f plotly.js-basic-dist-min-*.tgz \
	  || echo "npm could not fetch $(PLOTLY_NPM): reports inline plotly's full bundle (> 2 MB)"

mlserver-venv: $(MLSERVER_STAMP)

$(MLSERVER_STAMP): Makefile
	@test -x $(MLSERVER_VENV)/bin/python || $(PYTHON) -m venv $(MLSERVER_VENV) || python3 -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(MLSERVER_VENV)/bin/python -m pip install --quiet "mlserver==1.7.1" "mlserver-mlflow==1.7.1" \
	  "uvloop<0.22" "mlflow>=3.1,<4" onnx onnxruntime "tritonclient[grpc]==2.73.0"
	@touch $(MLSERVER_STAMP)

run: $(STAMP) $(PLOTLY_JS)
	$(VENV)/bin/finmlops run

test: $(STAMP) $(PLOTLY_JS) $(MLSERVER_STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { echo "make bench: the serving benchmark needs wrk (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk)" >&2; exit 1; }
	$(PY) -m benchmarks

# pip's own resolver with this machine's pip configuration, for every extra at once.
lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) .ci/lock.py

# The gRPC messages from serving/proto/inference.proto, in a descriptor pool of their own
# (tritonclient registers the same `inference.*` names in protobuf's default pool).
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Isrc/finmlops/serving/proto \
	  --python_out=src/finmlops/serving/_grpc src/finmlops/serving/proto/inference.proto
	sed -i 's/^DESCRIPTOR = _descriptor_pool.Default()/DESCRIPTOR = _descriptor_pool.DescriptorPool()/' \
	  src/finmlops/serving/_grpc/inference_pb2.py

clean:
	rm -rf $(VENV) $(MLSERVER_VENV) .finmlops .pytest_cache .mypy_cache .ruff_cache
