VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo install report report-quick bench bench-accelerator clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[experiments,test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

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

bench-accelerator: $(STAMP)
	$(PY) -m benchmarks.accelerator

clean:
	rm -rf $(VENV) build *.egg-info
