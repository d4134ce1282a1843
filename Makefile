# codexops.runner: `make demo` and `make test` are all a newcomer needs (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
BUILD := $(abspath .build)
COLLECTIONS := $(BUILD)/collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/codexops/runner
CODEX_VERSION := 0.169.0
CODEX_PREFIX := $(abspath .cache)/codex-$(CODEX_VERSION)
CODEX := $(CODEX_PREFIX)/node_modules/.bin/codex

export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export CODEXOPS_CODEX := $(CODEX)
export PATH := $(BIN):$(PATH)


.PHONY: bench help demo test units integration molecule sanity lint venv codex codex-tarball fleet-deps collection clean

help:
	@echo "make demo   - install everything, provision a 3-runner local fleet, print its health"
	@echo "make test   - everything CI runs: unit, integration (real Codex CLI), molecule, sanity, lint, docs"
	@echo "make bench  - the fleet benchmark against the hand-written playbook (N=25 and N=100)"
	@echo "make test-matrix - unit + integration subset on ansible-core 2.19/Py3.11 and newest/Py3.13"

venv: $(BIN)/.installed
$(BIN)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Ansible finds the collection through a link: <collections>/ansible_collections/codexops/runner -> here.
collection: $(COLLECTION_LINK)
$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../../.. $@

# The real Codex CLI, pinned: the oracle for "does Codex accept what we provisioned".
codex: $(CODEX)
$(CODEX):
	npm install --silent --no-audit --no-fund --prefix $(CODEX_PREFIX) @openai/codex@$(CODEX_VERSION)
	$(CODEX) --version

# The air-gapped install artifact for the codex_cli role: a tarball of the installed npm prefix.
CODEX_TARBALL := $(abspath .cache)/codex-cli-$(CODEX_VERSION)-linux-x64.tar.gz
export CODEXOPS_CODEX_TARBALL := $(CODEX_TARBALL)
codex-tarball: $(CODEX_TARBALL)
$(CODEX_TARBALL): $(CODEX)
	tar -C $(CODEX_PREFIX) -cf - node_modules | gzip -1 > $@.tmp
	mv $@.tmp $@
	sha256sum $@ | cut -d' ' -f1 > $@.sha256

# openssh-server, iproute2 and sudo for the SSH fleet in network namespaces (tests/fleet).
fleet-deps:
	tests/fleet/install-deps.sh

demo: venv collection
	$(BIN)/python demo/run_demo.py

test: units integration hardening molecule sanity lint docs-check changelog-lint galaxy-import-check

units: venv collection
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

integration: venv collection codex codex-tarball fleet-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/integration tests/fleet

# Crash safety (SIGKILL), races with the real Codex, hostile input, leak audit, property tests.
hardening: venv collection codex
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/hardening

# Molecule scenarios (default driver, no containers), run from the collection root as molecule expects.
MOLECULE_SCENARIOS ?= local_fleet ssh_fleet
molecule: venv collection codex codex-tarball fleet-deps
	for scenario in $(MOLECULE_SCENARIOS); do $(BIN)/molecule test -s $$scenario; done

sanity: venv
	tests/sanity/run-offline.sh $(BIN)

lint: venv collection
	$(BIN)/ansible-lint --profile production

# The fleet benchmark against the hand-written baseline (README: Performance).
BENCH_ARGS ?= --hosts 25 100
bench: venv collection
	$(BIN)/python benchmarks/run_bench.py $(BENCH_ARGS)

.PHONY: docs docs-check changelog changelog-lint galaxy-import-check ee-context test-matrix

# Regenerate role docs (roles/<role>/README.md, docs/roles/<role>.md) from meta/argument_specs.yml.
docs: venv
	$(BIN)/python tests/docs/role_docs.py --write

# Role docs current; ansible-doc on every module/filter/role; antsibull-docs lint; troubleshooting page
# covers every code; every EXAMPLES block and the docs/awx.md recipe run.
docs-check: venv collection codex
	tests/docs/docs-check.sh $(BIN) docs

# antsibull-changelog lint + lint-changelog-yaml, CHANGELOG.rst current, galaxy.yml version.
changelog-lint: venv collection
	tests/docs/docs-check.sh $(BIN) changelog

changelog: venv collection
	PATH="$$(tests/docs/tools-venv.sh docs requirements-docs.txt):$$PATH" antsibull-changelog generate

# ansible-galaxy collection build, then galaxy-importer on the tarball; fails on any warning.
galaxy-import-check: venv
	tests/docs/galaxy-import-check.sh $(BIN)

# EE build context (.build/ee/context, offline); then podman build (docs/awx.md).
ee-context: venv
	tests/docs/ee-context.sh $(BIN)

# Units + integration subset on ansible-core 2.19/Py3.11 and newest ansible-core/Py3.13; modules on a Py3.9 target.
test-matrix: venv collection codex
	tests/matrix/run.sh

clean:
	rm -rf $(BUILD) tests/output
