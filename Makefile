# virnucpro: toolchain and everyday commands. Everything is installed inside this checkout:
#   .venv/                 Python venv (requirements.txt pins, then this package in editable mode)
#   tools/nextflow/lib/    Nextflow jars from Maven Central (tools/nextflow/pom.xml), run by tools/nextflow/nextflow
# Every target is idempotent: a second `make install` checks and returns in about a second.

SHELL        := /bin/bash
.SHELLFLAGS  := -euo pipefail -c
PYTHON       ?= python3
VENV         := .venv
VENV_PY      := $(VENV)/bin/python
NXF_DIR      := tools/nextflow
NXF_STAMP    := $(NXF_DIR)/lib/.installed
# Any Nextflow >= 25.04 works: `make demo NEXTFLOW=nextflow` uses the one on PATH instead of ours.
NEXTFLOW     ?= $(NXF_DIR)/nextflow
TEST_MODELS  := tests/models/TEST_MODELS.txt
OUTDIR       ?= results

# Root installs system packages directly; anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install java maven venv nextflow test-models test test-fast slurm test-slurm demo image image-tools image-archive test-image lint-schema clean

install: java venv nextflow

# Java 17+ runs Nextflow 25.04; installed from Debian only when no java is on PATH.
java:
	@if ! command -v java >/dev/null; then \
	  echo "java not found: installing openjdk-17-jre-headless"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq openjdk-17-jre-headless; \
	fi
	@v=$$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p'); \
	if [ "$${v%%.*}" -lt 17 ]; then echo "error: Java $$v found, Nextflow 25.04 needs Java 17 or newer" >&2; exit 1; fi

maven:
	@if ! command -v mvn >/dev/null; then \
	  echo "mvn not found: installing maven"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq maven; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@# Debian's python3 has no venv module until python3-venv is installed.
	[ -x $(VENV_PY) ] || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv \
	  && $(PYTHON) -m venv $(VENV); }
	$(VENV_PY) -m pip install -q -r requirements.txt
	$(VENV_PY) -m pip install -q --no-deps -e .
	touch $@

nextflow: $(NXF_STAMP)

$(NXF_STAMP): $(NXF_DIR)/pom.xml | java maven
	rm -rf $(NXF_DIR)/lib
	mvn -B -q -f $(NXF_DIR)/pom.xml dependency:copy-dependencies \
	  -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(NXF_DIR)/lib
	$(NXF_DIR)/nextflow -version | grep -q 'version 25.04'
	touch $@

# Tiny random-weight models in the real file formats, for tests and -profile test.
test-models: $(TEST_MODELS)

$(TEST_MODELS): $(VENV)/.installed $(wildcard virnucpro/models/*.py virnucpro/commands/make_test_models.py)
	bin/virnucpro make-test-models --outdir tests/models
	@test -f $@ || { echo "error: make-test-models wrote no $@" >&2; exit 1; }

# Every test. `test-fast` leaves out those that start other processes (tests/integration and the tests marked
# `integration`: Nextflow runs, kills, daemons): the lane to run while changing Python code.
test: install test-models
	$(VENV_PY) -m pytest tests

test-fast: install test-models
	$(VENV_PY) -m pytest -m "not integration" tests

# One-node SLURM for tests (Debian's slurm-wlm + munge, ~10 MB, ~20 s); installed only when slurmctld is missing.
slurm:
	@if ! command -v slurmctld >/dev/null && [ ! -x /usr/sbin/slurmctld ]; then $(SUDO) tests/slurm/install.sh; fi

# The SLURM tests alone: smoke test and the pipeline through SLURM (scripts in tests/slurm). They start
# daemons and device nodes, so they need root; `make test` runs them too when VIRNUCPRO_SLURM_TESTS=1.
test-slurm: install test-models slurm
	VIRNUCPRO_SLURM_TESTS=1 $(VENV_PY) -m pytest tests/integration/test_slurm.py tests/integration/test_slurm_pipeline.py

# The whole pipeline on the bundled test data with the tiny models (2 CPUs, a couple of minutes).
demo: install
	$(NEXTFLOW) run main.nf -profile test --outdir $(OUTDIR)

# The pipeline's container image, virnucpro:<version>, without an image registry (docs/install.md): a Debian 12
# root filesystem (mmdebstrap) + the pinned packages from PyPI, imported with podman. As root.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' virnucpro/__init__.py)
IMAGE   ?= virnucpro:$(VERSION)

image-tools:
	@if ! command -v mmdebstrap >/dev/null || ! command -v podman >/dev/null || ! command -v runc >/dev/null; then \
	  echo "installing mmdebstrap podman runc from Debian"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq mmdebstrap podman runc; \
	fi

image: image-tools
	$(SUDO) tools/image/build.sh $(IMAGE)

# For docker load and for `apptainer build x.sif docker-archive://...` (the cluster route).
image-archive:
	podman save --format docker-archive -o virnucpro-$(VERSION).docker.tar $(IMAGE)

# -profile test,podman from a bare clone of HEAD, against the venv run: the published results must be identical.
test-image: install
	@podman image exists $(IMAGE) || $(MAKE) image
	tools/image/test_image.sh

# nf-core's schema lint (nf-core tools from PyPI, in their own venv: they pin other versions than ours).
NFCORE_VERSION := 4.2.1
NFCORE_VENV    := tools/nf-core/.venv

$(NFCORE_VENV)/.installed:
	$(PYTHON) -m venv $(NFCORE_VENV)
	$(NFCORE_VENV)/bin/python -m pip install -q nf-core==$(NFCORE_VERSION)
	touch $@

lint-schema: nextflow $(NFCORE_VENV)/.installed
	PATH=$(CURDIR)/$(NXF_DIR):$$PATH $(NFCORE_VENV)/bin/nf-core pipelines schema lint nextflow_schema.json

clean:
	rm -rf work .nextflow .nextflow.log* $(OUTDIR)
