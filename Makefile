# SimJob — the one entry point. Set-up on a fresh machine is `make run` or `make test`.
#
#   make run           the operator, against $KUBECONFIG, or (when unset) against the
#                      embedded local control plane + local Slurm, started first
#   make test          everything CI runs: deps, lint, types, CRD drift, unit,
#                      integration (real control plane) and slurm tests
#   make cluster / cluster-down     the local control plane (hack/cluster/)
#   make slurm / slurm-down         the local Slurm (hack/slurm/)
#   make crds                       regenerate crds/ and the chart's crds/ from the models
#   make helm-build / chart-lint / chart-test   helm from Go modules (hack/helm/); the chart
#   make images / image / dist      OCI images for the real node (hack/images/); the operator's; wheel + sdist
#   make bench / bench-full         benchmarks (bench/run.py): CI size (< 10 min) / full sizes
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

REPO    := $(abspath .)
VENV    := $(REPO)/.venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
CLUSTER := $(REPO)/.cluster
CHART   := $(REPO)/charts/simjob-operator
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE   ?= simjob-operator:$(VERSION)
export PATH := $(CLUSTER)/bin:$(VENV)/bin:$(PATH)

.PHONY: help run test deps venv lint typecheck crds crds-check unit integration slurm-tests \
        cluster cluster-build cluster-down slurm slurm-down bench bench-full clean \
        helm-build chart-lint chart-test image images node-build dist chaos

help:
	@sed -n '2,14p' Makefile | sed 's/^# \{0,1\}//'

## --- environment -------------------------------------------------------------
deps:
	@hack/deps.sh

