# vroegsignaal — the two commands are `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install run test unit docs bench chaos soak lint typecheck schemas catalogue clean stop help browser

help:
	@echo "make run    start Kafka, PostgreSQL, the four services and a simulated municipality"
	@echo "make test   lint, type-check and run every test against a real Kafka and PostgreSQL"
	@echo "make unit   the fast tests alone (no Kafka, no PostgreSQL)"
	@echo "make docs   the documentation by audience as a site, in .local/site/"
	@echo "make stop   stop processes left over from a killed 'make run'"
	@echo "make bench  raw Kafka/PostgreSQL ceilings, the partner producer, the whole pipeline, matching and audit at 10^4 and 10^6, deliveries"
	@echo "make soak   30 minutes at 50 signals/s; fails if memory grows or a backlog keeps growing"
	@echo "make chaos  10^4 partner rows while every service, Kafka and PostgreSQL are killed"
	@echo "make catalogue  refresh the Dutch message catalogue from the source"
	@echo "make clean  wipe local data (.local/)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	rm -f $(VENV)/.installed-*
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,local]'
	touch $@

install: $(STAMP)

run: install
	$(BIN)/vroegsignaal dev up

stop: install
	$(BIN)/vroegsignaal dev down

# 10^4 partner rows through the real producer while each service is killed (SIGKILL) three
# times and Kafka and PostgreSQL once each; prints the loss and duplicate figures and
# fails unless they are all zero. Bounded: the stack gets 40 minutes to settle (the audit
# log appends one event at a time: issue 16).
chaos: install
	$(BIN)/vroegsignaal dev prepare
	$(BIN)/python -m vroegsignaal.dev.chaos --rows 10000 --kills 3

# 30 minutes at a steady 50 signals/s from the simulated municipality, sampled every
# minute (each service's memory, consumer lag, outboxes); fails when memory grows more
# than 10% after the warm-up, a backlog keeps growing, or the stack does not drain.
soak: install
	$(BIN)/vroegsignaal dev prepare
	mkdir -p test-artifacts
	$(BIN)/python -m vroegsignaal.dev.soak --rate 50 --minutes 30 --csv test-artifacts/soak.csv

lint: install
	$(BIN)/ruff check services shared vroegsignaal tests
	$(BIN)/ruff format --check services shared vroegsignaal tests
	$(BIN)/lint-imports

# The documentation as a site; warnings are errors, so a broken link between pages fails.
docs: install
	$(BIN)/sphinx-build -W --keep-going -q -b html docs .local/site

# The fast tests alone: the rules, without Kafka or PostgreSQL (a test that asks for them
# fails and says where it belongs).
unit: install
	VS_TESTS_NO_INFRA=1 $(BIN)/pytest -q -p no:cacheprovider -m 'not slow' tests/unit

typecheck: install
	$(BIN)/mypy

# The browser tests drive Debian's Chromium: Playwright's own browser download is not
# reachable from every machine, so the system package is installed instead.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null; then SUDO=sudo; \
	else echo "$(CHROMIUM) is missing: as root, run 'apt-get install chromium' (Debian's package)"; exit 1; fi; \
	$$SUDO apt-get update -qq && \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
	@[ -x $(CHROMIUM) ] || { echo "$(CHROMIUM) still missing after installing 'chromium'"; exit 1; }

browser: $(CHROMIUM)

# The slowest tests are listed after every run: the suite stays well under 15 minutes.
test: lint typecheck docs browser
	$(BIN)/vroegsignaal dev prepare
	$(BIN)/pytest -q -p no:cacheprovider --durations=20

# The deployment (Dockerfile, docker-compose.yml, deploy/k8s) validated without a cluster
# or a Docker engine. deploy/tools/install.sh puts the pinned tools into .venv-tools/
# once (kustomize, kubernetes-validate, check-jsonschema, checkov, the operators' CRDs);
# later runs need no network.
.PHONY: deploy-tools deploy-check

deploy-tools:
	PYTHON=$(PYTHON) bash deploy/tools/install.sh .venv-tools

deploy-check: install deploy-tools
	$(BIN)/python -m vroegsignaal.deploycheck

test: deploy-check

bench: install
	$(BIN)/python -m vroegsignaal.dev.bench $(ARGS)

schemas: install
	$(BIN)/vroegsignaal schemas export schemas

# The command line's and the printable report's messages: extract them from the source and
# merge them into each language's catalogue (then translate what is new or fuzzy).
MESSAGES := vroegsignaal services shared
catalogue: install
	@mkdir -p .local
	$(BIN)/pybabel extract --no-location --sort-output --project vroegsignaal -k _ -k N_ -o .local/messages.pot $(MESSAGES)
	$(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete -w 100 -D vroegsignaal -d shared/locale -l nl -i .local/messages.pot

clean:
	rm -rf .local
