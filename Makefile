VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-fast lint docs demo install report report-quick bench bench-accelerator clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[experiments,test]'
	touch $(STAMP)

install: $(STAMP)

# Two pytest workers (pytest-xdist), one test file each at a time: most tests are Python-bound
# (tracing, process start-up), so two processes fill two cores. PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=15

test: $(STAMP)
	$(PYTEST) tests

# The edit loop: everything but the tests marked slow (training, subprocesses, wheels).
test-fast: $(STAMP)
	$(PYTEST) -m "not slow" tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# API reference of the public package, from its docstrings (not committed). PDOC_ALLOW_EXEC:
# an import calls `uname -p` (platform.processor), which pdoc otherwise blocks with a warning.
# tf_bng documents the submodules in its __all__; the others are listed.
API_MODULES := tf_bng tf_bng.problems
docs: $(STAMP)
	PDOC_ALLOW_EXEC=1 $(VENV)/bin/pdoc --docformat google -o docs/api $(API_MODULES)

demo: $(STAMP)
	$(PY) -m trainers.demo

report: $(STAMP)
	$(PY) -m trainers.report --out=docs/results

report-quick: $(STAMP)
	$(PY) -m trainers.report --out=/tmp/tf_bng_report_quick --quick

bench: $(STAMP)
	$(PY) -m benchmarks.step_overhead
	$(PY) -m benchmarks.loop_vs_fit
	$(PY) -m benchmarks.transform_bandwidth
	$(PY) -m benchmarks.wrapper_vs_step
	$(PY) -m benchmarks.clip_vs_keras
	$(PY) -m benchmarks.transform_candidates
	$(PY) -m benchmarks.backward_scaling_cost
	$(PY) -m benchmarks.determinism_cost
	$(PY) -m benchmarks.update_trust_ratio_cost

bench-accelerator: $(STAMP)
	$(PY) -m benchmarks.accelerator

clean:
	rm -rf $(VENV) build *.egg-info
