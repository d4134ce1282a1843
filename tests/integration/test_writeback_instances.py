"""Write-back per runner instance (codex_auth_runners), through the real playbooks, as the README runs them.

One inventory host (the local one) carries three instances under two users, provisioned by
`codexops.runner.provision` from vault-encrypted seed files in codex_seeds/<host>/<instance>.json: gh-1 and gh-2
run as the tests' runner user, gl-1 as a second, existing system account (support.runner_access
.second_runner_account: nothing is created on the machine). Then, as the instances' CI jobs would leave them,
gh-1's auth.json is refreshed (a newer last_refresh, a rotated refresh token), gh-2's is an older login (a runner
restored from an old image) and gl-1's is what was seeded. `codexops.runner.writeback` reads all three in one
codex_auth_export run and stores gh-1's into gh-1's own seed file only, refuses gh-2's (runner_older) and leaves
gl-1's alone. The runners' files are written in place here (owner and mode kept): the refresh itself is Codex's
and is proven with the real CLI by test_lifecycle; what is proven here is where each instance's file goes.
"""

import datetime
import json
import os
import re
import secrets
import subprocess
import sys

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret

from support import fake_credentials
from support.local_fleet import changed_by_host, file_identity
from support.private_files import write_private
from support.require import required
from support.runner_access import runner_owner, second_runner_account

_needs_root = required(os.geteuid() == 0, 'runner instances under two users need root (to own their CODEX_HOMEs)')

HOST = 'runner-1'
INSTANCES = ('gh-1', 'gh-2', 'gl-1')
SEEDED = fake_credentials.now() - datetime.timedelta(days=2)


def export_runs(output):
    """How many times ansible-playbook -vvvv ran codex_auth_export (it logs the module file at each use)."""
    return len(re.findall(r'^Using module file \S+/codex_auth_export\.py$', output, re.M))


class Instances(object):
    """The inventory, vault-encrypted seeds and runner homes of one host with three instances."""

    def __init__(self, space):
        self.space = space
        other = second_runner_account()
        if other is None:
            pytest.fail('no second non-root user on this machine to run a runner instance as')
        self.users = {'gh-1': runner_owner(), 'gh-2': runner_owner(), 'gl-1': other.pw_name}
        self.seed_dir = space.root / 'codex_seeds'
        (self.seed_dir / HOST).mkdir(mode=0o700, parents=True)
        self.password = 'vault-' + secrets.token_hex(12)
        space.remember([self.password])
        self.password_file = write_private(space.root / 'vault-password', self.password)
        self.docs = {}
        for name in INSTANCES:
            self.docs[name] = self.login(name, SEEDED)
            write_private(self.seed(name), self.encrypt(fake_credentials.dumps(self.docs[name])))
        self.runners = [{'name': 'gh-1', 'codex_home': str(self.home('gh-1'))},
                        {'name': 'gh-2', 'home': str(self.home('gh-2'))},
                        {'name': 'gl-1', 'user': self.users['gl-1'], 'codex_home': str(self.home('gl-1'))}]
        for name in INSTANCES:
            self.home(name).parent.mkdir(parents=True)
        self.write_inventory()

    def write_inventory(self):
        common = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                  'codex_auth_user': runner_owner(), 'codex_auth_report_dir': str(self.space.root / 'report'),
                  'codex_auth_codex_environment': {'CODEX_AUTHAPI_BASE_URL': self.space.backend.base_url}}
        inventory = {'codex_runners': {'hosts': {HOST: {'codex_auth_runners': self.runners}}, 'vars': common}}
        path = self.space.root / 'inventory.json'
        if path.exists():
            path.unlink()
        # codex_auth_seed_dir is left to its default, <inventory_dir>/codex_seeds, for both roles.
        self.inventory = write_private(path, json.dumps(inventory))

    def login(self, name, last_refresh):
        doc, tokens = fake_credentials.chatgpt_seed(account_id='acct-%s' % name, user_id='user-%s' % name,
                                                    last_refresh=last_refresh)
        self.space.remember(tokens)
        return doc

    def encrypt(self, text):
        return VaultLib().encrypt(text.encode(), VaultSecret(self.password.encode())).decode() + '\n'

    def decrypt(self, path):
        return VaultLib([('default', VaultSecret(self.password.encode()))]).decrypt(path.read_bytes()).decode()

    def seed(self, name):
        return self.seed_dir / HOST / ('%s.json' % name)

    def home(self, name):
        return self.space.root / 'runners' / HOST / name / '.codex'

    def auth(self, name):
        return self.home(name) / 'auth.json'

    def put(self, name, doc):
        """The instance's auth.json as its CI job left it (in place: owner and mode kept)."""
        with open(str(self.auth(name)), 'w') as handle:
            handle.write(json.dumps(doc))

    def stores(self):
        """Each seed file's bytes, inode and mtime."""
        return dict((name, (self.seed(name).read_bytes(),) + file_identity(self.seed(name))) for name in INSTANCES)

    def run(self, playbook, expect_failure=False, check=False, **variables):
        return self.space.playbook('codexops.runner.%s' % playbook, self.inventory, variables,
                                   expect_failure=expect_failure, check=check, label=playbook,
                                   extra_args=('--vault-password-file', self.password_file))


