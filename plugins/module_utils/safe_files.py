# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""File operations inside an open CODEX_HOME, every one relative to its directory descriptor.

Private to this collection. A `HomeDir` is a descriptor on the real CODEX_HOME (opened by
codex_home.py without following links), so renaming or replacing the path afterwards changes
nothing about where we work. Every file is opened with O_NOFOLLOW and O_NONBLOCK and judged on the
open descriptor (regular, one link) before it is read, chmodded or chowned. Writes go to an O_EXCL
0600 temp file in CODEX_HOME, fsync, rename, fsync the directory; writes to auth.json take the same
two flocks Codex takes (auth.lock, then auth.json.lock), bounded by a timeout, so a refresh in
flight is never overwritten; backups are 0600 whatever the mode of the file they copy, and only
the newest `keep` are kept.
"""

import contextlib
import datetime
import errno
import fcntl
import grp
import os
import pwd
import re
import stat
import time

from ansible_collections.codexops.runner.plugins.module_utils import trusted_path

UnsafePathError = trusted_path.UnsafePathError

TEMP_PREFIX = '.codexops-'
LOCK_FILES = ('auth.lock', 'auth.json.lock')
DEFAULT_LOCK_TIMEOUT = 30.0
DEFAULT_BACKUP_KEEP = 3
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
_BACKUP_NAME = r'^%s\.(\d{8}T\d{6}\.\d{6}Z)(?:\.(\d+))?\.bak$'


def resolve_ids(owner=None, group=None):
    """(uid, gid) for the names given; None for what was not asked for. A missing user is an
    error before anything is created, never a chown to a number that means nobody."""
    uid = gid = None
    if owner is not None:
        try:
            entry = pwd.getpwuid(int(owner)) if str(owner).isdigit() else pwd.getpwnam(owner)
        except (KeyError, ValueError):
            raise UnsafePathError('owner_missing', 'user %r does not exist on this host; create it first '
                                  '(for example with ansible.builtin.user).' % (owner,))
        uid, gid = entry.pw_uid, entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if str(group).isdigit() else grp.getgrnam(group).gr_gid
        except (KeyError, ValueError):
            raise UnsafePathError('group_missing', 'group %r does not exist on this host.' % (group,))
    return uid, gid


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


kind_of = trusted_path.kind_of


def needs_chown(st, uid, gid):
    return (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid)


def lock_fault(st):
    """Why a lock file (its lstat or fstat) is not one anybody can take, or None. The one rule:
    codex_lock refuses such a file, verify reports it (lock_unusable)."""
    if not stat.S_ISREG(st.st_mode):
        return 'is a %s, not a regular file' % kind_of(st)
    return None


def mode_changes(st, uid, gid, mode):
    """What a repair would change on `st`: 'mode' and/or 'owner'."""
    changes = []
    if stat.S_IMODE(st.st_mode) != mode:
        changes.append('mode')
    if needs_chown(st, uid, gid):
        changes.append('owner')
    return changes


def judge_regular(st, shown, code):
    """Refuse what is not a plain file of its own: a link, a FIFO or device, a hard link."""
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError('%s_symlink' % code, '%s is a symlink; remove it (credentials are never '
                              'written through a link).' % shown)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePathError('%s_not_regular' % code, '%s is a %s, not a regular file.' % (shown, kind_of(st)))
    if st.st_nlink > 1:
        raise UnsafePathError('%s_hardlink' % code, '%s has %d hard links; Codex refuses to replace '
                              'hard-linked credentials, and so do we. Remove the other links.'
                              % (shown, st.st_nlink))
    return st


class HomeDir(object):
    """An open CODEX_HOME. `path` is only for messages: nothing here resolves it."""

    def __init__(self, fd, path):
        self.fd = fd
        self.path = path

    def shown(self, name):
        return os.path.join(self.path, name)

    def stat(self):
        return os.fstat(self.fd)

    def lstat(self, name):
        return trusted_path.lstat_at(name, self.fd)

    def check_regular(self, name, code):
        """lstat of a file we may replace, or None if absent; refuses links and special files."""
        st = self.lstat(name)
        return None if st is None else judge_regular(st, self.shown(name), code)

    def read_regular(self, name, code, max_bytes):
        """(bytes, stat) of a regular file, or (None, None) if absent."""
        before = self.check_regular(name, code)
        if before is None:
            return None, None
        try:
            data, st = trusted_path.read_fd_file(self.fd, name, self.shown(name), code, max_bytes)
        except UnsafePathError as exc:
            if exc.code == '%s_unreadable' % code and before.st_uid != os.geteuid():
                raise UnsafePathError(exc.code, '%s is owned by %s and %s cannot read it; a file the runner user '
                                      'could have moved here is neither read nor taken over. Check it, then '
                                      'chown it to the runner or remove it.'
                                      % (self.shown(name), user_name(before.st_uid), user_name(os.geteuid())))
            raise
        if st is not None:
            judge_regular(st, self.shown(name), code)  # swapped between lstat and open
        return data, st

    def repair(self, name, uid, gid, mode, code='auth'):
        """Set mode and ownership of an existing regular file, judged on its descriptor."""
        with self._open_for_metadata(name, code) as (fd, st):
            changes = mode_changes(st, uid, gid, mode)
            if 'mode' in changes:
                _fchmod(fd, mode)
            if 'owner' in changes:
                _fchown(fd, uid, gid)
        return changes

    @contextlib.contextmanager
    def _open_for_metadata(self, name, code):
        try:
            fd = os.open(name, os.O_RDONLY | _OPEN_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePathError('%s_symlink' % code, '%s is a symlink.' % self.shown(name))
            if exc.errno != errno.EACCES or not hasattr(os, 'O_PATH'):
                raise
            # A mode-0000 file of our own: a path descriptor still names exactly this inode.
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0), dir_fd=self.fd)
        try:
            st = judge_regular(os.fstat(fd), self.shown(name), code)
            yield fd, st
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def codex_lock(self, uid=None, gid=None, timeout=DEFAULT_LOCK_TIMEOUT):
        """Hold Codex's auth locks, in Codex's order. A lock someone else holds delays us up to
        `timeout`; it can never redirect us (the files are opened here, without following links)."""
        fds = []
        try:
            for name in LOCK_FILES:
                fds.append(self._acquire(name, uid, gid, timeout))
            yield
        finally:
            for fd in reversed(fds):
                try:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)

    def check_locks(self):
        """Check mode: refuse, as codex_lock() would, a lock file that exists and cannot be used
        (opened for writing, never created, chowned or locked here)."""
        for name in LOCK_FILES:
            opened = self._open_lock(name, create=False)
            if opened is not None:
                os.close(opened[0])

    def _open_lock(self, name, create=True):
        """(fd, fstat) of the lock file `name`, opened for writing without following a link (None when
        it is missing and create is false). A special file is refused on lstat, before it is opened
        (opening a device can do something)."""
        before = self.lstat(name)
        if before is None and not create:
            return None
        if before is not None and lock_fault(before):
            raise UnsafePathError('lock_unavailable', 'the lock file %s %s.' % (self.shown(name), lock_fault(before)))
        try:
            fd = os.open(name, os.O_RDWR | (os.O_CREAT if create else 0) | _OPEN_FLAGS, 0o600, dir_fd=self.fd)
        except OSError as exc:
            raise UnsafePathError('lock_unavailable', 'cannot open the lock file %s: %s.'
                                  % (self.shown(name), exc.strerror))
        st = os.fstat(fd)
        if lock_fault(st):
            os.close(fd)
            raise UnsafePathError('lock_unavailable', 'the lock file %s %s.' % (self.shown(name), lock_fault(st)))
        return fd, st

    def _acquire(self, name, uid, gid, timeout):
        fd, st = self._open_lock(name)
        try:
            # Codex running as the runner must be able to open the lock: never leave it ours only.
            if needs_chown(st, uid, gid) and st.st_nlink == 1:
                _fchown(fd, uid, gid)
        except BaseException:
            os.close(fd)
            raise
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            if time.monotonic() >= deadline:
                os.close(fd)
                raise UnsafePathError('lock_timeout', 'timed out after %ss waiting for %s; a Codex process is '
                                      'probably refreshing credentials (or a job holds the lock). Retry when it '
                                      'has finished, or raise lock_timeout.' % (timeout, self.shown(name)))
            time.sleep(0.05)

    def atomic_write(self, name, data, uid=None, gid=None, mode=0o600):
        """Replace `name` with `data`: never a partial file, never a moment with loose permissions."""
        tmp, fd = self._exclusive_create('%s%s-' % (TEMP_PREFIX, name), '.tmp')
        try:
            _write_all(fd, data, uid, gid, mode)
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self.fd)
            raise
        self.fsync()

    def write_backup(self, name, data, uid=None, gid=None, keep=DEFAULT_BACKUP_KEEP):
        """Keep `data` (the file being replaced) beside it as a 0600 timestamped copy, then drop all but
        the newest `keep` (0 keeps all). Written to a temp file and linked into place, so a run killed
        mid-write leaves no partial backup, only a temp file the next run removes."""
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')
        tmp, fd = self._exclusive_create('%s%s-' % (TEMP_PREFIX, name), '.tmp')
        try:
            _write_all(fd, data, uid, gid, 0o600)
            backup = self._link_unique(tmp, '%s.%s' % (name, stamp), '.bak')
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self.fd)
        self.prune_backups(name, keep)
        self.fsync()
        return self.shown(backup)

    def backups(self, name):
        """Our backups of `name`, oldest first (the timestamp sorts as text)."""
        pattern = re.compile(_BACKUP_NAME % re.escape(name))
        found = [(pattern.match(entry), entry) for entry in os.listdir(self.fd)]
        # By stamp, then by the .N a stamp taken twice gets (numerically: .10 after .2).
        return [entry for match, entry in sorted(
            (item for item in found if item[0]), key=lambda item: (item[0].group(1), int(item[0].group(2) or 0)))]

    def prune_backups(self, name, keep):
        if not keep:
            return []
        old = self.backups(name)[:-keep]
        for entry in old:
            st = self.lstat(entry)
            if st is not None and stat.S_ISREG(st.st_mode):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry, dir_fd=self.fd)
        return old

    def _link_unique(self, source, prefix, suffix):
        """Give `source` a new name that did not exist (link() never replaces anything)."""
        for attempt in range(100):
            candidate = prefix + ('' if attempt == 0 else '.%d' % attempt) + suffix
            try:
                os.link(source, candidate, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
                return candidate
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    continue
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                    raise
            # A file system without hard links: rename to a name that is free.
            if self.lstat(candidate) is None:
                os.rename(source, candidate, src_dir_fd=self.fd, dst_dir_fd=self.fd)
                return candidate
        raise UnsafePathError('temp_exhausted', 'could not create a unique file for %s.' % self.shown(prefix))

    def _exclusive_create(self, prefix, suffix):
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
        for _attempt in range(100):
            candidate = prefix + os.urandom(6).hex() + suffix
            try:
                return candidate, os.open(candidate, flags, 0o600, dir_fd=self.fd)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
        raise UnsafePathError('temp_exhausted', 'could not create a unique file in %s.' % self.path)

    def fsync(self):
        try:
            os.fsync(self.fd)
        except OSError:
            pass  # Some filesystems refuse fsync on directories; the rename is still atomic.

    def leftover_temp_files(self):
        """Our own temp files left by a run that was killed mid-write (never Codex's `.auth-*`)."""
        try:
            names = os.listdir(self.fd)
        except OSError:
            return []
        return sorted(name for name in names if name.startswith(TEMP_PREFIX) and name.endswith('.tmp'))

    def remove(self, names):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self.fd)


def _fchmod(fd, mode):
    try:
        os.fchmod(fd, mode)
    except OSError as exc:
        if exc.errno != errno.EBADF:
            raise
        os.chmod('/proc/self/fd/%d' % fd, mode)  # an O_PATH descriptor


def _fchown(fd, uid, gid):
    uid, gid = -1 if uid is None else uid, -1 if gid is None else gid
    try:
        os.fchown(fd, uid, gid)
    except OSError as exc:
        if exc.errno != errno.EBADF:
            raise
        os.chown('/proc/self/fd/%d' % fd, uid, gid)


def _write_all(fd, data, uid, gid, mode):
    try:
        # fchmod first: the umask may have narrowed or (never) widened the O_EXCL mode.
        os.fchmod(fd, mode)
        if uid is not None or gid is not None:
            _fchown(fd, uid, gid)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
