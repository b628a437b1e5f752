# factory — quickstart: `make run` (whole graph, profile demo) and `make test`.
# Both create .venv and install what they need, Debian packages included (documentation; the browser).

PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= demo
ASSETS ?=
FACTORY_HOME ?= .factory
# Real documents for the embedded sample crawl (Python docs and the Debian Reference in 9 languages).
DOC_PACKAGES := python3.11-doc debian-reference-en debian-reference-de debian-reference-fr \
	debian-reference-es debian-reference-it debian-reference-pt debian-reference-ja debian-reference-zh-cn
# The headless browser of the UI test (tests/ui: selenium drives /usr/bin/chromium through /usr/bin/chromedriver).
BROWSER_PACKAGES := chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The process environment (offline hubs, quiet GE, DeepSpeed's cache) is set by the factory's own
# entry points from one table: factory/core/environment.py.

.PHONY: run test lint ui mlflow venv system-deps clean cluster-up cluster-down

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON_BOOT) -m venv $(VENV)
	# torch first: the pinned CPU build; anything unpinned would pull a multi-GB CUDA build.
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[bench,test,cluster]' torch==2.13.0
	touch $(STAMP)

system-deps:
	@missing=$$(for p in $(DOC_PACKAGES) $(BROWSER_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

# A client of the local cluster (profile cluster-local) takes its addresses and S3 settings from `factory cluster env`.
CLIENT_ENV := $(if $(filter cluster-local,$(PROFILE)),eval "$$(FACTORY_HOME=$(FACTORY_HOME) $(VENV)/bin/factory cluster env)" &&)

run: venv system-deps
	$(CLIENT_ENV) FACTORY_HOME=$(FACTORY_HOME) $(VENV)/bin/factory run --profile $(PROFILE) $(ASSETS)

lint: venv
	$(VENV)/bin/ruff check .

test: venv system-deps lint
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --no-loadscope-reorder

ui: venv
	DAGSTER_HOME=$(abspath $(FACTORY_HOME))/dagster $(PY) -m assets.instance
	$(CLIENT_ENV) DAGSTER_HOME=$(abspath $(FACTORY_HOME))/dagster FACTORY_PROFILE=$(PROFILE) FACTORY_HOME=$(FACTORY_HOME) \
		$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

mlflow: venv
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(abspath $(FACTORY_HOME))/mlflow.db -h 127.0.0.1 -p 5000

# The local multi-node cluster (docs/cluster.md): 2 Ray nodes, SeaweedFS S3, MLflow server, state in
# $(FACTORY_HOME)/cluster. `down` keeps S3 data and mlflow.db; `.venv/bin/factory cluster down --purge` removes them.
cluster-up: venv
	FACTORY_HOME=$(FACTORY_HOME) $(VENV)/bin/factory cluster up

cluster-down: venv
	FACTORY_HOME=$(FACTORY_HOME) $(VENV)/bin/factory cluster down

clean:
	rm -rf $(FACTORY_HOME)
