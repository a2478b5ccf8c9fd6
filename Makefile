# SimJob — the one entry point. Set-up on a fresh machine is `make run` or `make test`.
#
#   make run           the operator, against $KUBECONFIG, or (when unset) against the
#                      embedded local control plane + local Slurm, started first
#   make test          everything CI runs: deps, lint, types, CRD drift, unit,
#                      integration (real control plane) and slurm tests
#   make cluster / cluster-down     the local control plane (hack/cluster/)
#   make slurm / slurm-down         the local Slurm (hack/slurm/)
#   make crds                       regenerate crds/ from the pydantic models
#   make bench                      benchmarks (bench/), figures with a baseline
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

REPO    := $(abspath .)
VENV    := $(REPO)/.venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
CLUSTER := $(REPO)/.cluster
export PATH := $(CLUSTER)/bin:$(VENV)/bin:$(PATH)

.PHONY: help run test deps venv lint typecheck crds crds-check unit integration slurm-tests \
        cluster cluster-build cluster-down slurm slurm-down bench clean

help:
	@sed -n '2,12p' Makefile | sed 's/^# \{0,1\}//'

## --- environment -------------------------------------------------------------
deps:
	@hack/deps.sh

$(STAMP): pyproject.toml
	@echo "[venv] creating $(VENV) and installing simjob[dev] (first time ~1 min)…"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

cluster-build: deps
	@hack/cluster/build.sh >/dev/null

cluster: deps
	@hack/cluster/up.sh

cluster-down:
	@hack/cluster/down.sh

slurm:
	@hack/slurm/up.sh

slurm-down:
	@hack/slurm/down.sh

## --- code ----------------------------------------------------------------------
crds: venv
	@$(PY) -m simjob_operator.crd_generation

crds-check: venv
	@$(PY) -m simjob_operator.crd_generation --check

lint: venv
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check operator slurm_bridge tests bench

typecheck: venv
	@$(PY) -m mypy

unit: venv
	@$(PY) -m pytest tests/unit -q

## --- the two set-up commands -------------------------------------------------------
# The pytest fixtures start the control plane and Slurm (same scripts) when they are
# not running, and stop what they started at the end of the session.
test: deps venv lint typecheck crds-check cluster-build
	@$(PY) -m pytest tests

run: deps venv
	@if [ -z "$${KUBECONFIG:-}" ]; then \
	  echo "[run] no \$$KUBECONFIG: starting the embedded local control plane and Slurm"; \
	  hack/cluster/up.sh; hack/slurm/up.sh; \
	  export KUBECONFIG=$(CLUSTER)/kubeconfig; \
	  echo "[run] the cluster and Slurm keep running after the operator stops: make cluster-down slurm-down"; \
	else echo "[run] using the cluster of \$$KUBECONFIG=$$KUBECONFIG"; fi; \
	kubectl apply --server-side --force-conflicts -f crds/ >/dev/null; \
	echo "[run] CRDs applied; starting the operator (Ctrl-C stops it). Try: kubectl apply -f examples/ && kubectl get sj -w"; \
	exec $(PY) -m kopf run -m simjob_operator.main --all-namespaces --standalone

bench: venv cluster
	@$(PY) bench/throughput.py

clean: cluster-down slurm-down
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
