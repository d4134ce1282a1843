#!/usr/bin/env bash
# Build the collection as Galaxy receives it and run the Galaxy importer's own checks on the tarball
# (galaxy-importer: MANIFEST/FILES, metadata and tags, ansible-doc on every plugin, role READMEs and
# metadata, changelog, ansible-lint with the importer's own options). Fails on any importer warning or
# error. Usage: tests/docs/galaxy-import-check.sh VENV_BIN_DIR
#
# The importer runs in Galaxy's conditions, not the checkout's: `env -i` (no ANSIBLE_COLLECTIONS_PATH or
# any other variable the Makefile exports), a fresh HOME, TMPDIR and working directory outside the
# checkout holding only the tarball and the importer config, and nothing but the importer's own venv and
# the system directories on PATH. The environment is printed with the result.
set -euo pipefail
bin=${1:?usage: galaxy-import-check.sh VENV_BIN_DIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
tools=$("$repo/tests/docs/tools-venv.sh" release "$repo/requirements-release.txt")
work=$repo/.build/galaxy-import
rm -rf "$work"
mkdir -p "$work"
"$bin/ansible-galaxy" collection build --output-path "$work" "$repo"
tarballs=("$work"/codexops-runner-*.tar.gz)
[ "${#tarballs[@]}" = 1 ] && [ -f "${tarballs[0]}" ] || { echo "expected one tarball in $work" >&2; exit 1; }
tarball=${tarballs[0]}
echo "== $(basename "$tarball"): $(tar tzf "$tarball" | grep -vc '/$') files"

# Outside the checkout: ansible-lint, run by the importer on the extracted tarball, would otherwise find
# the checkout's git root and .ansible-lint above it.
galaxy=$(mktemp -d "${TMPDIR:-/tmp}/codexops-galaxy-import.XXXXXX")
trap 'rm -rf "$galaxy"' EXIT
mkdir "$galaxy/home" "$galaxy/tmp" "$galaxy/import"
cp "$tarball" "$galaxy/import/"
cp "$repo/tests/docs/galaxy-importer.cfg" "$galaxy/galaxy-importer.cfg"
clean_env=(
    "PATH=$tools:/usr/local/bin:/usr/bin:/bin"
    "HOME=$galaxy/home"
    "TMPDIR=$galaxy/tmp"
    "LANG=C.UTF-8"
    "GALAXY_IMPORTER_CONFIG=$galaxy/galaxy-importer.cfg"
)
status=0
(cd "$galaxy/import" && env -i "${clean_env[@]}" \
    "$tools/python" -m galaxy_importer.main "$(basename "$tarball")") > "$work/importer.log" 2>&1 || status=$?
{
    echo "== galaxy-importer environment (env -i; cwd $galaxy/import holds only the tarball):"
    printf '   %s\n' "${clean_env[@]}"
    echo "== galaxy-importer $("$tools/python" -c 'import importlib.metadata as m; print(m.version("galaxy-importer"))')," \
         "ansible-lint $("$tools/python" -c 'import importlib.metadata as m; print(m.version("ansible-lint"))')," \
         "ansible-core $("$tools/python" -c 'import importlib.metadata as m; print(m.version("ansible-core"))')"
} > "$work/environment.txt"
cat "$work/environment.txt" "$work/importer.log"
if [ "$status" != 0 ] || grep -qE '^(WARNING|ERROR)' "$work/importer.log"; then
    echo "galaxy-importer reported problems (exit $status); see above" >&2
    exit 1
fi
echo "galaxy-import-check: OK (no importer warnings)"
