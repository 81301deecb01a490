# spikeline: one-command setup, simulation and tests.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := iverilog espeak-ng rubberband-cli libsndfile1
STAMP := $(VENV)/.installed

.PHONY: apt-check setup sim test fuzz bench mutants clean distclean

setup: $(STAMP) apt-check

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Installs the system packages when root; otherwise names them and stops.
apt-check:
	@missing=""; \
	command -v iverilog >/dev/null || missing="$$missing iverilog"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	command -v rubberband >/dev/null || missing="$$missing rubberband-cli"; \
	ldconfig -p 2>/dev/null | grep -q libsndfile.so || missing="$$missing libsndfile1"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing apt packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "error: missing system packages:$$missing"; \
	    echo "       run: sudo apt-get install$$missing   (then re-run make)"; exit 1; \
	  fi; \
	fi

sim: setup
	@if [ -f cosim/run.py ]; then $(PY) -m cosim.run --default; else echo 'make sim: co-simulation is not yet available (cosim/run.py missing)'; exit 2; fi

test: setup
	$(PY) -m pytest -q tests

fuzz: setup
	$(PY) bench/fuzz.py --cases $${CASES:-10000}

# Experiment drivers (they train many models or need a trained one; run with their own arguments,
# as docs/results.md shows), not speed benchmarks.
EXPERIMENTS := bench/mutants.py|bench/generalize.py|bench/train_tables.py|bench/scdq_capacity.py|bench/async_study.py

bench: setup
	@for b in bench/*.py; do case $$b in bench/__init__.py|$(EXPERIMENTS)) continue;; esac; echo "== $$b"; $(PY) $$b || exit 1; done

# mutation check of the test suite (long: about 20 min); not part of make test or make bench
mutants: setup
	$(PY) bench/mutants.py

clean:
	rm -rf build .pytest_cache .hypothesis sim_build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) data
