"""Helpers of the untrusted-runner attack suite (test_untrusted_runner.py).

The runner user is untrusted: every CI job runs code as it, while our modules run as root in its
home. These helpers play that user for real:

- `Attacker`: a remote-controlled process running as the runner user (`setpriv --reuid ...`),
  which takes one JSON command per line (hold a flock, rename, exchange, link, make FIFOs, probe
  another process through /proc and ptrace, stop a process...) and answers with what the kernel
  said. Its source is passed with `-c`, so it needs no access to this checkout;
- `Swapper`: an unassisted attacker process that swaps ~/.codex between the real directory and
  symlinks to decoys as fast as it can, until told to stop;
- `World`: a root-owned 0755 temp tree holding the runner's home (owned by the runner user),
  CODEX_HOME = <home>/.codex, a fake `codex` script, and decoys that root owns outside CODEX_HOME:
  a root-only directory (0700) with auth.json/config.toml/lock files/an environment file, the
  same files in a directory the runner can traverse (so it can hard-link them when
  fs.protected_hardlinks is 0), and a root-owned CODEX_HOME of another runner ("victim");
  `World.guard()` snapshots everything outside the runner's home and `Guard.check()` asserts that
  every decoy kept bytes, owner and mode, that nothing appeared or vanished outside the home, that
  nothing root-owned appeared inside it, and that no output holds a decoy's bytes;
- `Sysctl`: set a sysctl for one test and always put the recorded value back;
- module runs: `start_module` (a fresh `python -m` process, as Ansible runs a module on a host,
  for runs that the attacker interferes with while they run) and `outcome()` (succeeded / refused
  with which code / other).

Under CI (CI=true) a missing tool or privilege is a failure, never a skip.
"""

import base64
import errno
import grp
import hashlib
import json
import os
import pwd
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hardening_support import module_env, parse_result, runner_ids, snapshot_diff
from support import fake_credentials
from support.private_files import write_private
from support.require import require
from support.runner_access import runner_owner

RUNNER = runner_owner()
STORE = b'cli_auth_credentials_store = "file"\n'
LOCKS = ('auth.lock', 'auth.json.lock')


def require_root():
    require(os.geteuid() == 0, 'the attack suite plays a runner user against modules running as root: run it as root')


def require_tool(name):
    for directory in ('', '/usr/sbin', '/sbin', '/usr/bin', '/bin'):
        path = shutil.which(name) if not directory else os.path.join(directory, name)
        if path and os.access(path, os.X_OK):
            return path
    require(False, '%s is not installed' % name)
    return None


def other_runner():
    """A second non-root user, to play another runner on the same host (the victim)."""
    for name in ('daemon', 'bin', 'sys', 'games', 'man'):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid not in (0, runner_ids()[0]):
            return entry
    require(False, 'no second non-root user here to play another runner')
    return None


def runner_group():
    return grp.getgrgid(runner_ids()[1]).gr_name


_PYTHON = []


