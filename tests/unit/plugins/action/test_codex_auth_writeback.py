# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""codex_auth_writeback (action plugin): which vault secret, in what order, and what is written.

The plugin runs in-process with a DataLoader holding the vault secrets a play would have and a stand-in
for the codex_auth_export round trip; the integration tests run it through ansible-playbook."""

import base64
import datetime
import json
import os
import stat
from unittest import mock

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret

from ansible_collections.codexops.runner.plugins.action import codex_auth_writeback as plugin
from support import fake_credentials

NOW = fake_credentials.now()


def login(days_ago, tag):
    doc, secrets = fake_credentials.chatgpt_seed(tag=tag, last_refresh=NOW - datetime.timedelta(days=days_ago))
    return json.dumps(doc), secrets


def secret(password):
    return VaultSecret(password.encode())


class Harness:
    """One ActionModule per run, its loader holding `secrets` ([(label, password)])."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.store_dir = tmp_path / 'codex_seeds'
        self.store_dir.mkdir(mode=0o700)
        self.dest = self.store_dir / 'runner-1.json'
        self.exports = []

    def run(self, runner_text, secrets=(), check_mode=False, export_result=None, **args):
        loader = DataLoader()
        loader.set_vault_secrets([(label, secret(password)) for label, password in secrets] or None)
        task = mock.MagicMock()
        task.args = dict({'codex_home': '/home/ci/.codex', 'dest': str(self.dest)}, **args)
        task.async_val = 0
        task.check_mode = check_mode
        task.diff = False
        connection = mock.MagicMock()
        connection._shell.tmpdir = None
        action = plugin.ActionModule(task, connection, mock.MagicMock(), loader, mock.MagicMock(), mock.MagicMock())

        def export(module_name, module_args, task_vars):
            self.exports.append((module_name, module_args))
            if export_result is not None:
                return dict(export_result)
            return {'changed': False, 'exists': True, 'auth': {},
                    'content': base64.b64encode(runner_text.encode()).decode()}

        action._execute_module = export
        action._remove_tmp_path = lambda path: None
        return action.run(task_vars={})

    def store_bytes(self):
        return self.dest.read_bytes()


@pytest.fixture
def harness(tmp_path):
    return Harness(tmp_path)


def decrypt(data, password):
    return VaultLib([('any', secret(password))]).decrypt(data).decode()


def test_the_plays_only_secret_encrypts_the_store_file_0600_and_nothing_is_returned(harness):
    runner, secrets = login(0, 'new')
    result = harness.run(runner, secrets=[('default', 'pw-FAKE-1')])
    assert result['action'] == 'store' and result['changed'] and result['vault_id'] == 'default'
    data = harness.store_bytes()
    assert data.startswith(b'$ANSIBLE_VAULT;1.1;AES256\n')
    assert decrypt(data, 'pw-FAKE-1') == runner
    assert stat.S_IMODE(os.stat(str(harness.dest)).st_mode) == 0o600
    assert os.listdir(str(harness.store_dir)) == ['runner-1.json']  # no temp file left
    text = json.dumps(result)
    assert 'content' not in result and not any(part in text for part in secrets + ['pw-FAKE-1'])
    assert harness.exports == [('codexops.runner.codex_auth_export',
                                {'codex_home': '/home/ci/.codex', 'return_content': True})]


def test_a_label_names_the_secret_and_goes_into_the_header(harness):
    runner, _secrets = login(0, 'new')
    result = harness.run(runner, secrets=[('other', 'pw-FAKE-other'), ('ci', 'pw-FAKE-ci')], vault_id='ci')
    assert result['vault_id'] == 'ci'
    data = harness.store_bytes()
    assert data.startswith(b'$ANSIBLE_VAULT;1.2;AES256;ci\n') and decrypt(data, 'pw-FAKE-ci') == runner


def test_without_a_label_the_first_secret_is_used_with_a_warning_when_there_are_several(harness):
    runner, _secrets = login(0, 'new')
    with mock.patch.object(plugin.display, 'warning') as warning:
        result = harness.run(runner, secrets=[('prod', 'pw-FAKE-prod'), ('default', 'pw-FAKE-d')])
    assert result['vault_id'] == 'prod' and decrypt(harness.store_bytes(), 'pw-FAKE-prod') == runner
    assert 'several vault secrets (prod, default)' in warning.call_args[0][0]


def test_ansible_vault_encrypt_identity_is_honoured_when_no_label_is_given(harness, monkeypatch):
    monkeypatch.setattr(plugin.C, 'DEFAULT_VAULT_ENCRYPT_IDENTITY', 'ci')
    runner, _secrets = login(0, 'new')
    result = harness.run(runner, secrets=[('prod', 'pw-FAKE-prod'), ('ci', 'pw-FAKE-ci')])
    assert result['vault_id'] == 'ci'


