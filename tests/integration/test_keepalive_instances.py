"""One keepalive per runner instance (codex_keepalive_runners), for real: three instances on one host under two
users, on the plans and token ages users have (business and enterprise logins whose access token expired a week
ago, a plus login inside the 5-minute window), each keepalive named by the one rule, each refreshing its own
instance's auth.json against the loopback backend with the real Codex CLI, and a dropped instance's keepalive
removed while the others stay as they are.

Every path the role writes is under the workspace (cron scheduler, fake crontab), so the real /etc is never
touched. The second user is an existing non-root system account, as in test_runner_instances.py.
"""

import datetime
import json
import os
import pwd
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.codex import codex_binary
from support.local_fleet import file_identity
from support.private_files import write_private
from support.require import required
from support.runner_access import runner_owner, second_runner_account
from support.workspace import COLLECTIONS

sys.path.insert(0, str(COLLECTIONS))
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status  # noqa: E402

_needs_root = required(os.geteuid() == 0, 'installs root-owned keepalives and runs Codex as two users: run as root')

# Offline, Codex 0.171.0 retries the unreachable model for minutes after the refresh (done in the first
# seconds): the script's timeout(1) ends each run, as on a runner whose network is down after the refresh.
SCRIPT_TIMEOUT = 90
PLAY = '''
- hosts: localhost
  gather_facts: false
  roles:
    - role: codexops.runner.codex_keepalive
'''
# instance: (plan, access token lifetime left): a week after the last job for business and enterprise.
LOGINS = {'gh-1': ('business', datetime.timedelta(days=-7)),
          'gh-2': ('enterprise', datetime.timedelta(days=-7)),
          'gl-1': ('plus', datetime.timedelta(minutes=2))}


def second_user():
    entry = second_runner_account()
    if entry is None:
        pytest.fail('no second non-root user on this machine to run a runner instance as')
    return entry.pw_name


