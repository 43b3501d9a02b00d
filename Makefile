# avito-harness: `make run` (acceptance run / simulator) and `make test` (all tests).
# Both bootstrap .venv from pyproject.toml when it is missing or older.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test sim lint bench clean help

help:
	@echo "make run   - the five-stage acceptance run against the embedded stack, with a report"
	@echo "make test  - run the whole test suite"
	@echo "make sim   - serve the simulated stack (fakes + our gateway) until Ctrl-C"
	@echo "make lint  - ruff + mypy --strict"
	@echo "make bench - benchmarks (not part of make test); results in bench/results/latest.json"

# Two distributions from this repository: the gateway (gateway/pyproject.toml) and the harness (pyproject.toml).
$(STAMP): pyproject.toml gateway/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./gateway -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/avito-harness run

sim: $(STAMP)
	$(BIN)/avito-harness sim

# Many tests start Python processes (gateways, the acceptance run): compiled bytecode is kept between them even
# where the environment says not to write it (PYTHONDONTWRITEBYTECODE), which halves their start-up; workers
# steal queued tests so the long ones do not leave one core idle at the end.
# The real n8n (pinned, npm) goes into the user cache once when Node.js >= 20.19 is here (~4.5 min the first time);
# without Node.js the real-n8n tests skip, saying why.
test: $(STAMP)
	$(BIN)/avito-harness n8n install --if-node
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n 2 --dist worksteal $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.scale

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ./gateway -e '.[test,dev]'
	$(BIN)/ruff check simulator gateway tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
