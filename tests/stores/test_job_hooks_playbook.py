# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The job_hooks playbook (`ansible-playbook codexops.runner.job_hooks`, local connection, as root) on a host with
runner instances (codex_auth_runners): one install per instance - its own config, hooks, secret and rendered
policy, a GitHub instance's .env wired as its own user, a GitLab one's config.toml lines, a CODEX_HOME given as
~USER expanded from passwd - then each GitHub instance's hooks round trip its own secret on the real OpenBao
server with a token whose only policy is the one rendered for it, and cannot reach the other's.

Why here and not in the molecule ssh_fleet scenario: what the playbook installs only proves itself when the hooks
run against a store, and the ssh_fleet hosts have no store server; this suite starts OpenBao and stops it by PID."""

import json
import os
import pwd
import re
import subprocess
import uuid

import yaml

from store_harness import SECRETS, VaultHarness, auth_file
from support.backend_fixture import backend  # noqa: F401 pylint: disable=unused-import
from support.require import required
from support.runner_access import runner_owner, second_runner_account
from support.workspace_fixture import workspace  # noqa: F401 pylint: disable=unused-import

_needs_root = required(os.geteuid() == 0, 'installs root-owned files for other runner users: run as root (CI does)')

PLAYBOOK = 'codexops.runner.job_hooks'


def run_hook(user, script, home, instance):
    entry = pwd.getpwnam(user)
    env = {'PATH': '/usr/local/bin:/usr/bin:/bin', 'HOME': home, 'USER': user, 'CI': 'true', 'GITHUB_ACTIONS': 'true',
           'GITHUB_JOB': 'build', 'GITHUB_RUN_ID': '7', 'RUNNER_NAME': instance}
    completed = subprocess.run(['/bin/bash', '-e', script], env=env, cwd='/', stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, timeout=120,
                               user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
    completed.result = json.loads(completed.stdout.decode().splitlines()[-1])
    return completed


class Fleet(object):
    """One inventory host (localhost) with three runner instances: gh-1 (the host's user), gh-2 (another user),
    both GitHub runners, and gl-3 (GitLab, the other user, CODEX_HOME left to its default ~USER/.codex)."""

    def __init__(self, workspace, openbao):  # noqa: F811
        self.workspace = workspace
        self.root = str(workspace.root)
        self.users = {'gh-1': runner_owner(), 'gh-2': (second_runner_account() or pwd.getpwnam(runner_owner())).pw_name}
        self.users['gl-3'] = self.users['gh-2']
        self.homes, self.runner_dirs = {}, {}
        for name in ('gh-1', 'gh-2'):
            entry = pwd.getpwnam(self.users[name])
            home = os.path.join(self.root, 'homes', name)
            self.homes[name], self.runner_dirs[name] = home, os.path.join(home, 'actions-runner')
            os.makedirs(self.runner_dirs[name])
            for path in (home, self.runner_dirs[name]):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(os.path.join(self.root, 'homes'), 0o755)
        self.prefix = os.path.join(self.root, 'prefix')
        self.policy_dir = os.path.join(self.root, 'policies')
        self.shared_tmp = os.path.join(self.root, 'remote-tmp')
        os.mkdir(self.shared_tmp)
        os.chmod(self.shared_tmp, 0o1777)
        self.host = {
            'ansible_connection': 'local',
            'codex_auth_user': self.users['gh-1'],
            'codex_auth_runners': [
                {'name': 'gh-1', 'codex_home': os.path.join(self.homes['gh-1'], '.codex')},
                {'name': 'gh-2', 'user': self.users['gh-2'], 'codex_home': os.path.join(self.homes['gh-2'], '.codex')},
                {'name': 'gl-3', 'user': self.users['gl-3']}],
            'codex_job_hooks_store': 'vault',
            'codex_job_hooks_store_options': {'url': openbao.url},
            'codex_job_hooks_prefix': self.prefix,
            'codex_job_hooks_policy_dir': self.policy_dir,
            'codex_job_hooks_python': '/usr/bin/python3',
            'codex_job_hooks_runners': {
                'gh-1': {'github_runner_dir': self.runner_dirs['gh-1']},
                'gh-2': {'github_runner_dir': self.runner_dirs['gh-2']},
                'gl-3': {'ci': 'gitlab'}},
        }

    def inventory(self, host):
        path = os.path.join(self.root, 'inventory-%s.yml' % uuid.uuid4().hex[:6])
        with open(path, 'w') as handle:
            yaml.safe_dump({'codex_runners': {'hosts': {'localhost': host}}}, handle)
        os.chmod(path, 0o600)  # (it may hold the store tokens)
        return path

    def play(self, host=None, **kwargs):
        return self.workspace.playbook(PLAYBOOK, self.inventory(host or self.host), {}, verbose=False,
                                       env={'ANSIBLE_REMOTE_TEMP': self.shared_tmp}, **kwargs)

    def config(self, instance):
        with open(os.path.join(self.prefix, 'runners', instance, 'job-credential.json')) as handle:
            return json.load(handle)


def test_the_playbook_installs_one_round_trip_per_runner_instance(workspace, openbao):  # noqa: F811
    vault = VaultHarness(openbao)
    fleet = Fleet(workspace, openbao)
    fleet.play(check=True, label='job-hooks-playbook-check')
    assert not os.path.exists(fleet.prefix) and not os.path.exists(os.path.join(fleet.runner_dirs['gh-1'], '.env'))

    # First run without credentials: the operator gets one policy per instance, each naming only its secret.
    fleet.play(label='job-hooks-playbook-policies')
    assert sorted(os.listdir(fleet.policy_dir)) == ['localhost-gh-1.hcl', 'localhost-gh-2.hcl', 'localhost-gl-3.hcl']
    secrets, tokens = {}, {}
    for name in ('gh-1', 'gh-2', 'gl-3'):
        config = fleet.config(name)
        secrets[name] = config['secret']
        assert config['secret'].endswith('/localhost/%s' % name), 'one secret per instance, named by the role'
        with open(os.path.join(fleet.policy_dir, 'localhost-%s.hcl' % name)) as handle:
            policy_text = handle.read()
        paths = re.findall(r'^path "([^"]+)"', policy_text, re.M)
        assert paths == ['secret/data/%s' % config['secret'], 'secret/metadata/%s' % config['secret']]
        policy = 'codexops-playbook-%s-%s' % (name, uuid.uuid4().hex[:6])
        vault.root.sys.create_or_update_policy(name=policy, policy=policy_text)
        tokens[name] = vault.root.auth.token.create(policies=[policy], ttl='30m')['auth']['client_token']
    assert len(set(secrets.values())) == 3
    SECRETS.extend(tokens.values())
    workspace.remember(list(tokens.values()))
    # gl-3's CODEX_HOME was ~USER/.codex: expanded from passwd for the command, which takes absolute paths only.
    assert fleet.config('gl-3')['codex_home'] == os.path.join(pwd.getpwnam(fleet.users['gl-3']).pw_dir, '.codex')
    assert os.path.exists(os.path.join(fleet.prefix, 'runners', 'gl-3', 'gitlab-runner.toml'))

    for name in ('gh-1', 'gh-2', 'gl-3'):
        fleet.host['codex_job_hooks_runners'][name]['store_credentials'] = {'token': tokens[name]}
    fleet.play(label='job-hooks-playbook')
    again = fleet.play(label='job-hooks-playbook-idempotence')
    assert re.search(r'localhost\s*:\s*ok=\d+\s+changed=0\s', again), again[-1500:]

    outputs = []
    for name in ('gh-1', 'gh-2'):
        config = fleet.config(name)
        assert config['vault']['token'] == tokens[name], 'each instance holds its own credential'
        info = os.stat(os.path.join(fleet.prefix, 'runners', name, 'job-credential.json'))
        assert info.st_uid == pwd.getpwnam(fleet.users[name]).pw_uid and info.st_mode & 0o777 == 0o600
        env_file = os.path.join(fleet.runner_dirs[name], '.env')
        assert os.stat(env_file).st_uid == pwd.getpwnam(fleet.users[name]).pw_uid, '.env edited as its own user'
        with open(env_file) as handle:
            hooks = dict(line.strip().split('=', 1) for line in handle if '=' in line)
        seed = auth_file(120)
        vault.seed(secrets[name], seed)
        restored = run_hook(fleet.users[name], hooks['ACTIONS_RUNNER_HOOK_JOB_STARTED'], fleet.homes[name], name)
        assert restored.returncode == 0 and restored.result['action'] == 'restored', restored.stdout
        with open(os.path.join(config['codex_home'], 'auth.json'), 'rb') as handle:
            assert handle.read() == seed
        refreshed = auth_file(1)
        entry = pwd.getpwnam(fleet.users[name])
        path = os.path.join(config['codex_home'], 'auth.json')
        with open(path + '.new', 'wb') as handle:
            handle.write(refreshed)
        os.chown(path + '.new', entry.pw_uid, entry.pw_gid)
        os.chmod(path + '.new', 0o600)
        os.rename(path + '.new', path)
        stored = run_hook(fleet.users[name], hooks['ACTIONS_RUNNER_HOOK_JOB_COMPLETED'], fleet.homes[name], name)
        assert stored.returncode == 0 and stored.result['action'] == 'stored', stored.stdout
        assert vault.raw(secrets[name])[0].encode('utf-8') == refreshed
        outputs.extend(item.decode() for item in (restored.stdout, restored.stderr, stored.stdout, stored.stderr))
    # Each instance's token reaches its own secret only.
    for name, other in (('gh-1', 'gh-2'), ('gh-2', 'gl-3'), ('gl-3', 'gh-1')):
        answer = openbao.client(tokens[name]).adapter.post(
            '/v1/sys/capabilities-self', json={'paths': ['secret/data/%s' % secrets[name], 'secret/data/%s' % secrets[other]]})
        answer = answer.json() if hasattr(answer, 'json') else answer
        assert answer['secret/data/%s' % secrets[name]] == ['read', 'update']
        assert answer['secret/data/%s' % secrets[other]] == ['deny']
    workspace.outputs.extend(outputs)


def test_the_playbook_refuses_what_would_share_a_secret_or_widen_a_policy(workspace, openbao):  # noqa: F811
    fleet = Fleet(workspace, openbao)
    shared = dict(fleet.host, codex_job_hooks_secret='codexops/runners/localhost/all')
    out = fleet.play(shared, check=True, expect_failure=True, label='job-hooks-playbook-shared')
    assert 'the host-wide codex_job_hooks_secret would be shared by all of' in out, out[-2000:]
    unknown = dict(fleet.host, codex_job_hooks_runners={'gh-9': {}})
    out = fleet.play(unknown, check=True, expect_failure=True, label='job-hooks-playbook-unknown')
    assert 'codex_job_hooks_runners must be a dict by those instance names' in out and 'gh-9' in out, out[-2000:]
    # One runner, no instances: a secret name that would be a wildcard in the rendered policy is refused.
    single = dict((key, value) for key, value in fleet.host.items()
                  if key not in ('codex_auth_runners', 'codex_job_hooks_runners'))
    single.update(codex_job_hooks_codex_home=os.path.join(fleet.homes['gh-1'], '.codex'), codex_job_hooks_ci='gitlab',
                  codex_job_hooks_secret='codexops/runners/+/gh-1')
    out = fleet.play(single, expect_failure=True, label='job-hooks-playbook-wildcard')
    assert 'policy must name exactly this one secret' in out, out[-2000:]
    assert not os.path.exists(fleet.prefix) and not os.path.exists(fleet.policy_dir)


def test_the_default_instance_gets_its_users_secret_and_token_instances_get_no_hooks(workspace, openbao):  # noqa: F811
    fleet = Fleet(workspace, openbao)
    user, other = fleet.users['gh-1'], fleet.users['gh-2']
    host = dict(fleet.host, codex_auth_runners=[
        {'name': 'default', 'codex_home': os.path.join(fleet.homes['gh-1'], '.codex')},
        {'name': 'at-2', 'user': other, 'method': 'access_token', 'access_token': 'at-fake-not-a-token',
         'codex_home': os.path.join(fleet.homes['gh-2'], '.codex')},
        {'name': 'ak-3', 'user': other, 'method': 'api_key', 'api_key': 'sk-fake-not-a-key',
         'codex_home': os.path.join(fleet.homes['gh-2'], '.codex-ak')}],
        codex_job_hooks_runners={'default': {'ci': 'gitlab'}})
    fleet.play(host, label='job-hooks-playbook-default')
    # The job hooks of `default` use the secret codex_auth seeds it from: its user's, not .../default.
    assert fleet.config('default')['secret'] == 'codexops/runners/localhost/%s' % user
    assert sorted(os.listdir(fleet.policy_dir)) == ['localhost-default.hcl']
    # access_token and api_key instances have no refresh token: no hooks (a restore would replace their auth.json).
    assert sorted(os.listdir(os.path.join(fleet.prefix, 'runners'))) == ['default']
    refused = dict(host, codex_job_hooks_runners={'at-2': {'ci': 'gitlab'}})
    out = fleet.play(refused, check=True, expect_failure=True, label='job-hooks-playbook-token-settings')
    assert 'codex_job_hooks_runners must be a dict by those instance names' in out and 'at-2' in out, out[-2000:]
