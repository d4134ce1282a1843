"""A long-lived helper process for the hardening tests; one JSON command per line on stdin, one
JSON reply per line on stdout.

It imports the collection once, so each seed run costs a fork or a function call instead of a
Python start-up:
- `seed`: one SeedRun (the codex_auth_seed logic) in this process, with timings on the system-wide
  monotonic clock (comparable with the test's), whether Codex's lock was found held, and
  optionally a pause (`hold`) between the decision and the write, under the lock, so that a
  Codex refresh arriving then has to wait for us; and optionally every fchown slowed down
  (`slow_chown`), to widen any moment in which a file we create is not yet the runner user's;
- `crash`: fork a child that runs the codex_auth_seed module's main() (AnsiballZ-free, through
  patch_module_args) and SIGKILL it: a delay after it entered SeedRun.run, or from inside, just
  before or just after
  its Nth call of a file-system function (os.open/read/write/fsync/rename/unlink/..., flock),
  counted from the moment SeedRun.run starts. `count_file` records the calls of an unkilled run;
- `module`: fork a child that runs a collection module as `python -m` would (runpy, arguments
  from a file named in argv), with its stdout and stderr in files; killed after a time limit.
"""

import contextlib
import errno
import fcntl
import json
import os
import runpy
import signal
import sys
import time
import traceback

from ansible.module_utils.testing import patch_module_args

from ansible_collections.codexops.runner.plugins.module_utils import privsep
from ansible_collections.codexops.runner.plugins.module_utils import safe_files
from ansible_collections.codexops.runner.plugins.module_utils import seeding
from ansible_collections.codexops.runner.plugins.modules import codex_auth_seed

HOOKED = [(os, name) for name in ('open', 'read', 'write', 'fsync', 'rename', 'replace', 'unlink', 'fchmod',
                                  'fchown', 'chmod', 'lchown', 'mkdir', 'close', 'link', 'listdir')]
HOOKED.append((fcntl, 'flock'))


def install_kill_hooks(kill_at, kill_when, log_path):
    """Count file-system calls once SeedRun.run has started; SIGKILL ourselves at call N.

    The run may go on in a child that dropped to the runner user (privsep.run_as). The count is one
    sequence across both: each counted call is a line in an O_APPEND log the child inherits, the
    parent pauses counting while the child works and then goes on from the log's length."""
    state = {'armed': False, 'paused': False, 'n': 0}
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    real_write = os.write

    def wrap(owner, name):
        real = getattr(owner, name)

        def hooked(*args, **kwargs):
            if not state['armed'] or state['paused']:
                return real(*args, **kwargs)
            state['n'] += 1
            real_write(log_fd, (name + '\n').encode('ascii'))
            if kill_at == state['n'] and kill_when == 'before':
                os.kill(os.getpid(), signal.SIGKILL)
            result = real(*args, **kwargs)
            if kill_at == state['n'] and kill_when == 'after':
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        setattr(owner, name, hooked)

    for owner, name in HOOKED:
        wrap(owner, name)
    real_run = seeding.SeedRun.run

    def run(self):
        state['armed'] = True
        try:
            return real_run(self)
        finally:
            state['armed'] = False
    seeding.SeedRun.run = run
    real_run_as = privsep.run_as

    def run_as(identity, func, *args, **kwargs):
        if identity.is_current() or not state['armed']:
            return real_run_as(identity, func, *args, **kwargs)
        state['paused'] = True
        try:
            result = real_run_as(identity, func, *args, **kwargs)
        except privsep.PrivsepError:
            result = None
        finally:
            state['paused'] = False
            state['n'] = len(logged_calls(log_path))
        # The runner-user child was killed at call N (even one after it sent its result): the module
        # dies with it, as a module killed at that moment would (the child dies with its parent,
        # PR_SET_PDEATHSIG).
        if kill_at and state['n'] >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if result is None:
            raise privsep.PrivsepError('the runner-user child ended without a result')
        return result
    privsep.run_as = run_as
    os.register_at_fork(after_in_child=lambda: state.update(paused=False))


def logged_calls(log_path):
    with open(log_path) as handle:
        return handle.read().splitlines()


