"""Safe file operations in an open CODEX_HOME: no link following, Codex's lock protocol, 0600 writes.

Every operation works relative to the CODEX_HOME descriptor (safe_files.HomeDir); the checks on
the CODEX_HOME path itself live in trusted_path.walk and codex_home.act, and are tested here
through them as well (what check_home and ensure_directory used to do).
"""

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

from ansible_collections.codexops.runner.plugins.module_utils import codex_home
from ansible_collections.codexops.runner.plugins.module_utils import privsep
from ansible_collections.codexops.runner.plugins.module_utils import safe_files
from ansible_collections.codexops.runner.plugins.module_utils.safe_files import UnsafePathError

NOBODY = 65534


def mode_of(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def open_home(path):
    fd = os.open(str(path), os.O_RDONLY | os.O_DIRECTORY)
    return safe_files.HomeDir(fd, str(path))


@pytest.fixture
def home(tmp_path):
    path = tmp_path / 'codex'
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def hd(home):
    """The open CODEX_HOME at `home`."""
    opened = open_home(home)
    try:
        yield opened
    finally:
        os.close(opened.fd)


@pytest.fixture
def umask0():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def ensure(path, uid=None, gid=None):
    """What ensure_directory(path, uid, gid) used to be."""
    return codex_home.act(str(path), codex_home.Target(uid, gid), lambda context: context.ensure())


def exists(path):
    return codex_home.act(str(path), codex_home.Target(), lambda context: context.exists)


# -- the CODEX_HOME path (was check_home) ---------------------------------------------------------

def test_home_ok_and_missing(home, tmp_path):
    def look(context):
        return context.exists, stat.S_ISDIR(context.stat().st_mode)

    assert codex_home.act(str(home), codex_home.Target(), look) == (True, True)
    assert exists(tmp_path / 'absent') is False
    assert exists(tmp_path / 'absent' / 'deeper') is False


def test_home_below_a_file_is_not_a_directory(tmp_path):
    # check_home used to call this missing (ENOTDIR); the walk names the file in the way.
    (tmp_path / 'file-parent').write_text('x')
    with pytest.raises(UnsafePathError) as info:
        exists(tmp_path / 'file-parent' / 'x')
    assert info.value.code == 'codex_home_not_dir'
    assert str(tmp_path / 'file-parent') in info.value.message


def test_home_symlink(home, tmp_path):
    link = tmp_path / 'link'
    link.symlink_to(home)
    with pytest.raises(UnsafePathError) as info:
        exists(link)
    assert info.value.code == 'codex_home_symlink'
    # A dangling link is refused too, not reported as missing.
    dangling = tmp_path / 'dangling'
    dangling.symlink_to(tmp_path / 'nowhere')
    with pytest.raises(UnsafePathError) as info:
        exists(dangling)
    assert info.value.code == 'codex_home_symlink'
    assert not (tmp_path / 'nowhere').exists()


def test_home_not_dir(tmp_path):
    target = tmp_path / 'file'
    target.write_text('x')
    with pytest.raises(UnsafePathError) as info:
        exists(target)
    assert info.value.code == 'codex_home_not_dir'
    assert 'not a directory' in info.value.message
    fifo = tmp_path / 'fifo'
    os.mkfifo(str(fifo))
    with pytest.raises(UnsafePathError) as info:
        exists(fifo)
    assert info.value.code == 'codex_home_not_dir'
    assert str(fifo) in info.value.message


@pytest.mark.parametrize('path', ['codex', './codex', '~/.codex', ''])
def test_home_relative(path):
    with pytest.raises(UnsafePathError) as info:
        exists(path)
    assert info.value.code == 'codex_home_relative'


# -- read_regular ---------------------------------------------------------------------------------

def test_read_regular_ok_and_absent(home, hd):
    (home / 'auth.json').write_bytes(b'{"a": 1}')
    data, st = hd.read_regular('auth.json', 'auth', 1024)
    assert data == b'{"a": 1}'
    assert stat.S_ISREG(st.st_mode)
    assert st.st_ino == os.lstat(str(home / 'auth.json')).st_ino
    assert hd.read_regular('absent.json', 'auth', 1024) == (None, None)


def read_refused(hd, name, what, limit, code):
    """hd.read_regular(name, what, limit) must refuse with `code`; returns the error."""
    with pytest.raises(UnsafePathError) as info:
        hd.read_regular(name, what, limit)
    assert info.value.code == code
    return info.value


def test_read_regular_symlink(home, hd, tmp_path):
    real = tmp_path / 'real.json'
    real.write_text('{}')
    (home / 'auth.json').symlink_to(real)
    read_refused(hd, 'auth.json', 'auth', 1024, 'auth_symlink')
    # A dangling link is refused the same way, not reported as absent.
    (home / 'config.toml').symlink_to(tmp_path / 'nowhere')
    read_refused(hd, 'config.toml', 'config', 1024, 'config_symlink')


def test_read_regular_hardlink(home, hd, tmp_path):
    target = home / 'auth.json'
    target.write_text('{}')
    os.link(str(target), str(tmp_path / 'other'))
    error = read_refused(hd, 'auth.json', 'auth', 1024, 'auth_hardlink')
    assert '2 hard links' in error.message


def test_read_regular_fifo_does_not_block(home, hd):
    fifo = home / 'auth.json'
    os.mkfifo(str(fifo))
    outcome = {}

    def read():
        try:
            hd.read_regular('auth.json', 'auth', 1024)
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


def test_read_regular_directory(home, hd):
    (home / 'auth.json').mkdir()
    error = read_refused(hd, 'auth.json', 'auth', 1024, 'auth_not_regular')
    assert 'directory' in error.message


def test_read_regular_too_large(home, hd):
    target = home / 'auth.json'
    target.write_bytes(b'x' * 1025)
    read_refused(hd, 'auth.json', 'auth', 1024, 'auth_too_large')
    target.write_bytes(b'x' * 1024)
    assert len(hd.read_regular('auth.json', 'auth', 1024)[0]) == 1024
    # Larger than one read chunk.
    target.write_bytes(b'y' * 200000)
    read_refused(hd, 'auth.json', 'auth', 150000, 'auth_too_large')
    assert len(hd.read_regular('auth.json', 'auth', 200000)[0]) == 200000


def test_read_regular_prefix_names_codes(home, hd):
    (home / 'config.toml').mkdir()
    error = read_refused(hd, 'config.toml', 'config', 10, 'config_not_regular')
    assert str(home / 'config.toml') in error.message


def test_read_regular_someone_elses_unreadable_file(tmp_path):
    """The runner cannot read a root file in its CODEX_HOME: refused as unreadable, naming the owner."""
    home = tmp_path / 'codex'
    home.mkdir()
    os.chown(str(home), NOBODY, NOBODY)
    (home / 'auth.json').write_text('{"secret": "root-only"}')
    os.chmod(str(home / 'auth.json'), 0o600)
    hd = open_home(home)
    try:
        with pytest.raises(UnsafePathError) as info:
            privsep.run_as(privsep.Identity(NOBODY), hd.read_regular, 'auth.json', 'auth', 1024)
    finally:
        os.close(hd.fd)
    assert info.value.code == 'auth_unreadable'
    assert 'owned by root' in info.value.message
    assert 'root-only' not in info.value.message


# -- atomic_write ---------------------------------------------------------------------------------

def test_atomic_write_creates_0600_even_with_umask_0(home, hd, umask0):
    target = home / 'auth.json'
    hd.atomic_write('auth.json', b'{"new": true}')
    assert target.read_bytes() == b'{"new": true}'
    assert mode_of(target) == 0o600
    assert sorted(os.listdir(str(home))) == ['auth.json']
    assert hd.leftover_temp_files() == []


def test_atomic_write_replaces_0644_file(home, hd, umask0):
    target = home / 'auth.json'
    target.write_bytes(b'old')
    os.chmod(str(target), 0o644)
    old_inode = os.lstat(str(target)).st_ino
    hd.atomic_write('auth.json', b'new')
    assert target.read_bytes() == b'new'
    assert mode_of(target) == 0o600
    assert os.lstat(str(target)).st_ino != old_inode  # replaced by rename, not rewritten in place
    assert sorted(os.listdir(str(home))) == ['auth.json']


def test_atomic_write_other_mode_and_owner(home, hd):
    hd.atomic_write('config.toml', b'a = 1\n', uid=NOBODY, gid=NOBODY, mode=0o640)
    st = os.lstat(str(home / 'config.toml'))
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)


