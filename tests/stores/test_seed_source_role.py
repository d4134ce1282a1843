# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restore at provision from a real secret store (issue 21): the codex_auth role, run by ansible-playbook -vvvv on
localhost hosts, reads each runner's seed from OpenBao or moto's Secrets Manager with the codexops.runner.codex_seed
lookup, the secrets named by the one rule (codexops/runners/<host>/<instance>), the store credential only in the
controller's environment (a Vault token whose only policy is read on codexops/runners/*; the moto admin's key).

Two tests, each sharing its playbook runs between its scenarios to stay fast:
- provisioning: a single runner and a host with two instances from OpenBao, a single runner from Secrets Manager;
  a second run changes nothing, and a runner whose auth.json was refreshed since keeps it (seed only when absent);
- refusals: a missing secret, a secret outside the token's policy, a store that is down, one refresh token in two
  instances' secrets or in two hosts' secrets, and (a run of its own) a wrong token - each host fails with its code and nothing is written
  on it.
The workspace fixture scans every output (-vvvv) and file for the secrets (tokens, keys, refresh tokens)."""

import json
import os
import pwd
import re
import sys
import uuid

from support import fake_credentials
from support.backend_fixture import backend  # noqa: F401 pylint: disable=unused-import
from support.home_dir import atomic_write
from support.private_files import write_private
from support.require import required
from support.runner_access import runner_owner
from support.store_servers import closed_port
from support.workspace_fixture import workspace  # noqa: F401 pylint: disable=unused-import

_needs_root = required(os.geteuid() == 0, 'seeds CODEX_HOMEs owned by another runner user: run as root (CI does)')

PLAY = '''
- hosts: codex_runners
  gather_facts: false
  roles:
    - role: codexops.runner.codex_auth
'''

# What a provisioning controller needs, and all it gets here: read on the runners' secrets and their metadata (a
# missing secret is told from a deleted version by its metadata), as the README's policy for the controller says.
READ_POLICY = '''
path "secret/data/codexops/runners/*" { capabilities = ["read"] }
path "secret/metadata/codexops/runners/*" { capabilities = ["read"] }
'''


class Fleet(object):
    """Hosts (all localhost), their CODEX_HOMEs and the secrets they read."""

    def __init__(self, space, openbao, moto=None):
        self.space = space
        self.openbao = openbao
        self.moto = moto
        self.user = pwd.getpwnam(runner_owner())
        self.tag = uuid.uuid4().hex[:6]
        self.hosts = {}
        self.runs = 0
        self.vault = openbao.client()
        space.remember([openbao.root_token])
        policy = 'codexops-provision-%s' % self.tag
        self.vault.sys.create_or_update_policy(name=policy, policy=READ_POLICY)
        self.token = self.vault.auth.token.create(policies=[policy], ttl='30m')['auth']['client_token']
        space.remember([self.token])
        if moto is not None:
            space.remember([moto.admin_key['SecretAccessKey']])
        (space.root / 'runners').mkdir()

    def host(self, kind, **variables):
        name = '%s-%s' % (kind, self.tag)
        (self.space.root / 'runners' / name).mkdir()
        self.hosts[name] = dict(variables)
        return name

    def home(self, host, instance=None):
        return self.space.root / 'runners' / host / (instance or 'default') / '.codex'

    def new_doc(self, tag, **kwargs):
        doc, secrets = fake_credentials.chatgpt_seed('%s-%s' % (tag, self.tag), **kwargs)
        self.space.remember(secrets)
        return doc

    def store_in_vault(self, secret, doc):
        self.vault.secrets.kv.v2.create_or_update_secret(path=secret, secret={'auth_json': fake_credentials.dumps(doc)},
                                                         mount_point='secret')
        return fake_credentials.dumps(doc).encode('utf-8')

    def store_in_aws(self, secret, doc):
        self.moto.client('secretsmanager').create_secret(Name=secret, SecretString=fake_credentials.dumps(doc))
        return fake_credentials.dumps(doc).encode('utf-8')

    def single(self, kind, source):
        """A single runner host reading `source`; its CODEX_HOME's parent made, root's (the module hands over)."""
        host = self.host(kind)
        self.home(host).parent.mkdir()
        self.hosts[host].update(codex_auth_home=str(self.home(host)), codex_auth_seed_source=source)
        return host

    def with_instances(self, kind, source, names):
        host = self.host(kind)
        runners = []
        for name in names:
            self.home(host, name).parent.mkdir()
            runners.append({'name': name, 'codex_home': str(self.home(host, name))})
        self.hosts[host].update(codex_auth_runners=runners, codex_auth_seed_source=source)
        return host

    def vault_source(self, **extra):
        return dict({'store': 'vault', 'url': self.openbao.url}, **extra)

    def run(self, limit=None, expect_failure=False, token=None):
        inventory = {'codex_runners': {
            'hosts': self.hosts,
            'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                     'codex_auth_user': runner_owner()}}}
        self.runs += 1
        path = write_private(self.space.root / ('inventory-%d.json' % self.runs), json.dumps(inventory))
        playbook = self.space.root / 'provision.yml'
        playbook.write_text(PLAY)
        env = {'VAULT_TOKEN': token or self.token, 'VAULT_ADDR': 'http://127.0.0.1:%d' % closed_port(),
               'AWS_EC2_METADATA_DISABLED': 'true', 'AWS_CONFIG_FILE': os.devnull,
               'AWS_SHARED_CREDENTIALS_FILE': os.devnull}
        if self.moto is not None:
            env.update(AWS_ACCESS_KEY_ID=self.moto.admin_key['AccessKeyId'],
                       AWS_SECRET_ACCESS_KEY=self.moto.admin_key['SecretAccessKey'])
        extra = ('--limit', limit) if limit else ()
        return self.space.playbook(str(playbook), str(path), {}, expect_failure=expect_failure, env=env,
                                   extra_args=extra, label='seed-source')

    def read(self, host, instance=None):
        with open(str(self.home(host, instance) / 'auth.json'), 'rb') as handle:
            return handle.read()


def recap(output, host):
    found = re.search(r'^%s\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)' % re.escape(host),
                      output, re.M)
    assert found, 'no recap line for %s:\n%s' % (host, output[-2000:])
    return {'ok': int(found.group(1)), 'changed': int(found.group(2)), 'failed': int(found.group(3))}


def fatal(output, host):
    """The failure of `host`'s failed task: Ansible's `fatal: [host]: FAILED! => {...}` block (-vvvv: indented JSON)."""
    lines = output.splitlines()
    starts = [index for index, line in enumerate(lines) if line.startswith('fatal: [%s]' % host)]
    assert len(starts) == 1, 'not one failure for %s:\n%s' % (host, output[-3000:])
    block = [lines[starts[0]]]
    for line in lines[starts[0] + 1:]:
        block.append(line)
        if line == '}':
            break
    return '\n'.join(block)


def test_provision_from_openbao_and_secrets_manager_idempotent_and_never_over_a_refreshed_file(
        workspace, openbao, moto):  # noqa: F811
    fleet = Fleet(workspace, openbao, moto)
    # (a) one runner from OpenBao, its secret by the rule: codexops/runners/<host>/<codex_auth_user>.
    single = fleet.single('bao-single', fleet.vault_source())
    stored = {(single, None): fleet.store_in_vault('codexops/runners/%s/%s' % (single, runner_owner()),
                                                   fleet.new_doc('single', last_refresh=fake_credentials.now()))}
    # (b) two instances on one host, from the host's source: codexops/runners/<host>/<instance> each.
    multi = fleet.with_instances('bao-multi', fleet.vault_source(mount_point='secret'), ['gh-1', 'gh-2'])
    for name in ('gh-1', 'gh-2'):
        stored[(multi, name)] = fleet.store_in_vault('codexops/runners/%s/%s' % (multi, name), fleet.new_doc(name))
    # (c) one runner from Secrets Manager.
    aws = fleet.single('aws-single', {'store': 'aws_secretsmanager', 'region': moto.region, 'endpoint_url': moto.url,
                                      'max_attempts': 1})
    stored[(aws, None)] = fleet.store_in_aws('codexops/runners/%s/%s' % (aws, runner_owner()), fleet.new_doc('aws'))

    first = fleet.run()
    for (host, instance), data in stored.items():
        assert fleet.read(host, instance) == data, (host, instance)
        info = os.stat(str(fleet.home(host, instance) / 'auth.json'))
        assert (info.st_uid, info.st_mode & 0o777) == (fleet.user.pw_uid, 0o600)
    for host in (single, multi, aws):
        assert recap(first, host)['changed'] > 0 and recap(first, host)['failed'] == 0

    # The runner refreshed since (Codex rotated its tokens): the store's copy is older now, and the next run,
    # with the default replace policy (never), leaves the runner's file alone - and changes nothing anywhere.
    refreshed = fake_credentials.dumps(fleet.new_doc('single-refreshed')).encode('utf-8')
    atomic_write(str(fleet.home(single) / 'auth.json'), refreshed, fleet.user.pw_uid, fleet.user.pw_gid)
    again = fleet.run()
    for host in (single, multi, aws):
        assert recap(again, host) == dict(recap(again, host), changed=0, failed=0), again[-3000:]
    assert fleet.read(single) == refreshed
    for key in ((multi, 'gh-1'), (multi, 'gh-2'), (aws, None)):
        assert fleet.read(*key) == stored[key]
    # The texts went to the runner only in the module's no_log content.
    for output in (first, again):
        assert 'rt-FAKE-' not in output and fleet.token not in output


def test_a_store_that_cannot_give_a_seed_fails_the_host_with_its_code_and_writes_nothing(
        workspace, openbao):  # noqa: F811
    fleet = Fleet(workspace, openbao)
    missing = fleet.single('missing', fleet.vault_source())
    outside = fleet.single('outside', fleet.vault_source(secret='codexops-test/outside-%s/auth' % fleet.tag))
    fleet.store_in_vault('codexops-test/outside-%s/auth' % fleet.tag, fleet.new_doc('outside'))
    down = fleet.single('down', {'store': 'vault', 'url': 'http://127.0.0.1:%d' % closed_port(), 'timeout': 2})
    fleet.store_in_vault('codexops/runners/%s/%s' % (down, runner_owner()), fleet.new_doc('down'))
    shared = fleet.with_instances('shared', fleet.vault_source(), ['a', 'b'])
    one = fleet.new_doc('shared', last_refresh=fake_credentials.now())
    fleet.store_in_vault('codexops/runners/%s/a' % shared, one)
    fleet.store_in_vault('codexops/runners/%s/b' % shared, dict(one, last_refresh='2026-01-01T00:00:00Z'))
    # The same refresh token in two hosts' secrets: both plans pass, the play's conflict check refuses them.
    twins = [fleet.single('twin%d' % number, fleet.vault_source()) for number in (1, 2)]
    twin = fleet.new_doc('twin', last_refresh=fake_credentials.now())
    fleet.store_in_vault('codexops/runners/%s/%s' % (twins[0], runner_owner()), twin)
    fleet.store_in_vault('codexops/runners/%s/%s' % (twins[1], runner_owner()), dict(twin, last_refresh='2026-01-01T00:00:00Z'))
    denied = fleet.single('denied', fleet.vault_source())
    fleet.store_in_vault('codexops/runners/%s/%s' % (denied, runner_owner()), fleet.new_doc('denied'))

    output = fleet.run(limit='!%s' % denied, expect_failure=True)
    assert 'codex_seed refused (store_secret_missing)' in fatal(output, missing)
    assert 'codex_seed refused (store_permission_denied)' in fatal(output, outside)
    assert 'codex_seed refused (store_unreachable)' in fatal(output, down)
    assert 'instances a and b have seeds with the same refresh token' in fatal(output, shared)
    assert re.search(r'these runners would share one refresh token.*%s and %s' % (twins[0], twins[1]),
                     fatal(output, twins[0]), re.S)
    wrong = 'fake-wrong-token-%s' % uuid.uuid4().hex
    workspace.remember([wrong])
    refused = fleet.run(limit=denied, expect_failure=True, token=wrong)
    assert 'codex_seed refused (store_permission_denied)' in fatal(refused, denied)

    for host, instances in ((missing, [None]), (outside, [None]), (down, [None]), (shared, ['a', 'b']),
                            (denied, [None]), (twins[0], [None]), (twins[1], [None])):
        for instance in instances:
            home = fleet.home(host, instance)
            assert not home.exists(), '%s was written on a refused run' % home
            assert os.listdir(str(home.parent)) == []
    for text in (output, refused):
        assert 'rt-FAKE-' not in text and fleet.token not in text and wrong not in text
