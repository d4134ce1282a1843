# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The codex_auth role's runner-instance filters: _runner_instances' rules on the controller, the seed files read
in the order given back, one refresh token on two instances refused as the module refuses it, and the module
options of one run for the whole host. No refusal names a secret."""

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.filter import runners as rf

from support import fake_credentials as fc

KEY_SECRET = 'sk-API-SECRET-0123456789abcdef'


def role_variables(**changes):
    variables = {
        'codex_auth_user': 'ci', 'codex_auth_group': '', 'codex_auth_home': '~ci/.codex', 'codex_auth_method': 'seed',
        'codex_auth_seed_dir': '/inv/codex_seeds', 'codex_auth_seed_file': '/inv/codex_seeds/h1.json',
        'codex_auth_seed_content': '', 'codex_auth_access_token': '', 'codex_auth_api_key': '',
        'codex_auth_replace': 'never', 'codex_auth_environment_files': [],
    }
    variables.update(changes)
    return variables


def instances(*entries, **variables):
    return rf.codex_runner_instances(list(entries), role_variables(**variables), 'h1')


def test_the_filters_are_registered():
    assert sorted(rf.FilterModule().filters()) == ['codex_runner_args', 'codex_runner_daemon_reload',
                                                   'codex_runner_gitlab_script',
                                                   'codex_runner_health', 'codex_runner_instances',
                                                   'codex_runner_seed_files', 'codex_runner_seed_sources',
                                                   'codex_runner_writers']


def test_seed_files_are_the_default_paths_and_the_texts_come_back_in_order():
    one = fc.chatgpt_seed('one')[0]
    two = fc.chatgpt_seed('two')[0]
    three = fc.chatgpt_seed('three')[0]
    found = instances({'name': 'gh-1', 'codex_home': '/srv/gh-1'}, {'name': 'gh-2', 'user': 'gh', 'home': '/srv/gh-2'},
                      {'name': 'gl-1', 'codex_home': '/srv/gl-1', 'seed_content': fc.dumps(three)},
                      {'name': 'k', 'codex_home': '/srv/k', 'method': 'api_key', 'api_key': KEY_SECRET})
    assert rf.codex_runner_seed_files(found) == ['/inv/codex_seeds/h1/gh-1.json', '/inv/codex_seeds/h1/gh-2.json']
    args = rf.codex_runner_args(found, 'codex_auth_seed', [fc.dumps(one), fc.dumps(two)])
    assert [(entry['name'], entry['codex_home'], entry['owner']) for entry in args] == [
        ('gh-1', '/srv/gh-1', 'ci'), ('gh-2', '/srv/gh-2', 'gh'), ('gl-1', '/srv/gl-1', 'ci'), ('k', '/srv/k', 'ci')]
    assert [entry['content'] for entry in args[:3]] == [fc.dumps(one), fc.dumps(two), fc.dumps(three)]
    assert args[3]['content'] == {'auth_mode': 'apikey', 'OPENAI_API_KEY': KEY_SECRET}
    assert [entry['replace'] for entry in args] == ['never', 'never', 'never', 'different']
    assert [entry['allowed_auth_modes'] for entry in args] == [['chatgpt']] * 3 + [['apikey']]
    assert all('group' not in entry for entry in args)


def test_one_refresh_token_in_two_seeds_is_refused_naming_the_instances_only():
    doc, secrets = fc.chatgpt_seed('one')
    found = instances({'name': 'a', 'codex_home': '/srv/a'},
                      {'name': 'b', 'codex_home': '/srv/b', 'seed_content': dict(doc, last_refresh='2026-01-01T00:00:00Z')})
    with pytest.raises(AnsibleFilterError) as info:
        rf.codex_runner_args(found, 'codex_auth_seed', [fc.dumps(doc)])
    message = str(info.value)
    assert 'instances a and b have seeds with the same refresh token' in message
    assert not any(secret in message for secret in secrets)


def test_one_api_key_on_two_instances_is_allowed():
    doc = fc.apikey_seed('k')[0]
    found = instances({'name': 'a', 'codex_home': '/srv/a'}, {'name': 'b', 'codex_home': '/srv/b'})
    assert len(rf.codex_runner_args(found, 'codex_auth_seed', [fc.dumps(doc), fc.dumps(doc)])) == 2


def test_texts_must_match_the_seed_files():
    found = instances({'name': 'a', 'codex_home': '/srv/a'})
    with pytest.raises(AnsibleFilterError, match='0 seed texts for 1 seed files'):
        rf.codex_runner_args(found, 'codex_auth_seed', [])


def test_layout_problems_refuse_every_module_and_the_users():
    found = instances({'name': 'a', 'codex_home': '/srv/a'}, {'name': 'b', 'codex_home': '/srv/a/b'})
    for module in ('codex_auth_seed', 'codex_auth_verify', 'user'):
        with pytest.raises(AnsibleFilterError, match='lies inside'):
            rf.codex_runner_args(found, module, ['{}', '{}'] if module == 'codex_auth_seed' else None)


def test_verify_and_users_need_no_seed():
    found = instances({'name': 'a', 'codex_home': '/srv/a'},
                      {'name': 'b', 'user': 'gh', 'group': 'ci', 'codex_home': '/srv/b'}, codex_auth_seed_dir='')
    assert rf.codex_runner_args(found, 'codex_auth_verify') == [
        {'name': 'a', 'codex_home': '/srv/a', 'owner': 'ci', 'allowed_auth_modes': ['chatgpt'], 'environment_files': []},
        {'name': 'b', 'codex_home': '/srv/b', 'owner': 'gh', 'allowed_auth_modes': ['chatgpt'], 'environment_files': []}]
    assert rf.codex_runner_args(found, 'user') == [{'name': 'ci', 'group': None}, {'name': 'gh', 'group': 'ci'}]


TOKEN_A = 'at-SECRET-TOKEN-AAAA'
TOKEN_B = 'at-SECRET-TOKEN-BBBB'


def mixed(**changes):
    """A seed instance, two access-token instances (each its own token), an API key instance."""
    entries = [{'name': 'seed-1', 'codex_home': '/srv/s1', 'seed_content': fc.dumps(fc.chatgpt_seed('s1')[0])},
               {'name': 'tok-1', 'user': 'ci', 'codex_home': '/srv/t1', 'method': 'access_token',
                'access_token': TOKEN_A},
               {'name': 'tok-2', 'user': 'gh', 'group': 'ci', 'codex_home': '/srv/t2', 'method': 'access_token',
                'access_token': TOKEN_B},
               {'name': 'key', 'codex_home': '/srv/k', 'method': 'api_key', 'api_key': KEY_SECRET}]
    for entry in entries:
        entry.update(changes.get(entry['name'], {}))
    return instances(*entries)


def test_access_token_instances_go_to_the_login_module_and_the_others_to_the_seed_module():
    found = mixed()
    assert rf.codex_runner_writers(found) == ['codex_auth_seed', 'codex_access_token_login']
    assert rf.codex_runner_writers(found, {'tok-2': 'always'}) == ['codex_access_token_login']
    assert rf.codex_runner_writers(found, {'seed-1': 'always'}) == ['codex_auth_seed']
    assert rf.codex_runner_writers(instances({'name': 'a', 'codex_home': '/srv/a'})) == ['codex_auth_seed']
    logins = rf.codex_runner_args(found, 'codex_access_token_login', [])
    assert logins == [
        {'name': 'tok-1', 'codex_home': '/srv/t1', 'owner': 'ci', 'access_token': TOKEN_A,
         'allowed_auth_modes': ['personalAccessToken', 'agentIdentity'], 'environment_files': []},
        {'name': 'tok-2', 'codex_home': '/srv/t2', 'owner': 'gh', 'group': 'ci', 'access_token': TOKEN_B,
         'allowed_auth_modes': ['personalAccessToken', 'agentIdentity'], 'environment_files': []}]
    seeds = rf.codex_runner_args(found, 'codex_auth_seed', [])
    assert [entry['name'] for entry in seeds] == ['seed-1', 'key']
    assert not any('access_token' in entry for entry in seeds)
    # Verify reads every instance, each with the modes its method may leave.
    verify = rf.codex_runner_args(found, 'codex_auth_verify')
    assert [(entry['name'], entry['allowed_auth_modes']) for entry in verify] == [
        ('seed-1', ['chatgpt']), ('tok-1', ['personalAccessToken', 'agentIdentity']),
        ('tok-2', ['personalAccessToken', 'agentIdentity']), ('key', ['apikey'])]
    assert TOKEN_A not in json.dumps(verify)
    assert rf.codex_runner_args(found, 'user', []) == [{'name': 'ci', 'group': None}, {'name': 'gh', 'group': 'ci'}]


def test_a_reseed_may_name_either_kind_and_each_writer_gets_its_own():
    found = mixed()
    assert [entry['name'] for entry in rf.codex_runner_args(found, 'codex_access_token_login', [],
                                                            {'tok-2': 'always', 'seed-1': 'always'})] == ['tok-2']
    assert [(entry['name'], entry['replace']) for entry in rf.codex_runner_args(
        found, 'codex_auth_seed', [], {'tok-2': 'always', 'seed-1': 'always'})] == [('seed-1', 'always')]
    assert rf.codex_runner_args(found, 'codex_access_token_login', [], {'seed-1': 'invalid'}) == []
    with pytest.raises(AnsibleFilterError, match='no runner instance named nope'):
        rf.codex_runner_args(found, 'codex_access_token_login', [], {'nope': 'always'})


@pytest.mark.parametrize('module', ['codex_auth_seed', 'codex_access_token_login', 'user'])
def test_one_access_token_on_two_instances_is_refused_by_every_writer_naming_them_never_the_token(module):
    found = mixed(**{'tok-2': {'access_token': '  %s\n' % TOKEN_A}})
    with pytest.raises(AnsibleFilterError) as info:
        rf.codex_runner_args(found, module, [])
    message = str(info.value)
    assert 'instances tok-1 and tok-2 have the same access_token' in message
    assert TOKEN_A not in message and TOKEN_B not in message
    # Reading needs no credential: verify reads the instances as they are (and reports what it finds).
    assert len(rf.codex_runner_args(found, 'codex_auth_verify')) == 4


def test_an_access_token_inherited_by_two_instances_is_one_token_on_two():
    found = instances({'name': 'a', 'codex_home': '/srv/a'}, {'name': 'b', 'codex_home': '/srv/b'},
                      codex_auth_method='access_token', codex_auth_access_token=TOKEN_A)
    with pytest.raises(AnsibleFilterError, match='instances a and b have the same access_token') as info:
        rf.codex_runner_args(found, 'codex_access_token_login', [])
    assert TOKEN_A not in str(info.value)
    # One instance may take the host's token.
    one = instances({'name': 'a', 'codex_home': '/srv/a'}, codex_auth_method='access_token',
                    codex_auth_access_token=TOKEN_A)
    assert rf.codex_runner_args(one, 'codex_access_token_login', [])[0]['access_token'] == TOKEN_A


@pytest.mark.parametrize('token', ['', '   ', None])
def test_an_access_token_instance_without_a_token_is_refused_naming_it(token):
    found = mixed(**{'tok-2': {'access_token': token}})
    for module in ('codex_auth_seed', 'codex_access_token_login'):
        with pytest.raises(AnsibleFilterError, match='tok-2 uses the access_token method but') as info:
            rf.codex_runner_args(found, module, [])
        assert TOKEN_A not in str(info.value)


def test_a_runner_environment_on_an_access_token_instance_goes_to_its_login():
    spec = {'systemd_unit': 'gh.service', 'github_runner_dir': '/srv/gh-1'}
    found = mixed(**{'tok-1': {'runner_environment': spec}})
    entries = rf.codex_runner_args(found, 'codex_access_token_login', [])
    assert [entry['runner_environment'] for entry in entries if entry['name'] == 'tok-1'] == [spec]
    verify = rf.codex_runner_args(found, 'codex_auth_verify')
    assert [entry['runner_environment'] for entry in verify if entry['name'] == 'tok-1'] == [spec]
    assert rf.codex_runner_daemon_reload({'runners': [{'name': 'tok-1', 'runner_environment': {
        'changed': True, 'daemon_reload': True}}]}) is True


def test_unreadable_lists_are_refused():
    with pytest.raises(AnsibleFilterError, match='must be a list'):
        rf.codex_runner_instances({'name': 'a'}, role_variables(), 'h1')
    with pytest.raises(AnsibleFilterError):
        rf.codex_runner_args('nope', 'codex_auth_seed')
    with pytest.raises(AnsibleFilterError, match='module must be one of'):
        rf.codex_runner_args([], 'codex_config')


def test_health_rows_from_either_module():
    seeded = {'changed': True, 'runners': [{'name': 'a', 'codex_home': '/srv/a', 'action': 'created',
                                            'auth': {'healthy': True, 'auth_mode': 'chatgpt'}}]}
    verified = {'changed': False, 'runners': [{'name': 'a', 'codex_home': '/srv/a', 'healthy': False,
                                               'problems': [{'code': 'auth_missing'}]}]}
    assert rf.codex_runner_health(seeded) == [{'name': 'a', 'codex_home': '/srv/a', 'healthy': True,
                                               'auth_mode': 'chatgpt'}]
    assert rf.codex_runner_health(verified) == [{'name': 'a', 'codex_home': '/srv/a', 'healthy': False,
                                                 'problems': [{'code': 'auth_missing'}]}]
    assert rf.codex_runner_health({'skipped': True}) == [] == rf.codex_runner_health(None)
    json.dumps(rf.codex_runner_health(seeded))


def test_users_given_the_seed_texts_are_refused_as_the_seed_run_refuses_them():
    doc = fc.chatgpt_seed('one')[0]
    found = instances({'name': 'a', 'codex_home': '/srv/a'}, {'name': 'b', 'user': 'gh', 'codex_home': '/srv/b'})
    with pytest.raises(AnsibleFilterError, match='same refresh token'):
        rf.codex_runner_args(found, 'user', [fc.dumps(doc), fc.dumps(doc)])
    other = fc.chatgpt_seed('two')[0]
    assert rf.codex_runner_args(found, 'user', [fc.dumps(doc), fc.dumps(other)]) == [
        {'name': 'ci', 'group': None}, {'name': 'gh', 'group': None}]


def test_only_narrows_the_run_after_the_whole_list_is_refused():
    one = fc.chatgpt_seed('one')[0]
    two = fc.chatgpt_seed('two')[0]
    found = instances({'name': 'a', 'codex_home': '/srv/a'}, {'name': 'b', 'codex_home': '/srv/b'})
    args = rf.codex_runner_args(found, 'codex_auth_seed', [fc.dumps(one), fc.dumps(two)], {'b': 'always'})
    assert [(entry['name'], entry['replace']) for entry in args] == [('b', 'always')]
    assert len(rf.codex_runner_args(found, 'codex_auth_seed', [fc.dumps(one), fc.dumps(two)], {})) == 2
    # The instances left out still count: one refresh token on a and b is refused though only b is reseeded.
    with pytest.raises(AnsibleFilterError, match='instances a and b have seeds with the same refresh token'):
        rf.codex_runner_args(found, 'codex_auth_seed', [fc.dumps(one), fc.dumps(one)], {'b': 'always'})
    with pytest.raises(AnsibleFilterError, match='no runner instance named c'):
        rf.codex_runner_args(found, 'codex_auth_seed', [fc.dumps(one), fc.dumps(two)], {'c': 'always'})


def test_writeback_gets_each_seed_file_instance_with_its_seed_file_as_dest():
    """codex_auth_writeback's runners: the instances that read a seed file, each with that file (the one rule that
    names it, codex_runner_seed_files'), and nothing that holds a credential."""
    found = instances({'name': 'gh-1', 'codex_home': '/srv/gh-1'},
                      {'name': 'gh-2', 'user': 'gh', 'home': '/srv/gh-2', 'seed_file': '/elsewhere/gh-2.json'},
                      {'name': 'gl-1', 'codex_home': '/srv/gl-1', 'seed_content': fc.dumps(fc.chatgpt_seed('c')[0])},
                      {'name': 'k', 'codex_home': '/srv/k', 'method': 'api_key', 'api_key': KEY_SECRET},
                      {'name': 't', 'codex_home': '/srv/t', 'method': 'access_token', 'access_token': 'at-SECRET-TOKEN'})
    args = rf.codex_runner_args(found, 'codex_auth_writeback')
    assert args == [{'name': 'gh-1', 'codex_home': '/srv/gh-1', 'owner': 'ci', 'dest': '/inv/codex_seeds/h1/gh-1.json'},
                    {'name': 'gh-2', 'codex_home': '/srv/gh-2', 'owner': 'gh', 'dest': '/elsewhere/gh-2.json'}]
    assert [entry['dest'] for entry in args] == rf.codex_runner_seed_files(found)
    # A listed default instance writes back into the host's seed file, as the single runner does.
    assert rf.codex_runner_args(instances({'name': 'default'}), 'codex_auth_writeback') == [
        {'name': 'default', 'codex_home': '~ci/.codex', 'owner': 'ci', 'dest': '/inv/codex_seeds/h1.json'}]


