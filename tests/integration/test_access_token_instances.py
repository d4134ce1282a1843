"""Access-token runner instances (codex_auth_runners entries with method access_token) through the codex_auth role,
for real.

One inventory host carries two access-token instances under two users (the tests' runner user and a second existing
non-root account, support.runner_access.second_runner_account: nothing is created on the machine) and one seed
instance. Each run of the role is one codex_auth_seed plan and write for the seed instance and ONE
codex_access_token_login run for both access-token instances; the real Codex CLI, run as each instance's user
against the loopback whoami endpoint (CODEX_AUTHAPI_BASE_URL), is the oracle. An access-token instance with a
runner_environment gets its GitHub runner's `.env` line in that same login run. Codex is reached through a wrapper
that records its argv, so a token on a command line would be found; the workspace's leak check reads every output
(ansible-playbook -vvvv) and file.
"""

import json
import os
import pwd
import re
import stat
import subprocess
import sys

import pytest

from support import fake_credentials
from support.codex import codex_binary
from support.codex_backend import WHOAMI_PATH
from support.local_fleet import changed_by_host, file_identity
from support.private_files import write_private
from support.require import required
from support.runner_access import runner_owner, second_runner_account
from support import instances_play

_needs_root = required(os.geteuid() == 0, 'runner instances under two users need root (to own their CODEX_HOMEs)')

HOST = 'runner-1'
TOKENS = ('tok-1', 'tok-2')
INSTANCES = TOKENS + ('seed-1',)

PLAYBOOK = instances_play.PLAYBOOK

# Records every argv Codex is started with (as whichever runner user runs it), then runs the real Codex.
WRAPPER = '''#!/bin/sh
printf '%s\\n' "$*" >> {log}
exec {codex} "$@"
'''


