"""Helpers of the hardening tests (conftest.py holds only their fixtures).

The integration helpers are shared through tests/support (support.workspace, support.local_fleet,
support.codex, support.leaks), imported by name as every suite does, so these tests run alone or in
one pytest run with tests/unit and tests/integration.
"""

import hashlib
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _path in (REPO / 'tests', REPO / '.build' / 'collections'):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

if not (REPO / '.build' / 'collections' / 'ansible_collections' / 'codexops' / 'runner' / 'plugins').is_dir():
    raise RuntimeError('the collection link is missing; run `make collection` first.')

# pylint: disable=wrong-import-position,unused-import
from support import local_fleet  # noqa: E402,F401
from support.codex import codex_binary  # noqa: E402,F401
from support.leaks import secret_needles  # noqa: E402,F401
from support.private_files import write_private  # noqa: E402
from support.runner_access import runner_owner  # noqa: E402
from support.workspace import COLLECTIONS, OUTPUT, python39  # noqa: E402,F401
# The names Codex prefers to auth.json: the collection's one list, so a new one is dropped here too.
from ansible_collections.codexops.runner.plugins.module_utils.codex_process import SHADOWING_VARIABLES  # noqa: E402
# pylint: enable=wrong-import-position,unused-import

WORKER = HERE / 'seed_worker.py'
FIGURES = OUTPUT / 'hardening-figures.json'


def report_figures(name, figures):
    """Keep each test's figures (iterations, kills, overlaps...) in tests/output for the report."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    data = {}
    if FIGURES.exists():
        try:
            data = json.loads(FIGURES.read_text())
        except ValueError:
            data = {}
    data[name] = figures
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')
    print('\n%s: %s' % (name, json.dumps(figures, sort_keys=True)))


def runner_ids():
    entry = pwd.getpwnam(runner_owner())
    return entry.pw_uid, entry.pw_gid


def module_env():
    env = dict(os.environ)
    env['PYTHONPATH'] = str(COLLECTIONS)
    for name in SHADOWING_VARIABLES:
        env.pop(name, None)
    return env


def run_module_process(module, args, timeout=60, env=None):
    """Run one collection module as Ansible does on a host, without AnsiballZ: a fresh Python
    process, its arguments from a 0600 file. Returns (rc, result dict or None, stdout, stderr)."""
    fd, path = tempfile.mkstemp(prefix='codexops-args-', suffix='.json')
    try:
        with os.fdopen(fd, 'w') as handle:
            json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
        proc = subprocess.run([sys.executable, '-m', 'ansible_collections.codexops.runner.plugins.modules.%s' % module,
                               path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or module_env(),
                              cwd='/', timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    finally:
        os.unlink(path)
    out = proc.stdout.decode('utf-8', 'replace')
    err = proc.stderr.decode('utf-8', 'replace')
    return proc.returncode, parse_result(out), out, err


def parse_result(out):
    """The module's JSON result: the last line of its output that parses as a JSON object."""
    result = None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith('{'):
            try:
                result = json.loads(line)
            except ValueError:
                pass
    return result


def run_module_forked(worker, module, args, timeout=60):
    """run_module_process, from the seed worker's pre-imported interpreter (a fork per run)."""
    directory = tempfile.mkdtemp(prefix='codexops-fork-')
    try:
        args_file = os.path.join(directory, 'args.json')
        write_private(args_file, json.dumps({'ANSIBLE_MODULE_ARGS': args}))
        paths = {'stdout': os.path.join(directory, 'out'), 'stderr': os.path.join(directory, 'err')}
        reply = worker.call(dict(op='module', module=module, args_file=args_file, timeout=timeout, **paths),
                            timeout=timeout + 10)
        assert not reply['timed_out'], '%s did not finish within %ss' % (module, timeout)
        with open(paths['stdout'], 'rb') as handle:
            out = handle.read().decode('utf-8', 'replace')
        with open(paths['stderr'], 'rb') as handle:
            err = handle.read().decode('utf-8', 'replace')
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    result = None
    for line in out.splitlines():
        if line.strip().startswith('{'):
            try:
                result = json.loads(line)
            except ValueError:
                pass
    return reply['rc'], result, out, err


class SeedWorker:
    """A long-lived Python process with the collection imported (see seed_worker.py): it runs
    SeedRun for the race tests and forks the children that the crash tests kill."""

    def __init__(self, env=None):
        self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env or module_env(), cwd='/')
        self._lock = threading.Lock()
        assert self.call({'op': 'ping'})['ok']

    def call(self, command, timeout=60):
        with self._lock:
            self.proc.stdin.write((json.dumps(command) + '\n').encode())
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError('the seed worker died (exit %s)' % self.proc.poll())
        reply = json.loads(line)
        if reply.get('error'):
            raise AssertionError('seed worker: %s' % reply['error'])
        return reply

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- tree snapshots -------------------------------------------------------------------------------

def tree_snapshot(root, follow=()):
    """Every path under root (not following links) with its type, mode, owner, size, mtime and a
    content hash; plus the files named in `follow` (outside the tree: /etc/passwd...)."""
    snap = {}
    root = str(root)
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(base, name)
            snap[path] = _describe(path)
    snap[root] = _describe(root)
    for path in follow:
        snap['follow:' + path] = _describe(path, content=True)
    return snap


def _describe(path, content=True):
    try:
        st = os.lstat(path)
    except OSError:
        return None
    digest = None
    if content and stat.S_ISREG(st.st_mode):
        with open(path, 'rb') as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        digest = os.readlink(path)
    if stat.S_ISDIR(st.st_mode):
        # A directory's size and mtime follow its entries, which are compared one by one.
        return (stat.S_IFDIR, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_ino)
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size,
            st.st_mtime_ns, st.st_ino, digest)


def snapshot_diff(before, after):
    changes = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            changes.append('%s: %s -> %s' % (path, 'absent' if before.get(path) is None else 'present',
                                             'absent' if after.get(path) is None else 'changed/present'))
    return changes


TRACEBACK = re.compile(r'Traceback \(most recent call last\)')


class ProcessSampler:
    """Reads every process's argv and environment from /proc, and `ps -eo args`, in a loop while
    something runs; records any sample holding one of the needles."""

    def __init__(self, needles, watch=('codex',)):
        self.needles = [needle.encode() for needle in needles]
        self.watch = [word.encode() for word in watch]
        self.samples = 0
        self.ps_samples = 0
        self.processes_seen = 0
        self.watched_samples = 0
        self.hits = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._proc_loop, daemon=True),
                         threading.Thread(target=self._ps_loop, daemon=True)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _check(self, where, data):
        for needle in self.needles:
            if needle in data:
                self.hits.append('%s holds a secret (%s...)' % (where, needle[:12].decode()))

    def _proc_loop(self):
        while not self._stop.is_set():
            watched = False
            for pid in os.listdir('/proc'):
                if not pid.isdigit():
                    continue
                for name in ('cmdline', 'environ'):
                    try:
                        with open('/proc/%s/%s' % (pid, name), 'rb') as handle:
                            data = handle.read()
                    except OSError:
                        continue
                    self.processes_seen += 1
                    self._check('/proc/%s/%s' % (pid, name), data)
                    if name == 'cmdline' and any(word in data for word in self.watch) and b'login' in data:
                        watched = True
            self.samples += 1
            self.watched_samples += int(watched)
            time.sleep(0.001)

    def _ps_loop(self):
        while not self._stop.is_set():
            proc = subprocess.run(['ps', '-eo', 'args'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  check=False)
            self.ps_samples += 1
            self._check('ps -eo args', proc.stdout)
            time.sleep(0.005)
