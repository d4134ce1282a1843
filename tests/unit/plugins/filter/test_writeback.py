"""codex_writeback_decision: newer and valid is stored, everything else is not, facts only."""

import base64
import datetime
import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.filter.writeback import codex_writeback_decision
from support import fake_credentials

NOW = fake_credentials.now()


def login(days_ago, tag):
    doc, secrets = fake_credentials.chatgpt_seed(tag=tag, last_refresh=NOW - datetime.timedelta(days=days_ago))
    return json.dumps(doc), secrets


def b64(text):
    return base64.b64encode(text.encode()).decode()


def decide(runner_text, store_text):
    return codex_writeback_decision(b64(runner_text), store_text)


def test_newer_runner_file_is_stored():
    runner, secrets = login(0, 'new')
    store, _secrets = login(3, 'old')
    decision = decide(runner, store)
    assert decision['action'] == 'store' and "runner's file is newer" in decision['reason']
    assert decision['runner']['refresh_token_fingerprint'] != decision['store']['refresh_token_fingerprint']
    assert not any(secret in json.dumps(decision) for secret in secrets)


def test_missing_store_takes_a_valid_file_and_a_broken_one_is_refused():
    runner, _secrets = login(0, 'r')
    assert decide(runner, '')['action'] == 'store'
    broken = decide(runner, '{"tokens": {')
    assert broken['action'] == 'refuse' and broken['code'] == 'store_copy_invalid'


def test_identical_and_same_time_are_unchanged():
    runner, _secrets = login(1, 'same')
    assert decide(runner, runner + '\n')['action'] == 'unchanged'
    doc = json.loads(runner)
    doc['OPENAI_API_KEY'] = None
    assert decide(runner, json.dumps(doc, indent=4))['action'] == 'unchanged'


def test_older_runner_file_is_refused():
    runner, _secrets = login(5, 'old')
    store, _secrets = login(0, 'new')
    decision = decide(runner, store)
    assert decision['action'] == 'refuse' and "older than the store's" in decision['reason']


@pytest.mark.parametrize('text,code', [('{"tokens": {', 'auth_not_json'), ('{"OPENAI_API_KEY": "sk-x"}',
                                                                           'auth_mode_unexpected')])
def test_broken_or_wrong_runner_file_is_refused(text, code):
    store, _secrets = login(0, 's')
    decision = decide(text, store)
    assert decision['action'] == 'refuse' and code in decision['reason']


def test_runner_without_last_refresh_cannot_be_newer():
    store, _secrets = login(0, 's')
    doc = json.loads(login(0, 'r')[0])
    del doc['last_refresh']
    assert decide(json.dumps(doc), store)['action'] == 'refuse'


def test_bad_base64_is_an_error():
    with pytest.raises(AnsibleFilterError):
        codex_writeback_decision('%%% not base64', '')


# -- a believable newer copy only (the runner user writes the file) ------------------------------

def account_login(tag, account_id='acct-fake-0001', user_id='user-fake-0001', refreshed=None):
    doc, secrets = fake_credentials.chatgpt_seed(tag=tag, account_id=account_id, user_id=user_id,
                                                 last_refresh=refreshed or NOW)
    return json.dumps(doc), secrets


@pytest.mark.parametrize('ahead, action', [(datetime.timedelta(seconds=60), 'store'),
                                           (datetime.timedelta(minutes=6), 'refuse'),
                                           (datetime.timedelta(days=365 * 7000), 'refuse')])
def test_a_last_refresh_in_the_future_is_not_believed(ahead, action):
    """'9999-12-31T23:59:59Z' would pin the store: every genuine refresh after it would look older.
    A minute ahead is clock skew (the tolerance the keepalive status file uses too)."""
    store, _secrets = account_login('s', refreshed=NOW - datetime.timedelta(days=1))
    runner, _secrets = account_login('r', refreshed=fake_credentials.now() + ahead)
    decision = decide(runner, store)
    assert decision['action'] == action, decision
    if action == 'refuse':
        assert decision['code'] == 'runner_from_future' and 'future' in decision['reason']
    # Also into an empty store: the first copy must be believable too.
    assert decide(runner, '')['action'] == action


def test_the_future_tolerance_is_the_keepalive_status_files():
    from ansible_collections.codexops.runner.plugins.module_utils import constants, keepalive_status
    assert keepalive_status.FUTURE_TOLERANCE_SECONDS == constants.CLOCK_SKEW_TOLERANCE_SECONDS == 300


@pytest.mark.parametrize('who', [{'account_id': 'acct-OTHER-9'}, {'user_id': 'user-OTHER-9'}])
def test_another_account_or_user_is_refused_unless_allowed(who):
    store, _secrets = account_login('s', refreshed=NOW - datetime.timedelta(days=1))
    runner, secrets = account_login('r', **who)
    decision = decide(runner, store)
    assert decision['action'] == 'refuse' and decision['code'] == 'runner_identity_changed', decision
    assert not any(secret in json.dumps(decision) for secret in secrets)
    allowed = codex_writeback_decision(b64(runner), store, allow_identity_change=True)
    assert allowed['action'] == 'store' and allowed['code'] is None


def test_same_account_newer_is_stored_with_no_code():
    store, _secrets = account_login('s', refreshed=NOW - datetime.timedelta(days=1))
    runner, _secrets = account_login('r')
    decision = decide(runner, store)
    assert (decision['action'], decision['code']) == ('store', None)
    assert decision['runner']['account_id'] == decision['store']['account_id'] == 'acct-fake-0001'


def test_allow_identity_change_must_be_a_bool():
    with pytest.raises(AnsibleFilterError):
        codex_writeback_decision(b64('{}'), '', allow_identity_change='yes')
