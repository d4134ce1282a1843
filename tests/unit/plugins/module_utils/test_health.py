# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""health.evaluate(): one test per problem and warning code, on hand-built and real snapshots."""

import datetime
import json
import os
import re

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import config_schema
from ansible_collections.codexops.runner.plugins.module_utils import health
from support import fake_credentials as fc
from support.require import require

# design.md names the warning list `warnings`; Ansible reserves that key in module results, so the
# result carries it as `health_warnings`.
WARNINGS = 'health_warnings'
CONTRACT_FIELDS = {
    'healthy', 'problems', WARNINGS, 'auth_mode', 'last_refresh', 'age_days', 'stale', 'has_access_token',
    'has_id_token', 'has_refresh_token', 'has_api_key', 'access_token_expires_at', 'account_id', 'plan_type',
    'refresh_token_fingerprint', 'codex_home_mode', 'auth_file_mode', 'owner', 'credentials_store',
}
FILE_STORE = 'cli_auth_credentials_store = "file"\n'


def dumps(doc):
    return json.dumps(doc).encode('utf-8')


def snapshot(auth=b'', auth_state='present', auth_mode=0o600, auth_uid=0, home_state='present', home_mode=0o700,
             home_uid=0, config=FILE_STORE, temp_files=()):
    """A hand-built snapshot: what take_snapshot would return."""
    if isinstance(auth, dict):
        auth = dumps(auth)
    snap = {'home': {'state': home_state}, 'auth': {'state': 'missing'}, 'config': {'state': 'missing'},
            'temp_files': list(temp_files)}
    if home_state == 'present':
        snap['home'].update(mode=home_mode, uid=home_uid)
        if auth_state == 'present':
            snap['auth'] = {'state': 'present', 'data': auth, 'mode': auth_mode, 'uid': auth_uid}
        if config is not None:
            snap['config'] = {'state': 'present', 'data': config.encode('utf-8'), 'mode': 0o600, 'uid': 0}
    return snap


def codes(result, kind='problems'):
    return [item['code'] for item in result[kind]]


def check_contract(result):
    assert CONTRACT_FIELDS <= set(result)
    assert result['healthy'] is (not result['problems'])
    for item in result['problems']:
        assert item['code'] in health.PROBLEM_CODES, item
        assert item['message']
    for item in result[WARNINGS]:
        assert item['code'] in health.WARNING_CODES, item
        assert item['message']
    return result


def evaluate(snap, **kwargs):
    return check_contract(health.evaluate(snap, **kwargs))


def read(home, **kwargs):
    return evaluate(health.snapshot_path(str(home)), **kwargs)


@pytest.fixture
def chatgpt():
    doc, secrets = fc.chatgpt_seed(account_id='acct-health', plan='enterprise')
    return doc, secrets


# -- healthy --------------------------------------------------------------------------------------

def test_healthy_by_hand(chatgpt):
    doc, secrets = chatgpt
    result = evaluate(snapshot(doc), owner_uid=0, allowed_auth_modes=['chatgpt'], salt='fleet')
    assert result['healthy'] is True
    assert result['problems'] == [] and result[WARNINGS] == []
    assert result['auth_mode'] == 'chatgpt'
    assert result['has_refresh_token'] and result['has_id_token'] and result['has_access_token']
    assert result['has_api_key'] is False
    assert result['account_id'] == 'acct-health'
    assert result['plan_type'] == 'enterprise'
    assert len(result['refresh_token_fingerprint']) == 16
    assert result['codex_home_mode'] == '0700'
    assert result['auth_file_mode'] == '0600'
    assert result['owner'] == 'root'
    assert result['credentials_store'] == 'file'
    assert result['stale'] is False
    dumped = json.dumps(result)
    for secret in secrets:
        assert secret not in dumped


def test_healthy_on_disk(codex_home, chatgpt):
    doc, secrets = chatgpt
    home = codex_home(auth=doc)
    result = read(home, owner_uid=0, allowed_auth_modes=['chatgpt'])
    assert result['healthy'] is True, result['problems']
    assert set(result) >= CONTRACT_FIELDS
    assert result['codex_home_mode'] == '0700' and result['auth_file_mode'] == '0600'
    assert result['last_refresh'] == doc['last_refresh'][:19] + 'Z'
    assert 0 <= result['age_days'] < 0.01
    assert result['access_token_expires_at'] is not None
    dumped = json.dumps(result)
    for secret in secrets:
        assert secret not in dumped


