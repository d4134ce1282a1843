#!/usr/bin/env bash
# The version matrix: the controller side on the oldest and the newest ansible-core this collection
# supports, the module code on the oldest target Python. Usage:
#   tests/matrix/run.sh [ENTRY...]        entries: core217-py312 core218-py311 core219-py311
#                                         core-latest-py313 (default: all)
# Each entry gets its own venv, .build/matrix/<entry> (made once; `core-latest` is upgraded to the newest
# ansible-core on PyPI at every run, so a new release is tried as soon as it is out), and runs with it:
#   - the unit tests (tests/unit)
#   - the module integration targets (tests/integration/test_targets.py: check -> run -> idempotence of
#     every module with the real Codex CLI, and every module on a Python 3.9 target), the provision ->
#     verify playbook round trip, and the docs tests (every EXAMPLES block, the AWX recipe)
# Needs `make venv collection codex` first (the collection link, the pinned Codex CLI). Logs and a summary
# go to tests/output/matrix/. Interpreters: MATRIX_PY311, MATRIX_PY312, MATRIX_PY313, CODEXOPS_PYTHON39
# override the pyenv defaults.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo" || exit 2

py311=${MATRIX_PY311:-/root/.pyenv/versions/3.11.7/bin/python}
py312=${MATRIX_PY312:-/root/.pyenv/versions/3.12.1/bin/python}
py313=${MATRIX_PY313:-/root/.pyenv/versions/3.13.0/bin/python}
export CODEXOPS_PYTHON39=${CODEXOPS_PYTHON39:-/root/.pyenv/versions/3.9.18/bin/python}
[ -x "$py311" ] || py311=$(command -v python3.11 || true)
[ -x "$py312" ] || py312=$(command -v python3.12 || true)
[ -x "$py313" ] || py313=$(command -v python3.13 || true)

# The lowest ansible-core entry (coreNNN) is meta/runtime.yml's requires_ansible floor;
# tests/unit/test_requires_ansible.py keeps the two equal. Add an entry here to try another ansible-core;
# with_units=no skips the unit tests, which need ansible-core 2.19+ (patch_module_args).
# core-latest has no upper bound and is upgraded at every run: the newest release on PyPI (2.21.x needs
# Python 3.12+ on the controller, hence 3.13). 2.17 supports controller Python 3.10-3.12, 2.18 3.11-3.13.
declare -A python=([core217-py312]=$py312 [core218-py311]=$py311 [core219-py311]=$py311
                   [core-latest-py313]=$py313)
declare -A core=([core217-py312]='ansible-core>=2.17,<2.18' [core218-py311]='ansible-core>=2.18,<2.19'
                 [core219-py311]='ansible-core>=2.19,<2.20' [core-latest-py313]='ansible-core')
declare -A upgrade=([core217-py312]='' [core218-py311]='' [core219-py311]='' [core-latest-py313]='--upgrade')
declare -A with_units=([core217-py312]=no [core218-py311]=no [core219-py311]=yes [core-latest-py313]=yes)
test_tools=(pytest pytest-xdist hypothesis pyyaml)

units=(tests/unit)
integration=(
    tests/integration/test_targets.py
    'tests/integration/test_playbooks.py::test_provision_check_then_run_then_idempotent_then_verify'
    tests/docs
)