def test_atomic_write_failure_leaves_no_temp_and_old_file(home, hd, monkeypatch):
    target = home / 'auth.json'
    target.write_bytes(b'old')

    def broken_rename(src, dst, **kwargs):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(safe_files.os, 'rename', broken_rename)
    with pytest.raises(OSError):
        hd.atomic_write('auth.json', b'new')
    monkeypatch.undo()
    assert target.read_bytes() == b'old'
    assert sorted(os.listdir(str(home))) == ['auth.json']


def test_atomic_write_large_data(home, hd):
    data = os.urandom(3 * 1024 * 1024)
    hd.atomic_write('big', data)
    assert (home / 'big').read_bytes() == data


def test_atomic_write_replaces_a_link_never_writes_through_it(home, hd, tmp_path):
    victim = tmp_path / 'victim'
    victim.write_bytes(b'precious')
    os.chmod(str(victim), 0o644)
    (home / 'auth.json').symlink_to(victim)
    hd.atomic_write('auth.json', b'new')
    assert victim.read_bytes() == b'precious' and mode_of(victim) == 0o644
    assert not os.path.islink(str(home / 'auth.json'))
    assert (home / 'auth.json').read_bytes() == b'new'


# -- backups --------------------------------------------------------------------------------------

def test_write_backup_is_0600_whatever_the_source(home, hd, umask0):
    source = home / 'auth.json'
    source.write_bytes(b'{"old": 1}')
    os.chmod(str(source), 0o644)
    data = source.read_bytes()
    backup = hd.write_backup('auth.json', data)
    assert os.path.dirname(backup) == str(home)
    assert os.path.basename(backup).startswith('auth.json.')
    assert backup.endswith('.bak')
    with open(backup, 'rb') as handle:
        assert handle.read() == data
    assert mode_of(backup) == 0o600
    assert mode_of(source) == 0o644  # the source is not touched
    assert os.lstat(backup).st_nlink == 1  # the temp name it was written under is gone
    assert hd.leftover_temp_files() == []


