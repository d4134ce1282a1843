#!/usr/bin/env bash
# Install the pinned Codex CLI (npm @openai/codex@VERSION) into PREFIX, unless it is already there, and
# make sure the tests' runner user can run it. Usage: tests/support/install-codex.sh PREFIX VERSION
#
# The tests run Codex as an unprivileged runner user (`nobody` when they run as root). That user cannot
# reach a CLI inside a checkout whose parents include a 0700 directory (/root/..., a `mktemp -d`), so
# as root the Makefile passes a shared, root-owned prefix outside any checkout
# (/var/cache/codexops/codex-VERSION, directories 0755): a cache, reused by every checkout; remove it
# any time and `make codex` installs it again. The install goes to a temporary directory beside PREFIX
# under umask 022 and is renamed into place once `codex --version` answers, so PREFIX is either
# complete or absent, whatever umask the caller has and however many checkouts install at once.
set -euo pipefail
prefix=${1:?usage: install-codex.sh PREFIX VERSION}
version=${2:?usage: install-codex.sh PREFIX VERSION}
here=$(cd "$(dirname "$0")" && pwd)
codex=$prefix/node_modules/.bin/codex
umask 022

installed() { [[ -x $codex ]] && [[ $("$codex" --version 2>/dev/null) == "codex-cli $version" ]]; }

if ! installed; then
    if [[ -e $prefix ]]; then
        echo "install-codex.sh: $prefix exists but holds no working codex-cli $version; remove it and rerun" >&2
        exit 1
    fi
    parent=$(dirname "$prefix")
    mkdir -p "$parent"
    tmp=$(mktemp -d "$parent/.codex-$version.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    chmod 0755 "$tmp"
    npm install --silent --no-audit --no-fund --prefix "$tmp" "@openai/codex@$version"
    [[ $("$tmp/node_modules/.bin/codex" --version) == "codex-cli $version" ]] ||
        { echo "install-codex.sh: the installed CLI does not report codex-cli $version" >&2; exit 1; }
    # Another checkout may have finished first: keep whichever landed.
    mv -T "$tmp" "$prefix" 2>/dev/null || installed ||
        { echo "install-codex.sh: could not move the install into $prefix" >&2; exit 1; }
fi
"$codex" --version

if [[ $(id -u) == 0 ]]; then
    # The user the tests run Codex as (tests/support/runner_access.py: runner_owner()).
    if reason=$("${PYTHON:-python3}" "$here/runner_access.py" nobody execute "$codex"); then
        echo "install-codex.sh: the runner user nobody can run $codex"
    else
        echo "install-codex.sh: $reason." >&2
        echo "install-codex.sh: the tests run Codex as that user. Install the CLI where every user can reach it:" \
             "leave CODEX_PREFIX at its default (/var/cache/codexops/codex-$version, root-owned 0755)" \
             "or give a prefix whose every parent directory is world-traversable." >&2
        exit 1
    fi
fi
