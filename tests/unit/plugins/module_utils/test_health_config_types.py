# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""health.evaluate() on config.toml settings of every type and on documents over a parse limit:
always a problem code, never an exception (forced_chatgpt_workspace_id = 5 used to raise TypeError)."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import health
from ansible_collections.codexops.runner.plugins.module_utils import toml_keys
from support import fake_credentials as fc

FILE_STORE = 'cli_auth_credentials_store = "file"\n'
SETTINGS = ('cli_auth_credentials_store', 'forced_login_method', 'forced_chatgpt_workspace_id')
# TOML values of every type but a string, as they are written after `key = `.
NOT_STRINGS = {
    'an integer': '5',
    'a float': '1.5',
    'a boolean': 'true',
    'an array': '[1, 2]',
    'an array (nested)': '[["acct"]]',
    'an array (mixed)': '["acct", 1]',
    'a table': '{ a = 1 }',
    'a date or time': '1979-05-27T07:32:00Z',
    'a local time': '07:32:00',
}


@pytest.fixture(params=['tomllib', 'fallback'])
def reader(request, monkeypatch):
    if request.param == 'fallback':
        monkeypatch.setattr(toml_keys, '_toml', None)
    return request.param


def snapshot(config, auth=None):
    if auth is None:
        auth, _secrets = fc.chatgpt_seed(account_id='acct-mine')
    return {'home': {'state': 'present', 'mode': 0o700, 'uid': 0}, 'temp_files': [],
            'auth': {'state': 'present', 'data': json.dumps(auth).encode(), 'mode': 0o600, 'uid': 0},
            'config': {'state': 'present', 'data': config.encode('utf-8'), 'mode': 0o600, 'uid': 0}}


def evaluate(config, auth=None):
    result = health.evaluate(snapshot(config, auth))
    json.dumps(result)  # what the module returns must serialize: no dates or tables leak into it
    for item in result['problems']:
        assert item['code'] in health.PROBLEM_CODES
    return result


def codes(result):
    return [item['code'] for item in result['problems']]


def with_setting(key, value):
    store = '' if key == SETTINGS[0] else FILE_STORE
    return store + '%s = %s\n' % (key, value)


@pytest.mark.parametrize('kind', sorted(NOT_STRINGS))
@pytest.mark.parametrize('key', SETTINGS)
def test_a_setting_of_the_wrong_type_is_config_invalid(reader, key, kind):
    # A case the fallback reader cannot have (it is not a missing tool): a skip under CI too.
    if reader == 'fallback' and kind in ('a date or time', 'a local time'):
        pytest.skip('the reader without tomllib keeps dates as the text written: a string of the wrong value')
    result = evaluate(with_setting(key, NOT_STRINGS[kind]))
    assert codes(result) == ['config_invalid']
    message = result['problems'][0]['message']
    assert message.startswith('%s must be a string' % key)
    if key == 'forced_chatgpt_workspace_id':
        assert 'a string or an array of strings' in message
    assert result['credentials_store'] is None and result['forced_login_method'] is None
    assert result['auth_mode'] == 'chatgpt'  # the auth.json facts are still there


@pytest.mark.parametrize('key', SETTINGS)
@pytest.mark.parametrize('layout', ['[{key}]\na = 1\n', '{key}.a = 1\n', '[[{key}]]\na = 1\n', '[{key}.sub]\n'])
def test_a_setting_written_as_a_table_is_config_invalid(reader, key, layout):
    store = '' if key == SETTINGS[0] else FILE_STORE
    result = evaluate(store + layout.format(key=key))
    assert codes(result) == ['config_invalid']
    assert result['problems'][0]['message'].startswith('%s must be a string' % key)


def test_the_reported_example_no_longer_raises():
    result = evaluate(FILE_STORE + 'forced_chatgpt_workspace_id = 5\n')
    assert codes(result) == ['config_invalid']
    assert 'not an integer' in result['problems'][0]['message']


def test_every_wrong_setting_is_named(reader):
    config = 'cli_auth_credentials_store = 1\nforced_login_method = [1]\nforced_chatgpt_workspace_id = true\n'
    result = evaluate(config)
    assert codes(result) == ['config_invalid'] * 3
    assert [item['message'].split(' ')[0] for item in result['problems']] == list(SETTINGS)


