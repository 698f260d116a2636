# srlab — two commands on a fresh machine:  make exp NAME=edsr_smoke   and   make test
# The pinned torch is installed first, so that srlab's requirements never pull a second (multi-GB) build;
# which build is pip's choice: TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU one, or a CUDA index.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= 2.13.0
TORCH_INDEX ?=
NAME   ?= edsr_smoke
PROFILE ?=
ARGS   ?=
SUITE  ?= smoke
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.srlab-installed
CONSTRAINTS ?= .ci/constraints.txt

.PHONY: install exp test compare bench bench-data bench-smlm smlmcheck stormcheck realcheck lint clean-venv help

help:
	@echo "make exp NAME=<experiment> [PROFILE=quick] [ARGS='key=value ...']   train + test one experiment"
	@echo "make test                                                          run the test suite"
	@echo "make compare SUITE=<suite>                                         train/evaluate a comparison suite"
	@echo "make bench                                                         performance benchmarks -> BENCHMARKS.md"
	@echo "make bench-smlm                                                    Deep-STORM vs Gaussian fit by density -> BENCHMARKS.md"
	@echo "make smlmcheck [ARGS='--steps 768']                                calibrate/train/localize on a foreign SMLM stack -> BENCHMARKS.md"
	@echo "make stormcheck                                                    widefield -> STORM: calibrate on tables, train, evaluate -> BENCHMARKS.md"
	@echo "make realcheck [ARGS=--quick]                                      srlab vs baselines on foreign-simulator pairs -> BENCHMARKS.md"

# The stamp depends on pyproject.toml: re-running a target does not reinstall unless dependencies changed.
# The exact versions CI tests (torch aside, pinned above); CONSTRAINTS= (empty) resolves freely.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "torch==$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]" "torch==$(TORCH)" $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
	@touch $(STAMP)

install: $(STAMP)

exp: $(STAMP)
	$(VENV)/bin/srlab train $(NAME) $(if $(PROFILE),profile=$(PROFILE)) $(ARGS)

# Two pytest-xdist workers (the CI machine's two cores), each test file whole in one worker (its module
# fixtures built once); PYTEST_WORKERS= runs in one process.
PYTEST_WORKERS ?= -n 2 --dist loadfile
test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_WORKERS) $(PYTEST_ARGS)

compare: $(STAMP)
	$(VENV)/bin/srlab compare $(SUITE) $(ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run.py $(ARGS)

bench-data: $(STAMP)
	$(PY) benchmarks/data_pipeline.py $(ARGS)

bench-smlm: $(STAMP)
	$(PY) benchmarks/localization_density.py $(ARGS)

smlmcheck: $(STAMP)
	$(PY) benchmarks/smlm_foreign.py $(ARGS)

stormcheck: $(STAMP)
	$(PY) benchmarks/stormcheck.py $(ARGS)

# Installs the optional extra srlab[realcheck] (pySTED, psfmodels) into the venv first.
realcheck: $(STAMP)
	$(PY) -m pip install -q -e ".[realcheck]" "torch==$(TORCH)" $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
	$(PY) benchmarks/realcheck.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check srlab tests

clean-venv:
	rm -rf $(VENV)
