"""Several runner instances on one host (codex_auth_runners) through the codex_auth role, for real.

One inventory host (the local one) carries three instances under two users: gh-1 and gh-2 run as the tests'
runner user and read their seeds from the default files (codex_seeds/<host>/<instance>.json), gl-1 runs as a
second user and takes its seed from a host variable. Each run of the role is one codex_auth_seed run for the
whole host; the real Codex CLI, run as each instance's user, is the oracle. The second user is an existing
non-root system account, as the hardening suite's second runner is (attack_support.other_runner): nothing is
created on the machine, so nothing is left behind.
"""

import json
import os
import pwd
import re
import stat
import subprocess
import sys
import time

import pytest

from support import fake_credentials
from support.codex import codex_binary
from support.local_fleet import changed_by_host, file_identity
from support.private_files import write_private
from support.require import required
from support.runner_access import runner_owner, second_runner_account
from support import instances_play

_needs_root = required(os.geteuid() == 0, 'runner instances under two users need root (to own their CODEX_HOMEs)')

SINGLE = 'runner-0'
HOST = 'runner-1'
OTHER_HOST = 'runner-2'
INSTANCES = ('gh-1', 'gh-2', 'gl-1')

PLAYBOOK = instances_play.PLAYBOOK


def second_user():
    """A second non-root user, to run one instance as someone else (attack_support.other_runner's rule)."""
    entry = second_runner_account()
    if entry is None:
        pytest.fail('no second non-root user on this machine to run a runner instance as')
    return entry


