#!/usr/bin/env bash
# Usage: tools-venv.sh NAME REQUIREMENTS_FILE -> prints the bin directory of .build/tools/NAME, a venv
# with REQUIREMENTS_FILE installed (from PyPI). Reinstalls only when the requirements file changed.
# The tools get their own venvs so they never change the versions the tests run with in .venv.
set -euo pipefail
name=${1:?usage: tools-venv.sh NAME REQUIREMENTS_FILE}
requirements=${2:?usage: tools-venv.sh NAME REQUIREMENTS_FILE}
repo=$(cd "$(dirname "$0")/../.." && pwd)
venv=$repo/.build/tools/$name
python=${PYTHON:-python3}
stamp=$venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" > "$venv.log" 2>&1; then
        cat "$venv.log" >&2
        rm -rf "$venv"
        exit 1
    fi
    echo "$want" > "$stamp"
fi
echo "$venv/bin"
