# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""codex-job-credential without a server: SigV4 against AWS's published test vector, the config's
checks, usage, the exit statuses, and that an unexpected error shows its class only (the stores and
the hooks are tested against real servers in tests/stores/test_job_hooks*.py)."""

import datetime
import io
import json
import os

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import _job_credential as command
from ansible_collections.codexops.runner.plugins.module_utils import _runner_stores
from ansible_collections.codexops.runner.plugins.module_utils import _store_contract as contract


def test_sigv4_matches_the_aws_test_suite_get_vanilla_vector():
    # aws-sig-v4-test-suite, get-vanilla: the published credential, time, scope and signature.
    headers = _runner_stores.sigv4_headers(
        'GET', 'https://example.amazonaws.com/', 'us-east-1', 'service', b'', 'AKIDEXAMPLE',
        'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', now=datetime.datetime(2015, 8, 30, 12, 36, 0))
    assert headers['x-amz-date'] == '20150830T123600Z'
    assert headers['authorization'] == (
        'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, '
        'SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31')
    assert 'wJalrXUtnFEMI' not in json.dumps(headers), 'the secret key only keys the HMAC'


def write_config(tmp_path, config, mode=0o600):
    path = tmp_path / 'job-credential.json'
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, 'w') as handle:
        handle.write(config if isinstance(config, str) else json.dumps(config))
    os.chmod(str(path), mode)
    return str(path)


def run(argv, environ=None):
    out = io.StringIO()
    status = command.main(argv, environ or {}, out)
    return status, json.loads(out.getvalue().splitlines()[-1])


GOOD = {'codex_home': '/nonexistent/codexops/.codex', 'store': 'vault', 'secret': 'codexops/runners/r1',
        'vault': {'url': 'http://127.0.0.1:9', 'token': 'FAKE-VAULT-TOKEN-unit'}}


@pytest.mark.parametrize('argv', [[], ['bogus'], ['restore', '--config'], ['restore', 'writeback'],
                                  ['restore', '--token', 'x']])
def test_usage_is_exit_2(argv):
    status, result = run(argv)
    assert status == command.EXIT_USAGE and result['code'] == 'usage'


@pytest.mark.parametrize('change, mode', [
    ({}, 0o644), ({}, 0o640), ({'store': 'keyring'}, 0o600), ({'codex_home': 'relative'}, 0o600),
    ({'secret': '../other'}, 0o600), ({'extra': 1}, 0o600), ({'vault': {'password': 'x'}}, 0o600),
    ({'allowed_auth_modes': 'chatgpt'}, 0o600), ({'lock_timeout': True}, 0o600)])
def test_a_bad_config_is_refused_before_anything_is_done(tmp_path, change, mode):
    path = write_config(tmp_path, dict(GOOD, **change), mode)
    status, result = run(['restore', '--config', path])
    assert status == command.EXIT_ERROR
    assert result['code'] in ('config_invalid', 'store_options_invalid')
    assert 'FAKE-VAULT-TOKEN' not in json.dumps(result)


def test_a_config_that_is_not_json_is_not_quoted(tmp_path):
    path = write_config(tmp_path, '{"vault": {"token": "FAKE-VAULT-TOKEN-broken"')
    status, result = run(['writeback', '--config', path])
    assert (status, result['code']) == (command.EXIT_ERROR, 'config_invalid')
    assert 'FAKE-VAULT-TOKEN' not in json.dumps(result)


def test_a_symlinked_config_is_refused(tmp_path):
    path = write_config(tmp_path, GOOD)
    link = tmp_path / 'link.json'
    link.symlink_to(path)
    status, result = run(['restore', '--config', str(link)])
    assert (status, result['code']) == (command.EXIT_ERROR, 'config_invalid')


def test_the_config_comes_from_the_environment_variable_when_not_given(tmp_path):
    path = write_config(tmp_path, dict(GOOD, store='keyring'))
    status, result = run(['restore'], {command.CONFIG_ENV: path})
    assert (status, result['code']) == (command.EXIT_ERROR, 'config_invalid') and 'store' in result['message']


def test_an_unreachable_store_is_its_code_and_the_token_never_shows(tmp_path):
    path = write_config(tmp_path, GOOD)
    status, result = run(['restore', '--config', path])
    assert (status, result['code']) == (command.EXIT_ERROR, 'store_unreachable')
    assert 'FAKE-VAULT-TOKEN' not in json.dumps(result)


def test_an_unexpected_error_shows_its_class_only(tmp_path, monkeypatch):
    path = write_config(tmp_path, GOOD)

    def boom(config, environ):
        raise ValueError('FAKE-SECRET-in-an-exception')
    monkeypatch.setattr(command, 'restore', boom)
    status, result = run(['restore', '--config', path])
    assert (status, result['code'], result['message']) == (command.EXIT_ERROR, 'internal_error', 'ValueError')


def test_aws_credentials_come_from_the_standard_environment_when_the_config_has_none():
    config = {'store': 'aws_secretsmanager', 'aws': {}}
    store = command.open_store(config, {'AWS_ACCESS_KEY_ID': 'AKIDFAKE', 'AWS_SECRET_ACCESS_KEY': 'FAKE-SECRET-KEY',
                                        'AWS_REGION': 'eu-west-1'})
    assert store.region == 'eu-west-1' and store.endpoint == 'https://secretsmanager.eu-west-1.amazonaws.com/'
    with pytest.raises(contract.StorePermissionDenied):
        command.open_store(config, {'AWS_REGION': 'eu-west-1'})


@pytest.mark.parametrize('status, body, code', [
    (400, {'errors': ['check-and-set parameter did not match the current version']}, 'store_cas_lost'),
    (403, {'errors': ['permission denied']}, 'store_permission_denied'),
    (404, None, 'store_secret_missing'), (503, {'errors': ['Vault is sealed']}, 'store_unreachable'),
    (400, {'errors': ['something else']}, 'store_request_invalid')])
def test_vault_answers_map_to_the_contract_codes(status, body, code):
    store = _runner_stores.VaultStore('http://127.0.0.1:9', 'FAKE-TOKEN')
    assert store._error(status, body, 'r1', 'writing').code == code  # pylint: disable=protected-access


@pytest.mark.parametrize('status, body, staging, code', [
    (400, {'__type': 'ResourceNotFoundException'}, False, 'store_secret_missing'),
    (400, {'__type': 'com.amazonaws.secretsmanager#InvalidParameterException'}, True, 'store_cas_lost'),
    (400, {'__type': 'InvalidParameterException'}, False, 'store_request_invalid'),
    (400, {'__type': 'UnrecognizedClientException'}, False, 'store_permission_denied'),
    (403, None, False, 'store_permission_denied'), (500, None, False, 'store_unreachable')])
def test_aws_answers_map_to_the_contract_codes(status, body, staging, code):
    store = _runner_stores.AwsSecretsManagerStore('us-east-1', 'AKIDFAKE', 'FAKE-SECRET-KEY')
    assert store._error(status, body, 'r1', 'writing', staging).code == code  # pylint: disable=protected-access


def test_every_store_error_code_is_the_contracts():
    from ansible_collections.codexops.runner.plugins.plugin_utils import _secret_store
    assert _secret_store.ERROR_CODES == contract.ERROR_CODES
    assert _secret_store.StoreCasLost is contract.StoreCasLost
