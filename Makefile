# Two entry points for a fresh clone: `make demo` and `make test`.
# Each creates .venv and installs what it needs by itself.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint setup bench corpus clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,offline,elevenlabs,azure]'
	touch $@

setup: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/fsm-voice demo

lint: $(BIN)/.installed
	$(BIN)/ruff check fsm_voice tests benchmarks scripts
	$(BIN)/ruff format --check fsm_voice tests benchmarks scripts
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# Re-record replays/ (real time, offline providers, ~75 s) after changing a machine,
# a caller script or the logged kinds on purpose; review the diff, then commit it.
corpus: $(BIN)/.installed
	$(BIN)/python scripts/make_corpus.py

bench: $(BIN)/.installed
	$(BIN)/fsm-voice bench calls

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
