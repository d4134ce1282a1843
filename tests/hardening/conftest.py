"""Fixtures of the hardening tests: crash safety, races with the real Codex CLI, hostile input,
leak audits and property-based tests of the auth.json model and the TOML editor. The helpers are
in hardening_support.py.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from attack_support import World
from hardening_support import SeedWorker
# `backend` and `workspace` are pytest fixtures; importing them is how this suite gets them.
from support.backend_fixture import backend  # noqa: F401 pylint: disable=unused-import
from support.workspace_fixture import workspace  # noqa: F401 pylint: disable=unused-import


@pytest.fixture(scope='module')
def seed_worker():
    """A pre-imported interpreter that forks one module run per call (tens of ms instead of a
    Python start-up): for the cases that run modules many times."""
    worker = SeedWorker()
    yield worker
    worker.close()


@pytest.fixture
def world():
    """The attack suites' world: a runner home, root-owned decoys around it, the attacker (attack_support)."""
    space = World()
    try:
        yield space
    finally:
        space.close()


@pytest.fixture
def scratch():
    """A scratch directory the runner user (nobody, when root) can reach. Tests undo their own
    mounts and immutable flags; a mount left behind is detached here before the tree is removed."""
    root = Path(tempfile.mkdtemp(prefix='codexops-hard-'))
    os.chmod(str(root), 0o755)
    yield root
    with open('/proc/self/mounts') as handle:
        points = [line.split()[1] for line in handle]
    for point in sorted(points, reverse=True):
        if point.startswith(str(root) + '/'):
            subprocess.run(['umount', '-l', point], check=False)
    shutil.rmtree(str(root), ignore_errors=True)
