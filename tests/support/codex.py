"""The pinned Codex CLI: its version (one pin, the codex_cli role's default, which the Makefile
reads too) and where `make codex` installs it (the Makefile exports the path as CODEXOPS_CODEX)."""

import os
import re
from pathlib import Path

import pytest

from support.require import require
from support.runner_access import runner_problem

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = REPO / 'roles' / 'codex_cli' / 'defaults' / 'main.yml'


def codex_version():
    """codex_cli_version from roles/codex_cli/defaults/main.yml: the one Codex version pin."""
    match = re.search(r'^codex_cli_version:\s*"?([0-9A-Za-z.+-]+)"?\s*$', DEFAULTS.read_text(), re.M)
    if not match:
        raise RuntimeError('%s has no codex_cli_version: the Codex version pin is read from there' % DEFAULTS)
    return match.group(1)


CODEX_VERSION = codex_version()
# As root a shared root-owned 0755 prefix the runner user can reach wherever the checkout is,
# otherwise the checkout's .cache (see the Makefile's CODEX_PREFIX).
DEFAULT_CODEX = ((Path('/var/cache/codexops') if os.geteuid() == 0 else REPO / '.cache')
                 / ('codex-%s' % CODEX_VERSION) / 'node_modules' / '.bin' / 'codex')
CODEX_TARBALL = REPO / '.cache' / ('codex-cli-%s-linux-x64.tar.gz' % CODEX_VERSION)


def codex_binary():
    """The path of the pinned Codex CLI. Missing: a skip saying `make codex` (a failure under CI).
    Installed where the runner user cannot run it: a failure, saying why."""
    path = os.environ.get('CODEXOPS_CODEX') or str(DEFAULT_CODEX)
    require(os.access(path, os.X_OK),
            'the pinned Codex CLI %s is not installed at %s; `make codex` installs it' % (CODEX_VERSION, path))
    reason = runner_problem('execute', path)
    if reason:
        pytest.fail('%s. The tests run Codex as that user: `make codex` installs the pinned CLI into '
                    '/var/cache/codexops (root-owned, 0755) for this reason; point CODEXOPS_CODEX only at a '
                    'CLI every user can reach.' % reason)
    return path
