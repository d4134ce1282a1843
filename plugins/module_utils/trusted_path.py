# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Walking a path from / without letting anyone but root redirect it.

Private to this collection. Root never resolves a path string through a directory someone else can
write: the walk opens one component at a time, relative to the descriptor of the one before, with
O_NOFOLLOW. A symbolic link is followed only where only root could have made it (owned by root, in
a directory only root can change); anywhere else it is refused. Each directory on the way is
classified by who can change its entries: nobody but root, or one other user (its owner, e.g. the
runner user's home). A directory that several users can write (group or world writable without the
sticky bit) is refused. The result tells the caller who controls the place it asked for, so the
caller can act there as that user (privsep) or refuse.
"""

import errno
import os
import stat

from ansible_collections.codexops.runner.plugins.module_utils import constants
from ansible_collections.codexops.runner.plugins.module_utils import errors

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
_MAX_LINKS = 40  # as the kernel's own limit on symlinks in one lookup


class UnsafePathError(errors.CodexOpsError):
    """A path we refuse to touch; `code` doubles as the verify problem code."""

    def __init__(self, code, message):
        super(UnsafePathError, self).__init__(message, code)


def kind_of(st):
    for test, name in ((stat.S_ISLNK, 'symlink'), (stat.S_ISDIR, 'directory'), (stat.S_ISREG, 'regular file'),
                       (stat.S_ISFIFO, 'FIFO'), (stat.S_ISSOCK, 'socket'), (stat.S_ISCHR, 'character device'),
                       (stat.S_ISBLK, 'block device')):
        if test(st.st_mode):
            return name
    return 'special file'


def open_dir(name, dir_fd):
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def lstat_at(name, dir_fd):
    """lstat of `name` in the directory `dir_fd`, or None when there is no such entry."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


# A root-only path up to a directory anyone may add entries to (sticky and group/world writable:
# /tmp, /var/tmp, /dev/shm). Its existing entries are their owners' (the sticky bit stops others
# renaming or removing them), but any user can create a name there first, or remove its own entry
# and make it again: root never creates anything in it, nor treats a name in it as root's.
ANYONE = 'anyone'


def controller_of(st, inherited):
    """Who besides root can change the entries of the directory `st`, given `inherited` (who
    controlled the directories above it: a uid, None for root alone, or ANYONE for a sticky shared
    directory, whose entries belong to their owners)."""
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022 and not mode & stat.S_ISVTX:
        return 'many'
    if inherited == ANYONE:
        inherited = None  # this directory is an entry of a sticky one: only its owner can move it
    owner = None if st.st_uid == constants.ROOT_UID else st.st_uid
    if inherited is not None and owner is not None and owner != inherited:
        return 'many'
    controller = inherited if inherited is not None else owner
    if controller is None and mode & 0o022:
        return ANYONE
    return controller


def split(path, code='codex_home'):
    if not isinstance(path, str) or not os.path.isabs(path):
        raise UnsafePathError('%s_relative' % code, '%s must be an absolute path, got a relative one.'
                              % ('codex_home' if code == 'codex_home' else 'the path'))
    if '\0' in path:
        raise UnsafePathError('%s_not_dir' % code, 'the path contains a NUL byte; no file can have that name.')
    return [part for part in path.split('/') if part and part != '.']