class AccessInstances(object):

    def __init__(self, space):
        self.space = space
        other = second_runner_account()
        if other is None:
            pytest.fail('no second non-root user on this machine to run a runner instance as')
        self.users = {'tok-1': runner_owner(), 'tok-2': other.pw_name, 'seed-1': runner_owner()}
        self.health_dir = space.root / 'health'
        self.health_dir.mkdir()
        self.playbook = space.root / 'runners.yml'
        self.playbook.write_text(PLAYBOOK)
        self.argv_log = space.root / 'argv' / 'codex.log'
        self.argv_log.parent.mkdir()
        os.chmod(str(self.argv_log.parent), 0o777)
        # Either runner user appends to it (the leak check would also flag a token in it at this mode).
        self.argv_log.write_text('')
        os.chmod(str(self.argv_log), 0o666)
        self.wrapper = space.root / 'codex-wrapper'
        self.wrapper.write_text(WRAPPER.format(log=self.argv_log, codex=codex_binary()))
        os.chmod(str(self.wrapper), 0o755)
        self.tokens = dict((name, self.new_token(name)) for name in TOKENS)
        self.environments = {}  # name: runner_environment
        seed, secrets = fake_credentials.chatgpt_seed(account_id='acct-seed-1')
        space.remember(secrets)
        self.seed = fake_credentials.dumps(seed)
        for name in INSTANCES:
            self.home(name).parent.mkdir(parents=True)
        self.inventory = space.root / 'inventory.json'
        self.write_inventory()

    def new_token(self, tag):
        token = fake_credentials.personal_access_token(tag=tag)
        self.space.remember([token])
        self.space.backend.allow_access_token(token, account_id='acct-%s' % tag)
        return token

    def write_inventory(self):
        runners = [{'name': name, 'user': self.users[name], 'codex_home': str(self.home(name)),
                    'method': 'access_token', 'access_token': self.tokens[name]} for name in TOKENS]
        for entry in runners:
            if entry['name'] in self.environments:
                entry['runner_environment'] = self.environments[entry['name']]
        runners.append({'name': 'seed-1', 'codex_home': str(self.home('seed-1')), 'seed_content': self.seed})
        inventory = {'codex_runners': {'hosts': {HOST: {'codex_auth_runners': runners}}, 'vars': {
            'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
            'codex_auth_user': runner_owner(), 'health_dir': str(self.health_dir),
            'codex_auth_codex_path': str(self.wrapper),
            'codex_auth_codex_environment': {'CODEX_AUTHAPI_BASE_URL': self.space.backend.base_url}}}}
        # It holds the tokens and the seed (vault-encrypted host_vars in a real inventory): private.
        if self.inventory.exists():
            self.inventory.unlink()
        write_private(self.inventory, json.dumps(inventory))

    def home(self, name):
        return self.space.root / 'runners' / HOST / name / '.codex'

    def auth(self, name):
        return self.home(name) / 'auth.json'

    def run(self, check=False, expect_failure=False, **variables):
        return self.space.playbook(str(self.playbook), str(self.inventory), variables, check=check,
                                   expect_failure=expect_failure, label='access-instances')

    def health(self):
        return dict((row['name'], row) for row in json.loads((self.health_dir / ('%s.json' % HOST)).read_text()))

    def codex_as(self, name, args):
        entry = pwd.getpwnam(self.users[name])
        env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(self.space.root),
               'CODEX_HOME': str(self.home(name)), 'CODEX_AUTHAPI_BASE_URL': self.space.backend.base_url}
        proc = subprocess.run([codex_binary()] + list(args), cwd=str(self.space.root), env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=120, check=False, user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        output = proc.stdout.decode('utf-8', 'replace')
        self.space.outputs.append(output)
        return proc.returncode, output

    def identities(self, names):
        return dict((name, file_identity(self.auth(name))) for name in names)


def module_runs(output, module):
    return len(re.findall(r'^Using module file \S+/%s\.py$' % module, output, re.M))


@pytest.fixture
def instances(workspace):
    return AccessInstances(workspace)


def test_two_access_token_instances_and_a_seed_one_then_a_rotation_of_one(instances):
    codex_binary()  # the oracle must be there before anything is provisioned
    predicted = instances.run(check=True)
    # Two tasks would change the host: the seed instance's write and the access-token instances' login.
    assert changed_by_host(predicted) == {HOST: 2}
    assert not any(instances.home(name).exists() for name in INSTANCES), 'check mode wrote something'
    assert module_runs(predicted, 'codex_access_token_login') == 1

    first = instances.run()
    assert changed_by_host(first) == {HOST: 2}
    # One login run for both access-token instances; the seed instance's plan and write.
    assert module_runs(first, 'codex_access_token_login') == 1
    assert module_runs(first, 'codex_auth_seed') == 2
    for name in INSTANCES:
        owner = pwd.getpwnam(instances.users[name])
        home, auth = os.stat(str(instances.home(name))), os.stat(str(instances.auth(name)))
        assert (stat.S_IMODE(home.st_mode), stat.S_IMODE(auth.st_mode)) == (0o700, 0o600), name
        assert (home.st_uid, auth.st_uid) == (owner.pw_uid, owner.pw_uid), name
        assert 'cli_auth_credentials_store = "file"' in (instances.home(name) / 'config.toml').read_text(), name
    for name in TOKENS:
        assert json.loads(instances.auth(name).read_text()) == {
            'OPENAI_API_KEY': None, 'personal_access_token': instances.tokens[name]}, name
    health = instances.health()
    assert sorted(health) == sorted(INSTANCES)
    assert all(row['healthy'] for row in health.values()), health
    assert [health[name]['auth_mode'] for name in INSTANCES] == ['personalAccessToken'] * 2 + ['chatgpt']
    assert health['tok-2']['owner'] == instances.users['tok-2']

    # The real Codex, as each instance's user with its own CODEX_HOME.
    for name in TOKENS:
        code, output = instances.codex_as(name, ['login', 'status'])
        assert code == 0 and 'Logged in using personal access token' in output, (name, output)
    code, output = instances.codex_as('seed-1', ['login', 'status'])
    assert code == 0 and 'Logged in using ChatGPT' in output, output
    # verify (tasks_from: verify): every instance in one codex_auth_verify run, `codex login status` as its user.
    verify = instances.run(entry='verify', codex_auth_login_status=True)
    assert module_runs(verify, 'codex_auth_verify') == 1
    verified = instances.health()
    assert all(row['healthy'] for row in verified.values()), verified
    assert [verified[name]['codex_login_status']['message'] for name in INSTANCES] == [
        'Logged in using personal access token'] * 2 + ['Logged in using ChatGPT']

    # Idempotent: the same tokens are stored, so Codex is not even asked (no whoami request).
    whoami = instances.space.backend.count(WHOAMI_PATH)
    kept = instances.identities(INSTANCES)
    again = instances.run()
    assert changed_by_host(again) == {HOST: 0}
    assert module_runs(again, 'codex_access_token_login') == 1 and module_runs(again, 'codex_auth_seed') == 1
    assert instances.space.backend.count(WHOAMI_PATH) == whoami
    assert changed_by_host(instances.run(check=True)) == {HOST: 0}
    assert instances.identities(INSTANCES) == kept

    # Rotation of tok-2: a new token in the inventory; check mode predicts exactly that one change.
    old = instances.tokens['tok-2']
    instances.tokens['tok-2'] = instances.new_token('tok-2-rotated')
    instances.write_inventory()
    assert changed_by_host(instances.run(check=True)) == {HOST: 1}
    assert instances.identities(INSTANCES) == kept
    rotated = instances.run()
    assert changed_by_host(rotated) == {HOST: 1}
    assert json.loads(instances.auth('tok-2').read_text())['personal_access_token'] == instances.tokens['tok-2']
    assert instances.identities(('tok-1', 'seed-1')) == dict((name, kept[name]) for name in ('tok-1', 'seed-1'))
    assert instances.identities(('tok-2',)) != {'tok-2': kept['tok-2']}
    # Smoke test as the instance's user, then (only then) the operator revokes the old token: tok-2 keeps working.
    code, output = instances.codex_as('tok-2', ['login', 'status'])
    assert code == 0 and 'Logged in using personal access token' in output, output
    instances.space.backend.revoke_access_token(old)
    for name in TOKENS:
        code, output = instances.codex_as(name, ['login', 'status'])
        assert code == 0 and 'Logged in using personal access token' in output, (name, output)
    assert changed_by_host(instances.run()) == {HOST: 0}

    # No token on any command line Codex was started with (the module hands it over on stdin).
    calls = instances.argv_log.read_text()
    assert calls.count('login --with-access-token') == 3
    for token in list(instances.tokens.values()) + [old]:
        assert token not in calls


OTHER_LINES = b'LANG=C.UTF-8\nRUNNER_TOOL_CACHE=/opt/hostedtoolcache\n'


def test_an_access_token_instance_gets_its_runner_environment_in_its_login_run(instances):
    """tok-2 (the second user) serves a GitHub runner directory it owns: its `.env` gets exactly one CODEX_HOME line
    in the one login run, the other lines, owner and mode kept; check mode predicts; verify reports the user's edit;
    provisioning puts the line back without asking Codex again."""
    codex_binary()
    owner = pwd.getpwnam(instances.users['tok-2'])
    runner_dir = instances.space.root / 'actions-runners' / 'tok-2'
    runner_dir.mkdir(parents=True)
    env = runner_dir / '.env'
    env.write_bytes(OTHER_LINES)
    os.chmod(str(env), 0o640)
    for path in (runner_dir, env):
        os.chown(str(path), owner.pw_uid, owner.pw_gid)
    instances.environments['tok-2'] = {'github_runner_dir': str(runner_dir)}
    instances.write_inventory()
    wanted = OTHER_LINES + b'CODEX_HOME=%s\n' % str(instances.home('tok-2')).encode()

    predicted = instances.run(check=True)
    assert changed_by_host(predicted) == {HOST: 2}
    assert env.read_bytes() == OTHER_LINES, 'check mode wrote the .env'
    first = instances.run()
    assert changed_by_host(first) == {HOST: 2}
    assert module_runs(first, 'codex_access_token_login') == 1
    st = os.stat(str(env))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), env.read_bytes()) == (
        owner.pw_uid, owner.pw_gid, 0o640, wanted)
    assert sorted(os.listdir(str(runner_dir))) == ['.env'], 'a temp file was left'
    assert 'hostedtoolcache' not in first
    assert changed_by_host(instances.run()) == {HOST: 0}
    assert changed_by_host(instances.run(check=True)) == {HOST: 0}

    instances.run(entry='verify')
    assert all(row['healthy'] for row in instances.health().values()), instances.health()
    # The runner user points tok-2's jobs elsewhere: verify names the instance's found and configured homes.
    env.write_bytes(OTHER_LINES + b'CODEX_HOME=/tmp/elsewhere\n')
    instances.run(entry='verify')
    health = instances.health()
    assert [item['code'] for item in health['tok-2']['problems']] == ['runner_env_codex_home_mismatch']
    assert '/tmp/elsewhere' in health['tok-2']['problems'][0]['message']
    assert health['tok-1']['healthy'] and health['seed-1']['healthy']
    # Provisioning predicts, then writes the line back: the token is stored, so Codex is not asked.
    whoami = instances.space.backend.count(WHOAMI_PATH)
    assert changed_by_host(instances.run(check=True)) == {HOST: 1}
    assert env.read_bytes() == OTHER_LINES + b'CODEX_HOME=/tmp/elsewhere\n'
    assert changed_by_host(instances.run()) == {HOST: 1}
    assert env.read_bytes() == wanted
    assert instances.space.backend.count(WHOAMI_PATH) == whoami


