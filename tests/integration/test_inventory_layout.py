"""Seeds where Ansible users keep per-host secrets: vault-encrypted host_vars, so `-i inventory/` works.

The layout the README recommends, built as a user builds it (ansible-vault encrypt_string for the single
runner's seed, ansible-vault encrypt for a file of instance seeds), then the provision playbook run with
`-i` pointed at the inventory DIRECTORY, the common habit: no seed is ever parsed as an inventory source
(no warning, no junk group), every runner gets its own seed, a second run changes nothing, and no secret is
printed. The layout with seed files beside the inventory (codex_seeds/) keeps working; that is what the
other playbook tests use.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support import fake_credentials
from support.local_fleet import changed_by_host
from support.private_files import write_private
from support.runner_access import runner_owner

SINGLE = 'runner-0'
HOST = 'runner-1'
INSTANCES = ('gh-1', 'gh-2')
VAULT_PASSWORD = 'inventory-layout-test-password'


def private(path, data):
    """A file of the inventory (which holds secrets): 0600 in 0700 directories."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return write_private(path, data)


def ansible_tool(name):
    return str(Path(sys.executable).parent / name)


class VaultInventory(object):
    """inventory/hosts.yml, group_vars/codex_runners/vars.yml and one vault-encrypted file of seeds per host
    under host_vars/<host>/, as the README's layout has it."""

    def __init__(self, space):
        self.space = space
        self.dir = space.root / 'inventory'
        self.password_file = private(space.root / 'vault-pass', VAULT_PASSWORD + '\n')
        self.report_dir = space.root / 'report'
        self.docs = {}
        private(self.dir / 'hosts.yml', yaml.safe_dump({'codex_runners': {'hosts': {SINGLE: None, HOST: None}}}))
        group_vars = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                      'codex_auth_user': runner_owner(), 'codex_auth_report_dir': str(self.report_dir),
                      'codex_auth_codex_environment': {'CODEX_AUTHAPI_BASE_URL': space.backend.base_url}}
        private(self.dir / 'group_vars' / 'codex_runners' / 'vars.yml', yaml.safe_dump(group_vars))

        # The single runner: `ansible-vault encrypt_string --stdin-name codex_auth_seed_content < auth.json`.
        self.docs[SINGLE] = self.new_doc(SINGLE)
        single_dir = self.dir / 'host_vars' / SINGLE
        private(single_dir / 'vars.yml', yaml.safe_dump({'codex_auth_home': str(self.home(SINGLE))}))
        encrypted = self.vault(['encrypt_string', '--stdin-name', 'codex_auth_seed_content'],
                               fake_credentials.dumps(self.docs[SINGLE]))
        private(single_dir / 'vault.yml', encrypted)

        # Runner instances: their seeds in one vault-encrypted vars file (`ansible-vault encrypt vault.yml`).
        host_dir = self.dir / 'host_vars' / HOST
        runners = []
        seeds = {}
        for name in INSTANCES:
            self.docs[name] = self.new_doc(name)
            variable = 'vault_codex_seed_%s' % name.replace('-', '_')
            seeds[variable] = fake_credentials.dumps(self.docs[name])
            runners.append({'name': name, 'codex_home': str(self.home(name)), 'seed_content': '{{ %s }}' % variable})
        private(host_dir / 'vars.yml', yaml.safe_dump({'codex_auth_runners': runners}))
        private(host_dir / 'vault.yml', yaml.safe_dump(seeds))
        self.vault(['encrypt', str(host_dir / 'vault.yml')])
        for name in (SINGLE,) + INSTANCES:
            self.home(name).parent.mkdir(parents=True)

    def new_doc(self, tag):
        doc, secrets = fake_credentials.chatgpt_seed(account_id='acct-%s' % tag)
        self.space.remember(secrets)
        return doc

    def home(self, name):
        return self.space.root / 'runners' / name / '.codex'

    def vault(self, args, stdin=None):
        argv = [ansible_tool('ansible-vault')] + args + ['--vault-password-file', str(self.password_file)]
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=self.space.env(), check=False,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def provision(self, check=False):
        return self.space.playbook('codexops.runner.provision', str(self.dir) + os.sep, {}, check=check,
                                   label='provision', extra_args=('--vault-password-file', str(self.password_file)))

    def groups(self):
        """The inventory's groups as `ansible-inventory --graph` sees them (never --list: it prints the
        decrypted host variables), and what it warned."""
        proc = subprocess.run([ansible_tool('ansible-inventory'), '-i', str(self.dir) + os.sep, '--graph',
                               '--vault-password-file', str(self.password_file)],
                              capture_output=True, text=True, env=self.space.env(), check=False, timeout=120)
        assert proc.returncode == 0, proc.stderr
        self.space.outputs.extend([proc.stdout, proc.stderr])
        return sorted(set(re.findall(r'@([^:]+):', proc.stdout)) - {'ungrouped'}), proc.stderr


@pytest.fixture
def inventory(workspace):
    return VaultInventory(workspace)


def test_vault_encrypted_host_vars_work_with_the_inventory_directory(inventory, workspace):
    groups, warnings = inventory.groups()
    # Only the groups hosts.yml makes: no seed was read as an inventory source.
    assert groups == ['all', 'codex_runners'], groups
    assert 'inventory source' not in warnings, warnings

    predicted = inventory.provision(check=True)
    assert changed_by_host(predicted) == {SINGLE: 1, HOST: 1}
    assert not any(inventory.home(name).exists() for name in (SINGLE,) + INSTANCES), 'check mode wrote something'

    first = inventory.provision()
    assert not re.search(r'as an inventory source|Unable to parse', first), 'a file was parsed as inventory'
    assert changed_by_host(first) == {SINGLE: 1, HOST: 1}
    for name in (SINGLE,) + INSTANCES:
        stored = json.loads((inventory.home(name) / 'auth.json').read_text())
        assert stored['tokens']['refresh_token'] == inventory.docs[name]['tokens']['refresh_token'], name
    report = json.loads((inventory.report_dir / 'fleet-report.json').read_text())
    assert report['totals']['runners'] == 3 and report['ok'], report['totals']

    assert changed_by_host(inventory.provision()) == {SINGLE: 0, HOST: 0}
    assert workspace.leaks() == []
