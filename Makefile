# Two entry points: `make demo` runs the demonstration, `make test` installs
# everything and runs the checks and the test suite. Each creates its own
# virtual environment when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: sandbox-readable demo test bench lint clean system-packages

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

test: system-packages lint sandbox-readable
	$(PY) -m pytest -q
	bash .ci/other-pythons
	bash .ci/unprivileged

system-packages:
	bash .ci/system-packages

# As root, the sandbox tests run this tree's code as the sandbox's user (nobody
# outside the sandbox), so a checkout in a directory only its owner may enter
# (mktemp -d makes those) is opened to others for reading and search. Nothing
# becomes writable; an unprivileged user's sandboxes run as that user.
sandbox-readable:
	@if [ "$$(id -u)" = 0 ] && [ -n "$$(find . -maxdepth 0 ! -perm -o=rx)" ]; then \
		chmod o+rx . && echo "made the checkout readable by others: the sandbox tests run its code as nobody"; \
	fi

bench: $(VENV)/.installed
	$(VENV)/bin/sipkernel bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