@pytest.mark.parametrize('value, conflict', [
    ('"acct-mine"', False), ('"acct-other"', True), ('[]', False), ('["acct-x", "acct-mine"]', False),
    ('["acct-x"]', True),
])
def test_workspace_strings_are_still_checked(reader, value, conflict):
    result = evaluate(with_setting('forced_chatgpt_workspace_id', value))
    assert codes(result) == (['forced_login_conflict'] if conflict else [])


@pytest.mark.parametrize('settings', [
    {'forced_chatgpt_workspace_id': 5}, {'forced_chatgpt_workspace_id': 1.5}, {'forced_chatgpt_workspace_id': True},
    {'forced_chatgpt_workspace_id': {'acct-mine': 1}}, {'forced_chatgpt_workspace_id': [1, None]},
    {'forced_chatgpt_workspace_id': [['acct-mine']]}, {'forced_chatgpt_workspace_id': None},
    {'forced_login_method': 5}, {'forced_login_method': ['api']}, {'forced_login_method': {'api': 1}}, {},
])
def test_forced_login_conflict_never_raises(settings):
    auth_file = auth_model.AuthFile(json.dumps(fc.chatgpt_seed(account_id='acct-mine')[0]).encode())
    conflict = health.forced_login_conflict(settings, auth_file)
    assert conflict is None or isinstance(conflict, str)
    # A table's keys are not a list of workspaces, whatever they are called.
    if settings.get('forced_chatgpt_workspace_id') == {'acct-mine': 1}:
        assert conflict is None


@pytest.mark.parametrize('config, words', [
    (FILE_STORE + 'x = %s\n' % ('[' * 81 + ']' * 81), 'nested deeper than the limit of 80'),
    (FILE_STORE + 'x = %s\n' % ('[' * 5000 + ']' * 5000), 'nested deeper than the limit of 80'),
    (FILE_STORE + '%s = 1\n' % '.'.join(['a'] * 81), 'more dotted parts than the limit of 80'),
    (FILE_STORE + '[%s]\n' % '.'.join(['a'] * 81), 'more dotted parts than the limit of 80'),
    (FILE_STORE + 'x = "%s"\n' % ('a' * 70000), 'longer than the limit of 65536 characters'),
    (FILE_STORE + 'k = 1\n' * 60000, 'than the limit of 100000'),
    (FILE_STORE + "x = '''%s'''\n" % (("a'" * 30000 + '\n') * 11), 'quotes and backslashes'),
])
def test_a_config_over_a_parse_limit_is_config_invalid(reader, config, words):
    result = evaluate(config)
    assert codes(result) == ['config_invalid']
    message = result['problems'][0]['message']
    assert message.startswith('config.toml was not parsed: ') and words in message
    assert result['credentials_store'] is None and result['auth_mode'] == 'chatgpt'


def test_recursion_never_escapes_the_reader_without_tomllib(monkeypatch):
    # The old reader recursed once per bracket and raised RecursionError from about 500 levels.
    monkeypatch.setattr(toml_keys, '_toml', None)
    monkeypatch.setattr(toml_keys, 'check_bounds', lambda _text: None)  # as if the limits let it through
    for depth in (500, 5000):
        result = evaluate(FILE_STORE.replace('"file"', '[' * depth + ']' * depth))
        assert codes(result) == ['config_invalid']


TOML_ALPHABET = '[]{}=."\'#\\\n\r\t ,:-_+aefilnrstu019\x00\u2028é'
SETTING_LINES = st.sampled_from([
    'cli_auth_credentials_store', 'forced_login_method', 'forced_chatgpt_workspace_id', '[profiles.ci]\n',
    'cli_auth_credentials_store = ', 'forced_chatgpt_workspace_id = [', '"file"', '5', '\n', '{ a = 1 }', '"""',
    "'''", '.a.a', '[[', ']]'])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(SETTING_LINES, st.text(alphabet=TOML_ALPHABET, max_size=12)), max_size=25),
       st.sampled_from(['tomllib', 'fallback']))
def test_any_config_text_ends_in_a_result_never_an_exception(pieces, which):
    original = toml_keys._toml
    try:
        if which == 'fallback':
            toml_keys._toml = None
        result = evaluate(''.join(pieces))
    finally:
        toml_keys._toml = original
    assert all(item['message'] for item in result['problems'])
    assert result['credentials_store'] is None or isinstance(result['credentials_store'], str)
