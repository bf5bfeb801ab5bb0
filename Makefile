# Second-order methods for ReLU networks: build, test and run the book.
#
#   make book   build the book (executes the notebooks) into _build/html
#   make test   lint, unit tests, benchmark smoke runs, notebooks (nbval, also under a second
#               BLAS kernel: nbval-portable), -W build, browser check
#   make lab    open the notebooks in JupyterLab
#   make clean  remove build outputs and caches (make distclean also removes .venv)
#
# Every target creates .venv from requirements.txt first (python3 -m venv), and refreshes
# it whenever requirements.txt or pyproject.toml change.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp
BUILD := _build
HTML := $(BUILD)/html
CHROMIUM ?= /usr/bin/chromium
JUPYTERLAB_VERSION := 4.6.6
JOBS ?= 2

# Reproducible floating point for the notebooks, whose compared outputs must match on other
# machines: one BLAS thread (also the fastest for the small matrices of the book), and on
# x86-64 the AVX2 kernels of OpenBLAS and numpy, whatever wider units the CPU has (book/conftest.py
# sets the same for a direct `pytest --nbval`).
export OPENBLAS_NUM_THREADS ?= 1
ifeq ($(shell uname -m),x86_64)
export OPENBLAS_CORETYPE ?= Haswell
export NPY_DISABLE_CPU_FEATURES ?= X86_V4,AVX512_ICL,AVX512_SPR
endif

# The second floating-point setting of nbval-portable (x86-64 only): OpenBLAS's SSE4.2 kernels
# and numpy's baseline loops (X86_V2: numpy 2.4 dispatches X86_V3 = AVX2 + FMA3, X86_V4 and
# the AVX512 groups at run time, and these are the names NPY_DISABLE_CPU_FEATURES accepts).
PORTABLE_CORETYPE ?= Nehalem
PORTABLE_NPY_DISABLE_CPU_FEATURES ?= X86_V3,X86_V4,AVX512_ICL,AVX512_SPR

# The notebooks nbval runs (make nbval NOTEBOOKS=book/07_diagonal_methods.ipynb for one).
NOTEBOOKS ?= book/
NBVAL = $(BIN)/pytest --nbval --nbval-current-env $(NOTEBOOKS) -p no:cacheprovider \
    --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 300 -n $(JOBS) --dist loadfile

.PHONY: help bootstrap book test lint unit benchmarks-quick nbval nbval-portable book-strict browser lab \
    clean distclean

help:
	@echo "make book   build the book into $(HTML)"
	@echo "make test   lint, unit tests, benchmark smoke runs, notebooks (nbval, nbval-portable), -W book build,"
	@echo "            browser check"
	@echo "make lab    open the notebooks in JupyterLab"
	@echo "make clean  remove build outputs (make distclean also removes $(VENV))"

# --- bootstrap ---------------------------------------------------------------------------

bootstrap: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; run: make PYTHON=python3.11 ...")'
	@if ! $(BIN)/python -c '' 2>/dev/null; then \
	    echo "Creating $(VENV) with $$($(PYTHON) --version)"; \
	    rm -rf $(VENV); \
	    $(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

# Headless Chromium for the browser check (Debian's package; CI runs as root).
.PRECIOUS: $(CHROMIUM)
$(CHROMIUM):
	@if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
	echo "Installing Chromium (apt-get install chromium)"; \
	$$SUDO apt-get update -qq; \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	@test -x $(CHROMIUM)

# --- the book ----------------------------------------------------------------------------

book: $(STAMP)
	$(BIN)/jupyter-book build .
	@echo "Open $(HTML)/index.html"

# --- the tests ---------------------------------------------------------------------------

test: $(STAMP) $(CHROMIUM)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory benchmarks-quick
	$(MAKE) --no-print-directory nbval
	$(MAKE) --no-print-directory nbval-portable
	$(MAKE) --no-print-directory book-strict
	$(MAKE) --no-print-directory browser
	@echo "make test: all steps passed"

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP)
	$(BIN)/pytest tests -q -n $(JOBS)

# Smoke runs of the benchmark CLI (seconds each), written to a temporary folder; the
# full benchmarks (python -m benchmarks ...) are run by hand, not by make test.
benchmarks-quick: $(STAMP)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(BIN)/python -m benchmarks curvature --quick --output "$$tmp"; \
	$(BIN)/python -m benchmarks mnist1d-reproduction --quick --output "$$tmp"; \
	$(BIN)/python -m benchmarks time-to-target --quick --workers 1 --output "$$tmp"; \
	$(BIN)/python -m benchmarks scaling --quick --workers 1 --output "$$tmp"; \
	$(BIN)/python -m benchmarks kfac-relu-diagnosis --quick --workers 1 --output "$$tmp"

# Every notebook against its committed outputs. No notebook collected is a failure
# (pytest exits 5). --dist loadfile keeps each notebook's cells on one worker.
nbval: $(STAMP)
	$(NBVAL)

# The same notebooks against the same committed outputs under other floating-point kernels:
# BLAS and numpy results that differ in the last bits, as on a machine with other SIMD units,
# a Mac's Accelerate or an ARM CPU, where the pins above do not apply. An output that moves
# here (a step count of a sensitive trajectory, a value next to a rounding boundary) would
# move on a reader's machine: make it robust (assert with a tolerance, print less). The
# target-specific exports override the pins above and any value from the environment (book/
# conftest.py only sets what is unset), but not a notebook that assigns os.environ[...] itself
# (use setdefault there too); make nbval-portable PORTABLE_CORETYPE=Sandybridge tries another kernel.
nbval-portable: export OPENBLAS_CORETYPE := $(PORTABLE_CORETYPE)
nbval-portable: export NPY_DISABLE_CPU_FEATURES := $(PORTABLE_NPY_DISABLE_CPU_FEATURES)
nbval-portable: $(STAMP)
ifeq ($(shell uname -m),x86_64)
	@echo "nbval under OPENBLAS_CORETYPE=$$OPENBLAS_CORETYPE NPY_DISABLE_CPU_FEATURES=$$NPY_DISABLE_CPU_FEATURES"
	$(NBVAL)
else
	@echo "nbval-portable: skipped on $$(uname -m): its kernels are x86-64's, and here make nbval already runs under kernels other than CI's"
endif

# Warnings are errors, nitpicky references; --all re-reads every page so that warnings of
# an earlier, unchanged build are not skipped (executed notebooks stay cached).
book-strict: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going --all

browser: $(STAMP) $(CHROMIUM)
	$(BIN)/python tests/browser/check_site.py $(HTML) --chromium $(CHROMIUM)

# --- JupyterLab ----------------------------------------------------------------------------

lab: $(STAMP)
	@if [ ! -x $(BIN)/jupyter-lab ]; then \
	    echo "Installing JupyterLab $(JUPYTERLAB_VERSION) into $(VENV)"; \
	    $(BIN)/python -m pip install --quiet "jupyterlab==$(JUPYTERLAB_VERSION)" -c requirements.txt; \
	fi
	$(BIN)/jupyter-lab $$([ "$$(id -u)" -eq 0 ] && echo --allow-root) book/

# --- cleaning ----------------------------------------------------------------------------

clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) \
	    -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
