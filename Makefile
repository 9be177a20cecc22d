# nstedu — `make lab` to start learning, `make test` to check everything.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.nstedu-installed
NBVAL   := NSTEDU_QUICK=1 MPLBACKEND=Agg $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -p no:cacheprovider
PORT    ?= 8888
CLASS   ?= build/classroom
WORKERS ?= 2

.PHONY: help setup lab test test-py test-nb test-lessons test-exercises test-solutions test-slow test-browser demo bench exercises check-exercises clean \
        classroom autograde references time-notebooks site site-quick test-site

help:
	@echo "make lab           set up .venv (first time) and open JupyterLab on notebooks/"
	@echo "make test          unit tests + the lessons and exercises (quick mode) under nbval (≤ 4 min on 2 cores)"
	@echo "make test-slow     the slow tests and the solutions notebooks with their hidden tests (minutes; CI runs them)"
	@echo "make test-browser  real-browser JupyterLab test of the playground (needs chromium)"
	@echo "make demo          stylize a bundled photo -> outputs/demo.png"
	@echo "make bench         benchmarks -> benchmarks/RESULTS.md"
	@echo "make exercises     regenerate exercises/ from solutions/"
	@echo "make classroom     an nbgrader course folder in CLASS=$(CLASS) (docs/instructors.md)"
	@echo "make autograde ASSIGNMENT=03_gram_and_style  the whole class of CLASS, WORKERS=$(WORKERS) at a time (sandboxed)"
	@echo "make site          the course website, lessons run once in FULL mode (slow) -> build/site"
	@echo "make test-site     quick-mode website + real-browser test of every page (CI)"
	@echo "make references    full-mode reference figures for quick mode (slow) + notebook timings"
	@echo "make time-notebooks  run every lesson in full mode -> benchmarks/notebook_times.md"

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[notebooks,test,video,classroom,site]"
	@touch $(STAMP)

setup: $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root,)

# Three parts, two at a time, one torch thread each: much of each is single-threaded Python (kernels starting,
# imports), and two 2-thread torch processes on 2 cores spin against each other (measured 10× slower). The exercises
# start when the first of the other two ends. The solutions (each hidden test starts a Python process: ~4 s of
# `import torch` here) run in test-slow, which CI runs too.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(MAKE) --no-print-directory -j2 --output-sync=target test-py test-lessons test-exercises

test-py: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest -q -p no:cacheprovider tests -m "not browser and not slow and not site"

test-slow: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest -q -p no:cacheprovider tests -m "slow and not browser and not site"
	$(MAKE) --no-print-directory test-solutions

# The lessons run with matplotlib's inline backend and are saved with their outputs to build/executed-quick, which
# `make site-quick` reuses; solutions and exercises run headless (Agg). test-nb: every notebook.
test-nb: test-lessons test-solutions test-exercises

test-lessons: $(STAMP)
	rm -rf build/executed-quick
	env -u MPLBACKEND NSTEDU_SAVE_EXECUTED=build/executed-quick $(subst MPLBACKEND=Agg ,,$(NBVAL)) -q notebooks/*.ipynb

test-solutions: $(STAMP)
	$(NBVAL) -q solutions/*.ipynb

test-exercises: $(STAMP)
	$(NBVAL) -q exercises/*.ipynb

test-browser: $(STAMP)
	@command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }
	MPLBACKEND=Agg $(PY) -m pytest -q -p no:cacheprovider tests -m browser

demo: $(STAMP)
	$(VENV)/bin/nstedu stylize grace_hopper starry_night -o outputs/demo.png --size 256 --steps 200

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

exercises: $(STAMP)
	$(PY) -m nstedu.exercises generate solutions exercises

check-exercises: $(STAMP)
	$(PY) -m nstedu.exercises check solutions exercises

classroom: $(STAMP)
	$(PY) tools/classroom.py init $(CLASS)

autograde: $(STAMP)
	@test -n "$(ASSIGNMENT)" || { echo "usage: make autograde CLASS=<course> ASSIGNMENT=<assignment> [WORKERS=2]"; exit 2; }
	@command -v bwrap >/dev/null || { echo "bubblewrap is missing: sudo apt-get install bubblewrap (docs/instructors.md)"; exit 2; }
	$(PY) -m nstedu.checks autograde $(ASSIGNMENT) --course $(CLASS) --workers $(WORKERS)

references: $(STAMP)
	$(PY) tools/run_notebooks.py --write-references --table benchmarks/notebook_times.md \
		notebooks/*.ipynb solutions/10_capstone.ipynb

time-notebooks: $(STAMP)
	$(PY) tools/run_notebooks.py --table benchmarks/notebook_times.md

site: $(STAMP)
	$(PY) tools/build_site.py

site-quick: $(STAMP)
	$(PY) tools/build_site.py --quick --reuse build/executed-quick

test-site: site-quick
	@command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }
	NSTEDU_SITE=build/site-quick/_build/html $(PY) -m pytest -q -p no:cacheprovider tests -m site

clean:
	rm -rf outputs tests/artifacts .pytest_cache build/site build/site-quick build/executed-quick
