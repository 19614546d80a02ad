# The two commands a new user needs: `make demo` and `make test`.
# Each creates .venv when missing and (re)installs only when pyproject.toml or constraints.txt changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= all
STAMP  := $(VENV)/.installed-$(EXTRAS)-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	@rm -f $(VENV)/.installed-$(EXTRAS)-*
	@touch $@

demo: $(STAMP)
	$(BIN)/python -m infra.demo $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not integration" $(PYTEST_ARGS)

bench:
	$(MAKE) EXTRAS=all,bench venv
	$(BIN)/python benchmarks/deid_bench.py
	$(BIN)/python benchmarks/fhir_bench.py
	$(BIN)/python benchmarks/catalog_bench.py
	$(BIN)/python benchmarks/fl_bench.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-output
