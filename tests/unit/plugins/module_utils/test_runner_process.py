# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_runner_process: a runner-side program never runs as root, and no wait on it is unbounded.

Run as root; the runner is nobody (65534). What the runner can do to a program it owns (stop it, keep
its pipe open, never read its stdin) must end at the deadline. ptrace holding a zombie is played for
real by the attack suite (tests/hardening/test_untrusted_runner.py)."""

import os
import shutil
import tempfile
import time

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import _runner_process
from ansible_collections.codexops.runner.plugins.module_utils import privsep

NOBODY = 65534
ENV = {'PATH': '/usr/bin:/bin'}


@pytest.fixture
def script_dir():
    path = tempfile.mkdtemp(prefix='codexops-unit-', dir='/tmp')
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def script(directory, body, name='prog'):
    path = os.path.join(directory, name)
    with open(path, 'w') as handle:
        handle.write('#!/bin/sh\n' + body)
    os.chmod(path, 0o755)
    return path


def run(argv, **kwargs):
    return _runner_process.run(privsep.Identity(NOBODY), argv, ENV, **kwargs)


@pytest.mark.parametrize('uid, home_owner', [(None, None), (None, 0), (0, None), (0, NOBODY)])
def test_no_runner_known_or_root_asked_is_refused(uid, home_owner):
    with pytest.raises(_runner_process.RunnerProcessError) as info:
        _runner_process.runner_for(uid, home_owner, 'codex login status')
    assert info.value.code == 'runner_unknown' and 'never runs as root' in info.value.message


def test_the_owner_asked_for_wins_then_the_homes_owner():
    assert _runner_process.runner_for(NOBODY, 0, 'x').uid == NOBODY
    assert _runner_process.runner_for(None, NOBODY, 'x').uid == NOBODY


def test_runs_as_the_runner_and_reports_the_exit_status(script_dir):
    outcome = run([script(script_dir, 'id -u\nexit 7\n')], timeout=10)
    assert outcome == {'rc': 7, 'timed_out': False, 'unreaped': False, 'output': '%d\n' % NOBODY}


def test_a_grandchild_holding_the_output_open_does_not_hold_the_run(script_dir):
    """The program exits; a process it left behind keeps the pipe: the run ends now, not at EOF."""
    started = time.monotonic()
    outcome = run([script(script_dir, 'echo started\n(sleep 60) &\nexit 0\n')], timeout=30)
    assert outcome['rc'] == 0 and 'started' in outcome['output'] and not outcome['timed_out']
    assert time.monotonic() - started < 5


def test_a_program_that_never_reads_its_stdin_ends_at_the_deadline(script_dir):
    started = time.monotonic()
    outcome = run([script(script_dir, 'sleep 60\n')], stdin=b'x' * (1 << 20), timeout=1)
    assert outcome['timed_out'] is True and outcome['unreaped'] is False
    assert time.monotonic() - started < 1 + _runner_process.TERM_GRACE_SECONDS + 2


def test_a_program_that_ignores_sigterm_is_killed(script_dir):
    started = time.monotonic()
    outcome = run([script(script_dir, "trap '' TERM\nsleep 60 & wait\n")], timeout=1)
    assert outcome['timed_out'] is True and outcome['rc'] is not None
    assert time.monotonic() - started < 1 + _runner_process.TERM_GRACE_SECONDS + _runner_process.REAP_SECONDS + 2


def test_output_is_capped(script_dir, monkeypatch):
    monkeypatch.setattr(_runner_process, 'MAX_OUTPUT_BYTES', 1000)
    outcome = run([script(script_dir, 'head -c 200000 /dev/zero | tr "\\0" a\n')], timeout=10)
    assert outcome['rc'] == 0 and len(outcome['output']) == 1000


def test_a_nul_byte_is_refused_before_anything_runs():
    with pytest.raises(ValueError):
        run(['/bin/tr\0ue'])