def test_write_backup_owner(home, hd):
    backup = hd.write_backup('auth.json', b'old', NOBODY, NOBODY)
    st = os.lstat(backup)
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)
    assert stat.S_IMODE(st.st_mode) == 0o600


class _FrozenDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime(2026, 11, 21, 10, 22, 0, 123456, tzinfo=tz)


FROZEN = types.SimpleNamespace(datetime=_FrozenDatetime, timezone=datetime.timezone)


def ticking_clock():
    """A datetime module whose now() moves one second per call."""
    calls = []

    class _Ticking(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            calls.append(None)
            return datetime.datetime(2026, 11, 21, 10, 22, 0, tzinfo=tz) + datetime.timedelta(seconds=len(calls))

    return types.SimpleNamespace(datetime=_Ticking, timezone=datetime.timezone)


def read(path):
    with open(path, 'rb') as handle:
        return handle.read()


def test_write_backup_never_overwrites(home, hd, monkeypatch):
    monkeypatch.setattr(safe_files, 'datetime', FROZEN)
    source = str(home / 'auth.json')
    first = hd.write_backup('auth.json', b'first', keep=0)
    second = hd.write_backup('auth.json', b'second', keep=0)
    third = hd.write_backup('auth.json', b'third', keep=0)
    assert first == source + '.20261121T102200.123456Z.bak'
    assert len({first, second, third}) == 3
    assert [read(p) for p in (first, second, third)] == [b'first', b'second', b'third']
    assert all(mode_of(p) == 0o600 for p in (first, second, third))


def test_write_backup_refuses_planted_symlink(home, hd, tmp_path, monkeypatch):
    monkeypatch.setattr(safe_files, 'datetime', FROZEN)
    victim = tmp_path / 'victim'
    victim.write_bytes(b'precious')
    planted = home / 'auth.json.20261121T102200.123456Z.bak'
    os.symlink(str(victim), str(planted))
    backup = hd.write_backup('auth.json', b'data')
    assert victim.read_bytes() == b'precious'
    assert not os.path.islink(backup)
    assert read(backup) == b'data'
    assert os.path.islink(str(planted))


def test_write_backup_keeps_the_newest(home, hd, monkeypatch):
    monkeypatch.setattr(safe_files, 'datetime', ticking_clock())
    written = [hd.write_backup('auth.json', ('v%d' % n).encode(), keep=3) for n in range(5)]
    backups = hd.backups('auth.json')
    assert [str(home / name) for name in backups] == written[-3:]
    assert [read(str(home / name)) for name in backups] == [b'v2', b'v3', b'v4']
    assert sorted(os.listdir(str(home))) == backups
    hd.write_backup('auth.json', b'v5', keep=1)
    assert [read(str(home / name)) for name in hd.backups('auth.json')] == [b'v5']


def test_write_backup_keep_0_keeps_all(home, hd, monkeypatch):
    monkeypatch.setattr(safe_files, 'datetime', ticking_clock())
    for n in range(5):
        hd.write_backup('auth.json', b'x%d' % n, keep=0)
    assert len(hd.backups('auth.json')) == 5
    assert hd.prune_backups('auth.json', 0) == []
    assert len(hd.backups('auth.json')) == 5


def test_write_backup_default_keep(home, hd, monkeypatch):
    monkeypatch.setattr(safe_files, 'datetime', ticking_clock())
    for n in range(safe_files.DEFAULT_BACKUP_KEEP + 2):
        hd.write_backup('auth.json', b'x%d' % n)
    assert len(hd.backups('auth.json')) == safe_files.DEFAULT_BACKUP_KEEP


def test_prune_spares_other_names_and_non_regular_files(home, hd, tmp_path, monkeypatch):
    monkeypatch.setattr(safe_files, 'datetime', ticking_clock())
    victim = tmp_path / 'victim'
    victim.write_bytes(b'precious')
    # Older than anything written below, and named like our backups, but not regular files.
    old_link = home / 'auth.json.20200101T000000.000000Z.bak'
    old_link.symlink_to(victim)
    old_dir = home / 'auth.json.20200101T000001.000000Z.bak'
    old_dir.mkdir()
    old_fifo = home / 'auth.json.20200101T000002.000000Z.bak'
    os.mkfifo(str(old_fifo))
    # Not our backup names at all.
    others = ['auth.json.bak', 'auth.json.20200101T000000.000000Z.bak.orig', 'auth.json.old.bak',
              'config.toml.20200101T000000.000000Z.bak', 'xauth.json.20200101T000000.000000Z.bak',
              'auth.json.20200101T000000Z.bak', 'auth.json']
    for name in others:
        (home / name).write_text('keep me')
    for n in range(4):
        hd.write_backup('auth.json', b'b%d' % n, keep=1)
    assert os.path.islink(str(old_link)) and victim.read_bytes() == b'precious'
    assert old_dir.is_dir()
    assert stat.S_ISFIFO(os.lstat(str(old_fifo)).st_mode)
    assert all((home / name).read_text() == 'keep me' for name in others)
    backups = hd.backups('auth.json')
    assert backups[:3] == [old_link.name, old_dir.name, old_fifo.name]
    assert len(backups) == 4 and read(str(home / backups[3])) == b'b3'


def test_prune_keeps_the_newest_when_stamps_collide(home, hd, monkeypatch):
    """Backups written within one microsecond get .1, .2 suffixes; the newest is still the last one
    written, whatever the suffix sorts like as text."""
    monkeypatch.setattr(safe_files, 'datetime', FROZEN)
    for n in range(3):
        hd.write_backup('auth.json', b'c%d' % n, keep=2)
    assert sorted(read(str(home / name)) for name in hd.backups('auth.json')) == [b'c1', b'c2']


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


def test_codex_lock_holds_both_locks(home, hd):
    assert probe_locks(home) == ['free', 'free']
    with hd.codex_lock():
        assert probe_locks(home) == ['held', 'held']
        for name in safe_files.LOCK_FILES:
            assert mode_of(home / name) == 0o600
    assert probe_locks(home) == ['free', 'free']


def test_codex_lock_order(hd, monkeypatch):
    order = []
    real_acquire = safe_files.HomeDir._acquire

    def recording(self, name, uid, gid, timeout):
        order.append(name)
        return real_acquire(self, name, uid, gid, timeout)

    monkeypatch.setattr(safe_files.HomeDir, '_acquire', recording)
    with hd.codex_lock():
        pass
    assert order == ['auth.lock', 'auth.json.lock']


def hold(path):
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_lock_timeout(home, hd):
    held = hold(home / 'auth.lock')
    try:
        started = time.monotonic()
        with pytest.raises(UnsafePathError) as info:
            with hd.codex_lock(timeout=0.2):
                pytest.fail('the lock was taken while Codex held it')
        assert info.value.code == 'lock_timeout'
        assert 0.15 <= time.monotonic() - started < 5
    finally:
        os.close(held)
    message = info.value.message
    assert str(home / 'auth.lock') in message
    assert 'timed out after 0.2s' in message
    assert 'raise lock_timeout' in message  # names the option to raise
    # Nothing stays locked after the timeout.
    assert probe_locks(home) == ['free', 'free']


def test_lock_timeout_on_second_lock_releases_first(home, hd, monkeypatch):
    """auth.lock first, then auth.json.lock: a holder of the second one blocks after the first."""
    held = hold(home / 'auth.json.lock')
    seen = {}
    # The lock loop sleeps only after a try at a lock someone holds: auth.json.lock, auth.lock
    # being free. Its first sleep tells us it is waiting, and waits until we have looked.
    waiting, looked = threading.Event(), threading.Event()

    def sleep_while_waiting(seconds):
        waiting.set()
        looked.wait(10)
        time.sleep(seconds)

    monkeypatch.setattr(safe_files, 'time', types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep_while_waiting))

    def take():
        try:
            with hd.codex_lock(timeout=0.6):
                seen['acquired'] = True
        except UnsafePathError as exc:
            seen['code'] = exc.code
            seen['message'] = exc.message

    worker = threading.Thread(target=take)
    try:
        worker.start()
        assert waiting.wait(10), 'the lock loop never waited for auth.json.lock'
        # While it waits for auth.json.lock it already holds auth.lock.
        try:
            assert probe_locks(home)[0] == 'held'
        finally:
            looked.set()
        worker.join(10)
    finally:
        os.close(held)
    assert seen['code'] == 'lock_timeout' and 'acquired' not in seen
    assert str(home / 'auth.json.lock') in seen['message']
    assert probe_locks(home) == ['free', 'free']


