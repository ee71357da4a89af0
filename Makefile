# cifar_exp: every target sets up .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA_DIR ?= $(abspath ../shared/data/cifar100)
# The real CIFAR-100 copy when it is there (in any form data=local reads), else keras.datasets.cifar100 (downloads).
LOCAL_FORMS := train.npz train cifar-100-python/train cifar-100-python.tar.gz
DATA   := $(if $(wildcard $(addprefix $(DATA_DIR)/,$(LOCAL_FORMS))),data=local data.path=$(DATA_DIR),data=keras)
ARGS   ?=
PORT   ?= 5000
EXTRAS ?= dev,backends,scale,server
# Test processes: most tests wait on a `python -m cifar_exp` subprocess, so two workers keep both cores busy.
TEST_WORKERS ?= 2
# make reproduce: the report's experiments, each arm over SEEDS, at full length; LAUNCHER (e.g. joblib, or
# ray_cluster / slurm from conf/hydra/launcher) with JOBS parallel jobs where the launcher takes n_jobs.
EXPERIMENTS ?= learning_rate dropout decay sgd augmentation winning
SEEDS  ?= 0,1,2
LAUNCHER ?=
JOBS   ?=
LAUNCH := $(if $(LAUNCHER),hydra/launcher=$(LAUNCHER)) $(if $(JOBS),hydra.launcher.n_jobs=$(JOBS))
# THREADS=1: each job's TensorFlow thread pools; on a CPU, JOBS single-threaded jobs side by side train ~1.4x the
# images per second of one job on every core (benchmarks/parallel_jobs.py), e.g. LAUNCHER=joblib JOBS=2 THREADS=1
THREADS ?=
# Run records (cifar_exp/records.py): make reproduce imports them first, so that configurations they hold FINISHED are
# skipped, writes each run's record as it finishes and exports the store's at the end; RECORDS= does none of it.
RECORDS ?= mlruns/records
KEEP   := $(if $(RECORDS),tracking.records=$(abspath $(RECORDS)))
THREAD_ENV := $(if $(THREADS),TF_NUM_INTRAOP_THREADS=$(THREADS) TF_NUM_INTEROP_THREADS=$(THREADS))
# The records of the runs behind experiments/README.md's tables (mlruns/evidence/; git-ignored like all results).
EVIDENCE := mlruns/evidence
# URI: the tracking store of make train, sweep, search, reproduce, records, evidence and report
# (e.g. URI=http://<server>:5000); empty: the project's.
# STORE_EXPERIMENT: the MLflow experiment they use there (tracking.experiment; empty: cifar_exp).
URI    ?=
STORE_EXPERIMENT ?=
# Quoted for the shell and, for the trainings, for Hydra: a database URI's ?a=b&c=d is taken whole.
STORE  := $(if $(URI),--uri '$(URI)') $(if $(STORE_EXPERIMENT),--store-experiment '$(STORE_EXPERIMENT)')
TRACK  := $(if $(URI),"tracking.uri='$(URI)'") $(if $(STORE_EXPERIMENT),"tracking.experiment='$(STORE_EXPERIMENT)'")

.PHONY: help install browser lint train sweep search reproduce records evidence ui test test-slow bench bench-parallel bench-tta report clean-outputs

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed  ## create .venv and install cifar_exp with its test tools

browser:  ## Debian's chromium for the browser test (apt-get; without it that one test is skipped, saying why)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		chromium >/dev/null; } || echo "warning: could not install chromium; tests/test_ui.py will be skipped" >&2

train: install  ## the report's winning run (150 epochs); e.g. make train ARGS="trainer.epochs=5"
	$(PY) -m cifar_exp $(DATA) $(TRACK) $(ARGS)

