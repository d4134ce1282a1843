# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Acting as the runner user: a forked child that dropped to its uid, gid and groups.

Private to this collection. The runner user is untrusted (every CI job runs code as it), and the
modules run as root. Whatever happens inside a directory the runner controls is done by a child
that holds the runner's credentials and nothing more, so links, swaps and hard links planted by the
runner can only ever reach what the runner could reach itself. The child inherits the parent's
memory and open descriptors (the CODEX_HOME handle), runs one function, and sends back its result
as JSON; it never execs with root's environment and never writes to the module's stdout.

A child whose credentials changed is not dumpable (the kernel resets the flag on setuid), so the
runner cannot ptrace it or read its memory or environment through /proc.
"""

import ctypes
import json
import os
import pwd
import select
import signal
import sys
import time

from ansible_collections.codexops.runner.plugins.module_utils import constants
from ansible_collections.codexops.runner.plugins.module_utils import errors

# A child that has not answered by then is killed: nothing the runner does may hang the run.
DEFAULT_CHILD_TIMEOUT = 300.0
_MAX_RESULT_BYTES = 16 * 1024 * 1024
# Once its result is in (or it was killed), the child must be gone within this; we never wait longer.
REAP_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4


class PrivsepError(errors.CodexOpsError):
    default_code = 'privsep_failed'


class Identity(object):
    """A user to act as: uid, primary gid, supplementary groups, name and home from the passwd entry."""

    def __init__(self, uid, gid=None, groups=None):
        self.uid = uid
        try:
            entry = pwd.getpwuid(uid)
            self.name, self.home = entry.pw_name, entry.pw_dir
            self.gid = entry.pw_gid if gid is None else gid
            self.groups = sorted(set(os.getgrouplist(entry.pw_name, self.gid))) if groups is None else list(groups)
        except KeyError:
            # A uid without a passwd entry (a file owned by a deleted user): no groups, no home.
            self.name, self.home = str(uid), '/'
            self.gid = uid if gid is None else gid
            self.groups = [self.gid] if groups is None else list(groups)

    def __repr__(self):
        return 'Identity(%s)' % self.name

    def is_current(self):
        return self.uid == os.geteuid()

    def drop(self):
        """Become this user for good (real, effective and saved ids), groups first."""
        os.setgroups(self.groups)
        os.setresgid(self.gid, self.gid, self.gid)
        # Saved uid still root: the runner cannot ptrace us yet (it must match all three uids).
        os.setresuid(self.uid, self.uid, constants.ROOT_UID)
        # The euid change reset "dumpable" to fs.suid_dumpable, which may be 1: clear it ourselves.
        # Dropping the saved uid below changes neither euid nor fsuid, so the kernel keeps it clear.
        if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise PrivsepError('could not make the child acting as %s non-dumpable' % self.name)
        os.setresuid(self.uid, self.uid, self.uid)
        if os.getresuid() != (self.uid,) * 3 or os.getresgid() != (self.gid,) * 3:
            raise PrivsepError('could not drop to user %s' % self.name)


def current():
    return Identity(os.geteuid(), os.getegid(), os.getgroups())


def run_as(identity, func, *args, **kwargs):
    """func(*args, **kwargs) as `identity`: in this process when we already are that user, else in a
    child that dropped to it. The result must be JSON-serialisable; CodexOpsError and OSError
    raised in the child are raised again here."""
    timeout = kwargs.pop('child_timeout', DEFAULT_CHILD_TIMEOUT)
    if identity.is_current():
        return func(*args, **kwargs)
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child(identity, write_end, func, args, kwargs, parent)
    os.close(write_end)
    try:
        payload = _read_all(read_end, pid, timeout)
    except BaseException:
        _kill(pid)
        raise
    finally:
        os.close(read_end)
        reaped = _reap(pid)
    if not reaped:
        # Our own child, non-dumpable, killed: only a kernel in trouble keeps it. Never wait for it.
        raise PrivsepError('the runner-user child acting as %s could not be reaped within %g seconds after it '
                           'finished; it was left behind.' % (identity.name, REAP_SECONDS), code='child_unreaped')
    return _unwrap(payload, identity)


def _die_with_parent(parent):
    """Linux: SIGKILL this child when the module process dies (a killed task leaves no runner-user
    process behind, and a write dies with its module, as it would without privsep). The kernel
    clears the setting on a credential change, so it is set after the drop."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)  # the parent died before the setting took effect


def _detach_stdio():
    """The module's stdout is Ansible's channel for the result: the child must never write to it."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    sys.stdout = sys.stderr = open(os.devnull, 'w')


def _child(identity, write_end, func, args, kwargs, parent):
    status = 0
    try:
        try:
            _detach_stdio()
            identity.drop()
            _die_with_parent(parent)
            outcome = {'ok': func(*args, **kwargs)}
        except errors.CodexOpsError as exc:
            outcome = {'error': exc.to_wire()}
        except OSError as exc:
            outcome = {'oserror': [exc.errno, exc.strerror, exc.filename if isinstance(exc.filename, str) else None]}
        except Exception as exc:  # pylint: disable=broad-except
            # Only the class name: the text of an unexpected error may quote file content.
            outcome = {'error': {'class': 'PrivsepError', 'code': 'internal_error',
                                 'message': 'unexpected %s while acting as %s' % (exc.__class__.__name__,
                                                                                  identity.name)}}
        data = json.dumps(outcome).encode('utf-8')
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view):]
    except BaseException:  # pylint: disable=broad-except
        status = 1
    finally:
        # _exit: no atexit handlers, no flush of the module's buffered stdout a second time.
        os._exit(status)


def _read_all(fd, pid, timeout):
    deadline = time.monotonic() + timeout
    chunks, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            _kill(pid)
            raise PrivsepError('the runner-user child did not finish within %g seconds and was killed.' % timeout,
                               code='child_timeout')
        ready, _w, _x = select.select([fd], [], [], min(left, 0.2))
        if not ready:
            # The runner may signal its own uid's processes: a stopped child would hold us until the
            # deadline. Kill it at once instead.
            try:
                done, status = os.waitpid(pid, os.WNOHANG | os.WUNTRACED)
            except ChildProcessError:
                done, status = 0, 0
            if done and os.WIFSTOPPED(status):
                _kill(pid)
                raise PrivsepError('the runner-user child was stopped by a signal (the runner user may send '
                                   'it one) and was killed.', code='child_stopped')
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return b''.join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > _MAX_RESULT_BYTES:
            _kill(pid)
            raise PrivsepError('the runner-user child sent an oversized result.')


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _reap(pid):
    """Reap our child without ever blocking: poll (WNOHANG) up to REAP_SECONDS, killing it once it
    is past due. True when it is gone."""
    deadline = time.monotonic() + REAP_SECONDS
    killed = False
    while True:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if done:
            return True
        if time.monotonic() >= deadline:
            return False
        if not killed and time.monotonic() >= deadline - REAP_SECONDS / 2:
            # It sent its result and should have exited: a stopped or stuck child goes now.
            _kill(pid)
            killed = True
        time.sleep(0.01)


def _unwrap(payload, identity):
    try:
        outcome = json.loads(payload.decode('utf-8'))
    except ValueError:
        raise PrivsepError('the child acting as %s ended without a result.' % identity.name)
    if 'ok' in outcome:
        return outcome['ok']
    if 'oserror' in outcome:
        number, text, filename = outcome['oserror']
        raise OSError(number, text, filename) if filename else OSError(number, text)
    raise errors.from_wire(outcome.get('error') or {})