def runner_python():
    """A Python the runner user can execute (the test's own may live under /root)."""
    if _PYTHON:
        return _PYTHON[0]
    setpriv = require_tool('setpriv')
    for candidate in (os.path.realpath(sys.executable), '/usr/bin/python3', shutil.which('python3')):
        if not candidate:
            continue
        proc = subprocess.run([setpriv, '--reuid=%s' % RUNNER, '--regid=%s' % runner_group(), '--clear-groups',
                               candidate, '-I', '-c', 'import ctypes, json'], env=attacker_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if proc.returncode == 0:
            _PYTHON.append(candidate)
            return candidate
    require(False, 'no Python interpreter the runner user %s can execute' % RUNNER)
    return None


def attacker_env(home='/'):
    # Never root's environment: the attacker is a CI job, it has its own.
    return {'PATH': '/usr/bin:/bin', 'HOME': str(home), 'LANG': 'C.UTF-8'}


def as_runner_argv(*argv):
    return [require_tool('setpriv'), '--reuid=%s' % RUNNER, '--regid=%s' % runner_group(),
            '--clear-groups'] + list(argv)


# -- the attacker ---------------------------------------------------------------------------------

ATTACKER_SOURCE = r'''
import ctypes, errno, fcntl, json, os, signal, sys, time

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
held = {}
children = []


class iovec(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]


def err(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno))


def attempt(func, *args):
    try:
        value = func(*args)
        return {'ok': True, 'value': value}
    except OSError as exc:
        return {'ok': False, 'errno': err(exc)}


def exchange(a, b):
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


def flock(path, create=True):
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    fd = os.open(path, flags, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    held[path] = fd
    return fd


def unlock(path):
    fd = held.pop(path)
    os.close(fd)


def ptrace_attach(pid):
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))
    os.waitpid(pid, 0x40000000)  # __WALL: the tracee stops; let it go at once
    libc.ptrace(PTRACE_DETACH, pid, None, None)
    return 'attached'


def vm_read(pid):
    buf = ctypes.create_string_buffer(16)
    local = iovec(ctypes.cast(buf, ctypes.c_void_p), 16)
    remote = iovec(ctypes.c_void_p(0x10000), 16)
    libc.process_vm_readv.restype = ctypes.c_ssize_t
    got = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if got < 0:
        number = ctypes.get_errno()
        # EFAULT/ESRCH after the permission check passed still means "the kernel let us in"
        if number == errno.EFAULT:
            return 'permitted (EFAULT on the probe address)'
        raise OSError(number, os.strerror(number))
    return 'read %d bytes' % got


def read_bytes(path, limit=1 << 20):
    with open(path, 'rb') as handle:
        return len(handle.read(limit))


def probe(pid):
    """Everything the runner user could try against process `pid`."""
    base = '/proc/%d/' % pid
    out = {}
    for name in ('environ', 'cmdline'):
        out[name] = attempt(read_bytes, base + name)
    # Opening mem is where the kernel checks ptrace access (a read then needs a mapped address).
    out['mem'] = attempt(lambda: os.close(os.open(base + 'mem', os.O_RDONLY)))
    out['fd'] = attempt(os.listdir, base + 'fd')
    out['ptrace'] = attempt(ptrace_attach, pid)
    out['vm_read'] = attempt(vm_read, pid)
    return out


def my_uid_procs(marker, exclude):
    found = []
    me = os.getuid()
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == os.getpid() or pid in exclude:
            continue
        try:
            with open('/proc/%d/status' % pid) as handle:
                status = handle.read()
            with open('/proc/%d/cmdline' % pid, 'rb') as handle:
                cmdline = handle.read()
        except OSError:
            continue
        uids = [line.split()[1:] for line in status.splitlines() if line.startswith('Uid:')]
        if not uids or int(uids[0][0]) != me:
            continue
        if marker.encode() in cmdline:
            found.append(pid)
    return found


def stop_next(marker, timeout, exclude=()):
    """SIGSTOP the first process of our uid whose argv holds `marker`: the runner can signal any
    process that runs with its uid, including a module's dropped child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in my_uid_procs(marker, set(exclude)):
            try:
                os.kill(pid, signal.SIGSTOP)
                return pid
            except OSError:
                continue
    return None


PTRACE_SEIZE = 0x4206
seized = []


def seize_next(marker, within, exclude=()):
    """PTRACE_SEIZE the first process of our uid whose argv holds `marker`, and never wait for it:
    once it exits, the kernel keeps it a zombie for us, and its real parent cannot reap it."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for pid in my_uid_procs(marker, set(exclude)):
            if libc.ptrace(PTRACE_SEIZE, pid, None, None) == 0:
                seized.append(pid)
                return pid
    return None


def steal_fds(needles, seconds):
    """For `seconds`: stop every new process of our uid as soon as it is seen, try to read every
    descriptor it holds through /proc, let it go on. Returns what was read and how often."""
    found, tried, stopped = {}, 0, 0
    seen = set([os.getpid()])
    deadline = time.monotonic() + seconds
    me = os.getuid()
    while time.monotonic() < deadline:
        for entry in os.listdir('/proc'):
            if not entry.isdigit() or int(entry) in seen:
                continue
            pid = int(entry)
            try:
                if os.stat('/proc/%d' % pid).st_uid != me:
                    continue
            except OSError:
                continue
            seen.add(pid)
            try:
                os.kill(pid, signal.SIGSTOP)
                stopped += 1
            except OSError:
                continue
            try:
                for fd in os.listdir('/proc/%d/fd' % pid):
                    tried += 1
                    # Non-blocking: an empty pipe or FIFO must not hold the attacker.
                    try:
                        handle = os.open('/proc/%d/fd/%s' % (pid, fd), os.O_RDONLY | os.O_NONBLOCK)
                    except OSError:
                        continue
                    try:
                        data = os.read(handle, 1 << 16)
                    except OSError:
                        continue
                    finally:
                        os.close(handle)
                    for needle in needles:
                        if needle.encode() in data:
                            found[needle] = found.get(needle, 0) + 1
            except OSError:
                pass
            finally:
                try:
                    os.kill(pid, signal.SIGCONT)
                except OSError:
                    pass
    return {'found': found, 'fds_tried': tried, 'processes_stopped': stopped}


def sleeper():
    pid = os.fork()
    if pid == 0:
        os.environ['ATTACKER_OWN_MARK'] = 'own'
        os.execve('/bin/sleep', ['sleep', '60'], {'ATTACKER_OWN_MARK': 'own-process-environment'})
    children.append(pid)
    return pid


def write(path, data, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def sparse(path, size):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


opened = {}


def hold_open(path):
    """Keep a read-write descriptor: permissions are checked at open, never again."""
    opened[path] = os.open(path, os.O_RDWR)


def write_held(path, b64):
    fd = opened[path]
    os.lseek(fd, 0, os.SEEK_END)
    return os.write(fd, __import__('base64').b64decode(b64))


def contains(path, needle):
    with open(path, 'rb') as handle:
        return needle.encode() in handle.read()


def rmtree(path):
    import shutil
    shutil.rmtree(path)


OPS = {
    'ping': lambda: os.getuid(),
    'flock': flock,
    'unlock': unlock,
    'rename': os.rename,
    'exchange': exchange,
    'symlink': os.symlink,
    'link': os.link,
    'mkfifo': os.mkfifo,
    'mkdir': os.mkdir,
    'unlink': os.unlink,
    'rmtree': rmtree,
    'chmod': os.chmod,
    'write': lambda path, b64, mode=0o600: write(path, __import__('base64').b64decode(b64), mode),
    'sparse': sparse,
    'read': read_bytes,
    'listdir': os.listdir,
    'probe': probe,
    'kill': lambda pid, sig: os.kill(pid, sig),
    'procs': lambda marker, exclude=(): my_uid_procs(marker, set(exclude)),
    'stop_next': stop_next,
    'seize_next': seize_next,
    'steal_fds': steal_fds,
    'sleeper': sleeper,
    'hold_open': hold_open,
    'write_held': write_held,
    'contains': contains,
}

for line in sys.stdin:
    command = json.loads(line)
    op = command.pop('op')
    try:
        reply = {'ok': True, 'value': OPS[op](**command)}
    except OSError as exc:
        reply = {'ok': False, 'errno': err(exc), 'message': str(exc)}
    except Exception as exc:
        reply = {'ok': False, 'errno': None, 'message': '%s: %s' % (exc.__class__.__name__, exc)}
    sys.stdout.write(json.dumps(reply) + '\n')
    sys.stdout.flush()
for pid in children:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass
'''


class AttackFailed(AssertionError):
    pass


class Attacker:
    """A process running as the runner user, doing what it is told (see ATTACKER_SOURCE)."""

    def __init__(self, home):
        self.proc = subprocess.Popen(as_runner_argv(runner_python(), '-I', '-c', ATTACKER_SOURCE),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=attacker_env(home),
                                     cwd='/', start_new_session=True)
        uid = self.call('ping')
        assert uid == runner_ids()[0], 'the attacker runs as uid %s, not as %s' % (uid, RUNNER)

    def send(self, op, **kwargs):
        """Start an operation; receive() its reply later (the attacker works meanwhile)."""
        self._pending = op
        self.proc.stdin.write((json.dumps(dict(kwargs, op=op)) + '\n').encode())
        self.proc.stdin.flush()

    def receive(self, timeout=30):
        op = self._pending
        ready, _w, _x = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AttackFailed('the attacker did not answer %s within %ss' % (op, timeout))
        line = self.proc.stdout.readline()
        if not line:
            raise AttackFailed('the attacker died (exit %s) during %s' % (self.proc.poll(), op))
        return json.loads(line)

    def request(self, op, timeout=30, **kwargs):
        """The reply as a dict: {'ok': True, 'value': ...} or {'ok': False, 'errno': 'EACCES', ...}."""
        self.send(op, **kwargs)
        return self.receive(timeout)

    def call(self, op, timeout=30, **kwargs):
        """Like request(), but the operation must succeed; returns its value."""
        reply = self.request(op, timeout=timeout, **kwargs)
        if not reply['ok']:
            raise AttackFailed('attacker %s(%s) failed: %s' % (op, kwargs, reply))
        return reply['value']

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc.stdout.close()


SWAPPER_SOURCE = r'''
import ctypes, errno, json, os, signal, sys

libc = ctypes.CDLL(None, use_errno=True)
config = json.loads(sys.argv[1])
os.chdir(config['home'])
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
counts = {'swaps': 0, 'errors': {}, 'adopted': 0}
real, links, mode = config['name'], config['links'], config['mode']
stash = real + '.real'


def fail(exc_errno):
    name = errno.errorcode.get(exc_errno, str(exc_errno))
    counts['errors'][name] = counts['errors'].get(name, 0) + 1


def exchange(a, b):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), 2) != 0:
        fail(ctypes.get_errno())
        return False
    counts['swaps'] += 1
    return True


def rename(a, b):
    try:
        os.rename(a, b)
        counts['swaps'] += 1
        return True
    except OSError as exc:
        fail(exc.errno)
        return False


def adopt():
    # A module created a new CODEX_HOME while ours was away: move it aside (runner-owned junk).
    counts['adopted'] += 1
    try:
        os.rename(real, '%s.junk-%d' % (real, counts['adopted']))
    except OSError as exc:
        fail(exc.errno)


if mode == 'exchange':
    # renameat2(RENAME_EXCHANGE): ~/.codex is always there, a directory or a symlink to a decoy.
    while not stop:
        for link in links:
            if exchange(real, link):
                exchange(real, link)
else:
    # plain rename(2): directory away, symlink in, symlink away, directory back.
    while not stop:
        for link in links:
            if not rename(real, stash):
                adopt()
                continue
            if not rename(link, real):
                adopt()
                rename(link, real)
            rename(real, link)
            while not rename(stash, real):
                adopt()
                if stop:
                    break
# leave the real directory at its name
if mode != 'exchange' and os.path.lexists(stash):
    if os.path.lexists(real):
        adopt()
    rename(stash, real)
for link in links:
    if os.path.isdir(link) and not os.path.islink(link):
        exchange(real, link)
sys.stdout.write(json.dumps(counts) + '\n')
'''


RECREATOR_SOURCE = r'''
import json, os, shutil, signal, sys

config = json.loads(sys.argv[1])
home, link_to = config['home'], config['link_to']
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
counts = {'recreated': 0, 'errors': 0}
while not stop:
    # The runner may delete its own CODEX_HOME in a sticky directory and make it again, with Codex's
    # arg0 helper directory pointing at a directory root owns.
    try:
        shutil.rmtree(home)
    except OSError:
        pass
    try:
        os.mkdir(home, 0o700)
        os.mkdir(os.path.join(home, 'tmp'), 0o700)
        os.symlink(link_to, os.path.join(home, 'tmp', 'arg0-linux'))
        for name in config['files']:
            os.symlink(os.path.join(link_to, name), os.path.join(home, name))
        counts['recreated'] += 1
    except OSError:
        counts['errors'] += 1
sys.stdout.write(json.dumps(counts) + '\n')
'''


class Recreator:
    """As the runner user: delete `home` and make it again, as fast as it can, with tmp/arg0-linux
    and the credential files as symlinks into `link_to` (a directory root owns), until stopped."""

    def __init__(self, home, link_to, files=('auth.json', 'config.toml', '.env')):
        config = {'home': str(home), 'link_to': str(link_to), 'files': list(files)}
        self.proc = subprocess.Popen(as_runner_argv(runner_python(), '-I', '-c', RECREATOR_SOURCE,
                                                    json.dumps(config)),
                                     stdout=subprocess.PIPE, env=attacker_env(), cwd='/', start_new_session=True)
        self.counts = None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _err = self.proc.communicate(timeout=10)
            self.counts = json.loads(out.decode() or 'null')
        except (subprocess.TimeoutExpired, ValueError):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return self.counts


class Swapper:
    """Swaps <home>/<name> with each symlink in `links` (names in the home), as fast as it can,
    as the runner user, until stopped. `counts` holds its swaps and errors afterwards."""

    def __init__(self, home, name, links, mode):
        config = {'home': str(home), 'name': name, 'links': list(links), 'mode': mode}
        self.proc = subprocess.Popen(as_runner_argv(runner_python(), '-I', '-c', SWAPPER_SOURCE, json.dumps(config)),
                                     stdout=subprocess.PIPE, env=attacker_env(home), cwd='/', start_new_session=True)
        self.counts = None

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _err = self.proc.communicate(timeout=10)
            self.counts = json.loads(out.decode() or 'null')
        except (subprocess.TimeoutExpired, ValueError):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return self.counts


# -- the machine as found ----------------------------------------------------------------------------

WATCHED_SYSCTLS = ('fs/protected_hardlinks', 'fs/protected_symlinks', 'fs/suid_dumpable', 'kernel/yama/ptrace_scope')


def _runner_processes():
    """Our own processes (descendants of this pytest) that run as the runner user; other
    suites may run processes as that user on the same machine."""
    uid = runner_ids()[0]
    return set(pid for pid in descendants(os.getpid()) if uid_of(pid) == uid)


@pytest.fixture(autouse=True)
def machine_as_found():
    """Every test leaves the machine as found: the sysctls it may touch, and no process left
    running as the runner user."""
    require_root()
    require_tool('setpriv')

    def sysctls():
        values = {}
        for name in WATCHED_SYSCTLS:
            try:
                with open('/proc/sys/' + name) as handle:
                    values[name] = handle.read().strip()
            except OSError:
                values[name] = None
        return values
    before, procs = sysctls(), _runner_processes()
    yield
    deadline = time.monotonic() + 3
    while _runner_processes() - procs and time.monotonic() < deadline:
        time.sleep(0.05)  # an attacker told to stop may take a moment
    leftover = sorted(_runner_processes() - procs)
    for pid in leftover:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert sysctls() == before, 'sysctls changed: %s -> %s' % (before, sysctls())
    assert not leftover, 'processes left running as %s: %s' % (RUNNER, leftover)
    # (imported by each attack test module: `from attack_support import machine_as_found`)


# -- sysctl -----------------------------------------------------------------------------------------

class Sysctl:
    """Set one sysctl for a block; the value found is recorded and always restored."""

    def __init__(self, name, value):
        self.name, self.value = name, str(value)
        self.path = '/proc/sys/' + name.replace('.', '/')
        self.original = None

    def __enter__(self):
        sysctl = require_tool('sysctl')
        if not os.path.exists(self.path):
            require(False, 'this kernel has no %s' % self.name)
        with open(self.path) as handle:
            self.original = handle.read().strip()
        proc = subprocess.run([sysctl, '-q', '-w', '%s=%s' % (self.name, self.value)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, check=False)
        with open(self.path) as handle:
            now = handle.read().strip()
        if proc.returncode != 0 or now != self.value:
            self._restore()
            require(False, 'cannot set %s=%s here: %s' % (self.name, self.value, proc.stdout.decode(errors='replace')))
        return self

    def _restore(self):
        if self.original is None:
            return
        with open(self.path, 'w') as handle:
            handle.write(self.original + '\n')
        with open(self.path) as handle:
            assert handle.read().strip() == self.original, '%s was not restored to %s' % (self.name, self.original)

    def __exit__(self, *exc):
        self._restore()


# -- processes --------------------------------------------------------------------------------------

def _ppid_map():
    parents = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as handle:
                data = handle.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: the fields after the last ')' are fixed.
        fields = data[data.rindex(')') + 2:].split()
        parents[int(entry)] = int(fields[1])
    return parents


def descendants(pid):
    parents = _ppid_map()
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in found:
                found.append(child)
                frontier.append(child)
    return found


def uid_of(pid):
    try:
        with open('/proc/%d/status' % pid) as handle:
            for line in handle:
                if line.startswith('Uid:'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def holders(inode_path, pids):
    """The pids (among `pids`) that have a descriptor open on the inode of `inode_path`."""
    st = os.stat(inode_path)
    found = []
    for pid in pids:
        try:
            names = os.listdir('/proc/%d/fd' % pid)
        except OSError:
            continue
        for name in names:
            try:
                fst = os.stat('/proc/%d/fd/%s' % (pid, name))
            except OSError:
                continue
            if (fst.st_dev, fst.st_ino) == (st.st_dev, st.st_ino):
                found.append(pid)
                break
    return found


class ModuleRun:
    """One module as Ansible runs it on a host (a fresh Python, arguments from a 0600 file), started
    in the background so an attacker can act while it runs."""

    def __init__(self, module, args, env=None, directory=None):
        self.module = module
        fd, self.args_file = tempfile.mkstemp(prefix='codexops-attack-args-', suffix='.json', dir=directory)
        with os.fdopen(fd, 'w') as handle:
            json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, '-m', 'ansible_collections.codexops.runner.plugins.modules.%s'
                                      % module, self.args_file], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env or module_env(), cwd='/', stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.elapsed = None
        self.rc = self.result = self.out = self.err = None

    @property
    def pid(self):
        return self.proc.pid

    def tree(self):
        return [self.proc.pid] + descendants(self.proc.pid)

    def wait_parked(self, lock_path, timeout=10.0):
        """Wait until a process of this run holds a descriptor on `lock_path` (it is polling for
        the lock the attacker holds). Returns the pids, or [] if it never got there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            found = holders(lock_path, self.tree())
            if found:
                time.sleep(0.2)  # well inside the polling loop, past every check
                return found
            time.sleep(0.01)
        return []

    def runner_children(self):
        uid = runner_ids()[0]
        return [pid for pid in descendants(self.proc.pid) if uid_of(pid) == uid]

    def wait(self, timeout=60):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_tree()
            out, err = self.proc.communicate()
            self.elapsed = time.monotonic() - self.started
            raise AssertionError('%s did not finish within %ss (killed); stderr: %s'
                                 % (self.module, timeout, err.decode('utf-8', 'replace')[-2000:]))
        finally:
            self._remove_args()
        self.elapsed = time.monotonic() - self.started
        self.rc = self.proc.returncode
        self.out = out.decode('utf-8', 'replace')
        self.err = err.decode('utf-8', 'replace')
        self.result = parse_result(self.out)
        return self

    def _remove_args(self):
        try:
            os.unlink(self.args_file)
        except FileNotFoundError:
            pass

    def _kill_tree(self):
        for pid in reversed(self.tree()):
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def kill(self):
        """Kill the run and everything it started (a stopped child included); tidy up."""
        self._kill_tree()
        if self.proc.poll() is None:
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        self._remove_args()


def run_module(module, args, timeout=30, env=None):
    return ModuleRun(module, args, env=env).wait(timeout)


def outcome(result):
    """'ok' | 'refused:<error_code>' | 'failed:<message head>' | 'no-result'."""
    if result is None:
        return 'no-result'
    if not result.get('failed'):
        return 'ok'
    if result.get('error_code'):
        return 'refused:%s' % result['error_code']
    msg = str(result.get('msg', ''))
    if msg.startswith('could not complete the operation'):
        # module_common.os_error_message: an OSError, named by its strerror
        return 'failed:os_error(%s)' % msg.rsplit(': ', 1)[-1].split('.')[0]
    words = [word for word in msg.split() if not word.startswith('/')][:6]
    return 'failed:%s' % ' '.join(words)


def problem_codes(result):
    codes = [item['code'] for item in (result or {}).get('problems', [])]
    codes += [item['code'] for item in (result or {}).get('auth', {}).get('problems', [])]
    return codes


# -- snapshots that an attacker cannot redirect ----------------------------------------------------

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _entry_state(dir_fd, name):
    """hardening_support.tree_snapshot's tuple for one entry, taken through `dir_fd` without
    following a link and without ever blocking (the runner swaps and plants FIFOs meanwhile)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None, None
    if stat.S_ISDIR(st.st_mode):
        return (stat.S_IFDIR, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_ino), st
    digest = None
    if stat.S_ISLNK(st.st_mode):
        try:
            digest = os.readlink(name, dir_fd=dir_fd)
        except OSError:
            digest = '?'
    elif stat.S_ISREG(st.st_mode):
        try:
            fd = os.open(name, _FILE, dir_fd=dir_fd)
        except OSError:
            digest = '?'
        else:
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    hasher = hashlib.sha256()
                    while True:
                        chunk = os.read(fd, 1 << 20)
                        if not chunk:
                            break
                        hasher.update(chunk)
                    digest = hasher.hexdigest()
            finally:
                os.close(fd)
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
            st.st_ino, digest), st


def safe_tree(root, prune=()):
    """{path: state} of every entry under `root` (and root itself), never following a link,
    never descending into the paths in `prune` (their own entry is still recorded)."""
    snap = {}
    root = str(root)
    prune = set(str(path) for path in prune)
    parent, name = os.path.split(root)
    fd = os.open(parent, _DIR)
    try:
        snap[root] = _entry_state(fd, name)[0]
    finally:
        os.close(fd)

    def walk(dir_fd, path):
        try:
            names = os.listdir(dir_fd)
        except OSError:
            return
        for entry in names:
            full = os.path.join(path, entry)
            state, st = _entry_state(dir_fd, entry)
            if state is None:
                continue
            snap[full] = state
            if stat.S_ISDIR(st.st_mode) and full not in prune:
                try:
                    child = os.open(entry, _DIR, dir_fd=dir_fd)
                except OSError:
                    continue
                try:
                    walk(child, full)
                finally:
                    os.close(child)
    top = os.open(root, _DIR)
    try:
        walk(top, root)
    finally:
        os.close(top)
    return snap


# -- the world -------------------------------------------------------------------------------------

FAKE_CODEX = r'''#!/bin/sh
# A stand-in for the Codex CLI: writes what `codex login --with-access-token` writes, answers
# `login status`, and (when DUMP is set below) keeps a copy of the environment it was given.
DUMP='@DUMP@'
if [ -n "$DUMP" ]; then
    cat /proc/$$/environ > "$DUMP/env-$$-$1-$2" 2>/dev/null
    id -u > "$DUMP/uid-$$-$1-$2" 2>/dev/null
fi
case "$1 $2" in
"login --with-access-token")
    token=$(cat)
    umask 077
    printf '{"OPENAI_API_KEY": null, "personal_access_token": "%s"}' "$token" > "$CODEX_HOME/auth.json" || exit 3
    exit 0;;
"login status")
    echo "Logged in using personal access token" >&2
    exit 0;;
"logout")
    rm -f "$CODEX_HOME/auth.json"
    echo "Successfully logged out" >&2
    exit 0;;
esac
exit 0
'''


class Guard:
    """What must not change: everything outside the runner's home, byte for byte (with owner,
    mode and inode); inside the home, nothing new owned by anyone but the runner."""

    def __init__(self, world):
        self.world = world
        self.before = world.outside_snapshot()
        self.home_foreign = world.home_foreign_entries()

    def problems(self, outputs=(), allow=()):
        """`allow`: paths outside the home that the test expects to change (a CODEX_HOME there)."""
        allow = tuple(str(path) for path in allow)
        found = ['outside the runner home: %s' % line
                 for line in snapshot_diff(self.before, self.world.outside_snapshot())
                 if not (allow and line.split(':', 1)[0].startswith(allow))]
        for path, owner in sorted(set(self.world.home_foreign_entries()) - set(self.home_foreign)):
            found.append('%s appeared in the runner home owned by uid %s' % (path[0], owner))
        for index, text in enumerate(outputs):
            for marker in self.world.decoy_markers:
                if marker in (text or ''):
                    found.append('output %d holds decoy bytes (%s...)' % (index, marker[:16]))
        return found

    def check(self, outputs=(), allow=()):
        found = self.problems(outputs, allow)
        assert not found, 'the attack reached outside CODEX_HOME:\n' + '\n'.join(found)


class World:
    """root (0755, root) / home (runner) / .codex ; decoys owned by root beside the home."""

    def __init__(self):
        require_root()
        self.uid, self.gid = runner_ids()
        self.root = Path(tempfile.mkdtemp(prefix='codexops-attack-'))
        os.chmod(str(self.root), 0o755)
        self.home = self.root / 'home'
        self.home.mkdir()
        os.chown(str(self.home), self.uid, self.gid)
        os.chmod(str(self.home), 0o755)
        self.codex_home = self.home / '.codex'
        self.attacker = None
        self._make_decoys()
        self._seeds = [fake_credentials.chatgpt_seed(tag='runner-%d' % n, account_id='acct-runner-%d' % n)
                       for n in range(2)]
        self.codex = self._fake_codex()

    # decoys: known bytes, root-owned 0600, outside CODEX_HOME
    def _make_decoys(self):
        tag = os.urandom(6).hex()
        doc, secrets = fake_credentials.chatgpt_seed(tag='DECOY-%s' % tag, account_id='acct-DECOY-%s' % tag,
                                                     email='decoy-%s@example.invalid' % tag)
        self.decoy_account = 'acct-DECOY-%s' % tag
        self.decoy_files = {
            'auth.json': fake_credentials.dumps(doc).encode(),
            'config.toml': ('# DECOY-CONFIG-%s\ncli_auth_credentials_store = "file"\nmodel = "DECOY-MODEL-%s"\n'
                            % (tag, tag)).encode(),
            'auth.lock': ('DECOY-LOCK-%s\n' % tag).encode(),
            'auth.json.lock': ('DECOY-JSONLOCK-%s\n' % tag).encode(),
            'secret.env': ('OPENAI_API_KEY=sk-DECOY-%s\nCODEX_ACCESS_TOKEN=at-DECOY-%s\n' % (tag, tag)).encode(),
        }
        self.decoy_markers = sorted(set(secrets + [self.decoy_account, 'DECOY-CONFIG-%s' % tag, 'DECOY-MODEL-%s' % tag,
                                                   'DECOY-LOCK-%s' % tag, 'DECOY-JSONLOCK-%s' % tag,
                                                   'sk-DECOY-%s' % tag, 'at-DECOY-%s' % tag]))
        self.rootonly = self.root / 'rootonly'      # root 0700: the runner cannot even look inside
        self.open = self.root / 'open'              # root 0755, files 0600: the runner can link them
        self.victim = self.root / 'victim' / '.codex'  # another runner's CODEX_HOME, root's
        for directory, mode in ((self.rootonly, 0o700), (self.open, 0o755), (self.victim.parent, 0o755),
                                (self.victim, 0o700)):
            directory.mkdir()
            os.chmod(str(directory), mode)
        for directory in (self.rootonly, self.open, self.victim):
            for name, data in self.decoy_files.items():
                write_private(directory / name, data)

    def _fake_codex(self, dump=None):
        directory = self.root / 'bin'
        directory.mkdir(exist_ok=True)
        path = directory / ('codex' if dump is None else 'codex-dump')
        path.write_text(FAKE_CODEX.replace('@DUMP@', '' if dump is None else str(dump)))
        os.chmod(str(path), 0o755)
        return str(path)

    def dumping_codex(self):
        """A fake codex that copies its environment and uid into <home>/dumps (the runner's)."""
        dumps = self.home / 'dumps'
        dumps.mkdir(exist_ok=True)
        os.chown(str(dumps), self.uid, self.gid)
        return self._fake_codex(dump=dumps), dumps

    def start_attacker(self):
        if self.attacker is None:
            self.attacker = Attacker(self.home)
        return self.attacker

    def close(self):
        if self.attacker is not None:
            self.attacker.close()
        # A FIFO or device in the tree does not bother rmtree (it unlinks, never opens).
        shutil.rmtree(str(self.root), ignore_errors=True)

    # the runner's files
    def seed_bytes(self, n=0):
        return fake_credentials.dumps(self._seeds[n % 2][0]).encode()

    def seed_secrets(self):
        return [secret for _doc, secrets in self._seeds for secret in secrets]

    def runner_file(self, path, data, mode=0o600):
        write_private(path, data, mode)
        os.chown(str(path), self.uid, self.gid)
        os.chmod(str(path), mode)
        return str(path)

    def make_codex_home(self, path=None, auth=True, config=STORE, locks=True):
        """A runner-owned CODEX_HOME (0700) with a valid auth.json, config.toml and Codex's lock files."""
        path = Path(path or self.codex_home)
        path.mkdir(mode=0o700)
        os.chown(str(path), self.uid, self.gid)
        if auth:
            self.runner_file(path / 'auth.json', self.seed_bytes(0) if auth is True else auth)
        if config is not None:
            self.runner_file(path / 'config.toml', config)
        if locks:
            for name in LOCKS:
                self.runner_file(path / name, b'')
        return path

    # what must not change
    def outside_snapshot(self):
        """Everything in the temp tree but the runner's home (whose own entry is kept)."""
        return safe_tree(self.root, prune=[self.home])

    def home_foreign_entries(self):
        """(path, inode) and owner of every entry under the home not owned by the runner."""
        found = []
        for path, state in safe_tree(self.home).items():
            if path != str(self.home) and state is not None and state[2] != self.uid:
                found.append(((path, state[4] if state[0] == stat.S_IFDIR else state[6]), state[2]))
        return found

    def guard(self):
        return Guard(self)

    # module arguments
    def seed_args(self, n=1, replace='always', home=None, **extra):
        args = {'codex_home': str(home or self.codex_home), 'owner': RUNNER, 'replace': replace,
                'content': self.seed_bytes(n).decode()}
        args.update(extra)
        return args

    def config_args(self, value='attack', home=None, **extra):
        args = {'codex_home': str(home or self.codex_home), 'owner': RUNNER,
                'settings': {'cli_auth_credentials_store': 'file', 'model': value}}
        args.update(extra)
        return args

    def login_args(self, token=None, home=None, codex=None, **extra):
        args = {'codex_home': str(home or self.codex_home), 'owner': RUNNER,
                'access_token': token or fake_credentials.personal_access_token(tag='attack'),
                'codex_path': codex or self.codex, 'force': True}
        args.update(extra)
        return args

    def export_args(self, home=None, **extra):
        args = {'codex_home': str(home or self.codex_home), 'return_content': True}
        args.update(extra)
        return args

    def verify_args(self, home=None, **extra):
        args = {'codex_home': str(home or self.codex_home), 'owner': RUNNER}
        args.update(extra)
        return args


def b64(data):
    return base64.b64encode(data).decode()


def errno_name(number):
    return errno.errorcode.get(number, str(number))


def is_denied(reply):
    return not reply['ok'] and reply['errno'] in ('EACCES', 'EPERM')


def mode_of(path):
    st = os.lstat(str(path))
    return stat.S_IMODE(st.st_mode), st.st_uid
