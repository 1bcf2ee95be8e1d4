# The two entry points of README: `make demo` and `make test`. Each builds its own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install lint clean

$(BIN)/cardioseg: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: these two install from this machine's disk (see docs/index.md#install)
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/cardioseg

install: $(BIN)/cardioseg

demo: install
	$(BIN)/cardioseg demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs .pytest_cache
