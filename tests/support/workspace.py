"""The integration tests' workspace: a scratch tree per test where seeds, CODEX_HOMEs, Ansible's
temp dirs and logs live, real ansible-playbook runs at -vvvv --diff, and the leak check every test
ends with (support.leaks). The hardening tests use it too.
"""

import errno
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from support import fake_credentials
from support.codex import codex_binary
from support.leaks import find_leaks
from support.private_files import write_private
from support.require import require
from support.runner_access import runner_owner

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / '.build' / 'collections'
TARGETS = REPO / 'tests' / 'integration' / 'targets'
OUTPUT = REPO / 'tests' / 'output'


def python39():
    """A Python 3.9 for the managed side, to prove the modules run on the oldest supported target.
    Optional for a newcomer's machine; CI's image has it, and there a missing one is a failure."""
    for candidate in (os.environ.get('CODEXOPS_PYTHON39'), '/root/.pyenv/versions/3.9.18/bin/python',
                      shutil.which('python3.9')):
        # A pyenv shim exists even when it cannot run: ask the interpreter itself.
        if candidate and subprocess.run([candidate, '-c', 'import sys; assert sys.version_info[:2] == (3, 9)'],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0:
            return candidate
    require(False, 'no Python 3.9 on this machine for the target-compatibility test (CI has one); '
                   'set CODEXOPS_PYTHON39 to run it')
    return None


class Workspace:
    """A scratch tree for one test: seeds, CODEX_HOMEs, Ansible's temp dirs and logs."""

    def __init__(self, root, name, backend):
        self.root = Path(root)
        self.name = name
        self.backend = backend
        self.secrets = []
        self.outputs = []
        self.seed_dir = self.root / 'seeds'
        self.seed_dir.mkdir(mode=0o700)
        self.runs = 0

    def remember(self, secrets):
        self.secrets.extend(secrets)
        return secrets

    def seed_file(self, name, doc=None, text=None):
        """Write a seed (0600) and remember its secrets; returns its path."""
        path = self.seed_dir / ('%s.json' % name)
        data = text if text is not None else fake_credentials.dumps(doc)
        return write_private(path, data)

    def chatgpt_seed(self, name, **kwargs):
        doc, secrets = fake_credentials.chatgpt_seed(**kwargs)
        self.remember(secrets)
        return self.seed_file(name, doc)

    def apikey_seed(self, name):
        doc, secrets = fake_credentials.apikey_seed()
        self.remember(secrets)
        return self.seed_file(name, doc)

    def env(self, interpreter=None):
        env = dict(os.environ)
        # The vault secrets a run has are the ones its test gives it, never the caller's.
        for name in ('ANSIBLE_VAULT_PASSWORD_FILE', 'ANSIBLE_VAULT_IDENTITY_LIST', 'ANSIBLE_VAULT_ENCRYPT_IDENTITY'):
            env.pop(name, None)
        env.update(
            ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
            ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false',
            ANSIBLE_ROLES_PATH=str(TARGETS),
            ANSIBLE_LOCAL_TEMP=str(self.root / 'ansible-local'),
            ANSIBLE_REMOTE_TEMP=str(self.root / 'ansible-remote'),
            ANSIBLE_NOCOLOR='1',
            ANSIBLE_RETRY_FILES_ENABLED='0',
            ANSIBLE_DEPRECATION_WARNINGS='0',
            ANSIBLE_PYTHON_INTERPRETER=interpreter or sys.executable,
            CODEX_AUTHAPI_BASE_URL=self.backend.base_url,
        )
        return env

    def play(self, target, extra_vars=None, expect_failure=False, check=False, interpreter=None):
        """Run one integration target with ansible-playbook -vvvv --diff. Returns the output."""
        variables = {
            'target': target, 'work_dir': str(self.root), 'codex_bin': codex_binary(),
            'runner_owner': runner_owner(), 'backend_url': self.backend.base_url,
        }
        variables.update(extra_vars or {})
        inventory = self.root / 'inventory.ini'
        inventory.write_text('localhost ansible_connection=local\n')
        return self.playbook(str(REPO / 'tests' / 'integration' / 'run_target.yml'), str(inventory), variables,
                             expect_failure=expect_failure, check=check, interpreter=interpreter, label=target)

    def playbook(self, playbook, inventory, variables=None, expect_failure=False, check=False, interpreter=None,
                 label=None, verbose=True, extra_args=(), tty_answers=None, env=None):
        """ansible-playbook (at -vvvv --diff unless verbose=False) on any playbook; returns the output.
        env: environment variables to set for this run on top of env() (e.g. ANSIBLE_DEPRECATION_WARNINGS).
        With tty_answers ([(prompt, answer)]), it runs on a terminal of its own (a pty that is its
        controlling terminal, as for a person at a shell) and each answer is typed once its prompt shows
        (as `--ask-vault-pass` needs: getpass reads /dev/tty, with echo off)."""
        self.runs += 1
        vars_file = self.root / ('vars-%d.json' % self.runs)
        # Variables may carry a secret (a fingerprint salt): private, like every file holding one.
        write_private(vars_file, json.dumps(variables or {}))
        cmd = [str(Path(sys.executable).parent / 'ansible-playbook'), '-i', str(inventory), '--diff',
               '-e', '@%s' % vars_file, playbook]
        if verbose:
            cmd.append('-vvvv')
        if check:
            cmd.append('--check')
        cmd.extend(extra_args)
        run_env = self.env(interpreter)
        run_env.update(env or {})
        if tty_answers is None:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=run_env,
                                  cwd=str(self.root), check=False)
            returncode, output = proc.returncode, proc.stdout.decode('utf-8', 'replace')
        else:
            returncode, output = run_on_a_terminal(cmd, run_env, str(self.root), tty_answers)
        self.outputs.append(output)
        log_dir = OUTPUT / 'logs'
        log_dir.mkdir(parents=True, exist_ok=True)
        label = label or Path(playbook).stem
        (log_dir / ('%s-%d-%s.log' % (self.name, self.runs, label))).write_text(output)
        if expect_failure:
            assert returncode != 0, 'expected %s to fail:\n%s' % (label, output[-3000:])
        else:
            assert returncode == 0, '%s failed:\n%s' % (label, output[-6000:])
        return output

    def leaks(self, extra_outputs=()):
        """Every place a remembered secret shows up where it must not (support.leaks.find_leaks)."""
        return find_leaks(self.secrets, list(self.outputs) + list(extra_outputs), self.root)