def test_snapshot_never_writes(codex_home, chatgpt):
    home = codex_home(auth=chatgpt[0], home_mode=0o755, auth_mode=0o644)
    before = sorted(os.listdir(str(home)))
    health.snapshot_path(str(home))
    assert sorted(os.listdir(str(home))) == before
    assert oct(os.stat(str(home)).st_mode & 0o777) == oct(0o755)


# -- CODEX_HOME -----------------------------------------------------------------------------------

def test_codex_home_missing(tmp_path):
    by_hand = evaluate(snapshot(home_state='missing'))
    on_disk = read(tmp_path / 'absent')
    for result in (by_hand, on_disk):
        assert codes(result) == ['codex_home_missing']  # the one problem worth naming
        assert result['healthy'] is False
        assert result['codex_home_mode'] is None and result['auth_mode'] is None


def test_codex_home_symlink(codex_home, tmp_path, chatgpt):
    home = codex_home(auth=chatgpt[0])
    (tmp_path / 'link').symlink_to(home)
    result = read(tmp_path / 'link')
    assert codes(result) == ['codex_home_symlink']
    assert result['auth_mode'] is None  # nothing read through the link


def test_codex_home_not_dir(tmp_path):
    (tmp_path / 'file').write_text('x')
    assert codes(read(tmp_path / 'file')) == ['codex_home_not_dir']


def test_codex_home_relative():
    assert codes(read('relative/codex')) == ['codex_home_relative']


@pytest.mark.parametrize('mode', [0o755, 0o750, 0o701, 0o710])
def test_codex_home_mode(codex_home, chatgpt, mode):
    assert codes(evaluate(snapshot(chatgpt[0], home_mode=mode))) == ['codex_home_mode']
    result = read(codex_home(auth=chatgpt[0], home_mode=mode))
    assert codes(result) == ['codex_home_mode']
    assert result['codex_home_mode'] == '%04o' % mode


@pytest.mark.parametrize('mode', [0o500, 0o300, 0o000])
def test_codex_home_mode_without_owner_rwx(chatgpt, mode):
    assert codes(evaluate(snapshot(chatgpt[0], home_mode=mode))) == ['codex_home_mode']


def test_codex_home_owner(codex_home, chatgpt):
    assert codes(evaluate(snapshot(chatgpt[0], auth_uid=65534), owner_uid=65534)) == ['codex_home_owner']
    home = codex_home(auth=chatgpt[0])
    os.chown(str(home / 'auth.json'), 65534, 65534)
    result = read(home, owner_uid=65534)
    assert codes(result) == ['codex_home_owner']
    assert result['codex_home_mode'] == '0700'


# -- auth.json as a file --------------------------------------------------------------------------

def test_auth_missing(codex_home):
    assert codes(evaluate(snapshot(auth_state='missing'))) == ['auth_missing']
    result = read(codex_home(auth=None))
    assert codes(result) == ['auth_missing']
    assert result['auth_file_mode'] is None


def test_auth_symlink(codex_home, tmp_path, chatgpt):
    home = codex_home()
    real = tmp_path / 'real.json'
    real.write_text(json.dumps(chatgpt[0]))
    real.chmod(0o600)
    (home / 'auth.json').symlink_to(real)
    result = read(home)
    assert codes(result) == ['auth_symlink']
    assert result['auth_mode'] is None


def test_auth_hardlink(codex_home, tmp_path, chatgpt):
    home = codex_home(auth=chatgpt[0])
    os.link(str(home / 'auth.json'), str(tmp_path / 'copy.json'))
    assert codes(read(home)) == ['auth_hardlink']


def test_auth_not_regular_fifo(codex_home):
    home = codex_home()
    os.mkfifo(str(home / 'auth.json'))
    assert codes(read(home)) == ['auth_not_regular']


def test_auth_not_regular_directory(codex_home):
    home = codex_home()
    (home / 'auth.json').mkdir()
    assert codes(read(home)) == ['auth_not_regular']