@pytest.fixture
def instances(workspace):
    space = Instances(workspace)
    space.run('provision')
    for name in INSTANCES:
        stored = json.loads(space.auth(name).read_text())
        assert stored['tokens']['refresh_token'] == space.docs[name]['tokens']['refresh_token'], name
    return space


def test_each_instance_is_written_back_into_its_own_seed_file(instances):
    # gh-1's CI job refreshed (Codex rotates the refresh token and stamps last_refresh); gh-2 runs an older login
    # of its account; gl-1 is as seeded.
    refreshed = json.loads(json.dumps(instances.docs['gh-1']))
    refreshed['tokens']['refresh_token'] = 'rt-FAKE-refreshed-%s' % secrets.token_hex(16)
    refreshed['last_refresh'] = fake_credentials.rfc3339(fake_credentials.now())
    instances.space.remember([refreshed['tokens']['refresh_token']])
    instances.put('gh-1', refreshed)
    older = instances.login('gh-2', SEEDED - datetime.timedelta(days=5))
    instances.put('gh-2', older)
    before = instances.stores()

    # Check mode predicts the store of gh-1 and the refusal of gh-2, and writes nothing.
    predicted = instances.run('writeback', check=True, expect_failure=True)
    assert "%s/gh-1: store: the runner's file is newer" % HOST in predicted
    assert 'Write-back refused for %s/gh-2 (runner_older)' % HOST in predicted
    assert instances.stores() == before, 'check mode wrote a store file'
    assert not [path.name for path in (instances.seed_dir / HOST).iterdir() if path.name.endswith('.tmp')]

    # The real run: one read of the host for the three instances, gh-1's own seed file only is written.
    output = instances.run('writeback', expect_failure=True)
    assert export_runs(output) == 1
    assert output.count('TASK [codexops.runner.codex_writeback : Write each runner instance') == 1
    assert "%s/gh-1: store: the runner's file is newer" % HOST in output
    assert '%s/gl-1: unchanged: ' % HOST in output
    assert ("Write-back refused for %s/gh-2 (runner_older): the runner's file is older than the store's" % HOST
            in output)
    assert changed_by_host(output) == {HOST: 1}
    after = instances.stores()
    assert after['gh-2'] == before['gh-2'] and after['gl-1'] == before['gl-1']
    assert after['gh-1'][1:] != before['gh-1'][1:]
    assert instances.seed('gh-1').read_text().startswith('$ANSIBLE_VAULT;1.1;AES256\n')
    assert oct(os.stat(str(instances.seed('gh-1'))).st_mode & 0o777) == '0o600'
    assert json.loads(instances.decrypt(instances.seed('gh-1'))) == refreshed
    assert sorted(path.name for path in (instances.seed_dir / HOST).iterdir()) == [
        'gh-1.json', 'gh-2.json', 'gl-1.json']
    # ansible-vault itself reads the stored file.
    ansible_vault = os.path.join(os.path.dirname(sys.executable), 'ansible-vault')
    view = subprocess.run([ansible_vault, 'view', '--vault-password-file', instances.password_file,
                           str(instances.seed('gh-1'))], stdout=subprocess.PIPE, check=True).stdout.decode()
    assert json.loads(view) == refreshed

    # Again: nothing to store; gh-2 is still refused (not failing the host when told), and nothing changes.
    stored = instances.stores()
    again = instances.run('writeback', codex_writeback_fail_on_refusal=False)
    assert changed_by_host(again) == {HOST: 0} and instances.stores() == stored
    assert "%s/gh-1: unchanged: " % HOST in again and "%s/gh-2: refuse: " % HOST in again
    # gh-2's runner restored from its seed: every instance unchanged, the play passes with the defaults.
    instances.put('gh-2', instances.docs['gh-2'])
    clean = instances.run('writeback')
    assert changed_by_host(clean) == {HOST: 0} and instances.stores() == stored
    assert all('%s/%s: unchanged: ' % (HOST, name) in clean for name in INSTANCES)

    # The next provision seeds gh-1 from its written-back file: its refreshed login, not the original seed.
    instances.put('gh-1', instances.docs['gh-1'])
    instances.run('provision', codex_auth_replace='different')
    assert json.loads(instances.auth('gh-1').read_text()) == refreshed

    # No token of any instance in any output, at -vvvv (the workspace's leak scan checks every secret too).
    for text in instances.space.outputs:
        assert refreshed['tokens']['refresh_token'] not in text
        assert all(instances.docs[name]['tokens']['refresh_token'] not in text for name in INSTANCES)
        assert older['tokens']['refresh_token'] not in text


def test_two_instances_with_one_seed_file_are_refused_before_anything_is_read_or_written(instances):
    # gl-1 is told to write back into gh-1's seed file (as a copy-pasted seed_file would): refused, naming both.
    for name in INSTANCES:
        instances.put(name, instances.login(name, fake_credentials.now()))
    instances.runners[2]['seed_file'] = str(instances.seed('gh-1'))
    instances.write_inventory()
    before = instances.stores()
    output = instances.run('writeback', expect_failure=True)
    assert ('%s/gh-1 and %s/gl-1 have the same dest %s' % (HOST, HOST, instances.seed('gh-1'))) in output
    assert '(runner_instance_dest_duplicate)' in output and 'before anything was read or written' in output
    # Nothing ran on the host: no codex_auth_export, no command.
    assert export_runs(output) == 0 and '<%s> EXEC ' % HOST not in output
    assert instances.stores() == before
