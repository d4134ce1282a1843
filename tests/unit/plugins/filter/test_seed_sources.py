# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Seeds from a secret store (issue 21) on the controller: the one naming rule (_store_contract.secret_name, the
codex_secret_name filter, the job hooks role's default), each instance's seed source completed with it, the host's
source inherited by listed instances (the store, never the secret), sources refused before any store is asked (a
credential, unknown keys, one secret on two instances), and the texts read back into the module's options."""

import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.filter import runners as rf
from ansible_collections.codexops.runner.plugins.filter import stores
from ansible_collections.codexops.runner.plugins.module_utils import _store_contract

from support import fake_credentials as fc

from test_runners import role_variables

VAULT = {'store': 'vault', 'url': 'https://bao.example:8200'}


def instances(*entries, **variables):
    return rf.codex_runner_instances(list(entries), role_variables(**variables), 'h1')


def test_the_naming_rule_is_one_function_and_the_filter_asks_it():
    assert _store_contract.secret_name('runner-1', 'ci') == 'codexops/runners/runner-1/ci'
    assert stores.codex_secret_name('runner-1', 'gh-2') == 'codexops/runners/runner-1/gh-2'
    assert stores.FilterModule().filters() == {'codex_secret_name': stores.codex_secret_name}
    for host, instance in (('', 'ci'), ('h', ''), ('a/b', 'ci'), ('h', '..'), ('h', None), (' h', 'ci')):
        with pytest.raises(AnsibleFilterError, match='codex_secret_name'):
            stores.codex_secret_name(host, instance)


def test_the_job_hooks_default_secret_is_the_rule():
    repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '..')
    with open(os.path.join(repo, 'roles', 'codex_job_hooks', 'defaults', 'main.yml')) as handle:
        text = handle.read()
    assert 'codex_job_hooks_secret: "{{ inventory_hostname | codexops.runner.codex_secret_name(' \
           'codex_job_hooks_instance, codex_job_hooks_user) }}"' in text
    assert 'codex_job_hooks_instance: "{{ codex_job_hooks_user }}"' in text


def test_the_job_hooks_secret_is_the_seed_sources_default_for_every_instance_default_included():
    # The job_hooks playbook gives the role each instance's name and user; the role's default secret
    # (codex_secret_name with the user) must be the secret codex_auth seeds that instance from.
    found = instances({'name': 'default', 'codex_home': '/srv/default'},
                      {'name': 'gh-2', 'user': 'ci2', 'codex_home': '/srv/gh-2'},
                      {'name': 'ci2', 'user': 'ci2', 'codex_home': '/srv/ci2'},
                      codex_auth_seed_source=dict(VAULT))
    assert [item['name'] for item in found] == ['default', 'gh-2', 'ci2']
    for item in found:
        assert stores.codex_secret_name('h1', item['name'], item['user']) == item['seed_source']['secret']
    assert stores.codex_secret_name('h1', 'default', 'ci') == 'codexops/runners/h1/ci'
    assert stores.codex_secret_name('h1', 'default') == 'codexops/runners/h1/default'
    assert stores.codex_secret_name('h1', 'gh-2', 'ci2') == 'codexops/runners/h1/gh-2'
    # A single runner (the role's default instance is its user) keeps its user's secret.
    assert stores.codex_secret_name('h1', 'ci', 'ci') == 'codexops/runners/h1/ci'
    with pytest.raises(AnsibleFilterError, match='codex_secret_name'):
        stores.codex_secret_name('h1', 'default', '')


def test_a_single_runner_reads_the_secret_named_by_its_user_as_the_job_hooks_do():
    found = instances(codex_auth_seed_source=dict(VAULT))
    assert found[0]['seed_file'] is None
    assert rf.codex_runner_seed_sources(found) == [dict(VAULT, secret='codexops/runners/h1/ci')]
    # The content wins over a source, as it wins over the file.
    assert rf.codex_runner_seed_sources(instances(codex_auth_seed_source=dict(VAULT), codex_auth_seed_content='x')) == []
    named = instances(codex_auth_seed_source=dict(VAULT, secret='ci/runner-1'))
    assert rf.codex_runner_seed_sources(named) == [dict(VAULT, secret='ci/runner-1')]
    assert rf.codex_runner_seed_sources(instances()) == []


