# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Safe file operations: lstat checks, no link following, Codex's lock protocol, 0600 writes."""

import datetime
import fcntl
import os
import stat
import subprocess
import sys
import threading
import time
import types

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import safe_files
from ansible_collections.codexops.runner.plugins.module_utils.safe_files import UnsafePathError


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def home(tmp_path):
    path = tmp_path / 'codex'
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def umask0():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# -- check_home -----------------------------------------------------------------------------------

def test_check_home_ok_and_missing(home, tmp_path):
    st = safe_files.check_home(str(home))
    assert stat.S_ISDIR(st.st_mode)
    assert safe_files.check_home(str(tmp_path / 'absent')) is None
    (tmp_path / 'file-parent').write_text('x')
    assert safe_files.check_home(str(tmp_path / 'file-parent' / 'x')) is None  # ENOTDIR


def test_check_home_symlink(home, tmp_path):
    link = tmp_path / 'link'
    link.symlink_to(home)
    with pytest.raises(UnsafePathError) as info:
        safe_files.check_home(str(link))
    assert info.value.code == 'codex_home_symlink'
    # A dangling link is refused too, not reported as missing.
    dangling = tmp_path / 'dangling'
    dangling.symlink_to(tmp_path / 'nowhere')
    with pytest.raises(UnsafePathError) as info:
        safe_files.check_home(str(dangling))
    assert info.value.code == 'codex_home_symlink'


def test_check_home_not_dir(tmp_path):
    target = tmp_path / 'file'
    target.write_text('x')
    with pytest.raises(UnsafePathError) as info:
        safe_files.check_home(str(target))
    assert info.value.code == 'codex_home_not_dir'
    assert 'regular file' in info.value.message
    fifo = tmp_path / 'fifo'
    os.mkfifo(str(fifo))
    with pytest.raises(UnsafePathError) as info:
        safe_files.check_home(str(fifo))
    assert info.value.code == 'codex_home_not_dir'
    assert 'FIFO' in info.value.message


@pytest.mark.parametrize('path', ['codex', './codex', '~/.codex', ''])
def test_check_home_relative(path):
    with pytest.raises(UnsafePathError) as info:
        safe_files.check_home(path)
    assert info.value.code == 'codex_home_relative'


# -- read_regular ---------------------------------------------------------------------------------

def test_read_regular_ok_and_absent(home):
    target = home / 'auth.json'
    target.write_bytes(b'{"a": 1}')
    data, st = safe_files.read_regular(str(target), 'auth', 1024)
    assert data == b'{"a": 1}'
    assert stat.S_ISREG(st.st_mode)
    assert safe_files.read_regular(str(home / 'absent.json'), 'auth', 1024) == (None, None)


def test_read_regular_symlink(home, tmp_path):
    real = tmp_path / 'real.json'
    real.write_text('{}')
    (home / 'auth.json').symlink_to(real)
    with pytest.raises(UnsafePathError) as info:
        safe_files.read_regular(str(home / 'auth.json'), 'auth', 1024)
    assert info.value.code == 'auth_symlink'


def test_read_regular_hardlink(home, tmp_path):
    target = home / 'auth.json'
    target.write_text('{}')
    os.link(str(target), str(tmp_path / 'other'))
    with pytest.raises(UnsafePathError) as info:
        safe_files.read_regular(str(target), 'auth', 1024)
    assert info.value.code == 'auth_hardlink'
    assert '2 hard links' in info.value.message


