# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Acting as the runner user: a forked child dropped to its uid, gid and groups (privsep).

Run as root; the runner user is nobody (65534).
"""

import errno
import io
import os
import sys
import time

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import codex_process
from ansible_collections.codexops.runner.plugins.module_utils import errors
from ansible_collections.codexops.runner.plugins.module_utils import privsep
from ansible_collections.codexops.runner.plugins.module_utils import seeding
from ansible_collections.codexops.runner.plugins.module_utils.trusted_path import UnsafePathError

NOBODY = 65534


@pytest.fixture
def nobody():
    return privsep.Identity(NOBODY)


@pytest.fixture
def forks(monkeypatch):
    """The pids run_as forked."""
    pids = []
    real_fork = os.fork

    def recording_fork():
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(privsep.os, 'fork', recording_fork)
    return pids


def children_of(pid):
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as handle:
                fields = handle.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def assert_gone(pid):
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped already: no zombie left
    assert not os.path.exists('/proc/%d' % pid)
    assert pid not in children_of(os.getpid())


# -- results --------------------------------------------------------------------------------------

def test_results_come_back(nobody, forks):
    assert privsep.run_as(nobody, lambda: 42) == 42
    assert privsep.run_as(nobody, lambda a, b=0: {'sum': a + b, 'list': [a, None, 'x']}, 1, b=2) == \
        {'sum': 3, 'list': [1, None, 'x']}
    assert privsep.run_as(nobody, lambda: None) is None
    assert len(forks) == 3
    for pid in forks:
        assert_gone(pid)


def test_a_large_result_comes_back_whole(nobody):
    data = 'x' * (3 * 1024 * 1024)
    assert privsep.run_as(nobody, lambda: data) == data


def test_current_user_runs_in_this_process(forks):
    marker = object()
    assert privsep.run_as(privsep.current(), lambda: marker) is marker
    assert privsep.run_as(privsep.Identity(os.geteuid()), os.getpid) == os.getpid()
    assert forks == []


def test_the_child_is_the_identity_and_nothing_more(nobody):
    def ids():
        return list(os.getresuid()), list(os.getresgid()), sorted(os.getgroups())

    resuid, resgid, groups = privsep.run_as(nobody, ids)
    assert resuid == [NOBODY] * 3 and resgid == [NOBODY] * 3
    assert groups == sorted(set(os.getgrouplist('nobody', NOBODY)))
    assert 0 not in groups
    custom = privsep.Identity(NOBODY, gid=4242, groups=[4242, 4243])
    assert privsep.run_as(custom, ids) == [[NOBODY] * 3, [4242] * 3, [4242, 4243]]
    # The parent kept its own credentials.
    assert os.getresuid() == (0, 0, 0)


def test_identity_without_passwd_entry():
    ghost = privsep.Identity(4242)
    assert (ghost.uid, ghost.gid, ghost.groups, ghost.name, ghost.home) == (4242, 4242, [4242], '4242', '/')
    assert privsep.run_as(ghost, lambda: [list(os.getresuid()), sorted(os.getgroups())]) == [[4242] * 3, [4242]]


def test_identity_from_passwd():
    nobody = privsep.Identity(NOBODY)
    assert nobody.name == 'nobody' and nobody.gid == NOBODY
    assert nobody.home == '/nonexistent'
    assert privsep.current().uid == os.geteuid() and privsep.current().is_current()
    assert not nobody.is_current()


def test_the_child_cannot_read_what_the_runner_cannot(nobody, tmp_path):
    secret = tmp_path / 'secret'
    secret.write_bytes(b'root only')
    os.chmod(str(secret), 0o600)
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(PermissionError) as info:
            privsep.run_as(nobody, lambda: os.open('secret', os.O_RDONLY, dir_fd=fd))
    finally:
        os.close(fd)
    assert info.value.errno == errno.EACCES


# -- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('error', [
    UnsafePathError('auth_symlink', 'auth.json is a symlink.'),
    seeding.SeedError('the seed is not usable.'),
    codex_process.CodexProcessError('codex said no.', code='codex_timeout'),
    privsep.PrivsepError('could not drop.'),
    errors.CodexOpsError('generic.', code='something'),
], ids=lambda error: error.__class__.__name__)
def test_collection_errors_come_back_as_the_same_class(nobody, error):
    def fail():
        raise error

    with pytest.raises(errors.CodexOpsError) as info:
        privsep.run_as(nobody, fail)
    assert type(info.value) is type(error)
    assert (info.value.code, info.value.message) == (error.code, error.message)
    assert str(info.value) == error.message


def test_os_errors_keep_their_errno(nobody):
    missing = '/nonexistent-codexops-test/missing'

    with pytest.raises(FileNotFoundError) as info:
        privsep.run_as(nobody, os.stat, missing)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == missing

    def exists():
        os.mkdir('/')

    with pytest.raises(FileExistsError) as info:
        privsep.run_as(nobody, exists)
    assert info.value.errno == errno.EEXIST

    def no_name():
        raise OSError(errno.ENOSPC, 'No space left on device')

    with pytest.raises(OSError) as info:
        privsep.run_as(nobody, no_name)
    assert info.value.errno == errno.ENOSPC and info.value.strerror == 'No space left on device'


def test_unexpected_error_is_internal_and_quotes_nothing(nobody):
    def leak():
        raise ValueError('rt-FAKE-refresh-token-from-the-file')

    with pytest.raises(privsep.PrivsepError) as info:
        privsep.run_as(nobody, leak)
    assert info.value.code == 'internal_error'
    assert 'rt-FAKE' not in info.value.message and 'rt-FAKE' not in str(info.value)
    assert 'ValueError' in info.value.message and 'nobody' in info.value.message


def test_unserialisable_result_is_refused_without_quoting_it(nobody, forks):
    with pytest.raises(privsep.PrivsepError) as info:
        privsep.run_as(nobody, lambda: {'bytes': b'secret-bytes'})
    assert 'secret-bytes' not in info.value.message
    assert_gone(forks[0])


def test_a_child_that_exits_without_a_result(nobody, forks):
    with pytest.raises(privsep.PrivsepError) as info:
        privsep.run_as(nobody, os._exit, 3)
    assert info.value.code == 'privsep_failed'
    assert 'without a result' in info.value.message
    assert_gone(forks[0])

    def leave():
        sys.exit(0)

    with pytest.raises(privsep.PrivsepError):
        privsep.run_as(nobody, leave)


# -- hangs and output -----------------------------------------------------------------------------

def test_a_hanging_child_is_killed(nobody, forks):
    started = time.monotonic()
    with pytest.raises(privsep.PrivsepError) as info:
        privsep.run_as(nobody, time.sleep, 60, child_timeout=0.3)
    elapsed = time.monotonic() - started
    assert info.value.code == 'child_timeout'
    assert 'killed' in info.value.message
    assert 0.25 <= elapsed < 10
    assert len(forks) == 1
    assert_gone(forks[0])
    # A timeout large enough lets a slow child finish.
    assert privsep.run_as(nobody, lambda: time.sleep(0.2) or 'done', child_timeout=10) == 'done'


def test_child_output_never_reaches_stdout(nobody, capfd):
    """The module's stdout is its JSON result: nothing the child prints may land there."""
    def chatty():
        print('CHILD-PRINT')
        print('CHILD-FLUSHED', flush=True)
        os.write(1, b'CHILD-FD-WRITE\n')
        return 'ok'

    assert privsep.run_as(nobody, chatty) == 'ok'
    out, _err = capfd.readouterr()
    assert 'CHILD' not in out


def test_buffered_parent_output_is_not_written_twice(nobody, capfd, monkeypatch):
    """The child inherits the parent's unflushed stdout buffer; it must never flush it."""
    buffered = io.TextIOWrapper(io.BufferedWriter(io.FileIO(os.dup(1), 'w'), buffer_size=65536),
                                write_through=False)
    monkeypatch.setattr(sys, 'stdout', buffered)
    sys.stdout.write('PARENT-PENDING\n')
    assert privsep.run_as(nobody, lambda: 1) == 1
    buffered.flush()
    monkeypatch.undo()
    buffered.close()
    out, _err = capfd.readouterr()
    assert out.count('PARENT-PENDING') == 1
