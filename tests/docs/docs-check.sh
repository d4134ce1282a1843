#!/usr/bin/env bash
# Documentation and changelog checks, offline except for PyPI (the tools venv). Usage:
#   tests/docs/docs-check.sh VENV_BIN_DIR [docs|changelog|all]
# docs:      role docs current (tools/role_docs.py), ansible-doc renders every module, filter and role,
#            antsibull-docs lint-collection-docs, pytest tests/docs (troubleshooting page covers every
#            code; generated role docs; every EXAMPLES block runs)
# changelog: antsibull-changelog lint + lint-changelog-yaml, CHANGELOG.rst is what changelog.yaml
#            renders, galaxy.yml's version is not behind the last release
set -euo pipefail
bin=${1:?usage: docs-check.sh VENV_BIN_DIR [docs|changelog|all]}
what=${2:-all}
repo=$(cd "$(dirname "$0")/../.." && pwd)
collection=$repo/.build/collections/ansible_collections/codexops/runner
export ANSIBLE_COLLECTIONS_PATH=$repo/.build/collections ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export ANSIBLE_NOCOLOR=1 ANSIBLE_DEPRECATION_WARNINGS=0
tools=$("$repo/tests/docs/tools-venv.sh" docs "$repo/requirements-docs.txt")
cd "$repo"

check_docs() {
    echo "== role docs are generated from meta/argument_specs.yml"
    "$bin/python" tools/role_docs.py --check

    echo "== ansible-doc renders every module, filter and role"
    local failed=0 kind name out path entries=()
    for path in plugins/modules/*.py; do name=${path##*/}; entries+=("module:${name%.py}"); done
    for path in plugins/filter/*.yml; do name=${path##*/}; entries+=("filter:${name%.yml}"); done
    for path in roles/*/; do path=${path%/}; entries+=("role:${path##*/}"); done
    for entry in "${entries[@]}"; do
        kind=${entry%%:*} name=${entry#*:}
        if ! out=$("$bin/ansible-doc" -t "$kind" "codexops.runner.$name" 2>&1) || grep -q '\[\(WARNING\|ERROR\)\]' <<<"$out"; then
            echo "ansible-doc -t $kind codexops.runner.$name:"; echo "$out" | head -20; failed=1
        fi
    done
    # No plugin without documentation (a filter in a .py file needs plugins/filter/<name>.yml).
    for kind in module filter; do
        if out=$("$bin/ansible-doc" -t "$kind" --list codexops.runner 2>&1) && grep -qi 'undocumented\|missing' <<<"$out"; then
            echo "$out"; failed=1
        fi
    done
    [ "$failed" = 0 ]

    echo "== antsibull-docs lint-collection-docs"
    PATH=$tools:$PATH "$tools/antsibull-docs" lint-collection-docs --plugin-docs --validate-collection-refs dependent "$collection"

    echo "== pytest tests/docs"
    "$bin/python" -m pytest -q -p no:cacheprovider tests/docs
}

check_changelog() {
    echo "== antsibull-changelog lint"
    "$tools/antsibull-changelog" lint
    "$tools/antsibull-changelog" lint-changelog-yaml changelogs/changelog.yaml
    echo "== CHANGELOG.rst is what changelogs/changelog.yaml renders"
    local rendered
    rendered=$(mktemp)
    PATH=$tools:$PATH "$tools/antsibull-changelog" generate --output "$rendered" >/dev/null
    if ! diff -u CHANGELOG.rst "$rendered"; then
        rm -f "$rendered"
        echo "CHANGELOG.rst is stale: run antsibull-changelog generate (make changelog)" >&2
        return 1
    fi
    rm -f "$rendered"
    echo "== galaxy.yml's version is not behind the last release"
    "$tools/python" - <<'PY'
import sys
import yaml
from packaging.version import Version
version = yaml.safe_load(open('galaxy.yml'))['version']
releases = list((yaml.safe_load(open('changelogs/changelog.yaml')).get('releases') or {}))
latest = max(releases, key=Version) if releases else None
if latest and Version(version) < Version(latest):
    sys.exit('galaxy.yml says %s but changelogs/changelog.yaml already released %s' % (version, latest))
print('galaxy.yml %s; last release in changelog.yaml: %s' % (version, latest))
PY
}

case $what in
    docs) check_docs ;;
    changelog) check_changelog ;;
    all) check_changelog; check_docs ;;
    *) echo "unknown check: $what" >&2; exit 2 ;;
esac
echo "docs-check ($what): OK"
