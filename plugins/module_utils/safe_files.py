# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Safe file operations inside a CODEX_HOME.

Private to this collection. Credentials are expensive to lose and dangerous to leak, so:
paths are checked with lstat and opened with O_NOFOLLOW; writes go to an O_EXCL 0600 temp file in
the same directory, fsync, rename, fsync the directory; writes to auth.json take the same two
flocks Codex takes (auth.lock, then auth.json.lock) so a refresh in flight is never overwritten;
backups are created 0600 whatever the mode of the file they copy.
"""

import contextlib
import datetime
import errno
import fcntl
import grp
import os
import pwd
import stat
import time

TEMP_PREFIX = '.codexops-'
LOCK_FILES = ('auth.lock', 'auth.json.lock')
DEFAULT_LOCK_TIMEOUT = 30.0


class UnsafePathError(Exception):
    """A path we refuse to touch; `code` doubles as the verify problem code."""

    def __init__(self, code, message):
        super(UnsafePathError, self).__init__(message)
        self.code = code
        self.message = message


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


def lstat_or_none(path):
    try:
        return os.lstat(path)
    except ValueError:
        return None  # a NUL byte in the path: no file can have that name
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def kind_of(st):
    for test, name in ((stat.S_ISLNK, 'symlink'), (stat.S_ISDIR, 'directory'), (stat.S_ISREG, 'regular file'),
                       (stat.S_ISFIFO, 'FIFO'), (stat.S_ISSOCK, 'socket'), (stat.S_ISCHR, 'character device'),
                       (stat.S_ISBLK, 'block device')):
        if test(st.st_mode):
            return name
    return 'special file'


def check_home(path):
    """lstat of CODEX_HOME, or None if it does not exist. Refuses a symlink or a non-directory:
    following a link would put credentials wherever the link points."""
    if not os.path.isabs(path):
        raise UnsafePathError('codex_home_relative', 'codex_home must be an absolute path, got a relative one.')
    if '\0' in path:
        raise UnsafePathError('codex_home_not_dir', 'codex_home contains a NUL byte; no directory can have that name.')
    st = lstat_or_none(path)
    if st is None:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError('codex_home_symlink', '%s is a symlink; point codex_home at the real directory '
                              'so credentials cannot be redirected.' % path)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError('codex_home_not_dir', '%s exists but is a %s, not a directory.' % (path, kind_of(st)))
    return st


def check_regular(path, name_code):
    """lstat of a file we may replace, or None if absent. Refuses symlinks, hard links and
    anything that is not a regular file. `name_code` prefixes the problem codes (e.g. 'auth')."""
    st = lstat_or_none(path)
    if st is None:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError('%s_symlink' % name_code, '%s is a symlink; remove it (credentials are never '
                              'written through a link).' % path)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePathError('%s_not_regular' % name_code, '%s is a %s, not a regular file.' % (path, kind_of(st)))
    if st.st_nlink > 1:
        raise UnsafePathError('%s_hardlink' % name_code, '%s has %d hard links; Codex refuses to replace '
                              'hard-linked credentials, and so do we. Remove the other links.'
                              % (path, st.st_nlink))
    return st


def read_regular(path, name_code, max_bytes):
    """(bytes, stat) of a regular file, or (None, None) if absent, without following links and
    without blocking on a FIFO."""
    if check_regular(path, name_code) is None:
        return None, None
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None, None
        raise UnsafePathError('%s_unreadable' % name_code, 'cannot open %s: %s.' % (path, exc.strerror))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            # Swapped between lstat and open: check again on what we really opened.
            raise UnsafePathError('%s_not_regular' % name_code, '%s changed while it was being read.' % path)
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise UnsafePathError('%s_too_large' % name_code, '%s is larger than %d bytes.' % (path, max_bytes))
        return b''.join(chunks), st
    except OSError as exc:
        raise UnsafePathError('%s_unreadable' % name_code, 'cannot read %s: %s.' % (path, exc.strerror))
    finally:
        os.close(fd)


def ensure_directory(path, uid, gid, mode=0o700):
    """Create (parents like `file: state=directory`) or repair CODEX_HOME. Returns what changed."""
    changes = []
    st = check_home(path)
    if st is None:
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        os.mkdir(path, mode)
        st = os.lstat(path)
        changes.append('created')
    repairs = []
    if stat.S_IMODE(st.st_mode) != mode:  # the umask may have narrowed the mkdir mode
        os.chmod(path, mode)
        repairs.append('mode')
    if _needs_chown(st, uid, gid):
        os.lchown(path, -1 if uid is None else uid, -1 if gid is None else gid)
        repairs.append('owner')
    # A directory just created is reported as created, however it had to be finished.
    return changes or repairs


def repair_file(path, uid, gid, mode=0o600, name_code='auth'):
    """Set mode and ownership of an existing regular file without following links."""
    changes = []
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError('%s_not_regular' % name_code, '%s is not a regular file.' % path)
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
            changes.append('mode')
        if _needs_chown(st, uid, gid):
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
            changes.append('owner')
    finally:
        os.close(fd)
    return changes


def _needs_chown(st, uid, gid):
    return (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid)


def mode_changes(st, uid, gid, mode):
    """What repair_file/ensure_directory would change, for check mode."""
    changes = []
    if stat.S_IMODE(st.st_mode) != mode:
        changes.append('mode')
    if _needs_chown(st, uid, gid):
        changes.append('owner')
    return changes


@contextlib.contextmanager
def codex_lock(home, uid=None, gid=None, timeout=DEFAULT_LOCK_TIMEOUT):
    """Hold Codex's auth locks, in Codex's order. Lock files we create belong to the runner
    user: a root-owned 0600 lock file would stop the runner's own Codex from ever saving."""
    fds = []
    try:
        for name in LOCK_FILES:
            fds.append(_acquire(os.path.join(home, name), uid, gid, timeout))
        yield
    finally:
        for fd in reversed(fds):
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