def child(command, started_fd):
    out = os.open(command['output'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    log_path = command['output'] + '.calls'
    if command.get('kill_at') or command.get('count_file'):
        install_kill_hooks(command.get('kill_at'), command.get('kill_when', 'before'), log_path)
    real_run = seeding.SeedRun.run

    def run(self):
        os.write(started_fd, b'!')  # tell the parent the replacement starts now
        os.close(started_fd)
        return real_run(self)
    seeding.SeedRun.run = run
    code = 0
    try:
        with patch_module_args(command['args']):
            codex_auth_seed.main()
    except SystemExit as exc:
        code = exc.code or 0
    except BaseException:
        traceback.print_exc()
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    if command.get('count_file'):
        with open(command['count_file'], 'w') as handle:
            json.dump(logged_calls(log_path), handle)
    os._exit(code)


def crash(command):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            child(command, write_end)
        finally:
            os._exit(98)
    os.close(write_end)
    # `delay` counts from the moment the child enters SeedRun.run (after fork and argument
    # parsing), so the random kills land in the replacement itself, however loaded the machine.
    os.read(read_end, 1)
    os.close(read_end)
    started = time.monotonic()
    killed_by_us = False
    if command.get('delay') is not None:
        time.sleep(command['delay'])
        try:
            os.kill(pid, signal.SIGKILL)
            killed_by_us = True
        except ProcessLookupError:
            pass
    _pid, status = os.waitpid(pid, 0)
    signaled = os.WIFSIGNALED(status)
    return {'pid': pid, 'signaled': signaled, 'signal': os.WTERMSIG(status) if signaled else None,
            'exit': os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            'killed_by_us': killed_by_us, 'elapsed': time.monotonic() - started}


def module(command):
    pid = os.fork()
    if pid == 0:
        try:
            for fd, path in ((1, command['stdout']), (2, command['stderr'])):
                out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(out, fd)
            os.chdir('/')
            sys.argv = [command['module'], command['args_file']]
            code = 0
            try:
                runpy.run_module('ansible_collections.codexops.runner.plugins.modules.%s' % command['module'],
                                 run_name='__main__', alter_sys=True)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        finally:
            os._exit(97)
    deadline = time.monotonic() + command.get('timeout', 60)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {'rc': os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status), 'timed_out': False}
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {'rc': None, 'timed_out': True}
        time.sleep(0.002)


def seed(command):
    """One seed run with probes around Codex's lock and the auth.json write. The run may happen in a
    child that dropped to the runner user (privsep), so the probes report through a pipe the child
    inherits, with CLOCK_MONOTONIC times that mean the same in every process."""
    with open(command['seed_path'], 'rb') as handle:
        data = handle.read()
    timings = {'start': time.monotonic()}
    events_read, events_write = os.pipe()
    os.set_blocking(events_read, False)
    real_flock = fcntl.flock
    real_lock = safe_files.HomeDir.codex_lock
    real_write = safe_files.HomeDir.atomic_write
    held = []

    def event(name):
        os.write(events_write, ('%s %r\n' % (name, time.monotonic())).encode('ascii'))

    def flock(fd, operation):
        try:
            return real_flock(fd, operation)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                event('contended')
            raise

    def hold():
        # After the decision, before the write (or the release): the window a seed run without
        # Codex's lock would lose a refresh in; with the lock, Codex has to wait here.
        if command.get('hold') and not held:
            held.append(True)
            time.sleep(command['hold'])

    def atomic_write(self, name, *args, **kwargs):
        if name == 'auth.json':
            hold()
        return real_write(self, name, *args, **kwargs)

    @contextlib.contextmanager
    def codex_lock(self, *args, **kwargs):
        with real_lock(self, *args, **kwargs):
            event('locked')
            yield
            hold()
            event('released')

    real_fchown = os.fchown

    def fchown(*args):
        # A slow moment between creating a file and giving it to the runner user.
        time.sleep(command.get('slow_chown', 0))
        return real_fchown(*args)

    fcntl.flock, safe_files.HomeDir.codex_lock, safe_files.HomeDir.atomic_write = flock, codex_lock, atomic_write
    os.fchown = fchown
    try:
        seed_file = seeding.load_seed(data, command.get('allowed_modes', ['chatgpt']), True)
        result = seeding.SeedRun(command['home'], data, seed_file, policy=command['policy'], uid=command.get('uid'),
                                 gid=command.get('gid'), check_mode=command.get('check', False),
                                 backup=command.get('backup', False)).run()
    finally:
        fcntl.flock, safe_files.HomeDir.codex_lock, safe_files.HomeDir.atomic_write = real_flock, real_lock, real_write
        os.fchown = real_fchown
        os.close(events_write)
    timings['end'] = time.monotonic()
    contended = 0
    for line in _drain(events_read).decode('ascii').splitlines():
        name, when = line.split()
        if name == 'contended':
            contended += 1
        else:
            timings[name] = float(when)
    return {'action': result['action'], 'reason': result['reason'], 'changed': result['changed'],
            'removed_temp_files': result['removed_temp_files'], 'timings': timings,
            'contended': contended, 'healthy': result['auth']['healthy']}


def _drain(fd):
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b''.join(chunks)


def main():
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command['op'] == 'ping':
                reply = {'ok': True}
            elif command['op'] == 'crash':
                reply = crash(command)
            elif command['op'] == 'seed':
                reply = seed(command)
            elif command['op'] == 'module':
                reply = module(command)
            else:
                reply = {'error': 'unknown op %r' % command['op']}
        except Exception:
            reply = {'error': traceback.format_exc()}
        sys.stdout.write(json.dumps(reply) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