def test_instances_inherit_the_store_never_the_secret_and_read_their_own():
    aws = {'store': 'aws_secretsmanager', 'region': 'eu-west-1'}
    found = instances({'name': 'gh-1', 'codex_home': '/srv/gh-1'},
                      {'name': 'gh-2', 'codex_home': '/srv/gh-2', 'seed_source': aws},
                      {'name': 'gh-3', 'codex_home': '/srv/gh-3', 'seed_file': '/inv/gh-3.json'},
                      codex_auth_seed_source=dict(VAULT, secret='the-host-one'))
    assert rf.codex_runner_seed_sources(found) == [
        dict(VAULT, secret='codexops/runners/h1/gh-1'),
        {'store': 'aws_secretsmanager', 'region': 'eu-west-1', 'secret': 'codexops/runners/h1/gh-2'}]
    assert rf.codex_runner_seed_files(found) == ['/inv/gh-3.json']
    one, two, three = (fc.dumps(fc.chatgpt_seed(tag)[0]) for tag in ('one', 'two', 'three'))
    args = rf.codex_runner_args(found, 'codex_auth_seed', [three], source_texts=[one, two])
    assert [entry['content'] for entry in args] == [one, two, three]
    with pytest.raises(AnsibleFilterError, match='2 seed sources'):
        rf.codex_runner_args(found, 'codex_auth_seed', [three])
    # A listed default instance keeps the single runner's secret (its user).
    listed = instances({'name': 'default'}, codex_auth_seed_source=dict(VAULT))
    assert rf.codex_runner_seed_sources(listed) == [dict(VAULT, secret='codexops/runners/h1/ci')]


def test_one_refresh_token_in_two_secrets_is_refused_naming_the_instances_only():
    doc, secrets = fc.chatgpt_seed('one')
    other = dict(doc, last_refresh='2026-01-01T00:00:00Z')
    found = instances({'name': 'a', 'codex_home': '/srv/a'}, {'name': 'b', 'codex_home': '/srv/b'},
                      codex_auth_seed_source=dict(VAULT))
    with pytest.raises(AnsibleFilterError) as caught:
        rf.codex_runner_args(found, 'codex_auth_seed', [], source_texts=[fc.dumps(doc), fc.dumps(other)])
    assert 'a and b' in caught.value.message and 'same refresh token' in caught.value.message
    assert not [secret for secret in secrets if secret in caught.value.message]


@pytest.mark.parametrize('source, expected', [
    ({'store': 'vault', 'token': 'hvs.FAKE-TOKEN-0123'}, 'a store credential never goes into a variable'),
    ({'store': 'aws_secretsmanager', 'secret_access_key': 'FAKE-KEY-0123'}, 'secret_access_key'),
    ({'store': 'vault', 'urll': 'x'}, 'unknown keys urll'),
    ({'store': 'consul'}, 'seed_source.store must be one of'),
    ({'store': 'file'}, 'absolute directory'),
    ({'store': 'vault', 'secret': 'a//b'}, 'seed_source.secret must be a secret name'),
    ('vault', 'seed_source must be a dict'),
])
def test_a_bad_source_is_refused_before_any_store_is_asked(source, expected):
    found = instances({'name': 'gh-1', 'codex_home': '/srv/gh-1', 'seed_source': source})
    with pytest.raises(AnsibleFilterError) as caught:
        rf.codex_runner_seed_sources(found)
    assert expected in caught.value.message and 'gh-1' in caught.value.message
    assert 'FAKE' not in caught.value.message


def test_two_instances_on_one_secret_are_refused_before_it_is_read():
    found = instances({'name': 'a', 'codex_home': '/srv/a', 'seed_source': dict(VAULT, secret='s')},
                      {'name': 'b', 'codex_home': '/srv/b', 'seed_source': dict(VAULT, secret='s', timeout=3)})
    with pytest.raises(AnsibleFilterError, match='instances a and b have the same seed_source'):
        rf.codex_runner_seed_sources(found)
    with pytest.raises(AnsibleFilterError, match='sets seed_source and seed_file'):
        rf.codex_runner_seed_sources(instances({'name': 'a', 'codex_home': '/srv/a', 'seed_file': '/f',
                                                'seed_source': dict(VAULT)}))
