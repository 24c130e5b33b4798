# vroegsignaal — the two commands are `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install run test bench lint typecheck schemas clean stop help

help:
	@echo "make run    start Kafka, PostgreSQL, the four services and a simulated municipality"
	@echo "make test   lint, type-check and run every test against a real Kafka and PostgreSQL"
	@echo "make stop   stop processes left over from a killed 'make run'"
	@echo "make bench  matching's cost per signal at 10^4 and 10^6 stored registrations"
	@echo "make clean  wipe local data (.local/)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	rm -f $(VENV)/.installed-*
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

run: install
	$(BIN)/vroegsignaal dev up

stop: install
	$(BIN)/vroegsignaal dev down

lint: install
	$(BIN)/ruff check services shared vroegsignaal tests
	$(BIN)/ruff format --check services shared vroegsignaal tests

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/vroegsignaal dev prepare
	$(BIN)/pytest -q -p no:cacheprovider

bench: install
	$(BIN)/python -m vroegsignaal.bench

schemas: install
	$(BIN)/vroegsignaal schemas export schemas

clean:
	rm -rf .local