def test_writeback_leaves_one_seed_file_on_two_instances_to_the_plugin_and_refuses_the_layout():
    shared = instances({'name': 'a', 'codex_home': '/srv/a', 'seed_file': '/inv/s.json'},
                       {'name': 'b', 'codex_home': '/srv/b', 'seed_file': '/inv/s.json'})
    # codex_auth_writeback refuses it itself, naming host/instance, before anything is read.
    assert [entry['dest'] for entry in rf.codex_runner_args(shared, 'codex_auth_writeback')] == ['/inv/s.json'] * 2
    nested = instances({'name': 'a', 'codex_home': '/srv/a'}, {'name': 'b', 'codex_home': '/srv/a/b'})
    with pytest.raises(AnsibleFilterError, match='lies inside'):
        rf.codex_runner_args(nested, 'codex_auth_writeback')


def test_one_gitlab_script_for_the_slots_of_both_writers():
    """A host whose GitLab slots are served by seed and access-token instances: one script, every slot, by the
    modules' own rule (the seed run's script alone would send the access-token slots' jobs to `exit 1`)."""
    from ansible_collections.codexops.runner.plugins.module_utils import _runner_environment
    seeded = {'gitlab_slots': [[0, '/srv/g/slot-0'], [2, '/srv/g/slot 2']]}
    logged_in = {'gitlab_slots': [[1, '/srv/g/slot-1']]}
    script = rf.codex_runner_gitlab_script([seeded, logged_in])
    every_slot = [[0, '/srv/g/slot-0'], [1, '/srv/g/slot-1'], [2, '/srv/g/slot 2']]
    assert script == _runner_environment.gitlab_script(every_slot)
    assert '0) export CODEX_HOME=/srv/g/slot-0 ;;' in script and "2) export CODEX_HOME='/srv/g/slot 2' ;;" in script
    assert '1) export CODEX_HOME=/srv/g/slot-1 ;;' in script
    # One writer, or the same result twice (a host with access-token instances only), gives that writer's script.
    assert (rf.codex_runner_gitlab_script([logged_in, logged_in])
            == _runner_environment.gitlab_script([[1, '/srv/g/slot-1']]))
    assert rf.codex_runner_gitlab_script(seeded) == _runner_environment.gitlab_script(seeded['gitlab_slots'])
    # Skipped or missing results are ignored; no slot at all keeps what was recorded before.
    assert rf.codex_runner_gitlab_script([{'skipped': True}, None], 'before') == 'before'
    assert rf.codex_runner_gitlab_script([]) == ''


