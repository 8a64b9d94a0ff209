# Every target sets up what it needs (idempotently) in .venv, so each works on a fresh machine.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install serve test test-unit demo lint

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The Python client is its own package (clients/python); app.client and the CLI import it.
	$(PY) -m pip install --quiet -e clients/python
	# torch is pinned to 2.13.0 in pyproject.toml: the CPU build that lies on these machines' disk.
	$(PY) -m pip install --quiet -e '.[test,dev,bench,pretrained,export]'
	touch $(STAMP)

install: $(STAMP)

serve: install
	$(VENV)/bin/lifelong serve

demo: install
	$(PY) -m app.mas.demo

# Two xdist workers, each with its own services, on any machine (a 2-core one is the one it is sized for);
# work is stolen from the busier worker at the end. A single test or folder: $(PY) -m pytest -q PATH.
test: install
	$(PY) -m pytest -q -n 2 --dist worksteal

test-unit: install
	$(PY) -m pytest -q tests/unit

lint: install
	$(VENV)/bin/ruff check .