def test_lock_waits_for_release(home, hd, monkeypatch):
    """A held lock delays codex_lock until its holder lets go: the loop waits while it is held (its
    first wait is where the holder releases it here), then takes both locks."""
    held = [hold(home / 'auth.lock')]
    waits = []

    def release_on_first_wait(seconds):
        waits.append(seconds)
        if held:
            os.close(held.pop())

    monkeypatch.setattr(safe_files, 'time', types.SimpleNamespace(monotonic=time.monotonic,
                                                                  sleep=release_on_first_wait))
    try:
        with hd.codex_lock(timeout=10):
            assert probe_locks(home) == ['held', 'held']
    finally:
        for fd in held:
            os.close(fd)
    assert waits, 'codex_lock took a lock someone held without waiting'
    assert probe_locks(home) == ['free', 'free']


def test_lock_file_symlink_refused(home, hd, tmp_path):
    (home / 'auth.lock').symlink_to(tmp_path / 'elsewhere')
    with pytest.raises(UnsafePathError) as info:
        with hd.codex_lock(timeout=0.1):
            pass
    assert info.value.code == 'lock_unavailable'
    assert not (tmp_path / 'elsewhere').exists()


def test_lock_file_fifo_refused_without_blocking(home, hd):
    os.mkfifo(str(home / 'auth.json.lock'))
    started = time.monotonic()
    with pytest.raises(UnsafePathError) as info:
        with hd.codex_lock(timeout=0.1):
            pass
    assert info.value.code == 'lock_unavailable'
    assert 'FIFO' in info.value.message
    assert time.monotonic() - started < 5
    assert probe_locks(home)[0] == 'free'  # auth.lock, taken first, was released


