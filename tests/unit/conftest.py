# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make `pytest tests/unit` work from a fresh clone after `make collection`.

The collection is imported as `ansible_collections.codexops.runner` through the link that
`make collection` creates under .build/collections; the fake-credential factory lives in
tests/support and is imported as `support.fake_credentials`.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_TESTS = os.path.dirname(_HERE)
_REPO = os.path.dirname(_TESTS)
_COLLECTIONS = os.path.join(_REPO, '.build', 'collections')

for _path in (_TESTS, _COLLECTIONS):
    if _path not in sys.path:
        sys.path.insert(0, _path)

if not os.path.isdir(os.path.join(_COLLECTIONS, 'ansible_collections', 'codexops', 'runner', 'plugins')):
    raise RuntimeError('%s is missing the collection link; run `make collection` first.' % _COLLECTIONS)


# -- shared fixtures ------------------------------------------------------------------------------
# (imported here, after sys.path is set up)
import json  # noqa: E402

import pytest  # noqa: E402

FILE_STORE = 'cli_auth_credentials_store = "file"\n'


class CodexHomeFactory:
    """Builds CODEX_HOME directories in tmp_path the way a provisioned runner looks."""

    def __init__(self, root):
        self.root = root
        self.count = 0

    def __call__(self, auth=None, auth_mode=0o600, home_mode=0o700, config=FILE_STORE, name=None):
        """`auth`: a dict (dumped as JSON), bytes/str (written as is) or None (no auth.json);
        `config`: text of config.toml or None."""
        self.count += 1
        home = self.root / (name or 'codex-home-%d' % self.count)
        home.mkdir()
        home.chmod(home_mode)
        if auth is not None:
            path = home / 'auth.json'
            if isinstance(auth, dict):
                auth = json.dumps(auth, indent=2) + '\n'
            if isinstance(auth, str):
                auth = auth.encode('utf-8')
            path.write_bytes(auth)
            path.chmod(auth_mode)
        if config is not None:
            (home / 'config.toml').write_text(config)
        return home


@pytest.fixture
def codex_home(tmp_path):
    return CodexHomeFactory(tmp_path)


@pytest.fixture
def codex_as_test_user(monkeypatch):
    """For in-process module tests of what happens around a Codex run (idempotence, masking, check
    mode, restores) on homes in pytest's root-only tmp_path: the runner-side program runs as the
    user running the tests, root included. Only here is the never-as-root rule lifted; it is tested
    for real in test_codex_process.py (the runner is nobody) and by the attack suite
    (tests/hardening/test_untrusted_runner.py)."""
    from ansible_collections.codexops.runner.plugins.module_utils import _runner_process, privsep

    monkeypatch.setattr(_runner_process, 'runner_for', lambda uid, home_owner, purpose: privsep.current())
    monkeypatch.setattr(_runner_process, 'run',
                        lambda identity, argv, env, stdin=b'', timeout=120.0, capture=True:
                        _runner_process._spawn(argv, env, stdin, timeout, capture))
