# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The codex_job_hooks role, run for real (ansible-playbook on localhost, as root): it installs the
command, the runner instance's config and hooks, wires the GitHub runner's .env, renders the policy;
then the hook named in .env is run as the GitHub runner runs it (`bash -e`, the runner user, GITHUB_*)
against the real OpenBao server with a token whose only policy is the one the role rendered."""

import json
import os
import pwd
import re
import stat
import subprocess
import uuid

from job_hooks_support import role_vars
from store_harness import SECRETS, VaultHarness, auth_file, new_name
from support.backend_fixture import backend  # noqa: F401 pylint: disable=unused-import
from support.home_dir import atomic_write
from support.require import required
from support.runner_access import runner_owner
from support.workspace_fixture import workspace  # noqa: F401 pylint: disable=unused-import

_needs_root = required(os.geteuid() == 0, 'installs root-owned files for another runner user: run as root (CI does)')

PLAY = '''
- hosts: localhost
  gather_facts: false
  roles:
    - role: codexops.runner.codex_job_hooks
'''


def hook_env(home, instance):
    return {'PATH': '/usr/local/bin:/usr/bin:/bin', 'HOME': home, 'USER': runner_owner(), 'CI': 'true',
            'GITHUB_ACTIONS': 'true', 'GITHUB_JOB': 'build', 'GITHUB_RUN_ID': '99', 'RUNNER_NAME': instance,
            'GITHUB_REPOSITORY': 'example/codexops-test'}


def run_as_runner(argv, env):
    entry = pwd.getpwnam(runner_owner())
    completed = subprocess.run(argv, env=env, cwd='/', stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, check=False, timeout=120, user=entry.pw_uid,
                               group=entry.pw_gid, extra_groups=[])
    completed.result = json.loads(completed.stdout.decode().splitlines()[-1])
    return completed


def test_the_role_installs_wires_and_the_github_hooks_round_trip(workspace, openbao):  # noqa: F811
    vault = VaultHarness(openbao)
    user = pwd.getpwnam(runner_owner())
    root = str(workspace.root)
    name, instance = new_name('role'), 'gh-%s' % uuid.uuid4().hex[:6]
    seed = auth_file(90)
    vault.seed(name, seed)
    runner_home = os.path.join(root, 'home')
    runner_dir = os.path.join(runner_home, 'actions-runner')
    os.makedirs(runner_dir)
    for path in (runner_home, runner_dir):
        os.chown(path, user.pw_uid, user.pw_gid)
    policy_dir = os.path.join(root, 'policies')
    codex_home = os.path.join(runner_home, '.codex')
    variables = {
        'codex_job_hooks_user': runner_owner(), 'codex_job_hooks_codex_home': codex_home,
        'codex_job_hooks_instance': instance, 'codex_job_hooks_ci': 'github',
        'codex_job_hooks_github_runner_dir': runner_dir, 'codex_job_hooks_store': 'vault',
        'codex_job_hooks_secret': name, 'codex_job_hooks_store_options': {'url': openbao.url},
        'codex_job_hooks_store_credentials': {}, 'codex_job_hooks_prefix': os.path.join(root, 'prefix'),
        'codex_job_hooks_policy_dir': policy_dir, 'codex_job_hooks_python': '/usr/bin/python3'}
    # The .env task runs as the runner user (become_user), whose module temp dir must be its to create.
    shared_tmp = os.path.join(root, 'remote-tmp')
    os.mkdir(shared_tmp)
    os.chmod(shared_tmp, 0o1777)
    playbook = os.path.join(root, 'play.yml')
    with open(playbook, 'w') as handle:
        handle.write(PLAY)
    inventory = os.path.join(root, 'inventory.ini')
    with open(inventory, 'w') as handle:
        handle.write('localhost ansible_connection=local\n')
    # Check mode first: nothing is installed, nothing is wired.
    workspace.playbook(playbook, inventory, variables, label='job-hooks-check', check=True,
                       env={'ANSIBLE_REMOTE_TEMP': shared_tmp})
    assert not os.path.exists(variables['codex_job_hooks_prefix']) and not os.path.exists(os.path.join(runner_dir, '.env'))
    # First run without a credential: the operator applies the rendered policy, then gives the token.
    workspace.playbook(playbook, inventory, variables, label='job-hooks-policy',
                       env={'ANSIBLE_REMOTE_TEMP': shared_tmp})
    policy_file = os.path.join(policy_dir, 'localhost-%s.hcl' % instance)
    with open(policy_file) as handle:
        policy_text = handle.read()
    assert 'secret/data/%s' % name in policy_text and 'secret/metadata/%s' % name in policy_text
    vault.root.sys.create_or_update_policy(name='codexops-%s' % instance, policy=policy_text)
    token = vault.root.auth.token.create(policies=['codexops-%s' % instance], ttl='30m')['auth']['client_token']
    SECRETS.append(token)
    workspace.remember([token])
    variables['codex_job_hooks_store_credentials'] = {'token': token}
    workspace.playbook(playbook, inventory, variables, label='job-hooks',
                       env={'ANSIBLE_REMOTE_TEMP': shared_tmp})
    again = workspace.playbook(playbook, inventory, variables, label='job-hooks-idempotence',
                               env={'ANSIBLE_REMOTE_TEMP': shared_tmp})
    assert re.search(r'localhost\s*:\s*ok=\d+\s+changed=0\s', again), again[-1500:]

    prefix = variables['codex_job_hooks_prefix']
    config = os.path.join(prefix, 'runners', instance, 'job-credential.json')
    info = os.stat(config)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (user.pw_uid, 0o600)
    assert stat.S_IMODE(os.stat(os.path.dirname(config)).st_mode) == 0o755 and os.stat(os.path.dirname(config)).st_uid == 0
    lib = os.path.join(prefix, 'lib', 'ansible_collections', 'codexops', 'runner', 'plugins', 'module_utils')
    assert sorted(name for name in os.listdir(lib) if name.endswith('.py') and name != '__init__.py') == \
        sorted(role_vars()['__codex_job_hooks_module_utils'])
    with open(os.path.join(runner_dir, '.env')) as handle:
        env_lines = dict(line.strip().split('=', 1) for line in handle if '=' in line)
    assert os.stat(os.path.join(runner_dir, '.env')).st_uid == user.pw_uid, '.env was edited as the runner user'
    started, completed = env_lines['ACTIONS_RUNNER_HOOK_JOB_STARTED'], env_lines['ACTIONS_RUNNER_HOOK_JOB_COMPLETED']

    restored = run_as_runner(['/bin/bash', '-e', started], hook_env(runner_home, instance))
    assert restored.returncode == 0 and restored.result['action'] == 'restored', restored.stdout
    with open(os.path.join(codex_home, 'auth.json'), 'rb') as handle:
        assert handle.read() == seed
    refreshed = auth_file(1)
    atomic_write(os.path.join(codex_home, 'auth.json'), refreshed, user.pw_uid, user.pw_gid)
    stored = run_as_runner(['/bin/bash', '-e', completed], hook_env(runner_home, instance))
    assert stored.returncode == 0 and stored.result['action'] == 'stored', stored.stdout
    assert vault.raw(name)[0].encode('utf-8') == refreshed
    workspace.outputs.extend([restored.stdout.decode(), stored.stdout.decode(), restored.stderr.decode(),
                              stored.stderr.decode()])