def test_lock_files_created_for_runner_user(home, hd):
    with hd.codex_lock(uid=NOBODY, gid=NOBODY, timeout=1):
        pass
    for name in safe_files.LOCK_FILES:
        st = os.lstat(str(home / name))
        assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)
        assert stat.S_IMODE(st.st_mode) == 0o600


def test_existing_root_lock_files_given_to_runner(home, hd):
    for name in safe_files.LOCK_FILES:
        (home / name).write_text('')
    with hd.codex_lock(uid=NOBODY, gid=None, timeout=1):
        pass
    assert all(os.lstat(str(home / name)).st_uid == NOBODY for name in safe_files.LOCK_FILES)


def test_hard_linked_lock_file_is_not_chowned(home, hd, tmp_path):
    """A lock file hard-linked to another file: locked, but never given away."""
    other = tmp_path / 'roots-file'
    other.write_text('')
    os.link(str(other), str(home / 'auth.lock'))
    with hd.codex_lock(uid=NOBODY, gid=NOBODY, timeout=1):
        pass
    assert os.lstat(str(other)).st_uid == 0
    assert os.lstat(str(home / 'auth.json.lock')).st_uid == NOBODY


def test_root_made_lock_files_let_the_runner_lock(tmp_path):
    """Root creates the locks in a CODEX_HOME it hands over: the runner can then take them."""
    home = tmp_path / 'codex'
    home.mkdir(mode=0o700)
    hd = open_home(home)
    try:
        with hd.codex_lock(uid=NOBODY, gid=NOBODY, timeout=1):
            pass
        os.chown(str(home), NOBODY, NOBODY)

        def take():
            with hd.codex_lock(timeout=1):
                return os.geteuid()

        assert privsep.run_as(privsep.Identity(NOBODY), take) == NOBODY
    finally:
        os.close(hd.fd)


