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


# -- runner instances (runners): one export run for the host, a decision and a store file per instance ----------

class InstancesHarness(Harness):
    """The instances gh-1, gh-2 and gl-1 of runner-1, each with its own store file codex_seeds/runner-1/NAME.json
    (the seed file the codex_auth role reads); `files` maps an instance to its runner file's text, or to an
    export error ({'error_code': ..., 'msg': ...})."""

    NAMES = ('gh-1', 'gh-2', 'gl-1')

    def __init__(self, tmp_path):
        super(InstancesHarness, self).__init__(tmp_path)
        (self.store_dir / 'runner-1').mkdir(mode=0o700)
        self.runners = [{'name': name, 'codex_home': '/srv/%s/.codex' % name, 'owner': 'gl' if name == 'gl-1' else 'ci',
                         'dest': str(self.dest_of(name))} for name in self.NAMES]

    def dest_of(self, name):
        return self.store_dir / 'runner-1' / ('%s.json' % name)

    def run_instances(self, files, runners=None, secrets=(('default', 'pw-FAKE'),), check_mode=False,
                      export_result=None, **args):
        loader = DataLoader()
        loader.set_vault_secrets([(label, secret(password)) for label, password in secrets] or None)
        task = mock.MagicMock()
        task.args = dict({'runners': self.runners if runners is None else runners}, **args)
        if runners == 'omit':
            del task.args['runners']
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
            items = []
            for entry in module_args['runners']:
                item = {'name': entry['name'], 'codex_home': entry['codex_home']}
                found = files[entry['name']]
                if isinstance(found, dict):
                    item.update(found)
                else:
                    item.update(exists=True, auth={}, content=base64.b64encode(found.encode()).decode())
                items.append(item)
            return {'changed': False, 'runners': items}

        action._execute_module = export
        action._remove_tmp_path = lambda path: None
        return action.run(task_vars={'inventory_hostname': 'runner-1'})

    def encrypt_into(self, name, text, password='pw-FAKE'):
        self.dest_of(name).write_bytes(VaultLib().encrypt(text.encode(), secret(password)))
        os.chmod(str(self.dest_of(name)), 0o600)

    def identities(self):
        found = {}
        for name in self.NAMES:
            path = self.dest_of(name)
            if path.exists():
                st = os.stat(str(path))
                found[name] = (path.read_bytes(), st.st_ino, st.st_mtime_ns)
        return found


@pytest.fixture
def instances(tmp_path):
    return InstancesHarness(tmp_path)


def by_name(result):
    return dict((item['name'], item) for item in result['runners'])


def test_instances_are_read_in_one_export_run_and_each_goes_into_its_own_store_file(instances):
    stored = dict((name, login(3, 'stored-%s' % name)) for name in instances.NAMES)
    for name in instances.NAMES:
        instances.encrypt_into(name, stored[name][0])
    newer, newer_secrets = login(0, 'newer-gh-1')
    older, older_secrets = login(5, 'older-gh-2')
    before = instances.identities()
    result = instances.run_instances({'gh-1': newer, 'gh-2': older, 'gl-1': stored['gl-1'][0]})

    assert not result.get('failed') and result['changed'] and result['vault_id'] == 'default'
    found = by_name(result)
    assert [item['name'] for item in result['runners']] == list(instances.NAMES)
    assert [found[name]['label'] for name in instances.NAMES] == ['runner-1/gh-1', 'runner-1/gh-2', 'runner-1/gl-1']
    assert (found['gh-1']['action'], found['gh-1']['code'], found['gh-1']['changed']) == ('store', None, True)
    assert (found['gh-2']['action'], found['gh-2']['code'], found['gh-2']['changed']) == ('refuse', 'runner_older',
                                                                                          False)
    assert (found['gl-1']['action'], found['gl-1']['changed']) == ('unchanged', False)
    assert all(set(('name', 'label', 'action', 'reason', 'code', 'runner')) <= set(item) for item in found.values())
    assert found['gh-1']['runner']['refresh_token_fingerprint']
    # gh-1's own store file, encrypted as for one runner; the others keep bytes, inode and mtime.
    data = instances.dest_of('gh-1').read_bytes()
    assert data.startswith(b'$ANSIBLE_VAULT;1.1;AES256\n') and decrypt(data, 'pw-FAKE') == newer
    assert stat.S_IMODE(os.stat(str(instances.dest_of('gh-1'))).st_mode) == 0o600
    after = instances.identities()
    assert after['gh-2'] == before['gh-2'] and after['gl-1'] == before['gl-1'] and after['gh-1'] != before['gh-1']
    assert sorted(os.listdir(str(instances.store_dir / 'runner-1'))) == ['gh-1.json', 'gh-2.json', 'gl-1.json']
    # One codex_auth_export run for the host, each instance with its own owner; no content in the result.
    assert instances.exports == [('codexops.runner.codex_auth_export', {
        'runners': [{'name': entry['name'], 'codex_home': entry['codex_home'], 'owner': entry['owner']}
                    for entry in instances.runners], 'return_content': True})]
    text = json.dumps(result)
    assert 'content' not in text
    assert not any(part in text for part in newer_secrets + older_secrets + stored['gl-1'][1] + ['pw-FAKE'])

    again = instances.run_instances({'gh-1': newer, 'gh-2': stored['gh-2'][0], 'gl-1': stored['gl-1'][0]})
    assert not again['changed'] and [item['action'] for item in again['runners']] == ['unchanged'] * 3