def test_one_token_on_two_instances_is_refused_before_anything_is_written(instances):
    instances.tokens['tok-2'] = instances.tokens['tok-1']
    instances.write_inventory()
    output = instances.run(expect_failure=True)
    assert 'instances tok-1 and tok-2 have the same access_token' in output
    assert not any(instances.home(name).exists() for name in INSTANCES)
    assert '<%s> EXEC ' % HOST not in output


def test_the_rotate_access_token_playbook_rotates_one_instance_and_says_when_to_revoke(instances):
    """The rotation recipe per instance, with the real playbook: the new token in the instance's inventory entry,
    login, smoke test (`codex login status` as its user), and only when every instance passed, revoke the old one.
    A token Codex refuses leaves that instance on its previous login and says not to revoke."""
    instances.run()
    kept = instances.identities(INSTANCES)

    def rotate(expect_failure=False):
        return instances.space.playbook('codexops.runner.rotate_access_token', str(instances.inventory), {},
                                        expect_failure=expect_failure, label='rotate')

    # A new token the backend does not know: refused by Codex, tok-1 keeps its login, nothing else is touched.
    instances.tokens['tok-1'] = fake_credentials.personal_access_token(tag='tok-1-unknown')
    instances.space.remember([instances.tokens['tok-1']])
    instances.write_inventory()
    output = rotate(expect_failure=True)
    assert 'Do NOT revoke the old access token yet: %s' % HOST in output
    assert 'Logging runner instance tok-1 in failed' in output
    assert instances.identities(INSTANCES) == kept
    code, status = instances.codex_as('tok-1', ['login', 'status'])
    assert code == 0 and 'Logged in using personal access token' in status, status

    # A good one: tok-1 switches, tok-2 (same token) is only smoke-tested, then the old one may be revoked.
    old = json.loads(instances.auth('tok-1').read_text())['personal_access_token']
    instances.tokens['tok-1'] = instances.new_token('tok-1-rotated')
    instances.write_inventory()
    output = rotate()
    assert 'It is now safe to revoke the old token' in output
    assert json.loads(instances.auth('tok-1').read_text())['personal_access_token'] == instances.tokens['tok-1']
    assert instances.identities(('tok-2', 'seed-1')) == dict((name, kept[name]) for name in ('tok-2', 'seed-1'))
    instances.space.backend.revoke_access_token(old)
    code, status = instances.codex_as('tok-1', ['login', 'status'])
    assert code == 0 and 'Logged in using personal access token' in status, status
    assert old not in instances.argv_log.read_text()