sweep: install  ## one report experiment as a sweep; e.g. make sweep EXP=decay ARGS="trainer.epochs=10"
	@test -n "$(EXP)" || { echo "make sweep: EXP= names the experiment, one of: $(EXPERIMENTS) (or speedrun_cpu, best_gpu); e.g. make sweep EXP=decay" >&2; exit 2; }
	$(PY) -m cifar_exp --multirun +experiment=$(EXP) $(DATA) $(TRACK) $(ARGS)

reproduce: install  ## the whole report: every experiment and arm, SEEDS=0,1,2, full length, then the verdicts
	@status=0; \
	if [ -n "$(RECORDS)" ] && [ -d "$(RECORDS)" ]; then $(PY) -m cifar_exp.records import $(RECORDS) $(STORE) || exit 2; fi; \
	for exp in $(EXPERIMENTS); do \
		echo "== $$exp"; \
		$(THREAD_ENV) $(PY) -m cifar_exp --multirun +experiment=$$exp $(DATA) seed=$(SEEDS) $(LAUNCH) $(KEEP) $(TRACK) $(ARGS) || status=1; \
	done; \
	$(PY) -m cifar_exp.report --all $(STORE) || status=1; \
	if [ -n "$(RECORDS)" ]; then $(PY) -m cifar_exp.records export $(RECORDS) $(STORE) || status=1; fi; \
	exit $$status

records: install  ## write every finished run and sweep of the store to RECORDS (JSON files to carry to another machine)
	$(PY) -m cifar_exp.records export $(RECORDS) $(STORE)

evidence: install  ## the runs behind experiments/README.md (mlruns/evidence, where they are) into the store, then their report
	$(PY) -m cifar_exp.records import $(EVIDENCE) $(STORE)
	$(PY) -m cifar_exp.report --all $(STORE)

report: install  ## judge an experiment against the report (EXP=decay), or all of them (no EXP)
	$(PY) -m cifar_exp.report $(if $(EXP),$(EXP),--all) $(STORE)

ui: install  ## the MLflow UI on http://127.0.0.1:$(PORT) over the default store; prints the runs table's address
	$(VENV)/bin/cifar-exp ui --port $(PORT)

lint: install  ## ruff (lint + format check) and mypy on the package; CI runs it before the tests
	$(VENV)/bin/ruff check cifar_exp hydra_plugins tests benchmarks scripts
	$(VENV)/bin/ruff format --check cifar_exp hydra_plugins tests benchmarks scripts
	$(VENV)/bin/mypy

test: install browser  ## the default test suite (tiny generated data, about 22 minutes on 2 cores)
	$(PY) -m pytest -q -n $(TEST_WORKERS)

test-slow: install  ## trainings on the real CIFAR-100 in $(DATA_DIR)
	CIFAR100_DIR=$(DATA_DIR) $(PY) -m pytest -q -m slow

bench: install  ## throughput against plain Keras, side by side
	$(PY) benchmarks/throughput.py --data $(DATA_DIR)

bench-parallel: install  ## one training on every core against single-threaded trainings side by side
	$(PY) benchmarks/parallel_jobs.py --data $(DATA_DIR)

bench-tta: install  ## time to the report's 56.02%: speedrun_cpu (3 seeds) beside the report's recipe; ARGS="--target 0.6"
	$(PY) benchmarks/time_to_accuracy.py --data $(DATA_DIR) $(ARGS)

search: install  ## a hyper-parameter search with pruning; e.g. make search SPACE=fast_cnn ARGS="hydra.sweeper.n_trials=40"
	@test -n "$(SPACE)" || { echo "make search: SPACE= names the search space, one of: $(basename $(notdir $(wildcard conf/search/*.yaml))); e.g. make search SPACE=fast_cnn" >&2; exit 2; }
	$(PY) -m cifar_exp --multirun hydra/sweeper=optuna +search=$(SPACE) $(DATA) $(TRACK) $(ARGS)

clean-outputs:  ## remove Hydra's outputs/ and multirun/ folders (the MLflow store stays)
	rm -rf outputs multirun