# -- temp files -----------------------------------------------------------------------------------

def test_leftover_temp_files_and_remove(home, hd):
    ours = ['.codexops-auth.json-abc123.tmp', '.codexops-config.toml-x.tmp']
    theirs = ['.auth-XYZ123', 'auth.json', '.codexops-note.txt', 'x.tmp']
    for name in ours + theirs:
        (home / name).write_text('x')
    found = hd.leftover_temp_files()
    assert found == sorted(ours)
    hd.remove(found + ['.codexops-gone.tmp'])  # missing files are fine
    assert hd.leftover_temp_files() == []
    assert all((home / name).exists() for name in theirs)


def test_leftover_temp_files_of_a_removed_home(tmp_path):
    home = tmp_path / 'gone'
    home.mkdir()
    hd = open_home(home)
    try:
        os.rmdir(str(home))
        assert hd.leftover_temp_files() == []
    finally:
        os.close(hd.fd)


def test_remove_never_follows_a_link(home, hd, tmp_path):
    victim = tmp_path / 'victim'
    victim.write_text('x')
    (home / '.codexops-auth.json-1.tmp').symlink_to(victim)
    hd.remove(hd.leftover_temp_files())
    assert victim.exists()
    assert os.listdir(str(home)) == []


# -- users and groups -----------------------------------------------------------------------------