def test_a_gitlab_slot_served_twice_or_a_bad_pair_is_refused():
    with pytest.raises(AnsibleFilterError, match='slot 1 is served by two'):
        rf.codex_runner_gitlab_script([{'gitlab_slots': [[1, '/a']]}, {'gitlab_slots': [[1, '/b']]}])
    for bad in ([['1', '/a']], [[True, '/a']], [[1]], ['x']):
        with pytest.raises(AnsibleFilterError, match='pairs'):
            rf.codex_runner_gitlab_script([{'gitlab_slots': bad}])


def test_the_writeback_role_completes_instances_with_every_seed_variable():
    """The write-back role completes its instances from codex_auth's variables (roles/codex_writeback/vars/main.yml):
    every variable that decides where an instance's seed comes from must be there, or an instance whose seed comes
    from the host's secret store would be written back into a seed file that provisioning never reads."""
    import os
    import yaml
    from ansible_collections.codexops.runner.plugins.module_utils import _runner_instances
    root = os.path.dirname(os.path.abspath(rf.__file__))
    with open(os.path.join(root, '..', '..', 'roles', 'codex_writeback', 'vars', 'main.yml')) as handle:
        mapping = yaml.safe_load(handle)['__codex_writeback_instance_variables']
    assert set(_runner_instances.VARIABLES[field] for field in _runner_instances.SEED_FIELDS) <= set(mapping)
    # And what it means: an instance reading the host's store has no file to write back into.
    instances = rf.codex_runner_instances([{'name': 'default'}, {'name': 'gh-1', 'codex_home': '/srv/gh-1/.codex'}],
                                          {'codex_auth_user': 'ci', 'codex_auth_home': '/home/ci/.codex',
                                           'codex_auth_seed_dir': '/inv/codex_seeds',
                                           'codex_auth_seed_source': {'store': 'vault'}}, 'h1')
    assert rf.codex_runner_args(instances, 'codex_auth_writeback') == []


def test_the_login_reads_no_seed_and_is_not_held_up_by_one():
    """The access-token login (and its rotation) needs no seed text: a seed file or store that is not read, or a seed
    named twice, is the seed run's to refuse; the tokens are still the login's."""
    shared_file = {'seed_content': None, 'seed_file': '/inv/codex_seeds/h1/seed-1.json'}
    found = mixed(**{'seed-1': shared_file, 'key': dict(shared_file, method='seed', api_key=None)})
    assert [entry['name'] for entry in rf.codex_runner_args(found, 'codex_access_token_login')] == ['tok-1', 'tok-2']
    with pytest.raises(AnsibleFilterError, match='0 seed texts for 2 seed files'):
        rf.codex_runner_args(found, 'codex_auth_seed', [])
    with pytest.raises(AnsibleFilterError, match='tok-2 uses the access_token method but'):
        rf.codex_runner_args(mixed(**{'seed-1': shared_file, 'tok-2': {'access_token': ''}}),
                             'codex_access_token_login')
