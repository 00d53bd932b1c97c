# One command per job. Everything installs into .venv (created if missing);
# torch is pinned to the CPU build through constraints.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.scopegen-installed
PYTEST_ARGS ?=

.PHONY: install test test-fast demo bench fuzz soak check clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,examples]'
	touch $(STAMP)

install: $(STAMP)

# The quality gate (ruff + mypy --strict) runs first, then every test.
test: check
	$(PY) -m pytest $(PYTEST_ARGS)

# The fast suite: no real servers, venvs or fuzzers (seconds, not minutes).
test-fast: install
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

check: install
	$(VENV)/bin/ruff check scopegen tests benchmarks examples
	$(VENV)/bin/mypy

demo: install
	$(PY) examples/demo.py

bench: install
	$(PY) benchmarks/run_all.py

# 1,700 programs for each of the analyzer's three strategies (5,100 in all) and
# 2,000+ API requests; no per-test time limit for these long runs.
fuzz: install
	SCOPEGEN_FUZZ_EXAMPLES=1700 SCOPEGEN_API_FUZZ_EXAMPLES=2000 \
		$(PY) -m pytest -q -o timeout=0 tests/fuzz

soak: install
	$(PY) benchmarks/soak.py

clean:
	rm -rf $(VENV) build .demo .pytest_cache .mypy_cache .ruff_cache