def test_instances_in_check_mode_predict_each_store_and_write_nothing(instances):
    result = instances.run_instances(dict((name, login(0, name)[0]) for name in instances.NAMES), check_mode=True)
    assert result['changed'] and [item['action'] for item in result['runners']] == ['store'] * 3
    assert all(item['changed'] for item in result['runners']) and instances.identities() == {}


@pytest.mark.parametrize('dest_of_gl', [
    lambda harness: str(harness.dest_of('gh-1')),
    lambda harness: str(harness.store_dir / 'runner-1' / '.' / 'gh-1.json'),
])
def test_two_instances_with_one_dest_are_refused_before_anything_is_read_or_written(instances, dest_of_gl):
    instances.runners[2]['dest'] = dest_of_gl(instances)
    result = instances.run_instances(dict((name, login(0, name)[0]) for name in instances.NAMES))
    assert result['failed'] and result['error_code'] == 'runner_instance_dest_duplicate'
    assert 'runner-1/gh-1 and runner-1/gl-1 have the same dest' in result['msg']
    assert 'before anything was read or written' in result['msg']
    assert instances.exports == [] and instances.identities() == {} and 'runners' not in result


@pytest.mark.parametrize('change,code,words', [
    (lambda runners: runners[1].update(name='gh-1'), 'runner_instance_name_duplicate', 'have the same name gh-1'),
    (lambda runners: runners[1].update(codex_home='/srv/gh-1/.codex'), 'runner_instance_home_duplicate', 'gh-1'),
    (lambda runners: runners[1].update(dest='codex_seeds/gh-2.json'), 'dest_relative', 'runner-1/gh-2: dest must'),
    (lambda runners: runners[1].update(dest='/nonexistent-FAKE/gh-2.json'), 'store_dir_missing',
     'runner-1/gh-2: the store directory /nonexistent-FAKE'),
])
def test_a_list_the_modules_would_refuse_fails_before_the_runner_is_read(instances, change, code, words):
    change(instances.runners)
    result = instances.run_instances(dict((name, login(0, name)[0]) for name in instances.NAMES))
    assert result['failed'] and result['error_code'] == code and words in result['msg'], result['msg']
    assert instances.exports == [] and instances.identities() == {}


def test_a_store_copy_no_secret_decrypts_names_its_instance_and_nothing_is_read(instances):
    instances.encrypt_into('gh-2', login(3, 'old')[0], password='pw-FAKE-lost')
    result = instances.run_instances(dict((name, login(0, name)[0]) for name in instances.NAMES))
    assert result['error_code'] == 'store_undecryptable' and result['msg'].startswith('runner-1/gh-2: ')
    assert instances.exports == [] and sorted(instances.identities()) == ['gh-2']


def test_instances_without_a_vault_secret_fail_before_anything_is_read(instances):
    result = instances.run_instances(dict((name, login(0, name)[0]) for name in instances.NAMES), secrets=())
    assert result['error_code'] == 'vault_secret_missing' and instances.exports == []
    assert 'the store files of runner-1/gh-1, runner-1/gh-2, runner-1/gl-1' in result['msg']


def test_an_instance_that_cannot_be_read_or_stored_fails_the_task_but_not_the_others(instances, monkeypatch):
    missing = {'error_code': 'codex_home_missing', 'msg': '/srv/gh-2/.codex does not exist.'}
    files = {'gh-1': login(0, 'gh-1')[0], 'gh-2': missing, 'gl-1': login(0, 'gl-1')[0]}
    rename = os.rename

    def full_disk_for_gl(source, target):
        if target.endswith('gl-1.json'):
            raise OSError(28, 'No space left on device')
        return rename(source, target)

    monkeypatch.setattr(plugin.os, 'rename', full_disk_for_gl)
    result = instances.run_instances(files)
    assert result['failed'] and result['changed'] and result['error_code'] == 'runner_instances_failed'
    found = by_name(result)
    assert (found['gh-1']['action'], found['gh-1']['changed']) == ('store', True)
    assert (found['gh-2']['action'], found['gh-2']['code']) == ('error', 'codex_home_missing')
    assert (found['gl-1']['action'], found['gl-1']['code'], found['gl-1']['changed']) == ('error', 'store_write_failed',
                                                                                          False)
    assert 'runner-1/gh-2 (codex_home_missing)' in result['msg'] and 'runner-1/gl-1 (store_write_failed)' in result['msg']
    assert sorted(instances.identities()) == ['gh-1']
    assert sorted(os.listdir(str(instances.store_dir / 'runner-1'))) == ['gh-1.json']  # no temp file left


def test_a_list_the_export_module_refuses_passes_on_only_its_message(instances):
    result = instances.run_instances({}, export_result={
        'failed': True, 'error_code': 'runner_instance_user_unknown', 'module_stdout': 'whatever it printed',
        'msg': 'Refusing the runner instances before anything was read or written: instance gl-1 runs as user gl, '
               'which does not exist on this host'})
    assert result['failed'] and result['error_code'] == 'runner_instance_user_unknown'
    assert 'which does not exist' in result['msg'] and 'module_stdout' not in result and instances.identities() == {}


def test_runners_and_a_single_runner_are_mutually_exclusive(instances):
    from ansible.errors import AnsibleActionFail
    with pytest.raises(AnsibleActionFail, match='mutually exclusive'):
        instances.run_instances({}, codex_home='/home/ci/.codex')
    with pytest.raises(AnsibleActionFail, match='one of the following is required: codex_home, runners'):
        instances.run_instances({}, runners='omit')
    with pytest.raises(AnsibleActionFail, match='parameters are required together: codex_home, dest'):
        instances.run_instances({}, runners='omit', codex_home='/home/ci/.codex')
    assert instances.exports == []
