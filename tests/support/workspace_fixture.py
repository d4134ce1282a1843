"""The `workspace` pytest fixture the integration and hardening suites share (import it into a
conftest, as backend_fixture's `backend`): a Workspace in a fresh directory the runner user can
reach, scanned for leaked secrets when the test ends."""

import os
import shutil
import tempfile

import pytest

from support.backend_fixture import backend  # noqa: F401 pylint: disable=unused-import
from support.runner_access import runner_problem
from support.workspace import Workspace


@pytest.fixture
def workspace(request, backend):  # pylint: disable=redefined-outer-name
    root = tempfile.mkdtemp(prefix='codexops-it-')
    os.chmod(root, 0o755)  # the runner user (nobody) must be able to reach its CODEX_HOME
    reason = runner_problem('traverse', os.path.dirname(root))
    if reason:
        os.rmdir(root)
        pytest.fail('%s. Each test\'s CODEX_HOME lives there: set TMPDIR to a directory every user can '
                    'traverse (e.g. TMPDIR=/tmp).' % reason)
    space = Workspace(root, request.node.name, backend)
    yield space
    leaks = space.leaks()
    shutil.rmtree(root, ignore_errors=True)
    assert not leaks, 'secrets leaked:\n' + '\n'.join(leaks)
