# Two entry points for a fresh clone: `make demo` and `make test`.
# Each creates .venv and installs what it needs by itself.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint setup bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,offline]'
	touch $@

setup: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/fsm-voice demo

lint: $(BIN)/.installed
	$(BIN)/ruff check fsm_voice tests benchmarks
	$(BIN)/ruff format --check fsm_voice tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(BIN)/.installed
	$(BIN)/fsm-voice bench calls

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
