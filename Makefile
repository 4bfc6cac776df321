# Two entry points for a fresh clone: `make demo` and `make test`.
# Each creates .venv and installs what it needs by itself, from requirements.lock.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
EXTRAS := dev offline elevenlabs azure

.PHONY: demo test test-loaded lint setup lock bench corpus clean

# Every package comes from the lock, pinned and hash-checked; then the project itself,
# editable, with no dependencies of its own and hatchling (pinned in the lock) as its
# build backend. Plain pip: a fresh machine needs only python3 and PyPI.
$(BIN)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python scripts/check_lock.py $(LOCK) pyproject.toml $(EXTRAS)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(BIN)/.installed

# Regenerate the lock on purpose after changing a range in pyproject.toml: versions
# already pinned stay where they still fit. `make lock UPGRADE=1` moves every pin to
# the newest release in range. The lock is for CPython 3.11 on Linux x86_64.
UV_VERSION := 0.13.9
LOCK_TOOLS := $(VENV)/lock-tools

$(LOCK_TOOLS)/bin/uv:
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/python -m pip install --quiet 'uv==$(UV_VERSION)'

# Besides the extras: the build backend, and what hatchling asks for to build an
# editable install (`editables`), since `make setup` builds without isolation.
lock: $(LOCK_TOOLS)/bin/uv
	$(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], "editables", sep="\n")' \
	| $(LOCK_TOOLS)/bin/uv pip compile --quiet pyproject.toml - $(EXTRAS:%=--extra %) \
		--python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		--generate-hashes --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade) \
		--output-file $(LOCK)

demo: $(BIN)/.installed
	$(BIN)/fsm-voice demo

lint: $(BIN)/.installed
	$(BIN)/ruff check fsm_voice tests benchmarks scripts
	$(BIN)/ruff format --check fsm_voice tests benchmarks scripts
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# The same pytest run beside a CPU hog (one busy process per core, niced by LOAD_NICE):
# what a busy laptop or CI runner does to timing. Exits with pytest's code.
LOAD_NICE ?= 0
test-loaded: $(BIN)/.installed
	$(BIN)/python scripts/cpu_load.py --nice $(LOAD_NICE) -- $(BIN)/pytest

# Re-record replays/ (real time, offline providers, ~75 s) after changing a machine,
# a caller script or the logged kinds on purpose; review the diff, then commit it.
corpus: $(BIN)/.installed
	$(BIN)/python scripts/make_corpus.py

bench: $(BIN)/.installed
	$(BIN)/fsm-voice bench calls

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
