# The README's two commands: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# plotly.js's official partial bundle (scatter + bar), inlined by the report instead of the
# 4.8 MB full bundle of the plotly package: keeps each report under 2 MB.
PLOTLY_NPM := plotly.js-basic-dist-min@4.1.1
PLOTLY_JS := $(VENV)/share/finmlops/plotly-basic.min.js

.PHONY: run test lint bench venv clean help

help:
	@echo "make run    set up .venv and run the whole pipeline on the bundled data"
	@echo "make test   set up .venv and run the test suite"
	@echo "make lint   ruff + mypy --strict"
	@echo "make bench  run the benchmarks (JSON under benchmarks/results/)"

venv: $(STAMP) $(PLOTLY_JS)

# torch first and alone: pip then takes the CPU build on this machine's disk, and the
# project's own `torch==2.13.0` pin is already satisfied (no CUDA download).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

$(PLOTLY_JS):
	@mkdir -p $(@D)
	cd $(@D) && npm pack --silent $(PLOTLY_NPM) >/dev/null \
	  && tar -xzf plotly.js-basic-dist-min-*.tgz --strip-components=1 package/plotly-basic.min.js \
	  && rm -f plotly.js-basic-dist-min-*.tgz \
	  || echo "npm could not fetch $(PLOTLY_NPM): reports inline plotly's full bundle (> 2 MB)"

run: $(STAMP) $(PLOTLY_JS)
	$(VENV)/bin/finmlops run

test: $(STAMP) $(PLOTLY_JS)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .finmlops .pytest_cache .mypy_cache .ruff_cache