class Instances(object):
    """The inventory, seeds and playbook of one host with three runner instances (and a second host for the
    refusals)."""

    def __init__(self, space):
        self.space = space
        self.other = second_user()
        self.users = {'gh-1': runner_owner(), 'gh-2': runner_owner(), 'gl-1': self.other.pw_name}
        self.seed_dir = space.root / 'codex_seeds'
        (self.seed_dir / HOST).mkdir(mode=0o700, parents=True)
        (self.seed_dir / OTHER_HOST).mkdir(mode=0o700)
        self.health_dir = space.root / 'health'
        self.health_dir.mkdir()
        self.playbook = space.root / 'runners.yml'
        self.playbook.write_text(PLAYBOOK)
        self.docs = {}
        for name in ('gh-1', 'gh-2'):
            self.docs[name] = self.new_doc(name)
            write_private(self.seed_dir / HOST / ('%s.json' % name), fake_credentials.dumps(self.docs[name]))
        self.docs['gl-1'] = self.new_doc('gl-1')
        runners = [{'name': 'gh-1', 'codex_home': str(self.home('gh-1'))},
                   {'name': 'gh-2', 'home': str(self.home('gh-2'))},
                   {'name': 'gl-1', 'user': self.other.pw_name, 'codex_home': str(self.home('gl-1')),
                    'seed_content': fake_credentials.dumps(self.docs['gl-1'])}]
        # runner-2 is handed one login twice: gh-2's seed file holds gh-1's, written another way.
        shared = self.new_doc('shared')
        write_private(self.seed_dir / OTHER_HOST / 'a.json', fake_credentials.dumps(shared))
        write_private(self.seed_dir / OTHER_HOST / 'b.json', json.dumps(dict(shared, last_refresh='2026-01-01T00:00:00Z')))
        other_runners = [{'name': 'a', 'codex_home': str(self.home('a', OTHER_HOST))},
                         {'name': 'b', 'codex_home': str(self.home('b', OTHER_HOST))}]
        common = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                  'codex_auth_user': runner_owner(), 'codex_auth_seed_dir': str(self.seed_dir),
                  'health_dir': str(self.health_dir),
                  'codex_auth_codex_environment': {'CODEX_AUTHAPI_BASE_URL': space.backend.base_url}}
        # runner-0 is one runner, as every inventory before runner instances: codex_seeds/runner-0.json.
        self.docs[SINGLE] = self.new_doc(SINGLE)
        write_private(self.seed_dir / ('%s.json' % SINGLE), fake_credentials.dumps(self.docs[SINGLE]))
        inventory = {'codex_runners': {'hosts': {SINGLE: {'codex_auth_home': str(self.single_home())},
                                                 HOST: {'codex_auth_runners': runners},
                                                 OTHER_HOST: {'codex_auth_runners': other_runners}},
                                       'vars': common}}
        # It holds gl-1's seed (vault-encrypted in real host_vars): private, like every file with a secret.
        self.inventory = write_private(space.root / 'inventory.json', json.dumps(inventory))
        self.single_home().parent.mkdir(parents=True)
        for name in INSTANCES + ('a', 'b'):
            parent = self.home(name, OTHER_HOST if name in ('a', 'b') else HOST).parent
            parent.mkdir(parents=True)

    def new_doc(self, tag):
        doc, secrets = fake_credentials.chatgpt_seed(account_id='acct-%s' % tag)
        self.space.remember(secrets)
        return doc

    def home(self, name, host=HOST):
        return self.space.root / 'runners' / host / name / '.codex'

    def single_home(self):
        return self.space.root / 'runners' / SINGLE / '.codex'

    def auth(self, name):
        return self.home(name) / 'auth.json'

    def run(self, expect_failure=False, check=False, limit=HOST, **variables):
        return self.space.playbook(str(self.playbook), self.inventory, variables, expect_failure=expect_failure,
                                   check=check, extra_args=('--limit', limit), label='runners')

    def health(self, host=HOST):
        return dict((row['name'], row) for row in json.loads((self.health_dir / ('%s.json' % host)).read_text()))

    def codex_as(self, name, args):
        """The real Codex CLI as the instance's user with its CODEX_HOME, as a CI job of that runner runs it."""
        entry = pwd.getpwnam(self.users[name])
        env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(self.space.root),
               'CODEX_HOME': str(self.home(name))}
        proc = subprocess.run([codex_binary()] + list(args), cwd=str(self.space.root), env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=120, check=False, user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        output = proc.stdout.decode('utf-8', 'replace')
        self.space.outputs.append(output)
        return proc.returncode, output


@pytest.fixture
def instances(workspace):
    return Instances(workspace)


def seed_runs(output):
    """How many times ansible-playbook -vvvv ran codex_auth_seed (it logs the module file at each use)."""
    return len(re.findall(r'^Using module file \S+/codex_auth_seed\.py$', output, re.M))


def test_three_instances_two_users_one_round_trip(instances):
    codex_binary()  # the oracle must be there before anything is provisioned
    predicted = instances.run(check=True, limit=HOST)
    assert changed_by_host(predicted) == {HOST: 1}
    assert not any(instances.home(name).exists() for name in INSTANCES), 'check mode wrote something'

    first = instances.run(limit=HOST)
    assert changed_by_host(first) == {HOST: 1}
    # One module run plans the three instances (the refusal across the play reads it), one writes them.
    assert seed_runs(first) == 2
    assert first.count("TASK [codexops.runner.codex_auth : Seed auth.json and config.toml") == 1
    for name in INSTANCES:
        owner = pwd.getpwnam(instances.users[name])
        home, auth = os.stat(str(instances.home(name))), os.stat(str(instances.auth(name)))
        assert (stat.S_IMODE(home.st_mode), stat.S_IMODE(auth.st_mode)) == (0o700, 0o600), name
        assert (home.st_uid, auth.st_uid) == (owner.pw_uid, owner.pw_uid), name
        stored = json.loads(instances.auth(name).read_text())
        assert stored['tokens']['refresh_token'] == instances.docs[name]['tokens']['refresh_token'], name
    health = instances.health()
    assert sorted(health) == sorted(INSTANCES)
    assert all(row['healthy'] and row['auth_mode'] == 'chatgpt' for row in health.values())
    assert health['gl-1']['owner'] == instances.other.pw_name

    again = instances.run(limit=HOST)
    assert changed_by_host(again) == {HOST: 0} and seed_runs(again) == 1
    assert changed_by_host(instances.run(check=True, limit=HOST)) == {HOST: 0}

    # The real Codex, as each instance's user with its own CODEX_HOME.
    for name in INSTANCES:
        code, output = instances.codex_as(name, ['login', 'status'])
        assert code == 0 and 'Logged in using ChatGPT' in output, (name, output)

    # verify (tasks_from: verify): every instance in one codex_auth_verify run, login status as its user.
    verify = instances.run(entry='verify', limit=HOST, codex_auth_login_status=True,
                           codex_auth_codex_path=codex_binary())
    assert len(re.findall(r'^Using module file \S+/codex_auth_verify\.py$', verify, re.M)) == 1
    verified = instances.health()
    assert all(row['healthy'] for row in verified.values()), verified
    assert all(row['codex_login_status']['rc'] == 0 and 'Logged in using ChatGPT' in row['codex_login_status']['message']
               for row in verified.values()), verified


def test_a_host_without_runner_instances_is_one_runner_as_before(instances):
    """The single-runner variables alone, in the same play as a host with instances: today's path (plan, then
    seed), today's fact, and a second run changes nothing."""
    output = instances.run(limit='%s,%s' % (SINGLE, HOST))
    assert changed_by_host(output) == {SINGLE: 1, HOST: 1}
    assert 'TASK [codexops.runner.codex_auth : Plan the seed (check mode, writes nothing)]' in output
    stored = json.loads((instances.single_home() / 'auth.json').read_text())
    assert stored['tokens']['refresh_token'] == instances.docs[SINGLE]['tokens']['refresh_token']
    assert not (instances.health_dir / ('%s.json' % SINGLE)).exists()  # no codex_auth_runners_health there
    again = instances.run(limit='%s,%s' % (SINGLE, HOST))
    assert changed_by_host(again) == {SINGLE: 0, HOST: 0}
    instances.run(entry='verify', limit=SINGLE)


def test_one_broken_instance_is_reseeded_alone(instances):
    instances.run()
    instances.auth('gh-2').write_text('{"tokens": {')
    kept = dict((name, file_identity(instances.auth(name))) for name in ('gh-1', 'gl-1'))

    instances.run(entry='verify')
    health = instances.health()
    assert [name for name, row in sorted(health.items()) if not row['healthy']] == ['gh-2']
    assert 'auth_not_json' in [item['code'] for item in health['gh-2']['problems']]

    output = instances.run(codex_auth_replace='invalid')
    assert changed_by_host(output) == {HOST: 1}
    health = instances.health()
    assert all(row['healthy'] for row in health.values()), health
    assert dict((name, file_identity(instances.auth(name))) for name in ('gh-1', 'gl-1')) == kept
    stored = json.loads(instances.auth('gh-2').read_text())
    assert stored['tokens']['refresh_token'] == instances.docs['gh-2']['tokens']['refresh_token']
    code, status = instances.codex_as('gh-2', ['login', 'status'])
    assert code == 0 and 'Logged in using ChatGPT' in status, status


def test_one_seed_on_two_instances_is_refused_before_anything_is_written(instances):
    output = instances.run(limit=OTHER_HOST, expect_failure=True)
    assert 'instances a and b have seeds with the same refresh token' in output
    assert not instances.home('a', OTHER_HOST).exists() and not instances.home('b', OTHER_HOST).exists()
    # Refused while the task's arguments were templated, on the controller: the host was never asked.
    assert '<%s> EXEC ' % OTHER_HOST not in output
    # Asked to create the instances' users first, the role refuses the list before creating any.
    output = instances.run(limit=OTHER_HOST, expect_failure=True, codex_auth_create_user=True)
    assert 'instances a and b have seeds with the same refresh token' in output
    assert 'TASK [codexops.runner.codex_auth : Create the runner users of the instances]' in output
    assert not re.search(r'^Using module file \S+/user\.py$', output, re.M)
    assert '<%s> EXEC ' % OTHER_HOST not in output


def test_the_provision_playbook_reports_each_instance_and_reseed_replaces_only_the_broken_one(instances):
    """The real playbooks, as the README runs them (ansible-playbook codexops.runner.NAME): one row per runner
    instance, host/instance, in the fleet report; reseed replaces exactly the broken instance."""
    report_dir = instances.space.root / 'report'

    def play(name, expect_failure=False, **variables):
        return instances.space.playbook('codexops.runner.%s' % name, instances.inventory,
                                        dict(variables, codex_auth_report_dir=str(report_dir)),
                                        expect_failure=expect_failure, extra_args=('--limit', HOST), label=name)

    def report(name='fleet-report'):
        return json.loads((report_dir / ('%s.json' % name)).read_text())

    rows = ['%s/%s' % (HOST, name) for name in INSTANCES]
    play('provision')
    found = report()
    assert found['ok'] and [row['host'] for row in found['hosts']] == rows
    assert all(row['healthy'] and row['runner_host'] == HOST for row in found['hosts'])
    assert [row['instance'] for row in found['hosts']] == list(INSTANCES)
    assert found['totals'] == {'hosts': 1, 'runners': 3, 'healthy': 3, 'broken': 0, 'sharing': 0, 'stale': 0,
                               'unknown': 0, 'unreachable': 0, 'shared_tokens': 0}
    assert found['by_host'] == {HOST: {'runners': 3, 'healthy': 3, 'broken': 0, 'sharing': 0, 'unknown': 0}}
    markdown = (report_dir / 'fleet-report.md').read_text()
    assert '**3 runners on 1 hosts: 3 healthy' in markdown
    assert all('| %s | chatgpt | healthy |' % row in markdown for row in rows)

    play('verify')
    assert [row['host'] for row in report()['hosts'] if row['healthy']] == rows

    instances.auth('gh-2').write_text('{"tokens": {')
    kept = dict((name, file_identity(instances.auth(name))) for name in ('gh-1', 'gl-1'))
    output = play('verify', expect_failure=True)
    assert 'broken (%s/gh-2)' % HOST in output
    assert report()['broken'] == report()['needs_reseed'] == ['%s/gh-2' % HOST]

    play('reseed')
    assert report('before-reseed')['needs_reseed'] == ['%s/gh-2' % HOST]
    after = report('after-reseed')
    assert after['ok'] and [row['host'] for row in after['hosts'] if row['healthy']] == rows
    assert dict((name, file_identity(instances.auth(name))) for name in ('gh-1', 'gl-1')) == kept
    stored = json.loads(instances.auth('gh-2').read_text())
    assert stored['tokens']['refresh_token'] == instances.docs['gh-2']['tokens']['refresh_token']

    # Named: host/instance reseeds that instance alone, replacing it though it is healthy (gl-1 holds a valid
    # auth.json other than its seed; gh-1 too, and it is left so).
    for name in ('gh-1', 'gl-1'):
        with open(str(instances.auth(name)), 'w') as handle:  # in place: owner and mode kept
            stamp = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
            handle.write(json.dumps(dict(instances.docs[name], last_refresh=stamp)))
    before = file_identity(instances.auth('gh-1'))
    play('reseed', codexops_reseed_hosts=['%s/gl-1' % HOST])
    assert report('before-reseed')['needs_reseed'] == []
    assert report('after-reseed')['ok']
    assert file_identity(instances.auth('gh-1')) == before
    assert json.loads(instances.auth('gl-1').read_text()) == instances.docs['gl-1']


def test_one_refresh_token_on_instances_of_two_hosts_is_refused_before_anything_is_written(instances):
    """The refusal across the play: gh-1 of runner-1 and a of runner-2 would hold one refresh token."""
    for name, doc in (('a', instances.docs['gh-1']), ('b', instances.new_doc('b'))):
        (instances.seed_dir / OTHER_HOST / ('%s.json' % name)).unlink()
        write_private(instances.seed_dir / OTHER_HOST / ('%s.json' % name), fake_credentials.dumps(doc))
    output = instances.run(limit='%s,%s' % (HOST, OTHER_HOST), expect_failure=True)
    assert 'these runners would share one refresh token' in output
    assert '%s/gh-1 and %s/a' % (HOST, OTHER_HOST) in output
    assert not any(instances.home(name).exists() for name in INSTANCES)
    assert not instances.home('a', OTHER_HOST).exists() and not instances.home('b', OTHER_HOST).exists()