def test_auth_too_large(codex_home):
    home = codex_home(auth=b'{"pad": "' + b'x' * (1024 * 1024) + b'"}')
    assert codes(read(home)) == ['auth_too_large']


@pytest.mark.parametrize('mode', [0o644, 0o400, 0o640, 0o700, 0o200])
def test_auth_mode_bits(codex_home, chatgpt, mode):
    assert codes(evaluate(snapshot(chatgpt[0], auth_mode=mode))) == ['auth_mode_bits']
    result = read(codex_home(auth=chatgpt[0], auth_mode=mode))
    assert codes(result) == ['auth_mode_bits']
    assert result['auth_file_mode'] == '%04o' % mode
    assert result['auth_mode'] == 'chatgpt'  # the content is still evaluated


def test_auth_owner(codex_home, chatgpt):
    assert codes(evaluate(snapshot(chatgpt[0], home_uid=65534), owner_uid=65534)) == ['auth_owner']
    home = codex_home(auth=chatgpt[0])
    os.chown(str(home), 65534, 65534)
    result = read(home, owner_uid=65534)
    assert codes(result) == ['auth_owner']
    assert result['owner'] == 'root'


def test_home_and_auth_owner_together(chatgpt):
    assert codes(evaluate(snapshot(chatgpt[0]), owner_uid=65534)) == ['codex_home_owner', 'auth_owner']


# -- auth.json content ----------------------------------------------------------------------------

@pytest.mark.parametrize('data', [b'', b'{"tokens": ', b'\xff\xfe', b'[]', b'not json'])
def test_auth_not_json(codex_home, data):
    assert codes(evaluate(snapshot(data))) == ['auth_not_json']
    if data:
        assert codes(read(codex_home(auth=data))) == ['auth_not_json']


def test_auth_invalid(codex_home):
    doc = {'OPENAI_API_KEY': 12345}
    assert codes(evaluate(snapshot(doc))) == ['auth_invalid']
    assert codes(read(codex_home(auth={'tokens': ['x']}))) == ['auth_invalid']


@pytest.mark.parametrize('mode', ['api_key', 'ChatGPT', 'oauth'])
def test_auth_mode_invalid(codex_home, mode):
    key = fc.apikey_seed()[0]['OPENAI_API_KEY']
    result = read(codex_home(auth={'auth_mode': mode, 'OPENAI_API_KEY': key}))
    assert codes(result) == ['auth_mode_invalid']
    assert key not in json.dumps(result)


def test_auth_mode_unexpected(codex_home):
    doc, secrets = fc.apikey_seed()
    result = read(codex_home(auth=doc), allowed_auth_modes=['chatgpt'])
    assert codes(result) == ['auth_mode_unexpected']
    assert result['auth_mode'] == 'apikey' and result['has_api_key'] is True
    assert secrets[0] not in json.dumps(result)
    assert read(codex_home(auth=doc), allowed_auth_modes=['chatgpt', 'apikey'])['healthy'] is True


def test_id_token_invalid(codex_home, chatgpt):
    doc = chatgpt[0]
    doc['tokens']['id_token'] = 'only.two'
    assert codes(read(codex_home(auth=doc))) == ['id_token_invalid']


def test_last_refresh_invalid(codex_home, chatgpt):
    doc = chatgpt[0]
    doc['last_refresh'] = '2025-01-01 10:00:00'
    assert codes(read(codex_home(auth=doc))) == ['last_refresh_invalid']


@pytest.mark.parametrize('refresh', ['', 'absent'])
def test_refresh_token_missing(codex_home, chatgpt, refresh):
    doc = chatgpt[0]
    if refresh == 'absent':
        del doc['tokens']['refresh_token']
    else:
        doc['tokens']['refresh_token'] = refresh
    result = read(codex_home(auth=doc))
    assert codes(result) == ['refresh_token_missing']
    assert result['has_refresh_token'] is False
    assert result['refresh_token_fingerprint'] is None
    assert read(codex_home(auth=doc), require_refresh_token=False)['healthy'] is True


@pytest.mark.parametrize('doc', [
    {'auth_mode': 'apikey', 'OPENAI_API_KEY': ''},
    {'auth_mode': 'personalAccessToken', 'OPENAI_API_KEY': None},
    {'auth_mode': 'agentIdentity', 'agent_identity': ''},
])
def test_credential_missing(codex_home, doc):
    assert codes(read(codex_home(auth=doc))) == ['credential_missing']


