#!/usr/bin/env bash
# Build the collection as Galaxy receives it and run the Galaxy importer's own checks on the tarball
# (galaxy-importer: MANIFEST/FILES, metadata and tags, ansible-doc on every plugin, role READMEs and
# metadata, changelog, ansible-lint with the importer's own options). Fails on any importer warning or
# error. Usage: tests/docs/galaxy-import-check.sh VENV_BIN_DIR
set -euo pipefail
bin=${1:?usage: galaxy-import-check.sh VENV_BIN_DIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
tools=$("$repo/tests/docs/tools-venv.sh" release "$repo/requirements-release.txt")
work=$repo/.build/galaxy-import
rm -rf "$work"
mkdir -p "$work"
"$bin/ansible-galaxy" collection build --output-path "$work" "$repo"
tarball=$(echo "$work"/codexops-runner-*.tar.gz)
echo "== $(basename "$tarball"): $(tar tzf "$tarball" | grep -vc '/$') files"
cd "$work"
status=0
PATH=$tools:$PATH GALAXY_IMPORTER_CONFIG=$repo/tests/docs/galaxy-importer.cfg \
    "$tools/python" -m galaxy_importer.main "$tarball" > importer.log 2>&1 || status=$?
cat importer.log
if [ "$status" != 0 ] || grep -qE '^(WARNING|ERROR)' importer.log; then
    echo "galaxy-importer reported problems (exit $status); see above" >&2
    exit 1
fi
echo "galaxy-import-check: OK (no importer warnings)"