class Walk(object):
    """The deepest existing directory on the way to `path`: an open descriptor on it, who controls
    it, and the components below it that do not exist yet."""

    def __init__(self, fd, controller, missing, depth_path, parent_controller=None):
        self.fd = fd
        self.controller = controller
        self.missing = missing
        self.path = depth_path
        # Who controls the directory holding the deepest one (for an existing CODEX_HOME: its parent).
        self.parent_controller = parent_controller

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def walk(path, code='codex_home', follow_final=False):
    """Open every existing directory of `path` in turn. Refuses a link anyone but root could have
    made, a non-directory on the way, and a directory several users can change. `code` prefixes
    the problem codes (codex_home_symlink, codex_home_path_symlink, codex_home_not_dir, ...)."""
    parts = split(path, code)
    fd = os.open('/', _DIR_FLAGS)
    controller = controller_of(os.fstat(fd), None)
    parent_controller = None
    done, links = [], 0
    try:
        while parts:
            if controller == 'many':
                raise UnsafePathError('%s_path_shared' % code, '/%s can be changed by more than one user (group '
                                      'or world writable, or owned by a user other than the one above it); put '
                                      'CODEX_HOME where only root and the runner user control the path.'
                                      % '/'.join(done))
            name = parts.pop(0)
            if name == '..':
                raise UnsafePathError('%s_not_dir' % code, 'the path %s contains "..": give the real path.' % path)
            st = lstat_at(name, fd)
            here = '/' + '/'.join(done + [name])
            if st is None:
                return Walk(fd, controller, [name] + parts, '/' + '/'.join(done), parent_controller)
            if stat.S_ISLNK(st.st_mode):
                final = not parts
                if controller is not None or st.st_uid != constants.ROOT_UID or (final and not follow_final):
                    raise UnsafePathError('%s_symlink' % code if final else '%s_path_symlink' % code,
                                          '%s is a symlink%s; %s (a link could redirect root anywhere on the '
                                          'host).' % (here, '' if final else ' that a non-root user could have made',
                                                      'point codex_home at the real directory'
                                                      if code == 'codex_home' else 'give the real path'))
                links += 1
                if links > _MAX_LINKS:
                    raise UnsafePathError('%s_path_symlink' % code, 'too many symlinks in %s.' % path)
                # Only root could have made this link, and every directory above is real (no link
                # in `done`), so resolving its target lexically from / is what the kernel would do.
                target = os.readlink(name, dir_fd=fd)
                resolved = os.path.normpath(os.path.join('/' + '/'.join(done), target))
                parts = [p for p in resolved.split('/') if p] + parts
                os.close(fd)
                fd = os.open('/', _DIR_FLAGS)
                controller, parent_controller, done = controller_of(os.fstat(fd), None), None, []
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafePathError('%s_not_dir' % code, '%s exists but is a %s, not a directory.'
                                      % (here, kind_of(st)))
            try:
                child = open_dir(name, fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    raise UnsafePathError('%s_not_dir' % code, '%s changed while it was being opened.' % here)
                raise
            os.close(fd)
            fd = child
            done.append(name)
            parent_controller, controller = controller, controller_of(os.fstat(fd), controller)
        return Walk(fd, controller, [], '/' + '/'.join(done), parent_controller)
    except BaseException:
        os.close(fd)
        raise


def read_file(path, code, max_bytes, _hops=0):
    """(bytes, stat) of the regular file `path`, or (None, None) when absent: walked as above, a
    single link only, never blocking on a FIFO, at most `max_bytes`. For files the operator names
    on the managed host (environment files, seed files): root may read them, but no user can point
    root at another file through a link or a hard link."""
    parent, name = os.path.split(path)
    if not name:
        raise UnsafePathError('%s_not_regular' % code, '%s is not a file name.' % path)
    split(path, code)
    where = walk(parent, code, follow_final=True)
    try:
        if where.missing:
            return None, None
        st = lstat_at(name, where.fd)
        if st is None:
            return None, None
        if stat.S_ISLNK(st.st_mode):
            if where.controller is not None or st.st_uid != constants.ROOT_UID:
                raise UnsafePathError('%s_symlink' % code, '%s is a symlink a non-root user could have made; '
                                      'give the real path.' % path)
            if _hops >= _MAX_LINKS:
                raise UnsafePathError('%s_symlink' % code, 'too many symlinks at %s.' % path)
            target = os.readlink(name, dir_fd=where.fd)
            return read_file(os.path.normpath(os.path.join(where.path, target)), code, max_bytes, _hops + 1)
        if not stat.S_ISREG(st.st_mode):
            # Refused on lstat, before it is opened: opening a device can do something.
            raise UnsafePathError('%s_not_regular' % code, '%s is a %s, not a regular file.' % (path, kind_of(st)))
        # A hard link needs a directory only root controls, and not one where anyone may add a name
        # (a sticky /tmp counts as root's, yet a missing file there could be planted as a link).
        single_link = where.controller is not None or _anyone_can_add(os.fstat(where.fd))
        return read_fd_file(where.fd, name, path, code, max_bytes, single_link=single_link)
    finally:
        where.close()


def _anyone_can_add(st):
    return bool(stat.S_IMODE(st.st_mode) & 0o022)


def read_fd_file(dir_fd, name, shown, code, max_bytes, single_link=True):
    """Read `name` in `dir_fd` without following a link, judged on the open descriptor."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None, None
        if exc.errno == errno.ELOOP:
            raise UnsafePathError('%s_symlink' % code, '%s is a symlink; give the real file.' % shown)
        raise UnsafePathError('%s_unreadable' % code, 'cannot open %s: %s.' % (shown, exc.strerror))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError('%s_not_regular' % code, '%s is a %s, not a regular file.' % (shown, kind_of(st)))
        if single_link and st.st_nlink > 1:
            raise UnsafePathError('%s_hardlink' % code, '%s has %d hard links; a hard link can make another '
                                  "user's file look like this one. Remove the other links." % (shown, st.st_nlink))
        return read_bounded(fd, shown, code, max_bytes), st
    finally:
        os.close(fd)


def read_bounded(fd, shown, code, max_bytes):
    chunks, size = [], 0
    try:
        while size <= max_bytes:
            chunk = os.read(fd, min(65536, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise UnsafePathError('%s_unreadable' % code, 'cannot read %s: %s.' % (shown, exc.strerror))
    if size > max_bytes:
        raise UnsafePathError('%s_too_large' % code, '%s is larger than %d bytes.' % (shown, max_bytes))
    return b''.join(chunks)
