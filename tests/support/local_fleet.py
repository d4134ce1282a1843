"""A local fleet for playbook tests: inventory hosts with a local connection, one CODEX_HOME each.

Ownership is tested for real when the tests run as root (the runner user is then `nobody`).
"""

import json
import os
import pwd
import re
import subprocess
import sys

from support import fake_credentials
from support.codex import codex_binary
from support.private_files import write_private
from support.runner_access import runner_owner

RECAP = re.compile(r'^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


class LocalFleet:

    def __init__(self, space, size, **host_vars):
        self.space = space
        self.hosts = ['runner-%d' % number for number in range(1, size + 1)]
        self.seed_dir = space.root / 'codex_seeds'
        self.seed_dir.mkdir(mode=0o700)
        self.report_dir = space.root / 'report'
        self.inventory = space.root / 'inventory.json'
        hosts = dict((host, {'codex_auth_home': str(self.home(host))}) for host in self.hosts)
        group_vars = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                      'codex_auth_user': runner_owner(), 'codex_auth_report_dir': str(self.report_dir),
                      # Codex never inherits the play's environment: the test backend is named explicitly.
                      'codex_auth_codex_environment': {'CODEX_AUTHAPI_BASE_URL': space.backend.base_url}}
        group_vars.update(host_vars)
        self.inventory.write_text(json.dumps({'codex_runners': {'hosts': hosts, 'vars': group_vars}}))

    def set_host_vars(self, host, **host_vars):
        inventory = json.loads(self.inventory.read_text())
        inventory['codex_runners']['hosts'][host].update(host_vars)
        self.inventory.write_text(json.dumps(inventory))

    def home(self, host):
        return self.space.root / 'runners' / host / '.codex'

    def auth(self, host):
        return self.home(host) / 'auth.json'

    def auth_doc(self, host):
        return json.loads(self.auth(host).read_text())

    def seed(self, host, doc=None):
        """Write the host's own seed (a new fake login unless a document is given)."""
        if doc is None:
            doc, secrets = fake_credentials.chatgpt_seed(account_id='acct-%s' % host)
            self.space.remember(secrets)
        path = self.seed_dir / ('%s.json' % host)
        if path.exists():
            path.unlink()
        write_private(path, fake_credentials.dumps(doc))
        return doc

    def run(self, name, expect_failure=False, check=False, extra_args=(), tty_answers=None, env=None, **variables):
        return self.space.playbook('codexops.runner.%s' % name, str(self.inventory), variables,
                                   expect_failure=expect_failure, check=check, label=name, extra_args=extra_args,
                                   tty_answers=tty_answers, env=env)

    def report(self, name='fleet-report'):
        return json.loads((self.report_dir / ('%s.json' % name)).read_text())

    def codex(self, host, args, env=None, timeout=180, deadline=None):
        """Run the real Codex CLI as the runner user with this host's CODEX_HOME (a CI job would).

        deadline: run it under timeout(1) for that many seconds, as a CI step with a time limit is
        (exit 124 when reached): offline, Codex 0.171.0 keeps waiting for its model for minutes after
        it has refreshed, and a test of the credential cycle does not need the model's answer."""
        entry = pwd.getpwnam(runner_owner())
        child_env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(self.space.root),
                     'CODEX_HOME': str(self.home(host)), 'CODEX_AUTHAPI_BASE_URL': self.space.backend.base_url}
        child_env.update(env or {})
        kwargs = {}
        if os.geteuid() == 0:
            kwargs = {'user': entry.pw_uid, 'group': entry.pw_gid, 'extra_groups': []}
        command = [codex_binary()] + list(args)
        if deadline is not None:
            command = ['timeout', '-k', '5', str(deadline)] + command
        proc = subprocess.run(command, cwd=str(self.space.root), env=child_env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, check=False, **kwargs)
        output = proc.stdout.decode('utf-8', 'replace')
        self.space.outputs.append(output)
        return proc.returncode, output


def ran_on(output, host):
    """Whether ansible-playbook -vvv ran anything on host (every command it runs there is logged as EXEC)."""
    return ('<%s> EXEC ' % host) in output


def changed_by_host(output):
    return dict((host, int(changed)) for host, changed, _u, _f in RECAP.findall(output) if host != 'localhost')


def file_identity(path):
    st = os.stat(str(path))
    return st.st_ino, st.st_mtime_ns