$(STAMP): pyproject.toml
	@echo "[venv] creating $(VENV) and installing simjob[operator,dev] (first time ~1 min)…"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[operator,dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

cluster-build: deps
	@hack/cluster/build.sh >/dev/null
	@if [ "$${SIMJOB_REAL_NODE:-1}" != 0 ]; then hack/node/build.sh >/dev/null; fi

# containerd, ctr, the runc shim and the CNI plugins of the real node (hack/node/go.mod), cached.
node-build: deps
	@hack/node/build.sh >/dev/null

# pause, busybox, simulation and operator images (OCI, no registry), cached by content and
# imported into the real node's containerd when it runs (hack/node/up.sh imports them too).
images: deps venv
	@hack/images/build.sh --import

cluster: deps
	@hack/cluster/up.sh

cluster-down:
	@hack/cluster/down.sh

# helm from Go modules (hack/helm/go.mod), cached; linked as .cluster/bin/helm.
helm-build: deps
	@hack/helm/build.sh >/dev/null

slurm:
	@hack/slurm/up.sh

slurm-down:
	@hack/slurm/down.sh

## --- code ----------------------------------------------------------------------
# crds/, the chart's crds/, and the chart's values.schema.json entries for SimTiers
# and SlurmClusters (hack/helm/values_schema.py) all follow simjob_operator.api; so do
# the owner policy crds/owner-policy.yaml and the chart's files/owner-policy-spec.yaml.
crds: venv
	@$(PY) -m simjob_operator.api.crd_generation --out crds --out $(CHART)/crds
	@$(PY) -m simjob_operator.api.owner_policy
	@$(PY) hack/helm/values_schema.py

crds-check: venv
	@$(PY) -m simjob_operator.api.crd_generation --check --out crds --out $(CHART)/crds
	@$(PY) -m simjob_operator.api.owner_policy --check
	@$(PY) hack/helm/values_schema.py --check

chart-lint: helm-build
	@"$$(hack/helm/build.sh 2>/dev/null)" lint --strict $(CHART)

# The chart on the real control plane (lint, template + server dry-run, install,
# upgrade, uninstall, values schema, RBAC proof) plus its offline checks.
chart-test: venv helm-build cluster-build
	@$(PY) -m pytest tests/unit/test_chart_files.py tests/unit/test_crd_generation.py \
	  tests/integration/test_chart.py tests/integration/test_packaging.py

# The operator image docker.io/library/$(IMAGE) without Docker (hack/images/build.sh: a Debian
# rootfs with python3 + our wheel, OCI archive), imported into the real node when it runs.
# ./Dockerfile builds the same image where a Docker engine is available.
image: deps venv
	@hack/images/build.sh --import operator

dist: venv
	@$(PY) -m build --outdir dist .

lint: venv
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .
	@cd $(REPO) && PYTHONPATH=$(REPO)/operator:$(REPO) $(VENV)/bin/lint-imports --no-cache

typecheck: venv
	@$(PY) -m mypy

unit: venv
	@$(PY) -m pytest tests/unit -q

## --- the two set-up commands -------------------------------------------------------
# The pytest fixtures start the control plane and Slurm (same scripts) when they are
# not running, and stop what they started at the end of the session; the chart tests
# use helm from hack/helm/build.sh (built here, a cache hit for the tests).
test: deps venv lint typecheck crds-check cluster-build helm-build
	@$(PY) -m pytest tests

# The fault suite at full size (tests/chaos/, docs/reliability.md): 300 mixed SimJobs under
# 10 operator kill -9s, API server stop/start and SIGSTOP, etcd, slurmctld and sshd outages;
# ends with a summary table. `make test` runs the same suite at CI size.
chaos: deps venv cluster-build
	@SIMJOB_CHAOS_SIZE=full $(PY) -m pytest tests/chaos -m chaos

run: deps venv
	@if [ -z "$${KUBECONFIG:-}" ]; then \
	  echo "[run] no \$$KUBECONFIG: starting the embedded local control plane and Slurm"; \
	  hack/cluster/up.sh; hack/slurm/up.sh; \
	  if [ "$${SIMJOB_REAL_NODE:-1}" != 0 ]; then \
	    echo "[run] the images of the real node (built here and cached; the first time takes minutes)"; \
	    hack/images/build.sh --import pause busybox simulation; \
	  fi; \
	  . ./.slurm/env; \
	  export KUBECONFIG=$(CLUSTER)/kubeconfig; \
	  echo "[run] the cluster and Slurm keep running after the operator stops: make cluster-down slurm-down"; \
	else echo "[run] using the cluster of \$$KUBECONFIG=$$KUBECONFIG"; fi; \
	kubectl apply --server-side --force-conflicts -f crds/ >/dev/null; \
	if [ -n "$${SLURM_CONF:-}" ]; then \
	  kubectl wait --for=condition=Established crd/slurmclusters.simjob.io --timeout=60s >/dev/null; \
	  kubectl apply -f examples/slurmcluster-local.yaml >/dev/null; \
	  echo "[run] SlurmCluster local: Slurm of SLURM_CONF=$$SLURM_CONF. Try: kubectl apply -f examples/simjob-slurm.yaml"; \
	fi; \
	echo "[run] CRDs and the owner policy (crds/owner-policy.yaml) applied; starting the operator (Ctrl-C stops it). Try: kubectl apply -f examples/ && kubectl get sj -w"; \
	exec $(PY) -m kopf run -m simjob_operator.main --all-namespaces --standalone

# Tables (baseline, SimJob, ratio, target) on stdout; Markdown, JSON and PNG plots in
# bench/results/ (docs/benchmarks.md), on the cluster hack/cluster/up.sh starts (SIMJOB_* vars
# choose its directory and ports). One scenario: $(PY) bench/run.py --only backlog
bench: venv cluster
	@$(PY) bench/run.py --size ci --kubeconfig "$${SIMJOB_CLUSTER_DIR:-$(CLUSTER)}/kubeconfig"

bench-full: venv cluster
	@$(PY) bench/run.py --size full --kubeconfig "$${SIMJOB_CLUSTER_DIR:-$(CLUSTER)}/kubeconfig"

clean: cluster-down slurm-down
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
