"""The suite's permission-sensitive tests, run again from a checkout under a 0700 directory.

The tests run Codex (and whatever Codex reads) as an unprivileged runner user, `nobody` when they run as
root. A newcomer's clone under /root or a `mktemp -d` has a 0700 directory on the way that this user
cannot traverse; CI's clone does not, so CI alone would never notice the runner user being handed
something inside the checkout. Here a copy of the checkout (what git tracks plus untracked files that
are not ignored: what a clone holds) is placed under a fresh 0700 `mktemp -d`, in a directory whose name
holds a space, and the tests in which the runner user runs Codex - through a module, through the
keepalive script, directly as a CI job would, through verify's login status - run there.

Also: a Codex CLI the runner user cannot reach fails early, saying which directory is in the way and what
to do, both in `make codex` (tests/support/install-codex.sh) and in the tests' own lookup.
"""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from support import runner_access
from support.codex import CODEX_VERSION, codex_binary
from support.require import required
from support.workspace import OUTPUT, REPO

PERMISSION_SENSITIVE = [
    'tests/integration/test_targets.py::test_codex_access_token_login',
    'tests/integration/test_playbooks.py::test_verify_reports_what_breaks_runs_in_practice',
    'tests/integration/test_lifecycle.py::test_rotation_switches_on_a_good_token_and_keeps_the_old_login_on_a_bad_one',
    'tests/integration/test_keepalive.py::test_installed_unit_refreshes_real_codex_credentials',
]

# Only as root is the runner user another user; CI runs as root, and there not being root is a failure.
_needs_root = required(os.geteuid() == 0, 'the runner user is another user only when the tests run as root (CI does)')


@pytest.fixture
def private_dir():
    """A fresh `mktemp -d` (0700, like /root), removed afterwards."""
    parent = tempfile.mkdtemp(prefix='codexops-private-')
    try:
        yield Path(parent)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def copy_checkout(destination):
    """What a clone of this checkout holds: tracked files and untracked ones that are not ignored."""
    listing = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=str(REPO),
                             stdout=subprocess.PIPE, check=True).stdout.decode().split('\0')
    for name in filter(None, listing):
        source = REPO / name
        if source.is_symlink() or source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(str(source), str(target), follow_symlinks=False)


def test_runner_user_tests_pass_from_a_checkout_under_a_0700_directory(private_dir):
    assert stat.S_IMODE(private_dir.stat().st_mode) == 0o700
    # The premise: the runner user really cannot reach anything in this checkout.
    assert runner_access.problem(runner_access.runner_owner(), 'traverse', str(private_dir)), \
        'the runner user can traverse %s: this test would prove nothing' % private_dir
    checkout = private_dir / 'private checkout'
    copy_checkout(checkout)
    # This venv, not a new one (its stamp is newer than the copied requirements, so make keeps it). A .venv
    # that is itself a link is not ignored by git (`.venv/` matches directories only) and was copied.
    venv = checkout / '.venv'
    if os.path.lexists(str(venv)):
        venv.unlink()
    venv.symlink_to(sys.prefix)
    # Set up by the copy's own Makefile, as a newcomer's clone would be: nothing of this run's setup (the Codex
    # CLI it found, its collections path) is passed on.
    env = dict((key, value) for key, value in os.environ.items()
               if key not in ('CODEXOPS_CODEX', 'CODEXOPS_CODEX_TARBALL', 'ANSIBLE_COLLECTIONS_PATH', 'MAKEFLAGS',
                              'MFLAGS', 'MAKELEVEL'))
    # Two workers: the four tests take about as long as the slowest one.
    proc = subprocess.run(['make', 'pytest', 'PYTEST_ARGS=-n 2 -rfEs ' + ' '.join(PERMISSION_SENSITIVE)],
                          cwd=str(checkout), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900,
                          check=False)
    output = proc.stdout.decode('utf-8', 'replace')
    logs = checkout / 'tests' / 'output' / 'logs'
    if proc.returncode != 0 and logs.is_dir():
        kept = OUTPUT / 'logs' / 'private-checkout'
        shutil.rmtree(str(kept), ignore_errors=True)
        shutil.copytree(str(logs), str(kept))
    assert proc.returncode == 0, 'make pytest in %s:\n%s' % (checkout, output[-8000:])
    assert '%d passed' % len(PERMISSION_SENSITIVE) in output and 'skipped' not in output, output[-3000:]


def stub_codex(prefix):
    """An executable that answers like the pinned CLI, at PREFIX/node_modules/.bin/codex."""
    path = prefix / 'node_modules' / '.bin' / 'codex'
    path.parent.mkdir(parents=True)
    path.write_text('#!/bin/sh\necho "codex-cli %s"\n' % CODEX_VERSION)
    path.chmod(0o755)
    return path


def test_make_codex_refuses_a_prefix_the_runner_user_cannot_reach(private_dir):
    prefix = private_dir / 'prefix'
    stub_codex(prefix)
    proc = subprocess.run([str(REPO / 'tests' / 'support' / 'install-codex.sh'), str(prefix), CODEX_VERSION],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert 'the runner user nobody cannot execute %s' % (prefix / 'node_modules' / '.bin' / 'codex') in err, err
    assert 'cannot traverse %s (drwx------, owner root)' % private_dir in err, err
    assert '/var/cache/codexops/codex-%s' % CODEX_VERSION in err, err


def test_tests_refuse_a_codex_the_runner_user_cannot_reach(private_dir, monkeypatch):
    codex = stub_codex(private_dir / 'prefix')
    monkeypatch.setenv('CODEXOPS_CODEX', str(codex))
    with pytest.raises(pytest.fail.Exception) as failed:
        codex_binary()
    message = str(failed.value)
    assert 'cannot traverse %s (drwx------, owner root)' % private_dir in message, message
    assert 'make codex' in message, message