def test_read_regular_fifo_does_not_block(home):
    fifo = home / 'auth.json'
    os.mkfifo(str(fifo))
    outcome = {}

    def read():
        try:
            safe_files.read_regular(str(fifo), 'auth', 1024)
        except UnsafePathError as exc:
            outcome['code'] = exc.code

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # unblock the reader so the test run can finish, then fail
        fd = os.open(str(fifo), os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail('read_regular blocked on a FIFO')
    assert outcome == {'code': 'auth_not_regular'}


def test_read_regular_directory(home):
    (home / 'auth.json').mkdir()
    with pytest.raises(UnsafePathError) as info:
        safe_files.read_regular(str(home / 'auth.json'), 'auth', 1024)
    assert info.value.code == 'auth_not_regular'
    assert 'directory' in info.value.message


def test_read_regular_too_large(home):
    target = home / 'auth.json'
    target.write_bytes(b'x' * 1025)
    with pytest.raises(UnsafePathError) as info:
        safe_files.read_regular(str(target), 'auth', 1024)
    assert info.value.code == 'auth_too_large'
    target.write_bytes(b'x' * 1024)
    assert len(safe_files.read_regular(str(target), 'auth', 1024)[0]) == 1024
    # Larger than one read chunk.
    target.write_bytes(b'y' * 200000)
    with pytest.raises(UnsafePathError):
        safe_files.read_regular(str(target), 'auth', 150000)
    assert len(safe_files.read_regular(str(target), 'auth', 200000)[0]) == 200000


def test_read_regular_prefix_names_codes(home):
    (home / 'config.toml').mkdir()
    with pytest.raises(UnsafePathError) as info:
        safe_files.read_regular(str(home / 'config.toml'), 'config', 10)
    assert info.value.code == 'config_not_regular'


# -- atomic_write ---------------------------------------------------------------------------------

def test_atomic_write_creates_0600_even_with_umask_0(home, umask0):
    target = home / 'auth.json'
    safe_files.atomic_write(str(target), b'{"new": true}')
    assert target.read_bytes() == b'{"new": true}'
    assert mode_of(str(target)) == 0o600
    assert sorted(os.listdir(str(home))) == ['auth.json']
    assert safe_files.leftover_temp_files(str(home)) == []


def test_atomic_write_replaces_0644_file(home, umask0):
    target = home / 'auth.json'
    target.write_bytes(b'old')
    os.chmod(str(target), 0o644)
    old_inode = os.lstat(str(target)).st_ino
    safe_files.atomic_write(str(target), b'new')
    assert target.read_bytes() == b'new'
    assert mode_of(str(target)) == 0o600
    assert os.lstat(str(target)).st_ino != old_inode  # replaced by rename, not rewritten in place
    assert sorted(os.listdir(str(home))) == ['auth.json']


def test_atomic_write_other_mode_and_owner(home):
    target = home / 'config.toml'
    safe_files.atomic_write(str(target), b'a = 1\n', uid=65534, gid=65534, mode=0o640)
    st = os.lstat(str(target))
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (65534, 65534)


def test_atomic_write_failure_leaves_no_temp_and_old_file(home, monkeypatch):
    target = home / 'auth.json'
    target.write_bytes(b'old')

    def broken_rename(src, dst):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(safe_files.os, 'rename', broken_rename)
    with pytest.raises(OSError):
        safe_files.atomic_write(str(target), b'new')
    monkeypatch.undo()
    assert target.read_bytes() == b'old'
    assert sorted(os.listdir(str(home))) == ['auth.json']


def test_atomic_write_large_data(home):
    data = os.urandom(3 * 1024 * 1024)
    safe_files.atomic_write(str(home / 'big'), data)
    assert (home / 'big').read_bytes() == data


# -- backups --------------------------------------------------------------------------------------

def test_write_backup_is_0600_whatever_the_source(home, umask0):
    source = home / 'auth.json'
    source.write_bytes(b'{"old": 1}')
    os.chmod(str(source), 0o644)
    data = source.read_bytes()
    backup = safe_files.write_backup(str(source), data)
    assert os.path.dirname(backup) == str(home)
    assert os.path.basename(backup).startswith('auth.json.')
    assert backup.endswith('.bak')
    assert open(backup, 'rb').read() == data
    assert mode_of(backup) == 0o600
    assert mode_of(str(source)) == 0o644  # the source is not touched


class _FrozenDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime(2026, 11, 21, 10, 22, 0, 123456, tzinfo=tz)


FROZEN = types.SimpleNamespace(datetime=_FrozenDatetime, timezone=datetime.timezone)


def test_write_backup_never_overwrites(home, monkeypatch):
    monkeypatch.setattr(safe_files, 'datetime', FROZEN)
    source = str(home / 'auth.json')
    first = safe_files.write_backup(source, b'first')
    second = safe_files.write_backup(source, b'second')
    third = safe_files.write_backup(source, b'third')
    assert first == source + '.20261121T102200.123456Z.bak'
    assert len({first, second, third}) == 3
    assert [open(p, 'rb').read() for p in (first, second, third)] == [b'first', b'second', b'third']
    assert all(mode_of(p) == 0o600 for p in (first, second, third))


def test_write_backup_refuses_planted_symlink(home, tmp_path, monkeypatch):
    monkeypatch.setattr(safe_files, 'datetime', FROZEN)
    source = str(home / 'auth.json')
    victim = tmp_path / 'victim'
    victim.write_bytes(b'precious')
    os.symlink(str(victim), source + '.20261121T102200.123456Z.bak')
    backup = safe_files.write_backup(source, b'data')
    assert victim.read_bytes() == b'precious'
    assert not os.path.islink(backup)
    assert open(backup, 'rb').read() == b'data'


# -- locks ----------------------------------------------------------------------------------------

PROBE = r'''
import fcntl, os, sys
out = []
for name in ('auth.lock', 'auth.json.lock'):
    fd = os.open(os.path.join(sys.argv[1], name), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out.append('free')
    except OSError:
        out.append('held')
    finally:
        os.close(fd)
print(' '.join(out))
'''


def probe_locks(home):
    """Try both locks from another process: what Codex would see."""
    proc = subprocess.run([sys.executable, '-c', PROBE, str(home)], capture_output=True, text=True, check=True,
                          timeout=30)
    return proc.stdout.split()


def test_codex_lock_holds_both_locks(home):
    assert probe_locks(home) == ['free', 'free']
    with safe_files.codex_lock(str(home)):
        assert probe_locks(home) == ['held', 'held']
        for name in safe_files.LOCK_FILES:
            assert mode_of(str(home / name)) == 0o600
    assert probe_locks(home) == ['free', 'free']


def test_codex_lock_order(home, monkeypatch):
    order = []
    real_acquire = safe_files._acquire

    def recording(path, uid, gid, timeout):
        order.append(os.path.basename(path))
        return real_acquire(path, uid, gid, timeout)

    monkeypatch.setattr(safe_files, '_acquire', recording)
    with safe_files.codex_lock(str(home)):
        pass
    assert order == ['auth.lock', 'auth.json.lock']


def hold(path):
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_lock_timeout(home):
    held = hold(home / 'auth.lock')
    try:
        started = time.monotonic()
        with pytest.raises(UnsafePathError) as info:
            with safe_files.codex_lock(str(home), timeout=0.2):
                pytest.fail('the lock was taken while Codex held it')
        assert info.value.code == 'lock_timeout'
        assert 'auth.lock' in info.value.message
        assert 0.15 <= time.monotonic() - started < 5
    finally:
        os.close(held)
    # Nothing stays locked after the timeout.
    assert probe_locks(home) == ['free', 'free']


def test_lock_timeout_on_second_lock_releases_first(home):
    """auth.lock first, then auth.json.lock: a holder of the second one blocks after the first."""
    held = hold(home / 'auth.json.lock')
    seen = {}

    def take():
        try:
            with safe_files.codex_lock(str(home), timeout=0.6):
                seen['acquired'] = True
        except UnsafePathError as exc:
            seen['code'] = exc.code

    worker = threading.Thread(target=take)
    try:
        worker.start()
        time.sleep(0.2)
        # While it waits for auth.json.lock it already holds auth.lock.
        assert probe_locks(home)[0] == 'held'
        worker.join(10)
    finally:
        os.close(held)
    assert seen == {'code': 'lock_timeout'}
    assert probe_locks(home) == ['free', 'free']


def test_lock_waits_for_release(home):
    held = hold(home / 'auth.lock')
    releaser = threading.Timer(0.2, os.close, args=(held,))
    releaser.start()
    try:
        started = time.monotonic()
        with safe_files.codex_lock(str(home), timeout=10):
            waited = time.monotonic() - started
    finally:
        releaser.join()
    assert waited >= 0.1


def test_lock_file_symlink_refused(home, tmp_path):
    (home / 'auth.lock').symlink_to(tmp_path / 'elsewhere')
    with pytest.raises(UnsafePathError) as info:
        with safe_files.codex_lock(str(home), timeout=0.1):
            pass
    assert info.value.code == 'lock_unavailable'
    assert not (tmp_path / 'elsewhere').exists()


def test_lock_files_created_for_runner_user(home):
    with safe_files.codex_lock(str(home), uid=65534, gid=65534, timeout=1):
        pass
    for name in safe_files.LOCK_FILES:
        st = os.lstat(str(home / name))
        assert (st.st_uid, st.st_gid) == (65534, 65534)


# -- temp files -----------------------------------------------------------------------------------

def test_leftover_temp_files_and_remove(home, tmp_path):
    ours = [home / '.codexops-auth.json-abc123.tmp', home / '.codexops-config.toml-x.tmp']
    theirs = [home / '.auth-XYZ123', home / 'auth.json', home / '.codexops-note.txt', home / 'x.tmp']
    for path in ours + theirs:
        path.write_text('x')
    found = safe_files.leftover_temp_files(str(home))
    assert found == sorted(str(p) for p in ours)
    safe_files.remove_files(found + [str(home / '.codexops-gone.tmp')])  # missing files are fine
    assert safe_files.leftover_temp_files(str(home)) == []
    assert all(p.exists() for p in theirs)
    assert safe_files.leftover_temp_files(str(tmp_path / 'absent')) == []


# -- users and groups -----------------------------------------------------------------------------

def test_resolve_ids():
    assert safe_files.resolve_ids() == (None, None)
    assert safe_files.resolve_ids('root') == (0, 0)
    assert safe_files.resolve_ids('0') == (0, 0)
    assert safe_files.resolve_ids(0) == (0, 0)
    assert safe_files.resolve_ids('root', 'root') == (0, 0)
    assert safe_files.resolve_ids(None, '0') == (None, 0)
    nobody = safe_files.resolve_ids('65534')
    assert nobody[0] == 65534


@pytest.mark.parametrize('owner', ['no-such-user-codexops', '987654'])
def test_resolve_ids_missing_user(owner):
    with pytest.raises(UnsafePathError) as info:
        safe_files.resolve_ids(owner)
    assert info.value.code == 'owner_missing'
    assert owner in info.value.message


@pytest.mark.parametrize('group', ['no-such-group-codexops', '987654'])
def test_resolve_ids_missing_group(group):
    with pytest.raises(UnsafePathError) as info:
        safe_files.resolve_ids('root', group)
    assert info.value.code == 'group_missing'


def test_user_name():
    assert safe_files.user_name(0) == 'root'
    assert safe_files.user_name(987654) == '987654'


# -- directories and repairs ----------------------------------------------------------------------

def test_ensure_directory_creates_0700(tmp_path, umask0):
    path = tmp_path / 'deep' / 'er' / '.codex'
    assert safe_files.ensure_directory(str(path), None, None) == ['created']
    assert mode_of(str(path)) == 0o700
    assert safe_files.ensure_directory(str(path), None, None) == []


def test_ensure_directory_under_strict_umask(tmp_path):
    old = os.umask(0o777)
    try:
        # Finished to 0700 despite the umask, and reported once, as created (what check mode predicts).
        assert safe_files.ensure_directory(str(tmp_path / 'c'), None, None) == ['created']
    finally:
        os.umask(old)
    assert mode_of(str(tmp_path / 'c')) == 0o700


def test_ensure_directory_repairs_mode_and_owner(tmp_path):
    path = tmp_path / '.codex'
    path.mkdir()
    os.chmod(str(path), 0o755)
    assert safe_files.ensure_directory(str(path), 65534, None) == ['mode', 'owner']
    st = os.lstat(str(path))
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == 65534
    assert safe_files.ensure_directory(str(path), 65534, None) == []


def test_ensure_directory_refuses_symlink(tmp_path):
    real = tmp_path / 'real'
    real.mkdir(mode=0o755)
    (tmp_path / 'link').symlink_to(real)
    with pytest.raises(UnsafePathError) as info:
        safe_files.ensure_directory(str(tmp_path / 'link'), None, None)
    assert info.value.code == 'codex_home_symlink'
    assert mode_of(str(real)) == 0o755


def test_repair_file_and_mode_changes(home):
    target = home / 'auth.json'
    target.write_text('{}')
    os.chmod(str(target), 0o644)
    assert safe_files.mode_changes(os.lstat(str(target)), None, None, 0o600) == ['mode']
    assert safe_files.mode_changes(os.lstat(str(target)), 65534, None, 0o600) == ['mode', 'owner']
    assert safe_files.repair_file(str(target), 65534, 65534) == ['mode', 'owner']
    st = os.lstat(str(target))
    assert stat.S_IMODE(st.st_mode) == 0o600 and (st.st_uid, st.st_gid) == (65534, 65534)
    assert safe_files.repair_file(str(target), 65534, 65534) == []
    assert safe_files.mode_changes(st, 65534, 65534, 0o600) == []


def test_repair_file_does_not_follow_symlink(home, tmp_path):
    real = tmp_path / 'real'
    real.write_text('{}')
    os.chmod(str(real), 0o644)
    (home / 'auth.json').symlink_to(real)
    with pytest.raises(OSError):
        safe_files.repair_file(str(home / 'auth.json'), None, None)
    assert mode_of(str(real)) == 0o644