def run_on_a_terminal(cmd, env, cwd, answers, timeout=600):
    """Run cmd with a new pty as its controlling terminal and stdin/stdout/stderr; type each answer
    (then Enter) when its prompt has appeared. Returns (returncode, output with \\n line ends)."""
    try:
        master, slave = os.openpty()
    except OSError as exc:
        require(False, 'no pseudo-terminal on this machine for a prompt test (%s); CI has one' % exc)

    def take_terminal():  # in the child, after setsid(): the pty becomes its controlling terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True,
                            start_new_session=True, preexec_fn=take_terminal)  # pylint: disable=subprocess-popen-preexec-fn
    os.close(slave)
    pending, seen, searched, deadline = list(answers), b'', 0, time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail('%s did not finish in %d s on its terminal' % (cmd[0], timeout))
            ready, _w, _x = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError as exc:
                if exc.errno == errno.EIO:  # every copy of the slave side is closed: the command is done
                    break
                raise
            if not chunk:
                break
            seen += chunk
            if pending:
                at = seen.find(pending[0][0].encode(), searched)
                if at >= 0:
                    searched = at + len(pending[0][0])
                    os.write(master, pending.pop(0)[1].encode() + b'\n')
    finally:
        os.close(master)
    returncode = proc.wait()
    assert not pending, 'the prompt %r never appeared:\n%s' % (pending[0][0], seen.decode('utf-8', 'replace')[-3000:])
    return returncode, seen.decode('utf-8', 'replace').replace('\r\n', '\n')
