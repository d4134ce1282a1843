# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Running a runner-side program (Codex, the keepalive script) with a deadline on every wait.

Private to this collection. A program we start for the runner belongs to the runner once it has
exec'd: the runner can stop it, ptrace it (PTRACE_SEIZE), keep it from being reaped, or leave a
grandchild holding its output pipe open. So:

- root never starts it: `run()` forks a privsep child that has dropped to the runner first (not
  dumpable, so the runner can neither ptrace it nor read root's descriptors it still holds), and
  that child starts the program. Between its fork and its exec the program is a copy of that
  non-dumpable child, with every descriptor but its pipes closed before the exec. Root's only wait
  is on its own child, bounded by privsep;
- the dropped child waits on the program without ever blocking: its output is read through
  select() with a deadline, its exit is polled with WNOHANG, its process group is sent SIGTERM then
  SIGKILL at the deadline, and a program that cannot be reaped (a tracer holds its zombie, seen
  in /proc for REAP_SECONDS, or after SIGKILL) is abandoned with `unreaped` set - the run goes on;
- the program never runs as root, nor as anyone but the runner asked for (`runner_unknown`).
"""

import errno
import os
import select
import signal
import subprocess
import time

from ansible_collections.codexops.runner.plugins.module_utils import constants
from ansible_collections.codexops.runner.plugins.module_utils import errors
from ansible_collections.codexops.runner.plugins.module_utils import privsep

# After the deadline: SIGTERM, this long for the program to go, then SIGKILL.
TERM_GRACE_SECONDS = 5.0
# After SIGKILL, this long for the kernel to let us reap it (a ptrace tracer can hold the zombie).
REAP_SECONDS = 3.0
# Root's bound on the dropped child beyond the program's own deadline: the two above and some.
CHILD_GRACE_SECONDS = TERM_GRACE_SECONDS + REAP_SECONDS + 10.0
# What is kept of the program's output; the rest is read and dropped (a full pipe must not stall it).
MAX_OUTPUT_BYTES = 1024 * 1024
_POLL_SECONDS = 0.05


class RunnerProcessError(errors.CodexOpsError):
    default_code = 'runner_process_failed'


def runner_for(uid, home_owner, purpose):
    """The one rule for who runs a runner-side program: the `owner` asked for, else the non-root user
    that owns CODEX_HOME. Never root: root running Codex in a directory the runner controls (or can
    re-create) would let the runner steer root through Codex's own file handling."""
    chosen = uid if uid is not None else home_owner
    if chosen is None or chosen == constants.ROOT_UID:
        raise RunnerProcessError(
            'cannot run %s: no runner user is known for this CODEX_HOME (no owner was given and %s), and a '
            'runner-side program never runs as root. Set owner (role: codex_auth_user) to the runner user.'
            % (purpose, 'CODEX_HOME is missing' if home_owner is None else 'CODEX_HOME belongs to root'),
            code='runner_unknown')
    return privsep.Identity(chosen)


def run(identity, argv, env, stdin=b'', timeout=120.0, capture=True):
    """Run argv as `identity` with a deadline: {'rc', 'output' (text, or None when not captured),
    'timed_out', 'unreaped'}. OSError and ValueError from starting it are raised as they are."""
    if any('\0' in arg for arg in argv):
        raise ValueError('embedded null byte')  # as subprocess says it, before anything is forked
    if identity.uid == constants.ROOT_UID:
        raise RunnerProcessError('refusing to run %s as root.' % os.path.basename(argv[0]), code='runner_unknown')
    if identity.is_current():
        return _spawn(argv, env, stdin, timeout, capture)
    if os.geteuid() != constants.ROOT_UID:
        raise RunnerProcessError('cannot run %s as %s: this module runs as another non-root user.'
                                 % (os.path.basename(argv[0]), identity.name), code='runner_unknown')
    return privsep.run_as(identity, _spawn, argv, env, stdin, timeout, capture,
                          child_timeout=timeout + CHILD_GRACE_SECONDS)


def _spawn(argv, env, stdin, timeout, capture):
    """In the runner's own process: start argv in a new session and wait for it, never unbounded."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                            stderr=subprocess.STDOUT if capture else subprocess.DEVNULL,
                            env=env, cwd='/', start_new_session=True, close_fds=True)
    pending = memoryview(stdin) if stdin else None
    reader = _Output(proc.stdout) if capture else None
    writer = proc.stdin
    if writer is not None:
        os.set_blocking(writer.fileno(), False)
    deadline = time.monotonic() + timeout
    timed_out = False
    status = None
    dead_since = None
    try:
        while status is None:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            # It has exited but cannot be reaped: a tracer holds its zombie. Waiting on to the
            # deadline would only let the runner stall us; give it up after REAP_SECONDS.
            dead_since = _zombie_since(proc.pid, dead_since)
            if dead_since is not None and time.monotonic() - dead_since > REAP_SECONDS:
                break
            if pending is not None and writer is not None:
                pending, writer = _feed(writer, pending)
            wait_for = min(left, _POLL_SECONDS)
            if reader is not None and not reader.closed:
                reader.pump(wait_for)
            else:
                time.sleep(wait_for)
            status = _poll(proc.pid)
        if status is None and timed_out:
            status = _stop(proc.pid)
        if reader is not None:
            # A grandchild may hold the pipe open: take what is there now, never wait for its end.
            reader.pump(0)
    finally:
        for stream in (writer, reader and reader.stream):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        # Popen must not reap (or wait for) it later: we did, or gave up on it.
        proc.returncode = -1 if status is None else status
    return {'rc': None if status is None else status, 'timed_out': timed_out, 'unreaped': status is None,
            'output': None if reader is None else reader.text()}


def _feed(writer, pending):
    """Write what the program's stdin takes now; (rest, writer), both None once all is written."""
    try:
        done = os.write(writer.fileno(), pending)
    except BlockingIOError:
        return pending, writer
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        done = len(pending)  # it closed its stdin: nothing more to give it
    pending = pending[done:]
    if len(pending):
        return pending, writer
    writer.close()
    return None, None


class _Output(object):
    def __init__(self, stream):
        self.stream = stream
        self.chunks, self.size, self.closed = [], 0, False
        os.set_blocking(stream.fileno(), False)

    def pump(self, wait):
        if self.closed:
            return
        ready, _w, _x = select.select([self.stream.fileno()], [], [], wait)
        while ready:
            try:
                chunk = os.read(self.stream.fileno(), 65536)
            except BlockingIOError:
                return
            if not chunk:
                self.closed = True
                return
            if self.size < MAX_OUTPUT_BYTES:
                self.chunks.append(chunk[:MAX_OUTPUT_BYTES - self.size])
            self.size += len(chunk)

    def text(self):
        return b''.join(self.chunks).decode('utf-8', 'replace')


def _poll(pid):
    """The exit status of pid if it has ended (WNOHANG), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return -1
    if not done:
        return None
    return os.waitstatus_to_exitcode(status) if hasattr(os, 'waitstatus_to_exitcode') else _exit_code(status)


def _zombie_since(pid, since):
    """When pid was first seen a zombie (exited, not reaped), or None while it is not one."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as handle:
            stat = handle.read(4096)
    except OSError:
        return since
    # The state follows the command name, which is in parentheses and may hold anything.
    state = stat[stat.rfind(b')') + 2:][:1]
    if state != b'Z':
        return None
    return time.monotonic() if since is None else since


def _exit_code(status):
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _stop(pid):
    """SIGTERM the program's process group, then SIGKILL; its exit status, or None when it still
    cannot be reaped after REAP_SECONDS (a tracer holds it): then it is left to init."""
    for sig, wait in ((signal.SIGTERM, TERM_GRACE_SECONDS), (signal.SIGKILL, REAP_SECONDS)):
        for target in (lambda: os.killpg(pid, sig), lambda: os.kill(pid, sig)):
            try:
                target()
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            status = _poll(pid)
            if status is not None:
                return status
            time.sleep(_POLL_SECONDS)
    return None
