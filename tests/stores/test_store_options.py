# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the stores take their address and credential from (the environment Vault's and AWS's own
tools read, or AppRole), against the real servers; and that none of it shows up anywhere."""

import pytest

from ansible_collections.codexops.runner.plugins.plugin_utils import _secret_store as contract
from ansible_collections.codexops.runner.plugins.plugin_utils._store_writeback import write_back
from store_harness import SECRETS, AwsHarness, VaultHarness, auth_file, new_name
from support import leaks

AWS_CHAIN = ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_REGION',
             'AWS_DEFAULT_REGION', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE')
VAULT_ENV = ('VAULT_ADDR', 'VAULT_TOKEN', 'VAULT_NAMESPACE', 'VAULT_CACERT', 'VAULT_SKIP_VERIFY',
             'ANSIBLE_HASHI_VAULT_ROLE_ID', 'ANSIBLE_HASHI_VAULT_SECRET_ID')


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in AWS_CHAIN + VAULT_ENV:
        monkeypatch.delenv(name, raising=False)
    # No shared AWS files of this machine, no instance metadata lookups.
    monkeypatch.setenv('AWS_CONFIG_FILE', str(tmp_path / 'none'))
    monkeypatch.setenv('AWS_SHARED_CREDENTIALS_FILE', str(tmp_path / 'none'))
    monkeypatch.setenv('AWS_EC2_METADATA_DISABLED', 'true')
    return monkeypatch


def roundtrip(store, harness):
    name = new_name('options')
    harness.seed(name, auth_file(60))
    runner = auth_file(5)
    result = write_back(store, name, runner)
    assert result['written'] and harness.raw(name)[0].encode('utf-8') == runner
    return result


def test_vault_from_vault_addr_and_vault_token(openbao, clean_env):
    clean_env.setenv('VAULT_ADDR', openbao.url)
    clean_env.setenv('VAULT_TOKEN', openbao.root_token)
    store = contract.open_store('vault', {})
    result = roundtrip(store, VaultHarness(openbao))
    assert leaks.find_leaks(SECRETS, [repr(result), store.describe('x')]) == []


def test_vault_with_an_approle_scoped_to_one_secret(openbao, clean_env):
    harness = VaultHarness(openbao)
    root = harness.root
    if 'approle/' not in root.sys.list_auth_methods()['data']:
        root.sys.enable_auth_method('approle')
    name = new_name('approle')
    harness.seed(name, auth_file(60))
    root.sys.create_or_update_policy(name='codexops-approle-test', policy=harness.policy_text(name, ['read', 'update']))
    root.auth.approle.create_or_update_approle('codexops-runner-test', token_policies=['codexops-approle-test'],
                                               token_ttl='10m')
    role_id = root.auth.approle.read_role_id('codexops-runner-test')['data']['role_id']
    secret_id = root.auth.approle.generate_secret_id('codexops-runner-test')['data']['secret_id']
    SECRETS.append(secret_id)
    clean_env.setenv('VAULT_ADDR', openbao.url)
    clean_env.setenv('ANSIBLE_HASHI_VAULT_ROLE_ID', role_id)
    clean_env.setenv('ANSIBLE_HASHI_VAULT_SECRET_ID', secret_id)
    store = contract.open_store('vault', {})
    runner = auth_file(5)
    result = write_back(store, name, runner)
    assert result['written'] and harness.raw(name)[0].encode('utf-8') == runner
    with pytest.raises(contract.StorePermissionDenied):
        write_back(store, new_name('not-mine'), runner, create=True)
    # A wrong secret_id: the login itself is refused.
    with pytest.raises(contract.StorePermissionDenied) as caught:
        contract.open_store('vault', {'role_id': role_id, 'secret_id': 'fake-wrong-secret-id'})
    assert leaks.find_leaks(SECRETS, [repr(result), caught.value.message]) == []


def test_vault_needs_an_address_and_a_credential(clean_env):
    with pytest.raises(contract.StoreOptionsInvalid):
        contract.open_store('vault', {})
    with pytest.raises(contract.StoreOptionsInvalid):
        contract.open_store('vault', {'url': 'http://127.0.0.1:1'})
    with pytest.raises(contract.StoreOptionsInvalid):
        contract.open_store('vault', {'url': 'http://127.0.0.1:1', 'token': 't', 'role_id': 'r', 'secret_id': 's'})


def test_aws_from_the_credential_chain(moto, clean_env):
    clean_env.setenv('AWS_ACCESS_KEY_ID', moto.admin_key['AccessKeyId'])
    clean_env.setenv('AWS_SECRET_ACCESS_KEY', moto.admin_key['SecretAccessKey'])
    clean_env.setenv('AWS_DEFAULT_REGION', moto.region)
    store = contract.open_store('aws_secretsmanager', {'endpoint_url': moto.url})
    result = roundtrip(store, AwsHarness(moto))
    assert leaks.find_leaks(SECRETS, [repr(result)]) == []


def test_aws_without_credentials_is_store_permission_denied(moto, clean_env):
    store = contract.open_store('aws_secretsmanager', {'endpoint_url': moto.url, 'region': moto.region})
    with pytest.raises(contract.StorePermissionDenied):
        write_back(store, new_name(), auth_file(5))


def test_an_unknown_kind_is_refused():
    with pytest.raises(contract.StoreOptionsInvalid):
        contract.open_store('s3', {})


def test_every_error_has_its_own_code():
    assert len(set(contract.ERROR_CODES)) == len(contract.ERROR_CODES)
    for code in ('store_unreachable', 'store_secret_missing', 'store_permission_denied', 'store_cas_lost',
                 'store_copy_invalid'):
        assert code in contract.ERROR_CODES


@pytest.mark.parametrize('name', ['', ' runner', 'a/../b', '../b', 'a//b', '/a', 'a/', 'a/./b', 'a\nb', 'a\x00b'])
def test_a_name_that_could_reach_another_secret_is_refused(openbao, name):
    store = VaultHarness(openbao).store()
    with pytest.raises(contract.StoreOptionsInvalid):
        store.read(name)
    with pytest.raises(contract.StoreOptionsInvalid):
        store.write(name, b'{}', 0)
