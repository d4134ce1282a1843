"""Integration fixtures: real ansible-playbook runs, the real Codex CLI, a loopback backend.

Every playbook run is made at -vvvv with --diff, and every test ends with a leak check: no test
secret may appear in any output, and every file holding one must be private to its owner. The
helpers are in tests/support (support.workspace, support.codex, support.local_fleet...), which
the tests import by name; this file holds only fixtures.
"""

import os
import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO / 'tests') not in sys.path:
    sys.path.insert(0, str(REPO / 'tests'))

# `backend` and `workspace` are pytest fixtures; importing them is how this suite gets them.
from support.backend_fixture import backend  # noqa: E402,F401 pylint: disable=unused-import
from support.workspace_fixture import workspace  # noqa: E402,F401 pylint: disable=unused-import


@pytest.fixture
def fake_crontab(tmp_path, monkeypatch):
    """A `crontab` for the cron module to find: it insists the command exists even with cron_file, which
    it writes itself. This one fails and leaves a mark if anything ever runs it."""
    marks = tmp_path / 'crontab-ran'
    stub = tmp_path / 'bin' / 'crontab'
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\necho "$@" >> %s\nexit 1\n' % shlex.quote(str(marks)))
    stub.chmod(0o755)
    monkeypatch.setenv('PATH', '%s:%s' % (stub.parent, os.environ['PATH']))
    yield
    assert not marks.exists(), 'crontab was run: ' + marks.read_text()