def test_resolve_ids():
    assert safe_files.resolve_ids() == (None, None)
    assert safe_files.resolve_ids('root') == (0, 0)
    assert safe_files.resolve_ids('0') == (0, 0)
    assert safe_files.resolve_ids(0) == (0, 0)
    assert safe_files.resolve_ids('root', 'root') == (0, 0)
    assert safe_files.resolve_ids(None, '0') == (None, 0)
    nobody = safe_files.resolve_ids('65534')
    assert nobody[0] == NOBODY


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


# -- directories (was ensure_directory) -----------------------------------------------------------

def test_ensure_creates_0700(tmp_path, umask0):
    path = tmp_path / 'deep' / 'er' / '.codex'
    assert ensure(path) == ['created']
    assert mode_of(path) == 0o700
    assert mode_of(tmp_path / 'deep') == 0o755 and mode_of(tmp_path / 'deep' / 'er') == 0o755
    assert ensure(path) == []


def test_ensure_under_strict_umask(tmp_path):
    old = os.umask(0o777)
    try:
        # Finished to 0700 despite the umask, and reported once, as created (what check mode predicts).
        assert ensure(tmp_path / 'c') == ['created']
    finally:
        os.umask(old)
    assert mode_of(tmp_path / 'c') == 0o700


def test_ensure_repairs_mode_and_owner(tmp_path):
    path = tmp_path / '.codex'
    path.mkdir()
    os.chmod(str(path), 0o755)
    assert ensure(path, NOBODY) == ['mode', 'owner']
    st = os.lstat(str(path))
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == NOBODY
    assert ensure(path, NOBODY) == []


def test_ensure_refuses_symlink(tmp_path):
    real = tmp_path / 'real'
    real.mkdir(mode=0o755)
    (tmp_path / 'link').symlink_to(real)
    with pytest.raises(UnsafePathError) as info:
        ensure(tmp_path / 'link')
    assert info.value.code == 'codex_home_symlink'
    assert mode_of(real) == 0o755


# -- repairs --------------------------------------------------------------------------------------

def test_repair_and_mode_changes(home, hd):
    target = home / 'auth.json'
    target.write_text('{}')
    os.chmod(str(target), 0o644)
    assert safe_files.mode_changes(os.lstat(str(target)), None, None, 0o600) == ['mode']
    assert safe_files.mode_changes(os.lstat(str(target)), NOBODY, None, 0o600) == ['mode', 'owner']
    assert hd.repair('auth.json', NOBODY, NOBODY, 0o600) == ['mode', 'owner']
    st = os.lstat(str(target))
    assert stat.S_IMODE(st.st_mode) == 0o600 and (st.st_uid, st.st_gid) == (NOBODY, NOBODY)
    assert hd.repair('auth.json', NOBODY, NOBODY, 0o600) == []
    assert safe_files.mode_changes(st, NOBODY, NOBODY, 0o600) == []


def test_repair_does_not_follow_symlink(home, hd, tmp_path):
    real = tmp_path / 'real'
    real.write_text('{}')
    os.chmod(str(real), 0o644)
    (home / 'auth.json').symlink_to(real)
    with pytest.raises(UnsafePathError) as info:
        hd.repair('auth.json', NOBODY, NOBODY, 0o600)
    assert info.value.code == 'auth_symlink'
    assert mode_of(real) == 0o644
    assert os.lstat(str(real)).st_uid == 0


