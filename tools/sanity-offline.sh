#!/usr/bin/env bash
# ansible-test sanity, offline. ansible-test wants the collection at
# .../ansible_collections/codexops/runner inside a git work tree, and bootstraps each sanity venv
# with a get-pip script it downloads from outside the package registries; here a stand-in that uses
# ensurepip + pip (which do reach PyPI) takes its place. Usage: tools/sanity-offline.sh VENV_BIN_DIR
set -euo pipefail
bin=${1:?usage: tools/sanity-offline.sh VENV_BIN_DIR}
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${CODEXOPS_SANITY_DIR:-$repo/.build/sanity}
tree=$work/ansible_collections/codexops/runner
python_version=$("$bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# ansible-test keeps its venvs under $HOME/.ansible/test: a scratch HOME keeps them out of root's.
export HOME=$work/home
mkdir -p "$HOME/.ansible/test/cache"
# The pip version ansible-test bootstraps is pinned in its own source; read it from there.
pip_version=$("$bin/python" - <<'PY'
import os, re, ansible_test
source = os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')
print(re.search(r"pip='([0-9.]+)'", open(source).read()).group(1).replace('.', '_'))
PY
)
cp "$repo/tools/get_pip_stand_in.py" "$HOME/.ansible/test/cache/get_pip_${pip_version}.py"

rm -rf "$tree"
mkdir -p "$tree"
# Copy what git tracks plus untracked files that are not ignored: exactly what a clone would hold.
# (Skip files deleted in the work tree but still in the index.)
(cd "$repo" && git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d "" f; do [ -e "$f" ] && printf "%s\0" "$f"; done) \
  | (cd "$repo" && xargs -0 cp --parents -t "$tree")
(cd "$tree" && git init -q && git add -A && git -c user.name=sanity -c user.email=sanity@invalid commit -qm sanity)
cd "$tree"
"$bin/ansible-test" sanity --color no --python "$python_version" "$@"
