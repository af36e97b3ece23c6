# dap: every everyday job is a target. `make help` lists them.
#
# Everything runs from this checkout: a virtualenv in .venv holds the dependencies, and
# bin/dap runs the code in place. Credentials come from the environment (DAP_API_URL,
# DAP_API_KEY or DAP_CLIENT_ID/DAP_CLIENT_SECRET), never from this file.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DAP    := $(PY) bin/dap

NAMESPACE ?= canvas
FORMAT    ?= jsonl
OUT       ?= downloads
STATE     ?= $(OUT)/dap-state.json
WHEELS    ?= wheelhouse

# Appended to a dap command: when dap fails, say its own exit status (make itself exits 2
# for any failed recipe; README.md's "Exit statuses" tells what dap's status means).
DAP_STATUS = || { status=$$?; echo "make $@: dap failed with exit status $$status (README: Exit statuses); make itself exits 2" >&2; exit $$status; }
# The checkpoints STATE holds of NAMESPACE's TABLE (a name, a comma list or all): file args
HELD_CHECKPOINTS = $(PY) -c 'import json, pathlib, sys; cps = json.loads(pathlib.Path(sys.argv[1]).read_text()).get("checkpoints", {}); ns, t = sys.argv[2], sys.argv[3]; print(", ".join(sorted(k for k in cps if k.startswith(ns + ".") and (t == "all" or k.split(".", 1)[1] in t.split(",")))))'

.DEFAULT_GOAL := help
.PHONY: help install official-client demo test coverage lint test-python test-matrix simulator bench soak clean wheelhouse list schema snapshot incremental

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip uninstall --quiet --yes dap >/dev/null 2>&1 || true # the distribution's old name
	$(PY) -m pip install --quiet -e '.[parquet,test]'
	@touch $(STAMP)

install: $(STAMP) ## make .venv with dap and its extras (parquet, test); again only when setup.py changes

# Instructure's own client, for the tests that it and dap continue each other's databases
OFFICIAL_VERSION ?= 2.3.1
official-client: .venv-official/.installed ## Instructure's client in .venv-official (compatibility tests use it)
.venv-official/.installed:
	$(PYTHON) -m venv .venv-official
	.venv-official/bin/python -m pip install --quiet 'instructure-dap-client[postgresql,mysql]==$(OFFICIAL_VERSION)'
	@touch $@

demo: $(STAMP) ## a snapshot, a chained incremental, then initdb/syncdb into SQLite, on the bundled simulator
	@PYTHON=$(PY) bash bin/demo

# The suite on TEST_WORKERS processes (pytest-xdist; 2, one per core of the project's
# machines; TEST_WORKERS=0 runs it in one).  --dist loadfile keeps each test file on one
# worker: tests/project's make runs in the checkout never overlap, and a module's fixtures
# are made once.  Every test has its own simulator, temporary directory and database.
TEST_WORKERS ?= 2
test: lint ## ruff and mypy, then the whole test suite on two workers (TEST_WORKERS)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The workers are subprocesses too (.coveragerc's patch = subprocess follows them).  A data
# file that a killed bin/dap left half-written is reported and left out of the sum.
coverage: $(STAMP) ## the suite under coverage, bin/dap's subprocesses too: report here, htmlcov/ for the lines
	rm -f .coverage .coverage.*
	$(PY) -m coverage run -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(ARGS)
	$(PY) -m coverage combine -q
	$(PY) -m coverage report --sort=cover
	$(PY) -m coverage html -q

# `.venv/bin/ruff check --fix .` mends the easy ones.  mypy needs Python 3.10 or newer (the
# main job's is 3.11): a .venv of 3.8 or 3.9 has none, and is linted by ruff alone, saying so
lint: $(STAMP) ## ruff over the checkout (ruff.toml), then mypy over dap_core (mypy.ini)
	$(PY) -m ruff check .
	@if $(PY) -c 'import mypy' 2>/dev/null; then \
	  echo '$(PY) -m mypy dap_core'; $(PY) -m mypy dap_core; \
	else \
	  echo "make lint: no mypy in $(VENV) (it needs Python 3.10 or newer): dap_core is not type-checked" >&2; \
	fi