def test_empty_object_is_chatgpt_without_refresh_token(codex_home):
    result = read(codex_home(auth=b'{}'))
    assert result['auth_mode'] == 'chatgpt'
    assert codes(result) == ['refresh_token_missing']


def test_personal_access_token_is_healthy_without_refresh_token(codex_home):
    token = fc.personal_access_token()
    result = read(codex_home(auth={'OPENAI_API_KEY': None, 'personal_access_token': token}))
    assert result['healthy'] is True, result['problems']
    assert result['auth_mode'] == 'personalAccessToken'
    assert result['has_access_token'] is True and result['has_refresh_token'] is False
    assert token not in json.dumps(result)


# -- config.toml ----------------------------------------------------------------------------------

@pytest.mark.parametrize('config, store', [
    (None, None),
    ('', None),
    ('model = "o3"\n', None),
    ('cli_auth_credentials_store = "keyring"\n', 'keyring'),
    ('cli_auth_credentials_store = "auto"\n', 'auto'),
    ('cli_auth_credentials_store = "ephemeral"\n', 'ephemeral'),
])
def test_store_not_file(codex_home, chatgpt, config, store):
    result = read(codex_home(auth=chatgpt[0], config=config))
    assert codes(result) == ['store_not_file']
    assert result['credentials_store'] == store
    assert read(codex_home(auth=chatgpt[0], config=config), require_file_store=False)['healthy'] is True


def test_store_key_in_table(codex_home, chatgpt):
    config = 'model = "o3"\n[profiles.ci]\ncli_auth_credentials_store = "file"\n'
    result = read(codex_home(auth=chatgpt[0], config=config))
    assert codes(result) == ['store_not_file']  # the table's copy does not count
    assert codes(result, WARNINGS) == ['store_key_in_table']
    assert 'profiles.ci' in result[WARNINGS][0]['message']
    ok = read(codex_home(auth=chatgpt[0], config=FILE_STORE + config.replace('model = "o3"\n', '')))
    assert ok['healthy'] is True
    assert codes(ok, WARNINGS) == ['store_key_in_table']


@pytest.mark.parametrize('config', [
    'cli_auth_credentials_store = "file\n',
    'cli_auth_credentials_store = file\n',
    '[a]\nx = 1\n[a]\n',
    'cli_auth_credentials_store = "file"\ncli_auth_credentials_store = "file"\n',
])
def test_config_invalid_toml(codex_home, chatgpt, config):
    result = read(codex_home(auth=chatgpt[0], config=config))
    assert codes(result) == ['config_invalid']
    assert result['credentials_store'] is None
    assert result['auth_mode'] == 'chatgpt'


@pytest.mark.parametrize('value', ['"bogus"', '"File"', 'true', '1', '["file"]'])
def test_config_invalid_store_value(codex_home, chatgpt, value):
    result = read(codex_home(auth=chatgpt[0], config='cli_auth_credentials_store = %s\n' % value))
    assert codes(result) == ['config_invalid']


def test_config_invalid_not_utf8(codex_home, chatgpt):
    home = codex_home(auth=chatgpt[0], config=None)
    (home / 'config.toml').write_bytes(b'model = "\xff"\n')
    assert codes(read(home)) == ['config_invalid']


def test_config_not_regular(codex_home, chatgpt):
    home = codex_home(auth=chatgpt[0], config=None)
    (home / 'config.toml').mkdir()
    assert codes(read(home)) == ['config_invalid']


def test_config_message_never_quotes_a_secret(codex_home, chatgpt):
    config = FILE_STORE + '[mcp_servers.x]\nenv = { TOKEN = "mcp-FAKE-secret-0001 }\n'
    result = read(codex_home(auth=chatgpt[0], config=config))
    assert codes(result) == ['config_invalid']
    assert 'mcp-FAKE-secret-0001' not in json.dumps(result)


def test_config_invalid_forced_login_method(codex_home, chatgpt):
    config = FILE_STORE + 'forced_login_method = "bogus"\n'
    assert codes(read(codex_home(auth=chatgpt[0], config=config))) == ['config_invalid']


# -- forced login settings ------------------------------------------------------------------------