def test_repair_refuses_hard_link_and_fifo(home, hd, tmp_path):
    other = tmp_path / 'other'
    other.write_text('{}')
    os.chmod(str(other), 0o644)
    os.link(str(other), str(home / 'auth.json'))
    with pytest.raises(UnsafePathError) as info:
        hd.repair('auth.json', NOBODY, None, 0o600)
    assert info.value.code == 'auth_hardlink'
    assert mode_of(other) == 0o644 and os.lstat(str(other)).st_uid == 0
    os.mkfifo(str(home / 'config.toml'))
    with pytest.raises(UnsafePathError) as info:
        hd.repair('config.toml', None, None, 0o600, code='config')
    assert info.value.code == 'config_not_regular'


def test_repair_own_mode_0000_file(tmp_path):
    """The runner cannot open its own mode-0000 file; the O_PATH descriptor still repairs it."""
    home = tmp_path / 'codex'
    home.mkdir(mode=0o700)
    os.chown(str(home), NOBODY, NOBODY)
    target = home / 'auth.json'
    target.write_text('{}')
    os.chown(str(target), NOBODY, NOBODY)
    os.chmod(str(target), 0)
    hd = open_home(home)
    try:
        changes = privsep.run_as(privsep.Identity(NOBODY), hd.repair, 'auth.json', None, None, 0o600)
    finally:
        os.close(hd.fd)
    assert changes == ['mode']
    assert mode_of(target) == 0o600
    assert os.lstat(str(target)).st_uid == NOBODY


# -- a descriptor, not a path ---------------------------------------------------------------------

def test_operations_stay_in_the_real_directory_after_a_swap(tmp_path, monkeypatch):
    """The path renamed away and replaced by a link: everything still happens in the directory that
    was opened, nothing through the link."""
    monkeypatch.setattr(safe_files, 'datetime', ticking_clock())
    home = tmp_path / 'codex'
    home.mkdir(mode=0o700)
    (home / 'auth.json').write_bytes(b'original')
    os.chmod(str(home / 'auth.json'), 0o644)
    (home / '.codexops-auth.json-left.tmp').write_text('x')
    decoy = tmp_path / 'decoy'
    decoy.mkdir()
    (decoy / 'auth.json').write_bytes(b'decoy')
    os.chmod(str(decoy / 'auth.json'), 0o644)
    (decoy / '.codexops-auth.json-decoy.tmp').write_text('x')
    hd = open_home(home)
    try:
        moved = tmp_path / 'moved'
        os.rename(str(home), str(moved))
        home.symlink_to(decoy)
        assert hd.read_regular('auth.json', 'auth', 1024)[0] == b'original'
        assert hd.leftover_temp_files() == ['.codexops-auth.json-left.tmp']
        hd.remove(hd.leftover_temp_files())
        assert hd.repair('auth.json', None, None, 0o600) == ['mode']
        hd.write_backup('auth.json', b'original')
        with hd.codex_lock(timeout=1):
            hd.atomic_write('auth.json', b'new')
    finally:
        os.close(hd.fd)
    assert (moved / 'auth.json').read_bytes() == b'new'
    assert mode_of(moved / 'auth.json') == 0o600
    assert sorted(name for name in os.listdir(str(moved)) if name.endswith('.bak')) != []
    assert all((moved / name).exists() for name in safe_files.LOCK_FILES)
    assert not (moved / '.codexops-auth.json-left.tmp').exists()
    # The decoy the link points to is exactly as it was.
    assert sorted(os.listdir(str(decoy))) == ['.codexops-auth.json-decoy.tmp', 'auth.json']
    assert (decoy / 'auth.json').read_bytes() == b'decoy'
    assert mode_of(decoy / 'auth.json') == 0o644
