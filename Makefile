# The two entry points of README: `make demo` and `make test`. Each builds its own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install lint clean constraints

# Every dependency is installed at the version constraints.txt pins, so a fresh install a month from now
# is the environment the tests passed in. `make constraints` refreshes the file from the current .venv.
$(BIN)/cardioseg: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: these two install from this machine's disk (see docs/index.md#install)
	$(BIN)/pip install --quiet -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	touch $(BIN)/cardioseg

constraints: install
	{ echo "# Versions the test suite passed with (make constraints); used by make and .ci/run."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^-e ' | LC_ALL=C sort -f; } > constraints.txt

install: $(BIN)/cardioseg

demo: install
	$(BIN)/cardioseg demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs .pytest_cache