@pytest.mark.parametrize('secrets,args,code', [
    ([], {}, 'vault_secret_missing'),
    ([('default', 'pw-FAKE')], {'vault_id': 'prod'}, 'vault_id_unknown'),
])
def test_no_usable_secret_fails_before_the_runner_is_read(harness, secrets, args, code):
    runner, _secrets = login(0, 'new')
    result = harness.run(runner, secrets=secrets, **args)
    assert result['failed'] and result['error_code'] == code
    assert 'Nothing was read from the runner.' in result['msg']
    assert harness.exports == [] and not harness.dest.exists()
    if code == 'vault_secret_missing':
        assert '--vault-password-file, --ask-vault-pass or --vault-id' in result['msg']
        assert 'codex_writeback_encrypt: false' in result['msg']


def test_a_missing_store_directory_fails_before_the_runner_is_read(harness):
    harness.dest = harness.tmp_path / 'nowhere' / 'runner-1.json'
    result = harness.run(login(0, 'new')[0], secrets=[('default', 'pw-FAKE')])
    assert result['error_code'] == 'store_dir_missing' and harness.exports == []


def test_a_store_copy_no_secret_decrypts_fails_before_the_runner_is_read(harness):
    old, _secrets = login(3, 'old')
    harness.dest.write_bytes(VaultLib().encrypt(old.encode(), secret('pw-FAKE-lost')))
    result = harness.run(login(0, 'new')[0], secrets=[('default', 'pw-FAKE')])
    assert result['error_code'] == 'store_undecryptable' and harness.exports == []


def test_unchanged_and_refused_files_are_never_written(harness):
    current, _secrets = login(1, 'current')
    harness.dest.write_bytes(VaultLib().encrypt(current.encode(), secret('pw-FAKE')))
    before = os.stat(str(harness.dest))
    same = harness.run(current, secrets=[('default', 'pw-FAKE')])
    older = harness.run(login(5, 'older')[0], secrets=[('default', 'pw-FAKE')])
    broken = harness.run('{"tokens": {', secrets=[('default', 'pw-FAKE')])
    assert [same['action'], older['action'], broken['action']] == ['unchanged', 'refuse', 'refuse']
    assert not any(result['changed'] for result in (same, older, broken))
    after = os.stat(str(harness.dest))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_check_mode_predicts_the_write_and_writes_nothing(harness):
    result = harness.run(login(0, 'new')[0], secrets=[('default', 'pw-FAKE')], check_mode=True)
    assert result['action'] == 'store' and result['changed'] and not harness.dest.exists()


def test_unencrypted_store_needs_no_secret(harness):
    runner, _secrets = login(0, 'new')
    result = harness.run(runner, encrypt=False)
    assert result['action'] == 'store' and result['vault_id'] is None and not result['encrypted']
    assert harness.store_bytes().decode() == runner
    assert stat.S_IMODE(os.stat(str(harness.dest)).st_mode) == 0o600


def test_a_failed_read_passes_on_only_its_message_and_code(harness):
    result = harness.run('', secrets=[('default', 'pw-FAKE')],
                         export_result={'failed': True, 'msg': '/home/ci/.codex does not exist.',
                                        'error_code': 'codex_home_missing', 'module_stdout': 'whatever it printed'})
    assert result['failed'] and result['error_code'] == 'codex_home_missing'
    assert 'does not exist' in result['msg'] and 'module_stdout' not in result and not harness.dest.exists()


def test_the_deprecated_password_file_still_works_without_a_play_secret(harness, tmp_path):
    password_file = tmp_path / 'vault-pass'
    password_file.write_text('pw-FAKE-file\n')
    runner, _secrets = login(0, 'new')
    with mock.patch.object(plugin.display, 'deprecated') as deprecated:
        result = harness.run(runner, vault_password_file=str(password_file), vault_id='legacy')
    assert result['vault_id'] == 'legacy' and deprecated.call_args[1]['version'] == '0.3.0'
    data = harness.store_bytes()
    assert data.startswith(b'$ANSIBLE_VAULT;1.2;AES256;legacy\n') and decrypt(data, 'pw-FAKE-file') == runner
    missing = harness.run(runner, vault_password_file=str(tmp_path / 'absent'))
    assert missing['error_code'] == 'vault_password_file_unreadable'


def test_a_failed_rename_leaves_the_old_file_and_no_temp_file(harness, monkeypatch):
    old, _secrets = login(3, 'old')
    harness.dest.write_text(old)

    def broken_rename(source, target):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(plugin.os, 'rename', broken_rename)
    result = harness.run(login(0, 'new')[0], encrypt=False)
    assert result['error_code'] == 'store_write_failed' and 'the old file is unchanged' in result['msg']
    assert harness.dest.read_text() == old and os.listdir(str(harness.store_dir)) == ['runner-1.json']