@pytest.mark.parametrize('extra, maker', [
    ('forced_login_method = "api"\n', 'chatgpt'),
    ('forced_login_method = "api"\n', 'pat'),
    ('forced_login_method = "chatgpt"\n', 'apikey'),
    ('forced_chatgpt_workspace_id = "acct-other"\n', 'chatgpt'),
    ('forced_chatgpt_workspace_id = ["acct-x", "acct-y"]\n', 'chatgpt'),
])
def test_forced_login_conflict(codex_home, extra, maker):
    if maker == 'chatgpt':
        doc, _secrets = fc.chatgpt_seed(account_id='acct-mine')
    elif maker == 'apikey':
        doc, _secrets = fc.apikey_seed()
    else:
        doc = {'OPENAI_API_KEY': None, 'personal_access_token': fc.personal_access_token()}
    result = read(codex_home(auth=doc, config=FILE_STORE + extra))
    assert codes(result) == ['forced_login_conflict']


@pytest.mark.parametrize('extra, maker', [
    ('forced_login_method = "chatgpt"\n', 'chatgpt'),
    ('forced_login_method = "api"\n', 'apikey'),
    ('forced_chatgpt_workspace_id = "acct-mine"\n', 'chatgpt'),
    ('forced_chatgpt_workspace_id = ["acct-x", "acct-mine"]\n', 'chatgpt'),
    ('forced_chatgpt_workspace_id = "acct-other"\n', 'apikey'),   # the workspace check is for ChatGPT auth
    ('forced_login_method = "chatgpt"\nforced_chatgpt_workspace_id = "acct-mine"\n', 'chatgpt'),
])
def test_no_forced_login_conflict_when_matching(codex_home, extra, maker):
    if maker == 'chatgpt':
        doc, _secrets = fc.chatgpt_seed(account_id='acct-mine')
    else:
        doc, _secrets = fc.apikey_seed()
    result = read(codex_home(auth=doc, config=FILE_STORE + extra), allowed_auth_modes=None)
    assert result['healthy'] is True, result['problems']


def test_workspace_check_uses_claims_when_tokens_have_no_account(codex_home):
    doc, _secrets = fc.chatgpt_seed(account_id='acct-claims')
    doc['tokens']['account_id'] = None
    config = FILE_STORE + 'forced_chatgpt_workspace_id = "acct-claims"\n'
    assert read(codex_home(auth=doc, config=config))['healthy'] is True


# -- warnings -------------------------------------------------------------------------------------

def test_stale_warning(codex_home):
    moment = fc.now()
    doc, _secrets = fc.chatgpt_seed(last_refresh=moment - datetime.timedelta(days=9))
    result = read(codex_home(auth=doc))
    assert result['healthy'] is True  # a warning, not a problem
    assert codes(result, WARNINGS) == ['stale']
    assert result['stale'] is True
    assert 8.9 < result['age_days'] < 9.1
    assert codes(read(codex_home(auth=doc), max_age_days=30), WARNINGS) == []


def test_access_token_expired_warning(codex_home):
    doc, _secrets = fc.chatgpt_seed(access_expires_in=datetime.timedelta(hours=-1))
    result = read(codex_home(auth=doc))
    assert result['healthy'] is True
    assert codes(result, WARNINGS) == ['access_token_expired']
    assert result['stale'] is True


def test_evaluate_uses_given_now(chatgpt):
    doc = chatgpt[0]
    later = fc.now() + datetime.timedelta(days=20)
    result = evaluate(snapshot(doc), now=later)
    assert sorted(codes(result, WARNINGS)) == ['access_token_expired', 'stale']


def test_temp_files_left_warning(codex_home, chatgpt):
    home = codex_home(auth=chatgpt[0])
    (home / '.codexops-auth.json-0a1b2c.tmp').write_text('partial')
    (home / '.auth-ABCDEF').write_text('codex temp file, not ours')
    result = read(home)
    assert result['healthy'] is True
    assert codes(result, WARNINGS) == ['temp_files_left']
    assert '1 leftover' in result[WARNINGS][0]['message']
    assert codes(evaluate(snapshot(chatgpt[0], temp_files=['a', 'b'])), WARNINGS) == ['temp_files_left']


# -- the code tables ------------------------------------------------------------------------------

