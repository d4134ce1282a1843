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


def test_missing_or_broken_store_takes_a_valid_file():
    runner, _secrets = login(0, 'r')
    assert decide(runner, '')['action'] == 'store'
    assert decide(runner, '{"tokens": {')['action'] == 'store'


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
