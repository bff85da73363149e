# Two entry points: `make demo` runs the demonstration, `make test` installs
# everything and runs the checks and the test suite. Each creates its own
# virtual environment when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench lint clean system-packages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/demo.py

lint: $(VENV)/.installed
	$(PY) -m ruff check src tests examples
	$(PY) -m ruff format --check src tests examples
	$(PY) -m mypy

test: system-packages lint
	$(PY) -m pytest -q
	bash .ci/other-pythons
	bash .ci/unprivileged

system-packages:
	bash .ci/system-packages

bench: $(VENV)/.installed
	$(VENV)/bin/sipkernel bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