def test_problem_and_warning_codes_are_distinct_names():
    # Their fixes are in docs/troubleshooting.md (tests/docs/test_troubleshooting.py checks both ways).
    assert set(health.PROBLEM_CODES).isdisjoint(health.WARNING_CODES)
    for table in (health.PROBLEM_CODES, health.WARNING_CODES):
        assert len(set(table)) == len(table)
        for code in table:
            assert re.fullmatch('[a-z0-9_]+', code), code


# -- config.toml against Codex's type table (config_schema) --------------------------------------

# Every Python CI runs the units on (3.11+) has tomllib: without it these fail there, and skip elsewhere.
NEEDS_TOML_READER = 'needs tomllib (Python 3.11+) or tomli'


@pytest.mark.parametrize('text,key', [
    ('[profile.x]\nmodel = "o3"\n', 'profile'),
    ('model = 5\n', 'model'),
    ('sandbox_mode = "bogus"\n', 'sandbox_mode'),
    ('[profiles.ci]\nmodel = 5\n', 'profiles.ci.model'),
])
def test_config_key_of_the_wrong_type_is_config_invalid(chatgpt, text, key):
    """Codex refuses to load these (tests/integration/test_config_schema_oracle.py asks it), so
    verify must not call the runner healthy."""
    require(config_schema.has_type_check(), NEEDS_TOML_READER)
    result = evaluate(snapshot(chatgpt[0], config=FILE_STORE + text))
    assert codes(result) == ['config_invalid']
    assert ('config.toml: %s:' % key) in result['problems'][0]['message']
    assert not result['healthy']


def test_config_type_problems_are_capped(chatgpt):
    require(config_schema.has_type_check(), NEEDS_TOML_READER)
    keys = ['model', 'model_provider', 'sandbox_mode', 'model_reasoning_effort', 'model_reasoning_summary',
            'model_verbosity', 'chatgpt_base_url', 'model_catalog_json', 'web_search']
    profiles = ''.join('[profiles.p%d]\n%s' % (n, ''.join('%s = 5\n' % key for key in keys)) for n in range(2))
    result = evaluate(snapshot(chatgpt[0], config=FILE_STORE + profiles))
    messages = [item['message'] for item in result['problems']]
    assert len(messages) == health.MAX_CONFIG_TYPE_PROBLEMS + 1
    assert messages[-1] == 'config.toml: %d more keys of the wrong type.' % (2 * len(keys) - health.MAX_CONFIG_TYPE_PROBLEMS)
    assert all(item['code'] == 'config_invalid' for item in result['problems'])


# -- Codex's lock files -----------------------------------------------------------------------------

@pytest.mark.parametrize('make,why', [
    (lambda path, other: os.mkfifo(str(path), 0o600), 'is a FIFO'),
    (lambda path, other: path.symlink_to(other), 'is a symlink'),
])
@pytest.mark.parametrize('name', ['auth.lock', 'auth.json.lock'])
def test_a_lock_file_codex_cannot_use_is_a_problem(codex_home, tmp_path, name, make, why):
    doc, _secrets = fc.chatgpt_seed()
    home = codex_home(auth=doc, config=FILE_STORE)
    other = tmp_path / 'other'
    other.write_bytes(b'')
    make(home / name, other)
    result = read(home)
    assert codes(result) == ['lock_unusable']
    assert name in result['problems'][0]['message'] and why in result['problems'][0]['message']


def test_a_lock_file_of_another_owner_is_a_problem_and_a_predicted_write_has_none():
    snap = snapshot(fc.chatgpt_seed()[0])
    snap['locks'] = [{'name': 'auth.lock', 'fault': None, 'uid': 65534}]
    result = evaluate(snap)
    assert codes(result) == ['lock_unusable'] and 'not to the owner of CODEX_HOME' in result['problems'][0]['message']
    assert codes(evaluate(health.predicted_snapshot(snap, snap['home']['uid'], snap['auth']['data']))) == []


def test_ordinary_lock_files_are_fine(codex_home):
    doc, _secrets = fc.chatgpt_seed()
    home = codex_home(auth=doc, config=FILE_STORE)
    for name in ('auth.lock', 'auth.json.lock'):
        (home / name).write_bytes(b'')
    assert codes(read(home)) == []
