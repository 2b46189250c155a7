# Development tasks for apiservice-operator. `make help` lists them.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
VENV_PYTHON := $(VENV)/bin/python
include hack/versions.env
CACHE_DIR ?= $(or $(APISERVICE_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/apiservice-operator)
KUBECTL ?= $(CACHE_DIR)/bin/kubernetes-$(KUBE_VERSION)/kubectl
HELM ?= $(CACHE_DIR)/bin/helm-$(HELM_VERSION)/helm
KUBECONFIG ?= $(CURDIR)/.cluster/kubeconfig
export KUBECONFIG
IMAGE ?= apiservice-operator:dev
PYTEST_FLAGS ?=

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-20s %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

.PHONY: setup
setup: $(VENV)/.installed ## Create the virtualenv with the operator and its development tools.

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install --quiet --upgrade pip
	$(VENV_PYTHON) -m pip install --quiet -e '.[dev]'
	touch $@

##@ Local cluster

.PHONY: binaries
binaries: ## Build the control plane binaries and helm into the cache (once per version).
	hack/build-binaries.sh

$(KUBECTL):
	hack/build-binaries.sh kubernetes

$(HELM):
	hack/build-binaries.sh helm

.PHONY: cluster-up
cluster-up: ## Start the local control plane; the kubeconfig goes to .cluster/kubeconfig.
	hack/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and remove its state.
	hack/cluster.sh down

.PHONY: cluster-status
cluster-status: ## Tell whether each control plane component runs.
	hack/cluster.sh status

##@ Development

.PHONY: manifests
manifests: setup $(KUBECTL) ## Generate the CRD, the API reference and the install artifacts from the models.
	$(VENV_PYTHON) hack/gen_crd.py
	$(VENV_PYTHON) hack/gen_api_reference.py
	$(VENV_PYTHON) hack/gen_install.py --kubectl $(KUBECTL)

.PHONY: manifests-install
manifests-install: setup $(KUBECTL) ## Render manifests/install.yaml and copy crds/ into the Helm chart.
	$(VENV_PYTHON) hack/gen_install.py --kubectl $(KUBECTL)

.PHONY: verify-manifests
verify-manifests: setup ## Fail when the committed CRD or API reference differs from the models.
	$(VENV_PYTHON) hack/gen_crd.py --check
	$(VENV_PYTHON) hack/gen_api_reference.py --check

.PHONY: verify
.PHONY: verify-install
verify-install: setup $(KUBECTL) ## Fail when manifests/install.yaml or the chart's CRD copy is stale.
	$(VENV_PYTHON) hack/gen_install.py --check --kubectl $(KUBECTL)

.PHONY: verify
verify: verify-manifests verify-install ## Run every verify-* check.

.PHONY: lint
lint: setup ## Run ruff, mypy (strict on the package) and import-linter.
	$(VENV)/bin/ruff check operator tests hack
	$(VENV)/bin/ruff format --check operator tests hack
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

.PHONY: fmt
fmt: setup ## Format the code with ruff.
	$(VENV)/bin/ruff format operator tests hack
	$(VENV)/bin/ruff check --fix operator tests hack

.PHONY: install
install: cluster-up ## Install the CRD into the current cluster.
	$(KUBECTL) apply --server-side -f crds/apiservice.dev_apiservices.yaml

.PHONY: run
run: setup install ## Run the operator against the current kubeconfig.
	$(VENV)/bin/apiservice-operator

.PHONY: demo
demo: setup ## Main job: local cluster, CRD, operator and examples/minimal.yaml until Ready.
	hack/demo.sh

##@ Packaging

.PHONY: docker-build
docker-build: ## Build the operator image as $(IMAGE); needs a Docker engine with BuildKit.
	docker build -t $(IMAGE) .

.PHONY: chart-lint
chart-lint: $(HELM) ## Lint the Helm chart in charts/apiservice-operator.
	$(HELM) lint --strict charts/apiservice-operator

##@ Tests

.PHONY: test
test: setup ## Run the unit tests (no cluster).
	$(VENV_PYTHON) -m pytest tests/unit $(PYTEST_FLAGS)

.PHONY: test-cluster
test-cluster: setup binaries ## Run the cluster tests on the local control plane.
	$(VENV_PYTHON) -m pytest -m cluster $(PYTEST_FLAGS)

.PHONY: test-contract
test-contract: setup contract-deps ## Run the rendered configuration with real nginx, PostgreSQL and Redis.
	$(VENV_PYTHON) -m pytest -m contract $(PYTEST_FLAGS)

.PHONY: contract-deps
contract-deps: ## Install nginx, PostgreSQL and Redis from Debian's packages when missing.
	hack/install-contract-deps.sh

.PHONY: test-all
test-all: setup binaries contract-deps lint verify ## Run the whole suite, as CI does.
	$(VENV_PYTHON) -m pytest $(PYTEST_FLAGS)

.PHONY: test-e2e
test-e2e: test-cluster ## Alias of test-cluster, by the kubebuilder name.

##@ Benchmarks

.PHONY: bench
bench: setup binaries ## Run the benchmarks in bench/ on the local cluster (about an hour); see docs/benchmarks.md.
	PYTHONPATH=operator $(VENV_PYTHON) bench/convergence.py
	PYTHONPATH=operator $(VENV_PYTHON) bench/idle_traffic.py
	PYTHONPATH=operator $(VENV_PYTHON) bench/drift.py
	PYTHONPATH=operator $(VENV_PYTHON) bench/memory.py
