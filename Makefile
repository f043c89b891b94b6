# Two commands do all set-up on a fresh machine (see README.md):
#   make demo   simulate a night and run the pipeline on it
#   make test   run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tgp-installed
DEMO_DIR ?= demo
DEMO_SEED ?= 1

.PHONY: demo test venv system-deps lint bench clean-demo

# Debian packages the product needs (installed only when missing; needs root or sudo).
DEBIAN_PACKAGES := $(shell grep -v '^\s*\#' packaging/debian-packages.txt 2>/dev/null)

system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml constraints.txt
	$(MAKE) system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m flows.simulate --preset demo --seed $(DEMO_SEED) --out $(DEMO_DIR)/night
	$(PY) -m flows.full_run --data $(DEMO_DIR)/night/raw --out $(DEMO_DIR)/out \
	  --gaia-file $(DEMO_DIR)/night/truth/gaia.ecsv \
	  --standards $(DEMO_DIR)/night/truth/standards.ecsv

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check tgpcore flows tasks deployments tests benchmarks

clean-demo:
	rm -rf $(DEMO_DIR)