class InstanceKeepalives(object):

    def __init__(self, workspace, backend):
        self.space = workspace
        self.backend = backend
        root = workspace.root
        self.users = {'gh-1': runner_owner(), 'gh-2': runner_owner(), 'gl-1': second_user()}
        self.script_dir = root / 'usr' / 'local' / 'libexec' / 'codexops'
        self.cron_dir = root / 'etc' / 'cron.d'
        self.systemd_dir = root / 'etc' / 'systemd' / 'system'
        for directory in (self.cron_dir, self.systemd_dir):
            directory.mkdir(parents=True)
        self.docs = {}
        for name, (plan, ttl) in LOGINS.items():
            self.seed(name, plan, ttl)

    def home(self, name):
        return self.space.root / 'runners' / name / '.codex'

    def seed(self, name, plan, ttl):
        """The instance's CODEX_HOME as codex_auth leaves it (0700, 0600 auth.json, file store, the user's)."""
        user = pwd.getpwnam(self.users[name])
        home = self.home(name)
        home.parent.mkdir(parents=True, mode=0o755)
        home.mkdir(mode=0o700)
        doc, secrets = self.backend.login(account_id='acct-%s' % name, plan=plan, access_ttl=ttl,
                                          last_refresh=datetime.datetime.now(datetime.timezone.utc)
                                          - datetime.timedelta(days=7))
        self.space.remember(secrets)
        self.docs[name] = doc
        for file_name, text in (('auth.json', json.dumps(doc, indent=2)),
                                ('config.toml', 'cli_auth_credentials_store = "file"\n%s\n'
                                 % self.backend.chatgpt_config())):
            write_private(home / file_name, text)
            os.chown(str(home / file_name), user.pw_uid, user.pw_gid)
        os.chown(str(home), user.pw_uid, user.pw_gid)

    def runners(self, names):
        return [{'name': name, 'user': self.users[name], 'codex_home': str(self.home(name)), 'method': 'seed'}
                for name in names]

    def name(self, instance):
        """The one rule (module_utils/keepalive_status.py), which the role uses through the filter."""
        return keepalive_status.keepalive_name(self.users[instance], str(self.home(instance)), instance)

    def run_role(self, names, check=False):
        playbook = self.space.root / 'keepalive-instances.yml'
        if not playbook.exists():
            playbook.write_text(PLAY)
        inventory = self.space.root / 'keepalive-inventory.ini'
        inventory.write_text('localhost ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
        variables = {
            'codex_keepalive_runners': self.runners(names), 'codex_keepalive_scheduler': 'cron',
            'codex_keepalive_script_dir': str(self.script_dir), 'codex_keepalive_cron_dir': str(self.cron_dir),
            'codex_keepalive_systemd_dir': str(self.systemd_dir), 'codex_keepalive_codex_path': codex_binary(),
            'codex_keepalive_timeout': '%ds' % SCRIPT_TIMEOUT,
            'codex_keepalive_environment': {'CODEX_REFRESH_TOKEN_URL_OVERRIDE': self.backend.base_url + '/oauth/token'},
        }
        output = self.space.playbook(str(playbook), str(inventory), variables, check=check,
                                     label='keepalive-instances')
        match = re.search(r'^localhost\s+:\s+ok=\d+\s+changed=(\d+)\s', output, re.MULTILINE)
        assert match, output[-2000:]
        return int(match.group(1))

    def cron_job(self, instance):
        """(user, argv) of the instance's cron job."""
        cron_file = self.cron_dir / keepalive_status.cron_file_name(self.name(instance))
        jobs = [line for line in cron_file.read_text().splitlines() if line.startswith('@')]
        assert len(jobs) == 1, jobs
        _special, user, command = jobs[0].split(None, 2)
        return user, command

    def keepalive(self, instance):
        """Run what the instance's cron job runs, as its user, in cron's bare environment."""
        user, command = self.cron_job(instance)
        proc = subprocess.run(['/usr/sbin/runuser', '-u', user, '--', command],
                              env={'PATH': '/usr/bin:/bin', 'LANG': 'C.UTF-8'}, cwd=str(self.space.root),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=SCRIPT_TIMEOUT + 60, check=False)
        output = proc.stdout.decode('utf-8', 'replace')
        self.space.outputs.append(output)
        return proc.returncode, output


@pytest.fixture
def keepalives(workspace, backend, fake_crontab):  # pylint: disable=unused-argument
    return InstanceKeepalives(workspace, backend)


def test_one_keepalive_per_instance_each_refreshing_its_own_credentials(keepalives, workspace, backend):
    names = list(LOGINS)
    codex_binary()
    assert keepalives.run_role(names, check=True) > 0
    assert not keepalives.script_dir.exists() and not os.listdir(str(keepalives.cron_dir)), 'check mode wrote'

    assert keepalives.run_role(names) > 0
    expected = sorted(keepalives.name(name) for name in names)
    assert len(set(expected)) == 3  # no collision, two instances of one user included
    assert sorted(os.listdir(str(keepalives.script_dir))) == expected
    assert sorted(os.listdir(str(keepalives.cron_dir))) == sorted(keepalive_status.cron_file_name(name)
                                                                  for name in expected)
    for name in names:
        user, command = keepalives.cron_job(name)
        assert (user, command) == (keepalives.users[name], str(keepalives.script_dir / keepalives.name(name)))
        script = (keepalives.script_dir / keepalives.name(name)).read_text()
        assert str(keepalives.home(name)) in script
        assert not [secret for secret in workspace.secrets if secret in script]
    assert keepalives.run_role(names) == 0
    assert keepalives.run_role(names, check=True) == 0

    # Each keepalive refreshes its own instance, at the same time (a host's timers fire independently).
    # The backend lives as long as the pytest worker: count what these runs add (another file on the same worker
    # may have provoked a reuse on purpose).
    rotations = backend.count('/oauth/token', 'rotated')
    reused = backend.count('/oauth/token', 'refresh_token_reused')
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = dict(zip(names, pool.map(keepalives.keepalive, names)))
    assert backend.count('/oauth/token', 'rotated') == rotations + 3, runs
    for name in names:
        before = keepalives.docs[name]
        after = json.loads((keepalives.home(name) / 'auth.json').read_text())
        workspace.remember([after['tokens'][key] for key in ('id_token', 'access_token', 'refresh_token')])
        assert after['tokens']['refresh_token'] == backend.current_refresh_token(before['tokens']['refresh_token']), \
            (name, runs[name][1][-2000:])
        assert after['tokens']['refresh_token'] != before['tokens']['refresh_token'], name
        assert after['tokens']['account_id'] == 'acct-%s' % name
        status = json.loads((keepalives.home(name) / 'codexops-keepalive.json').read_text())
        assert (status['result'], status['refreshed']) == ('ok', True), (name, status, runs[name][1][-2000:])
        assert runs[name][0] == 0, (name, runs[name][1][-2000:])
        info = os.stat(str(keepalives.home(name) / 'auth.json'))
        assert pwd.getpwuid(info.st_uid).pw_name == keepalives.users[name]
    assert backend.count('/oauth/token', 'refresh_token_reused') == reused

    # gh-2 leaves the host: its keepalive goes (check mode predicts it), the others stay as they are.
    kept = dict((name, file_identity(keepalives.script_dir / keepalives.name(name))) for name in ('gh-1', 'gl-1'))
    assert keepalives.run_role(['gh-1', 'gl-1'], check=True) > 0
    assert (keepalives.script_dir / keepalives.name('gh-2')).exists(), 'check mode removed a keepalive'
    assert keepalives.run_role(['gh-1', 'gl-1']) > 0
    assert sorted(os.listdir(str(keepalives.script_dir))) == sorted(keepalives.name(name) for name in kept)
    assert len(os.listdir(str(keepalives.cron_dir))) == 2
    assert dict((name, file_identity(keepalives.script_dir / keepalives.name(name))) for name in kept) == kept
    assert keepalives.run_role(['gh-1', 'gl-1']) == 0
    assert workspace.leaks() == []


def test_moving_to_runner_instances_replaces_the_single_runner_keepalive_of_the_same_home(workspace, fake_crontab):
    """A host that had one runner (codex_keepalive_user/home) moves to codex_keepalive_runners with that CODEX_HOME as
    a named instance: the single-runner keepalive of that user and home goes (check mode predicts it), so exactly
    one keepalive refreshes that auth.json. What is not provably that keepalive stays: the single-runner keepalive of
    another home, a look-alike script the role did not write, an unrelated cron file."""
    user = runner_owner()
    root = workspace.root
    script_dir, cron_dir = root / 'libexec', root / 'cron.d'
    systemd_dir = root / 'systemd'
    for directory in (cron_dir, systemd_dir):
        directory.mkdir()
    home, other_home = root / 'runners' / 'mig' / '.codex', root / 'runners' / 'other' / '.codex'
    playbook = root / 'keepalive-migration.yml'
    playbook.write_text(PLAY)
    inventory = root / 'keepalive-migration.ini'
    inventory.write_text('localhost ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
    common = {'codex_keepalive_scheduler': 'cron', 'codex_keepalive_script_dir': str(script_dir),
              'codex_keepalive_cron_dir': str(cron_dir), 'codex_keepalive_systemd_dir': str(systemd_dir),
              'codex_keepalive_codex_path': '/usr/local/bin/codex'}

    def run(check=False, **variables):
        output = workspace.playbook(str(playbook), str(inventory), dict(common, **variables), check=check,
                                    label='keepalive-migration')
        match = re.search(r'^localhost\s+:\s+ok=\d+\s+changed=(\d+)\s', output, re.MULTILINE)
        assert match, output[-2000:]
        return int(match.group(1))

    def serving(path):
        """The keepalive scripts whose CODEX_HOME is `path`."""
        line = 'CODEX_HOME=%s' % path
        return sorted(name for name in os.listdir(str(script_dir))
                      if line in (script_dir / name).read_text().splitlines())

    # Before: one runner per CODEX_HOME, as the single-runner variables install them (two plays of the role).
    assert run(codex_keepalive_user=user, codex_keepalive_home=str(home)) > 0
    assert run(codex_keepalive_user=user, codex_keepalive_home=str(other_home)) > 0
    single = keepalive_status.keepalive_name(user, str(home))
    other = keepalive_status.keepalive_name(user, str(other_home))
    assert serving(home) == [single] and serving(other_home) == [other]
    # Beside them: a cron file of something else, and a script named as the rule names the keepalive of the user's
    # default CODEX_HOME and holding the same CODEX_HOME= line, but not written by the role.
    unrelated = cron_dir / 'backup-job'
    unrelated.write_text('@daily root /usr/local/bin/backup\n')
    look_alike = script_dir / keepalive_status.keepalive_name(user, '~%s/.codex' % user)
    look_alike.write_text('#!/bin/sh\nCODEX_HOME=%s\nif [ "$(id -u -n)" != %s ]; then\n  exit 1\nfi\n' % (home, user))
    before = dict((path, file_identity(path)) for path in (unrelated, look_alike, script_dir / other,
                                                           cron_dir / keepalive_status.cron_file_name(other)))
    runners = [{'name': 'mig', 'user': user, 'codex_home': str(home)}]
    instance = keepalive_status.keepalive_name(user, str(home), 'mig')

    assert run(check=True, codex_keepalive_runners=runners) > 0
    predicted = workspace.outputs[-1]
    for path in (script_dir / single, cron_dir / keepalive_status.cron_file_name(single)):
        assert 'changed: [localhost] => (item=%s)' % path in predicted, 'check mode did not predict removing %s' % path
    for path in before:
        assert '(item=%s)' % path not in predicted
    assert serving(home) == sorted([single, look_alike.name]), 'check mode removed a keepalive'
    assert not (script_dir / instance).exists(), 'check mode installed a keepalive'
    assert (cron_dir / keepalive_status.cron_file_name(single)).exists()

    assert run(codex_keepalive_runners=runners) > 0
    assert serving(home) == sorted([instance, look_alike.name])  # the look-alike is not the role's: never removed
    assert not (cron_dir / keepalive_status.cron_file_name(single)).exists()
    assert sorted(os.listdir(str(cron_dir))) == sorted([unrelated.name, keepalive_status.cron_file_name(other),
                                                        keepalive_status.cron_file_name(instance)])
    assert dict((path, file_identity(path)) for path in before) == before
    assert run(codex_keepalive_runners=runners) == 0
    assert run(check=True, codex_keepalive_runners=runners) == 0
