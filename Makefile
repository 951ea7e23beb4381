# reelgate: `make run` to try it, `make test` to check it. Both set up .venv first (make install).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint typecheck check bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,gpu]'
	@touch $(STAMP)

run: install
	$(BIN)/reelgate migrate
	$(BIN)/reelgate keys bootstrap --base-url http://$(HOST):$(PORT)
	$(BIN)/reelgate serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

check: lint test

bench: install
	$(BIN)/python bench/api_throughput.py
	$(BIN)/python bench/queue_latency.py
	$(BIN)/python bench/motion.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
