# batchaot: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_DATA := data/demo/orders.parquet

.PHONY: install demo test bench clean

# (Re)install when the package metadata or the C sources change; `batchaot warmup` then
# compiles the runtime's Numba kernels into their disk cache once, so no run, Ray worker or
# test process compiles them (a cold `submit` unit: ~20 s otherwise).
$(STAMP): pyproject.toml setup.py native/build.py native/opcodes.def $(wildcard native/*.c native/*.h)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/batchaot warmup
	touch $(STAMP)

install: $(STAMP)

$(DEMO_DATA): | $(STAMP)
	$(BIN)/python -m batchaot.samples data/demo --rows 200000

# The demo's data breaks some rules on purpose: exit code 1 (rules failed) is the expected outcome.
# `--mode ray` runs it on an embedded local Ray (a job this small would otherwise run in-process).
# Each run is appended to the job's history (data/demo/history.sqlite): a second `make demo`
# shows the trend.
demo: $(STAMP) $(DEMO_DATA)
	$(BIN)/batchaot submit jobs/demo.yaml --mode ray || test $$? -eq 1
	@echo "report: $(CURDIR)/out/demo/report.html (rebuild it with: batchaot report out/demo)"
	$(BIN)/batchaot history jobs/demo.yaml --last 5
	$(BIN)/batchaot inspect jobs/demo.yaml --schema $(DEMO_DATA) | tail -n 1

# pytest exits 5 when no test ran; make treats that, like any failure, as an error.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4 --dist loadfile --durations=15

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/bench_vm.py
	$(BIN)/python benchmarks/bench_engines.py
	$(BIN)/python benchmarks/bench_checks.py
	$(BIN)/python benchmarks/bench_peers.py
	$(BIN)/python benchmarks/bench_submit.py
	$(BIN)/python benchmarks/bench_submit_checks.py
	$(BIN)/python benchmarks/bench_scale.py

clean:
	rm -rf build out data/demo native/tests/build .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
