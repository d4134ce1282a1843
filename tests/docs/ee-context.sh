#!/usr/bin/env bash
# The execution environment's build context, offline: build the collection tarball, run
# `ansible-builder create` on execution-environment.yml (-> .build/ee/context, with a Containerfile),
# then do offline what the image build's galaxy and builder stages do with the collection: install it
# from the context and run ansible-builder's dependency introspection on it, which must find the secret
# stores' Python libraries (meta/ee-requirements.txt) and no system requirement. Build the image itself with podman or docker (see docs/awx.md).
# Usage: tests/docs/ee-context.sh VENV_BIN_DIR
set -euo pipefail
bin=${1:?usage: ee-context.sh VENV_BIN_DIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
tools=$("$repo/tests/docs/tools-venv.sh" release "$repo/requirements-release.txt")
work=$repo/.build/ee
rm -rf "$work"
mkdir -p "$work"
cd "$repo"
"$bin/ansible-galaxy" collection build --output-path "$work" .
mv "$work"/codexops-runner-*.tar.gz "$work/codexops-runner.tar.gz"
"$tools/ansible-builder" create -f execution-environment.yml --context "$work/context" --output-filename Containerfile -v 1

echo "== the galaxy stage: install the collection from the build context (no Galaxy server)"
ANSIBLE_COLLECTIONS_PATH=$work/installed ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false \
    "$bin/ansible-galaxy" collection install --offline --force -p "$work/installed" \
    "$work/context/_build/collections/codexops-runner.tar.gz"
test -f "$work/installed/ansible_collections/codexops/runner/MANIFEST.json"
echo "== the builder stage: dependency introspection of the installed collections"
introspection=$("$tools/python" "$work/context/_build/scripts/introspect.py" introspect "$work/installed")
echo "$introspection"
# The collection declares exactly the secret stores' client libraries (meta/ee-requirements.txt), no
# system package; anything else is a new dependency the EE definition and docs/awx.md must say.
declared=$(grep 'from collection codexops' <<<"$introspection" | sed -n "s/^- '\{0,1\}\([A-Za-z0-9_.-]*\).*/\1/p" | sort | tr '\n' ' ')
if [ "$declared" != "boto3 hvac " ] || sed -n '/^system:/,$p' <<<"$introspection" | grep -q codexops; then
    echo "the collection's declared dependencies are now: ${declared:-none} (expected boto3 hvac, no system" \
         "package); the EE definition and docs/awx.md must say so" >&2
    exit 1
fi
echo "ee-context: OK: $work/context/Containerfile"