# The fast tests (core, shell, CLI; not the databases or the soaks) on another Python, in
# its own virtualenv .venv-PYV: DEPS=lowest installs every floor setup.py declares
# (ci/constraints-lowest.txt), DEPS=newest the newest releases it allows.
PYV  ?= 3.13
DEPS ?= newest
test-python: ## the fast tests on Python PYV (e.g. 3.8) in .venv-PYV; DEPS=lowest for setup.py's floors
	bash ci/test-python $(PYV) $(DEPS)

# CI's second job; `make -j2 -O test-matrix` runs the two sides at once, one log each
.PHONY: test-oldest test-newest
test-matrix: test-oldest test-newest ## the fast tests: oldest Python with the lowest versions, newest with the newest
test-oldest:  # 3.8 with every floor; Parquet's floors on 3.9, where they install
	bash ci/test-python 3.8 lowest
	bash ci/test-python 3.9 lowest tests/core tests/shell tests/cli -m "not slow" -k "parquet or writers or tsvfields"
test-newest:
	bash ci/test-python 3.13 newest

simulator: $(STAMP) ## start the bundled DAP simulator on PORT (default 8642); ARGS for more options
	$(PY) -m fixtures.simulator --port $(or $(PORT),8642) $(ARGS)

bench: $(STAMP) ## benchmarks against a reference, results in bench/results/
	$(PY) -m bench.run $(ARGS)

.PHONY: bench-db
bench-db: $(STAMP) ## only the database benchmark (initdb, syncdb); ARGS="--rows 200000" for a quick one
	$(PY) -m bench.db $(ARGS)

soak: $(STAMP) ## the fault-injection soak (about 200 randomized runs)
	$(PY) -m bench.soak $(ARGS)

# the extras a production install may want: Parquet, ISA-L's inflate, the database drivers
EXTRAS ?= parquet,fast,postgresql,mysql
wheelhouse: $(STAMP) ## wheels of dap, its dependencies and EXTRAS in $(WHEELS)/ for offline installs
	rm -rf $(WHEELS)
	$(PY) -m pip wheel --quiet --wheel-dir $(WHEELS) '.[$(EXTRAS)]'
	@echo "copy $(WHEELS)/ over, then: pip install --no-index --find-links $(WHEELS) 'dap-cd2[$(EXTRAS)]'"

list: $(STAMP) ## list the tables of NAMESPACE (default canvas)
	@$(DAP) list --namespace $(NAMESPACE) $(DAP_STATUS)

schema: $(STAMP) ## write TABLE's schema into OUT
	@test -n "$(TABLE)" || { echo "make schema: set TABLE=name (or TABLE=all)" >&2; exit 2; }
	@$(DAP) schema --namespace $(NAMESPACE) --table $(TABLE) --output-directory $(OUT) \
	  $(DAP_STATUS)

snapshot: $(STAMP) ## snapshot TABLE into OUT as FORMAT; records the checkpoint in STATE
	@test -n "$(TABLE)" || { echo "make snapshot: set TABLE=name (or TABLE=all)" >&2; exit 2; }
	@$(DAP) snapshot --namespace $(NAMESPACE) --table $(TABLE) --format $(FORMAT) \
	  --output-directory $(OUT) --state $(STATE) $(DAP_STATUS)

incremental: $(STAMP) ## changes of TABLE since its checkpoint in STATE; SINCE only for a first run
	@test -n "$(TABLE)" || { echo "make incremental: set TABLE=name (or TABLE=all)" >&2; exit 2; }
	@since='$(SINCE)'; \
	if [ -n "$$since" ] && [ -f '$(STATE)' ]; then \
	  held=$$($(HELD_CHECKPOINTS) '$(STATE)' '$(NAMESPACE)' '$(TABLE)' 2>/dev/null); \
	  if [ -n "$$held" ]; then \
	    echo "make incremental: $(STATE) has a checkpoint of $$held: continuing from it; SINCE=$$since is not used" >&2; \
	    since=; \
	  fi; \
	fi; \
	$(DAP) incremental --namespace $(NAMESPACE) --table $(TABLE) --format $(FORMAT) \
	  --output-directory $(OUT) --state $(STATE) $${since:+--since "$$since"} $(DAP_STATUS)

clean: ## remove the virtualenv, build leftovers, downloads of the demo and bench results
	rm -rf $(VENV) .venv-3.* build dist *.egg-info $(WHEELS) demo-output bench/results .pytest_cache .hypothesis .ruff_cache .mypy_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
