# One venv in .venv, installed from setup.py with the exact pins in constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PAGES ?= 0001
IMAGE ?= nasa_assets:latest
DEMO_PORT ?= 8765
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install run demo dev dev-demo test test-quick bench build shell pools clean settings-docs

$(STAMP): setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.dev.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.dev.yaml $(DAGSTER_HOME)/dagster.yaml

## run: materialize PAGES (e.g. PAGES=0001...0005) of moon_images_job against the real NASA API
run: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m nasa_assets run --pages "$(PAGES)"

## demo: the same, against the project's own NASA double on 127.0.0.1 (no network needed)
demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m nasa_assets_tests.demo --pages "$(PAGES)"

## dev: the Dagster UI + daemon with a persistent instance in .dagster_home
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml pools
	$(BIN)/dagster dev -w workspace.yaml

## dev-demo: the same UI + daemon, with the NASA double on 127.0.0.1:$(DEMO_PORT) standing in for NASA
dev-demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml pools
	$(BIN)/python -m nasa_assets_tests.demo --dev --port $(DEMO_PORT)

## pools: the instance-level limit of the nasa_api pool (steps that call the search API)
pools: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster instance concurrency set nasa_api $${NASA_API_POOL_LIMIT:-2}

## test: the whole suite, the one CI runs (system tests skip, with a reason, without PostgreSQL/Chromium)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-quick: the unit and integration tiers (no live dagster dev, PostgreSQL or browser), on three
## workers (QUICK_WORKERS=0 runs them in this process)
# Three workers on two cores: while one waits on a socket or a child process, two compute. Bytecode
# is written even where PYTHONDONTWRITEBYTECODE is set, so that each worker reuses pytest's cached
# assertion rewrites (git-ignored __pycache__) instead of rewriting every test module again.
QUICK_WORKERS ?= 3
test-quick: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -m "unit or integration" -n $(QUICK_WORKERS) --dist worksteal $(PYTEST_ARGS)

## bench: every ingestion path side by side against the NASA double + moto, then the whole collection
## (BENCH_ARGS="--pages 2 --skip-whole" etc.; img2dataset gets its own .venv-img2dataset on first use)
bench: $(STAMP)
	$(BIN)/python -m nasa_assets_tests.bench $(BENCH_ARGS)

## settings-docs: rewrite the table in docs/settings.md from nasa_assets/defs/settings_spec.py
settings-docs: $(STAMP)
	$(BIN)/python -m nasa_assets.defs.settings_spec --markdown

build:
	docker build -t $(IMAGE) .

shell: build
	docker run --rm -it --env-file $(if $(wildcard .env),.env,.env.example) $(IMAGE) bash

clean:
	rm -rf $(VENV) .venv-img2dataset data .dagster_home