def _acquire(path, uid, gid, timeout):
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
    fd = None
    try:
        if (uid is not None or gid is not None) and not os.path.lexists(path):
            fd = _create_owned(path, uid, gid)
        if fd is None:
            fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise UnsafePathError('lock_unavailable', 'cannot open the lock file %s: %s.' % (path, exc.strerror))
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
                                  'probably refreshing credentials. Retry when it has finished.' % (timeout, path))
        time.sleep(0.05)


def _create_owned(path, uid, gid):
    """Create the lock file `path` already owned by the runner user, and return an fd on it (None if
    it appeared meanwhile). Created as root and chowned after, it would be root's 0600 file for a
    moment, and a Codex saving a refresh in that moment cannot open it: the refresh is made at the
    server, never saved, and the refresh token is burnt (seen with Codex 0.169)."""
    directory, name = os.path.split(path)
    tmp, fd = _exclusive_create(directory, '%s%s-' % (TEMP_PREFIX, name), '.tmp', 0o600)
    try:
        os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        os.link(tmp, path)  # appears with its owner; never replaces a lock file Codex created
        return fd
    except OSError as exc:
        os.close(fd)
        if exc.errno == errno.EEXIST:
            return None
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    # No hard links here: create it in place and chown it (the lock is then root's for a moment).
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0), 0o600)
    try:
        os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
    except OSError:
        os.close(fd)
        raise
    return fd


def atomic_write(path, data, uid=None, gid=None, mode=0o600):
    """Replace `path` with `data`: never a partial file, never a moment with loose permissions."""
    directory, name = os.path.split(path)
    tmp = _exclusive_create(directory, '%s%s-' % (TEMP_PREFIX, name), '.tmp', mode)
    try:
        _write_all(tmp[1], data, uid, gid, mode)
        os.rename(tmp[0], path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp[0])
        raise
    _fsync_directory(directory)


def write_backup(path, data, uid=None, gid=None):
    """Keep `data` (the file being replaced) beside it as a 0600 timestamped copy. It is written
    to a temp file and linked into place, so a run killed mid-write leaves no partial backup,
    only a temp file that the next run removes."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')
    directory, name = os.path.split(path)
    tmp_path, fd = _exclusive_create(directory, '%s%s-' % (TEMP_PREFIX, name), '.tmp', 0o600)
    try:
        _write_all(fd, data, uid, gid, 0o600)
        return _link_unique(tmp_path, os.path.join(directory, '%s.%s' % (name, stamp)), '.bak')
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)


def _link_unique(source, prefix, suffix):
    """Give `source` a new name that did not exist (link() never replaces anything)."""
    for attempt in range(100):
        candidate = prefix + ('' if attempt == 0 else '.%d' % attempt) + suffix
        try:
            os.link(source, candidate)
            return candidate
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                continue
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                raise
        # A file system without hard links: rename to a name that is free.
        if not os.path.lexists(candidate):
            os.rename(source, candidate)
            return candidate
    raise UnsafePathError('temp_exhausted', 'could not create a unique file for %s.' % prefix)


def _exclusive_create(directory, prefix, suffix, mode, random=True):
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
    for attempt in range(100):
        tag = os.urandom(6).hex() if random else ('' if attempt == 0 else '.%d' % attempt)
        candidate = os.path.join(directory, prefix + tag + suffix)
        try:
            return candidate, os.open(candidate, flags, mode)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
    raise UnsafePathError('temp_exhausted', 'could not create a unique file in %s.' % directory)


def _write_all(fd, data, uid, gid, mode):
    try:
        # fchmod first: the umask may have narrowed or (never) widened the O_EXCL mode.
        os.fchmod(fd, mode)
        if uid is not None or gid is not None:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory):
    fd = os.open(directory, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    try:
        os.fsync(fd)
    except OSError:
        pass  # Some filesystems refuse fsync on directories; the rename is still atomic.
    finally:
        os.close(fd)


def leftover_temp_files(home):
    """Our own temp files left by a run that was killed mid-write (never Codex's `.auth-*`)."""
    try:
        names = os.listdir(home)
    except OSError:
        return []
    return sorted(os.path.join(home, name) for name in names
                  if name.startswith(TEMP_PREFIX) and name.endswith('.tmp'))


def remove_files(paths):
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
