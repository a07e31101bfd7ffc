# The Annotated BERT. `make test` is the one command CI runs; `make book` rebuilds the book.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# Torch goes in first and pinned: an unpinned torch pulls a multi-GB CUDA build. An environment that
# already has torch (conda: `make test VENV=$CONDA_PREFIX`) keeps its own.
TORCH ?= torch==2.13.0
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CHAPTERS := $(sort $(wildcard chapters/[0-9][0-9]_*.py chapters/A[0-9]_*.py))
NOTEBOOKS := $(CHAPTERS:.py=.ipynb)
# Each notebook runs in one worker (loadfile), two at a time on this 2-core machine. The longest run first, so
# that no long notebook starts last and runs alone: the whole suite then ends sooner.
LONGEST := chapters/09_training.ipynb chapters/06_bert.ipynb chapters/10_using_bert.ipynb chapters/A3_training_at_scale.ipynb
TEST_ORDER := $(LONGEST) $(filter-out $(LONGEST),$(NOTEBOOKS)) tests
PYTEST_WORKERS ?= 2
# Torch threads per worker. Two workers on two cores, each with torch's default of one thread per core, would run
# four busy threads on two cores and wait on each other (a 1.5 s cell took 22 s): one thread each is faster.
TEST_THREADS ?= 1
PYTEST := OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest

.PHONY: help setup test test-unit test-chapters fresh-install book export sync figures lab bench pretrain card search transfer html test-html clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
	touch $@

# JupyterLab opens a chapter's .py as a notebook on a double click: jupytext's viewer is the default for python
# files, in the environment's own settings (overrides.d: the user's ~/.jupyter and any overrides.json stay as they are).
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.d/annotated-bert.json

$(LAB_SETTINGS): tools/jupyterlab-overrides.json $(VENV)/.installed
	mkdir -p $(@D)
	cp $< $@

setup: $(VENV)/.installed $(LAB_SETTINGS)  ## create .venv: torch ($(TORCH)), then the project with its dev extras

test: setup  ## every check: pairing, package freshness, unit/parity tests, every chapter under strict nbval
	$(PY) tools/book.py check
	$(PY) tools/export.py --check
	$(PYTEST) -n $(PYTEST_WORKERS) --dist loadfile $(TEST_ORDER) \
	    --nbval --nbval-sanitize-with tools/nbval_sanitize.cfg --nbval-cell-timeout 600

test-unit: setup  ## only tests/ (fast)
	$(PYTEST) -n $(PYTEST_WORKERS) tests

test-chapters: setup  ## only the chapters, under strict nbval
	$(PYTEST) -n $(PYTEST_WORKERS) --dist loadfile $(NOTEBOOKS) \
	    --nbval --nbval-sanitize-with tools/nbval_sanitize.cfg --nbval-cell-timeout 600

fresh-install:  ## the wheel in a clean venv (torch first), checked from an empty directory: API, MiniLM, a pretrain run
	TORCH="$(TORCH)" PYTHON="$(PYTHON)" bash tools/fresh_install.sh

export: setup  ## write src/annotated_bert/ from the chapters' exported cells
	$(PY) tools/export.py

book: export  ## the main job: execute every chapter in place, regenerate figures/, re-export the package
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) tools/book.py run $(CHAPTERS)   # as make test runs them: same figures
	$(PY) tools/export.py --check

figures: book  ## figures/ is written by the chapters, so this is `make book`

sync: setup  ## pair each chapters/*.py with its .ipynb (the newer side wins, outputs kept)
	$(VENV)/bin/jupytext --sync $(CHAPTERS)

lab: setup  ## JupyterLab on the project's environment, opened on the chapters (a double click opens a .py as a notebook)
	$(VENV)/bin/jupyter lab chapters

# The book's model: TrainingConfig's defaults are its configuration. Extra flags: make pretrain PRETRAIN_ARGS="--steps 100".
PRETRAIN_ARGS ?=
SEARCH ?=
pretrain: setup  ## pretrain the book's small BERT on the training plays (about 30 min on 2 cores) into checkpoints/bert-shakespeare/
	$(PY) -m annotated_bert.pretrain --output-dir checkpoints/bert-shakespeare --overwrite $(PRETRAIN_ARGS)

card: setup  ## write the shipped checkpoint's model card and tokenizer_config.json again, from its training.json
	$(PY) -c "from annotated_bert.training import rewrite_checkpoint_files as rewrite; print(rewrite('checkpoints/bert-shakespeare') or 'unchanged')"

search: setup  ## chapter 9's recipe search: each recipe ~14 min on 2 cores, results in checkpoints/search/ (SEARCH="2x128 ..." for some)
	$(PY) tools/search.py run $(SEARCH)

transfer: setup  ## chapter 10's learning curves: every method on both tasks, ~30 min on 2 cores, results in checkpoints/transfer/
	$(PY) tools/transfer.py

bench: setup  ## time our BertModel against transformers' (MiniLM and BERT-base sizes), ours / theirs
	$(PY) tools/bench.py

# The website needs the docs extra (Jupyter Book 1.x, local MathJax, playwright), installed on demand.
$(VENV)/.installed-docs: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e ".[dev,docs]"
	touch $@

html: $(VENV)/.installed-docs  ## the book as a static website in _build/html/ (chapters as committed, not re-run), readable offline
	$(PY) tools/build_html.py

test-html: html  ## open every page of the site in headless chromium, network off: math, charts, images, no console errors
	$(PY) -m pytest -q tests_html
	$(PY) tools/check_html.py

clean:  ## remove the environment and caches (not the committed notebooks or figures)
	rm -rf $(VENV) .pytest_cache .hypothesis _build src/*.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