out=$repo/tests/output/matrix
mkdir -p "$out"
entries=("$@")
[ ${#entries[@]} -gt 0 ] || entries=(core217-py312 core218-py311 core219-py311 core-latest-py313)

if [ ! -d .build/collections/ansible_collections/codexops/runner/plugins ]; then
    echo "the collection link is missing: run make collection (make test-matrix does)" >&2
    exit 2
fi
"$CODEXOPS_PYTHON39" -c 'import sys; assert sys.version_info[:2] == (3, 9)' 2>/dev/null \
    || { echo "no Python 3.9 at $CODEXOPS_PYTHON39 for the target-compatibility test (set CODEXOPS_PYTHON39)" >&2; exit 2; }

run_step() {  # entry step venv_bin args... -> prints "passed"/"FAILED (see log)"; returns its status
    local entry=$1 step=$2 bin=$3
    shift 3
    local log=$out/$entry-$step.log
    if "$bin/python" -m pytest -q -p no:cacheprovider "$@" > "$log" 2>&1; then
        tail -n 1 "$log"
        return 0
    fi
    tail -n 1 "$log"
    return 1
}

# The summary is collected here and written at the end, so runs of different entries side by side each
# print their own table (the last one to finish leaves tests/output/matrix/summary.md).
summary=$out/summary.md
rows="| entry | controller Python | ansible-core | unit tests | integration subset | result |
|---|---|---|---|---|---|"
row() { rows+=$'\n'"$1"; }
failed=0 passed=0
for entry in "${entries[@]}"; do
    if [ -z "${python[$entry]+set}" ]; then
        echo "unknown matrix entry: $entry (known: ${!python[*]})" >&2
        exit 2
    fi
    interpreter=${python[$entry]}
    venv=$repo/.build/matrix/$entry
    echo "== $entry: $interpreter, ${core[$entry]}"
    if [ -z "$interpreter" ] || ! "$interpreter" -c 'import sys' 2>/dev/null; then
        row "| $entry | missing | - | - | - | FAILED: no interpreter |"
        failed=$((failed + 1))
        continue
    fi
    if [ ! -x "$venv/bin/python" ]; then
        "$interpreter" -m venv "$venv" || { failed=$((failed + 1)); continue; }
    fi
    # shellcheck disable=SC2086  # the upgrade flag is empty or one word
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check ${upgrade[$entry]} "${core[$entry]}" \
            "${test_tools[@]}" > "$out/$entry-pip.log" 2>&1; then
        echo "pip install failed; see $out/$entry-pip.log" >&2
        row "| $entry | - | - | - | - | FAILED: pip install |"
        failed=$((failed + 1))
        continue
    fi
    py_version=$("$venv/bin/python" -c 'import platform; print(platform.python_version())')
    core_version=$("$venv/bin/python" -c 'from ansible.release import __version__; print(__version__)')
    result=passed
    core_cell=$core_version
    if [ -n "${upgrade[$entry]}" ]; then
        # The unbounded entry must run the newest release its Python can install: ask PyPI (pip index
        # filters by this interpreter) and fail the entry when pip left an older one in the venv.
        newest=$("$venv/bin/pip" index versions --disable-pip-version-check ansible-core 2>/dev/null \
                 | sed -n 's/^ansible-core (\(.*\))$/\1/p')
        if [ -z "$newest" ]; then
            core_cell="$core_version (newest on PyPI: unknown, index not reachable)"
        elif [ "$newest" = "$core_version" ]; then
            core_cell="$core_version (newest on PyPI)"
        else
            core_cell="$core_version (PyPI has $newest)"
            result=FAILED
        fi
    fi
    echo "   Python $py_version, ansible-core $core_cell"
    unit_line='skipped (needs ansible-core 2.19+)'
    if [ "${with_units[$entry]}" = yes ]; then
        unit_line=$(run_step "$entry" units "$venv/bin" "${units[@]}") || result=FAILED
    fi
    echo "   units: $unit_line"
    integration_line=$(run_step "$entry" integration "$venv/bin" "${integration[@]}") || result=FAILED
    echo "   integration subset: $integration_line"
    row "| $entry | $py_version | $core_cell | $unit_line | $integration_line | $result |"
    if [ "$result" = passed ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done

printf '%s\n' "$rows" > "$summary"
echo
printf '%s\n' "$rows"
echo "(target Python for the modules: $("$CODEXOPS_PYTHON39" -c 'import platform; print(platform.python_version())'), in test_modules_on_target_python39; logs in tests/output/matrix/)"
echo "matrix: $passed passed, $failed failed"
[ "$failed" = 0 ]
