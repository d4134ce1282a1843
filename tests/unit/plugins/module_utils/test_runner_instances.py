# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runner instances (_runner_instances): the single-runner variables are the one default instance, a list is
completed from the host, and what must be refused is found before anything is written, naming the instances
and never a secret. Their keepalive names come from keepalive_status.keepalive_name, the one rule."""

import hashlib
import json

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import _runner_instances as ri
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import errors
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status as ks

from support import fake_credentials as fc

SEED_SECRET = 'rt-SEED-SECRET-0123456789abcdef'
TOKEN_SECRET = 'at-ACCESS-SECRET-0123456789abcdef'
KEY_SECRET = 'sk-API-SECRET-0123456789abcdef'


def role_variables(**changes):
    """The codex_auth role's variables for host h1 as the role sees them, templated with its defaults."""
    variables = {
        'codex_auth_user': 'ci',
        'codex_auth_group': '',
        'codex_auth_home': '~ci/.codex',
        'codex_auth_method': 'seed',
        'codex_auth_seed_dir': '/inv/codex_seeds',
        'codex_auth_seed_file': '/inv/codex_seeds/h1.json',
        'codex_auth_seed_content': '',
        'codex_auth_access_token': '',
        'codex_auth_api_key': '',
        'codex_auth_replace': 'never',
        'codex_auth_environment_files': [],
    }
    variables.update(changes)
    return variables


def listed(*entries, **variables):
    return ri.normalise(list(entries), role_variables(**variables), host='h1')


def codes(found):
    return sorted(item['code'] for item in found)


# -- the keepalive name: one rule, extended by the instance ---------------------------------------------------

def short_hash(text):
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]


@pytest.mark.parametrize('home', ['~ci/.codex', '/home/ci/.codex', '/srv/runner-2/.codex', '~ci/other'])
def test_default_instance_keeps_todays_keepalive_name(home):
    today = ks.keepalive_name('ci', home)
    assert ks.keepalive_name('ci', home, None) == today
    assert ks.keepalive_name('ci', home, ri.DEFAULT_INSTANCE) == today
    assert ks.keepalive_name('ci', '~ci/.codex', 'default') == 'codex-keepalive-ci'


def test_instance_keepalive_name_comes_from_the_instance_not_its_home():
    name = ks.keepalive_name('ci', '/srv/gh-2/.codex', 'gh-2')
    assert name == 'codex-keepalive-ci-gh-2-%s' % short_hash('ci\0gh-2')
    # Moving the instance's CODEX_HOME keeps its keepalive.
    assert ks.keepalive_name('ci', '/data/gh-2/.codex', 'gh-2') == name
    assert ks.keepalive_name('gh', '/srv/gh-2/.codex', 'gh-2') != name


def test_instance_keepalive_names_do_not_collide_where_the_readable_part_does():
    # Both read codex-keepalive-ci-a-b-...: the hash of the unambiguous pair tells them apart.
    assert ks.keepalive_name('ci', '/x', 'a-b') != ks.keepalive_name('ci-a', '/x', 'b')


def test_instance_keepalive_names_are_unique_and_never_a_single_runner_name():
    users = ['ci', 'ci-a', 'ci-a-b', 'gh', 'runner_1']
    instances = ['a', 'b', 'a-b', 'b-1', 'default-2', '1', 'slot_0']
    homes = ['~%s/.codex', '/home/%s/.codex', '/srv/%s/one', '/srv/%s/two']
    named = [ks.keepalive_name(user, '/anywhere', instance) for user in users for instance in instances]
    assert len(set(named)) == len(named)
    single = set(ks.keepalive_name(user, home % user) for user in users for home in homes)
    assert not single & set(named)


@pytest.mark.parametrize('instance', ['', 'Gh', 'a.b', 'a/b', '../x', '-a', '_a', 'a b', 'a\n', 'a' * 33, 7, b'gh'])
def test_keepalive_name_refuses_what_is_not_an_instance_name(instance):
    with pytest.raises(ValueError):
        ks.keepalive_name('ci', '/srv/x', instance)


def test_instance_name_rule_takes_what_the_issue_needs():
    for name in ('a', '0', 'gh-runner-2', 'slot_10', 'a' * 32):
        assert ks.INSTANCE_NAME.fullmatch(name)
        assert ks.keepalive_name('ci', '/x', name).startswith('codex-keepalive-ci-%s-' % name)


def test_keepalive_name_of_a_normalised_instance_asks_the_one_rule():
    default, = ri.normalise(None, role_variables())
    assert ri.keepalive_name(default) == 'codex-keepalive-ci'
    one, two = listed({'name': 'gh-1', 'codex_home': '/srv/gh-1'}, {'name': 'gh-2', 'codex_home': '/srv/gh-2'})
    assert ri.keepalive_name(one) == ks.keepalive_name('ci', '/srv/gh-1', 'gh-1')
    assert ri.keepalive_name(one) != ri.keepalive_name(two)


# -- the default instance: every existing inventory means what it meant -------------------------------------

def test_no_list_is_the_default_instance_of_the_single_runner_variables():
    for runners in (None, []):
        instances = ri.normalise(runners, role_variables(), host='h1')
        assert instances == [{
            'name': 'default', 'user': 'ci', 'group': '', 'codex_home': '~ci/.codex', 'method': 'seed',
            'seed_file': '/inv/codex_seeds/h1.json', 'seed_content': '', 'seed_source': None, 'access_token': '', 'api_key': '',
            'replace': 'never', 'environment_files': [], 'runner_environment': {},
        }]
        assert ri.check(instances, lookup={'ci': object()}.__getitem__) == instances


def test_default_instance_home_defaults_to_the_users_and_keeps_the_given_form():
    assert ri.default_instance({'codex_auth_user': 'ci'})['codex_home'] == '~ci/.codex'
    # As given, never normalised: the default keepalive name hashes the home as given.
    assert ri.default_instance(role_variables(codex_auth_home='/srv/ci//.codex/'))['codex_home'] == '/srv/ci//.codex/'
    assert ri.default_instance({'codex_auth_user': 'ci'})['method'] == 'seed'


def test_default_instance_prefers_seed_content_to_the_seed_file_as_the_role_does():
    instance = ri.default_instance(role_variables(codex_auth_seed_content=SEED_SECRET))
    assert instance['seed_content'] == SEED_SECRET and instance['seed_file'] is None
    assert ri.problems([instance]) == []


def test_default_instance_of_other_methods():
    token = ri.default_instance(role_variables(codex_auth_method='access_token', codex_auth_access_token=TOKEN_SECRET))
    assert ri.problems([token]) == []
    missing = ri.default_instance(role_variables(codex_auth_method='api_key'))
    assert codes(ri.problems([missing])) == ['runner_instance_credential_missing']


def test_default_instance_without_a_user_is_refused():
    instance = ri.default_instance({})
    assert codes(ri.problems([instance])) == ['runner_instance_credential_missing', 'runner_instance_home_invalid',
                                              'runner_instance_user_invalid']


# -- a list, completed from the host ---------------------------------------------------------------------

def test_listed_instances_inherit_the_host_but_never_its_seed():
    one, two = listed({'name': 'gh-1', 'codex_home': '/srv/gh-1/.codex'},
                      {'name': 'gh-2', 'home': '/srv/gh-2/.codex', 'user': 'gh', 'replace': 'older'},
                      codex_auth_replace='invalid', codex_auth_environment_files=['/etc/environment'],
                      codex_auth_group='runners')
    assert one['user'] == 'ci' and two['user'] == 'gh'
    assert one['replace'] == 'invalid' and two['replace'] == 'older'
    assert one['group'] == two['group'] == 'runners'
    assert one['environment_files'] == two['environment_files'] == ['/etc/environment']
    assert two['codex_home'] == '/srv/gh-2/.codex'
    assert one['seed_file'] == '/inv/codex_seeds/h1/gh-1.json'
    assert two['seed_file'] == '/inv/codex_seeds/h1/gh-2.json'
    assert ri.problems([one, two]) == []


def test_listed_instances_do_not_inherit_the_hosts_seed_content():
    one, = listed({'name': 'gh-1', 'codex_home': '/srv/gh-1'}, codex_auth_seed_content=SEED_SECRET)
    assert one['seed_content'] is None and one['seed_file'] == '/inv/codex_seeds/h1/gh-1.json'


def test_listed_instances_may_share_an_api_key_but_not_an_access_token():
    one, two = listed({'name': 'a', 'codex_home': '/srv/a'}, {'name': 'b', 'codex_home': '/srv/b'},
                      codex_auth_method='api_key', codex_auth_api_key=TOKEN_SECRET)
    assert one['api_key'] == two['api_key'] == TOKEN_SECRET
    assert ri.problems([one, two]) == []
    # An access token is rotated by revoking it: one token on two instances would cut both off at once.
    one, two = listed({'name': 'a', 'codex_home': '/srv/a'}, {'name': 'b', 'codex_home': '/srv/b'},
                      codex_auth_method='access_token', codex_auth_access_token=TOKEN_SECRET)
    assert one['access_token'] == two['access_token'] == TOKEN_SECRET
    found = ri.problems([one, two])
    assert [(item['code'], item['instances']) for item in found] == [('runner_instance_access_token_shared', ['a', 'b'])]
    assert TOKEN_SECRET not in json.dumps(found)
    two['access_token'] = TOKEN_SECRET + '-other'
    assert ri.problems([one, two]) == []


def test_listed_instance_home_defaults_to_its_users():
    one, two = listed({'name': 'a'}, {'name': 'b', 'user': 'gh'})
    assert one['codex_home'] == '~ci/.codex' and two['codex_home'] == '~gh/.codex'
    assert ri.problems([one, two]) == []


def test_listed_default_is_the_default_instance_with_changes():
    default, other = listed({'name': 'default'}, {'name': 'gh-2', 'codex_home': '/srv/gh-2'})
    assert default == ri.default_instance(role_variables())
    assert ri.keepalive_name(default) == 'codex-keepalive-ci'
    changed, = listed({'name': 'default', 'user': 'gh', 'seed_content': SEED_SECRET})
    assert changed['codex_home'] == '~gh/.codex'
    assert changed['seed_content'] == SEED_SECRET and changed['seed_file'] is None
    kept, = listed({'name': 'default', 'user': 'gh'}, codex_auth_home='/srv/ci')
    assert kept['codex_home'] == '/srv/ci'


def test_listed_instance_may_not_give_home_twice():
    with pytest.raises(ri.InstanceError) as info:
        listed({'name': 'a', 'home': '/srv/a', 'codex_home': '/srv/b'})
    assert info.value.code == 'runner_instance_field' and 'a sets both home and codex_home' in info.value.message


def test_unknown_fields_are_named_without_their_values():
    with pytest.raises(ri.InstanceError) as info:
        listed({'name': 'a', 'acess_token': TOKEN_SECRET, 'seed': SEED_SECRET})
    assert 'a has unknown fields acess_token, seed' in info.value.message
    assert TOKEN_SECRET not in info.value.message and SEED_SECRET not in info.value.message


def test_a_field_given_as_none_is_not_given():
    instance, = listed({'name': 'a', 'user': None, 'codex_home': None})
    assert instance['user'] == 'ci' and instance['codex_home'] == '~ci/.codex'


def test_a_listed_instance_without_a_name_is_refused():
    instance, = listed({'codex_home': '/srv/a'})
    found = ri.problems([instance])
    # Its default seed file needs a name too.
    assert codes(found) == ['runner_instance_credential_missing', 'runner_instance_name_invalid']
    assert [item['instances'] for item in found] == [['instance 1'], ['instance 1']]


@pytest.mark.parametrize('runners, code', [
    ({'name': 'a'}, 'runner_instances_not_list'),
    ('a,b', 'runner_instances_not_list'),
    ([{'name': 'a'}, 'b'], 'runner_instance_not_dict'),
    ([{'name': 'r%d' % i, 'codex_home': '/srv/r%d' % i} for i in range(ri.MAX_INSTANCES + 1)],
     'runner_instances_too_many'),
])
def test_shapes_that_cannot_be_read_are_refused(runners, code):
    with pytest.raises(ri.InstanceError) as info:
        ri.normalise(runners, role_variables(), host='h1')
    assert info.value.code == code
    assert isinstance(info.value, errors.CodexOpsError)


def test_the_most_instances_a_host_may_carry():
    runners = [{'name': 'r%d' % i, 'codex_home': '/srv/r%d' % i} for i in range(ri.MAX_INSTANCES)]
    assert ri.problems(ri.normalise(runners, role_variables(), host='h1')) == []


# -- what is refused before anything is written ----------------------------------------------------------

def test_two_instances_with_one_name():
    found = ri.problems(listed({'name': 'gh', 'codex_home': '/srv/a', 'seed_file': '/s/a.json'},
                               {'name': 'b', 'codex_home': '/srv/b'},
                               {'name': 'gh', 'codex_home': '/srv/c', 'seed_file': '/s/c.json'}))
    assert codes(found) == ['runner_instance_name_duplicate']
    assert found[0]['instances'] == ['gh (instance 1)', 'gh (instance 3)']
    assert 'gh (instance 1) and gh (instance 3) have the same name gh' in found[0]['message']


@pytest.mark.parametrize('first, second', [
    ('/srv/a', '/srv/a'),
    ('/srv/a', '/srv/a/'),
    ('/srv/a', '/srv//a/./'),
    ('~ci/.codex', '~ci//.codex'),
])
def test_two_instances_with_one_home(first, second):
    found = ri.problems(listed({'name': 'a', 'codex_home': first}, {'name': 'b', 'codex_home': second}))
    assert codes(found) == ['runner_instance_home_duplicate']
    assert found[0]['instances'] == ['a', 'b'] and 'instances a and b have the same CODEX_HOME' in found[0]['message']


def test_two_default_homes_of_one_user():
    found = ri.problems(listed({'name': 'a'}, {'name': 'b'}))
    assert codes(found) == ['runner_instance_home_duplicate']


@pytest.mark.parametrize('outer, inner', [
    ('/srv/a', '/srv/a/b'),
    ('/srv/a/', '/srv/a/b/c'),
    ('/', '/srv/b'),
    ('~ci', '~ci/.codex'),
])
def test_a_home_inside_another(outer, inner):
    found = ri.problems(listed({'name': 'in', 'codex_home': inner}, {'name': 'out', 'codex_home': outer}))
    assert codes(found) == ['runner_instance_home_nested']
    assert found[0]['instances'] == ['in', 'out']
    assert 'the CODEX_HOME of instance in lies inside that of instance out' in found[0]['message']


@pytest.mark.parametrize('first, second', [
    ('/srv/a', '/srv/ab'),
    ('/srv/a-1', '/srv/a/1'),
    ('~ci/.codex', '~gh/.codex'),
    ('~ci/.codex', '/srv/ci/.codex'),
])
def test_side_by_side_homes_are_fine(first, second):
    assert ri.problems(listed({'name': 'a', 'codex_home': first}, {'name': 'b', 'codex_home': second})) == []


def test_expanded_homes_are_compared_when_the_host_knows_them():
    instances = listed({'name': 'a', 'codex_home': '~ci/.codex'}, {'name': 'b', 'codex_home': '/home/ci/.codex'},
                       {'name': 'c', 'codex_home': '/home/ci/.codex/c'})
    homes = {'~ci': '/home/ci'}
    assert codes(ri.problems(instances)) == ['runner_instance_home_nested']
    expanded = ri.problems(instances, expand=homes.get)
    assert codes(expanded) == ['runner_instance_home_duplicate', 'runner_instance_home_nested',
                               'runner_instance_home_nested']
    # An unknown ~USER stays a root of its own.
    assert ri.home_key('~nobody/x', expand=homes.get) == ('~nobody', 'x')


@pytest.mark.parametrize('home', ['relative/.codex', '.codex', '/srv/../etc', '~ci/../root/.codex', '/a\0b', 5])
def test_a_home_that_is_not_absolute_or_climbs(home):
    found = ri.problems(listed({'name': 'a', 'codex_home': home}))
    assert codes(found) == ['runner_instance_home_invalid']
    assert ri.home_key(home) is None


def test_a_blank_home_is_the_users_default():
    instance, = listed({'name': 'a', 'codex_home': ''})
    assert instance['codex_home'] == '~ci/.codex'
    assert ri.home_key('') is None and ri.home_key(None) is None


@pytest.mark.parametrize('name', ['Gh', 'a.b', 'a/b', '-a', 'a b', 'a\n', 'a' * 33, 7, '', None])
def test_invalid_names_are_refused_without_being_repeated(name):
    found = ri.problems(listed({'name': name, 'codex_home': '/srv/a', 'seed_file': '/s/a.json'}))
    assert codes(found) == ['runner_instance_name_invalid']
    assert found[0]['instances'] == ['instance 1']
    if isinstance(name, str) and name:
        assert name not in found[0]['message'].replace('instance', '')


@pytest.mark.parametrize('user', ['', 'a/b', 'a:b', 'a b', 'a\nb', '-a', '..', 5])
def test_invalid_users_are_refused(user):
    found = ri.problems(listed({'name': 'a', 'user': user, 'codex_home': '/srv/a'}))
    assert 'runner_instance_user_invalid' in codes(found)


@pytest.mark.parametrize('entry, code', [
    ({'method': 'password'}, 'runner_instance_method_invalid'),
    ({'method': 'api_key'}, 'runner_instance_credential_missing'),
    ({'method': 'access_token', 'access_token': ''}, 'runner_instance_credential_missing'),
    ({'method': 'seed', 'seed_file': '/a.json', 'seed_content': SEED_SECRET}, 'runner_instance_field'),
    ({'environment_files': '/etc/environment'}, 'runner_instance_field'),
    ({'environment_files': ['']}, 'runner_instance_field'),
    ({'group': ['a']}, 'runner_instance_field'),
])
def test_method_and_field_problems(entry, code):
    found = ri.problems(listed(dict(entry, name='a', codex_home='/srv/a')))
    assert codes(found) == [code]
    assert found[0]['instances'] == ['a']


def test_a_seed_with_no_seed_dir_is_missing():
    instances = ri.normalise([{'name': 'a', 'codex_home': '/srv/a'}], role_variables(codex_auth_seed_dir=''),
                             host='h1')
    assert codes(ri.problems(instances)) == ['runner_instance_credential_missing']


def test_one_seed_on_two_instances_is_refused_without_showing_it():
    found = ri.problems(listed({'name': 'a', 'codex_home': '/srv/a', 'seed_content': SEED_SECRET},
                               {'name': 'b', 'codex_home': '/srv/b', 'seed_content': SEED_SECRET},
                               {'name': 'c', 'codex_home': '/srv/c', 'seed_file': '/s/one.json'},
                               {'name': 'd', 'codex_home': '/srv/d', 'seed_file': '/s/one.json'},
                               {'name': 'e', 'codex_home': '/srv/e', 'seed_content': {'tokens': {'x': 1}}},
                               {'name': 'f', 'codex_home': '/srv/f', 'seed_content': {'tokens': {'x': 1}}}))
    # None of these can be read as an auth.json (c and d are files not read yet): compared as given.
    assert codes(found) == ['runner_instance_seed_shared'] * 3
    assert [item['instances'] for item in found] == [['c', 'd'], ['a', 'b'], ['e', 'f']]
    assert SEED_SECRET not in json.dumps(found)


def test_different_seeds_are_fine():
    assert ri.problems(listed({'name': 'a', 'codex_home': '/srv/a', 'seed_content': SEED_SECRET},
                              {'name': 'b', 'codex_home': '/srv/b', 'seed_content': SEED_SECRET + 'x'})) == []


def test_every_problem_is_reported_at_once():
    found = ri.problems(listed({'name': 'a', 'codex_home': '/srv/a'}, {'name': 'a', 'codex_home': '/srv/a/x'},
                               {'name': 'Bad', 'codex_home': 'rel', 'method': 'api_key'}))
    assert codes(found) == ['runner_instance_credential_missing', 'runner_instance_home_invalid',
                            'runner_instance_home_nested', 'runner_instance_name_duplicate',
                            'runner_instance_name_invalid', 'runner_instance_seed_shared']


# -- users the host does not have ------------------------------------------------------------------------

def test_unknown_users_are_named_with_their_instances():
    users = {'ci': object(), '1001': object()}
    instances = listed({'name': 'a', 'codex_home': '/srv/a'}, {'name': 'b', 'user': 'gh', 'codex_home': '/srv/b'},
                       {'name': 'c', 'user': 'gh', 'codex_home': '/srv/c'},
                       {'name': 'd', 'user': 'gl', 'codex_home': '/srv/d'},
                       {'name': 'e', 'user': '1001', 'codex_home': '/srv/e'})
    found = ri.user_problems(instances, users.__getitem__)
    assert [(item['code'], item['instances']) for item in found] == [
        ('runner_instance_user_unknown', ['b', 'c']), ('runner_instance_user_unknown', ['d'])]
    assert 'instances b and c run as user gh, which does not exist on this host' in found[0]['message']
    assert 'instance d runs as user gl, which does not exist' in found[1]['message']


def test_a_lookup_may_answer_none_or_value_error():
    instances = listed({'name': 'a', 'codex_home': '/srv/a'})

    def refuses(user):
        raise ValueError(user)
    assert codes(ri.user_problems(instances, lambda user: None)) == ['runner_instance_user_unknown']
    assert codes(ri.user_problems(instances, refuses)) == ['runner_instance_user_unknown']
    assert ri.user_problems(instances, lambda user: user) == []


def test_an_invalid_user_is_not_looked_up():
    asked = []
    instances = listed({'name': 'a', 'user': 'a\nb', 'codex_home': '/srv/a'})
    assert ri.user_problems(instances, asked.append) == []
    assert asked == []


# -- check: one refusal naming everything, never a secret ----------------------------------------------------

def test_check_raises_one_error_naming_every_problem_and_no_secret():
    instances = listed({'name': 'a', 'codex_home': '/srv/a', 'seed_content': SEED_SECRET},
                       {'name': 'b', 'codex_home': '/srv/a', 'seed_content': SEED_SECRET},
                       {'name': 'c', 'codex_home': '/srv/c', 'method': 'api_key', 'api_key': KEY_SECRET,
                        'user': 'nobody-here'},
                       {'name': 'd', 'codex_home': '/srv/d', 'method': 'access_token', 'access_token': TOKEN_SECRET})
    with pytest.raises(ri.InstanceError) as info:
        ri.check(instances, lookup={'ci': 1}.__getitem__)
    error = info.value
    assert error.code == 'runner_instances_invalid'
    assert codes(error.problems) == ['runner_instance_home_duplicate', 'runner_instance_seed_shared',
                                     'runner_instance_user_unknown']
    assert error.message.startswith('Refusing the runner instances before anything was read or written: ')
    text = error.message + json.dumps(error.problems)
    for secret in (SEED_SECRET, TOKEN_SECRET, KEY_SECRET):
        assert secret not in text


def test_check_with_one_kind_of_problem_carries_its_code():
    with pytest.raises(ri.InstanceError) as info:
        ri.check(listed({'name': 'a'}, {'name': 'b'}))
    assert info.value.code == 'runner_instance_home_duplicate'


def test_check_passes_good_instances_through():
    instances = listed({'name': 'gh-1', 'codex_home': '/srv/gh-1'}, {'name': 'gh-2', 'codex_home': '/srv/gh-2'})
    assert ri.check(instances, lookup={'ci': 1}.__getitem__) is instances


def test_public_shows_which_secrets_are_set_not_what():
    instance, = listed({'name': 'a', 'codex_home': '/srv/a', 'seed_content': SEED_SECRET})
    shown = ri.public(instance)
    assert SEED_SECRET not in json.dumps(shown)
    assert shown['has_seed_content'] is True and shown['has_api_key'] is False
    assert shown['name'] == 'a' and shown['codex_home'] == '/srv/a'


# -- what a module that only reads checks: names and homes -------------------------------------------------

def test_layout_problems_need_only_names_and_homes():
    good = [{'name': 'a', 'codex_home': '/srv/a'}, {'name': 'b', 'codex_home': '/srv/b'}]
    assert ri.layout_problems(good) == []
    bad = [{'name': 'a', 'codex_home': '/srv/a'}, {'name': 'a', 'codex_home': '/srv/a/b'},
           {'name': 'B', 'codex_home': 'rel'}, {'name': 'c', 'codex_home': '/srv/a'}]
    assert codes(ri.layout_problems(bad)) == ['runner_instance_home_duplicate', 'runner_instance_home_invalid',
                                              'runner_instance_home_nested', 'runner_instance_home_nested',
                                              'runner_instance_name_duplicate', 'runner_instance_name_invalid']
    # Without a user there is nobody to look up.
    assert ri.user_problems(good, lambda user: None) == []


def test_problems_reports_each_layout_problem_once():
    found = ri.problems(listed({'name': 'B', 'codex_home': 'rel', 'seed_file': '/s/b.json'}))
    assert codes(found) == ['runner_instance_home_invalid', 'runner_instance_name_invalid']


def test_default_script_of_an_instance_is_named_from_the_instance():
    installed = {ks.DEFAULT_SCRIPT_DIR + '/codex-keepalive-ci'}
    assert ks.default_script('ci', '/home/ci/.codex', '/home/ci', exists=installed.__contains__, instance='gh-2') == \
        ks.DEFAULT_SCRIPT_DIR + '/' + ks.keepalive_name('ci', '/home/ci/.codex', 'gh-2')
    # The default instance finds the single-runner script, as without an instance.
    for instance in (None, 'default'):
        assert ks.default_script('ci', '/home/ci/.codex', '/home/ci', exists=installed.__contains__,
                                 instance=instance) == ks.DEFAULT_SCRIPT_DIR + '/codex-keepalive-ci'


def test_refresh_token_problems_name_the_instances_sharing_one_token():
    """Seeds read where they are written (codex_auth_seed's runners) are compared by their refresh tokens' digests;
    an instance without one (an API key seed) shares nothing."""
    instances = [{'name': name} for name in ('a', 'b', 'c', 'd', 'a')]
    found = ri.refresh_token_problems(instances, ['x', None, 'x', None, 'y'])
    assert [item['instances'] for item in found] == [['a (instance 1)', 'c']]
    assert found[0]['code'] == 'runner_instance_seed_shared'
    assert found[0]['message'].startswith('instances a (instance 1) and c have seeds with the same refresh token')
    assert ri.refresh_token_problems(instances, [None, None, 'x', 'y', 'z']) == []


def test_labels_are_the_names_messages_use():
    assert ri.labels([{'name': 'a'}, {'name': 'Bad.Name'}, {'name': 'a'}]) == [
        'a (instance 1)', 'instance 2', 'a (instance 3)']


# -- one seed on two instances: one verdict with codex_auth_seed (refresh tokens) ---------------------------------

def seeded(*contents):
    return listed(*({'name': 'i%d' % index, 'codex_home': '/srv/i%d' % index, 'seed_content': content}
                    for index, content in enumerate(contents)))


def module_verdict(instances):
    """What codex_auth_seed's runners refuse for these seeds: refresh_token_problems over the judged seeds."""
    digests = [auth_model.AuthFile(ri.seed_bytes(instance['seed_content'])).refresh_token_digest()
               for instance in instances]
    return ri.refresh_token_problems(instances, digests)


def test_one_refresh_token_in_two_differently_written_seeds_is_refused_as_the_module_refuses_it():
    doc, secrets = fc.chatgpt_seed('one')
    rewritten = dict(doc, last_refresh='2026-01-01T00:00:00Z')
    instances = seeded(fc.dumps(doc), json.dumps(rewritten), doc)
    found = ri.problems(instances)
    assert found == module_verdict(instances)
    assert [item['instances'] for item in found] == [['i0', 'i1', 'i2']]
    assert found[0]['code'] == 'runner_instance_seed_shared'
    assert 'same refresh token' in found[0]['message']
    assert not any(secret in json.dumps(found) for secret in secrets)


def test_one_api_key_seed_on_two_instances_is_allowed_as_the_module_allows_it():
    doc, _secrets = fc.apikey_seed('k')
    instances = seeded(fc.dumps(doc), fc.dumps(doc), doc)
    assert ri.problems(instances) == [] == module_verdict(instances)


def test_different_refresh_tokens_are_fine_even_for_one_account():
    one = fc.chatgpt_seed('one')[0]
    two = fc.chatgpt_seed('two')[0]
    instances = seeded(fc.dumps(one), fc.dumps(two))
    assert ri.problems(instances) == [] == module_verdict(instances)


@pytest.mark.parametrize('pick', [(0, 1), (0, 2), (1, 2), (0, 3), (2, 3)])
def test_the_controller_and_the_module_agree_on_every_pair(pick):
    chat = fc.chatgpt_seed('a')[0]
    other = fc.chatgpt_seed('b')[0]
    key = fc.apikey_seed('k')[0]
    pool = [fc.dumps(chat), json.dumps(chat, sort_keys=True), fc.dumps(other), fc.dumps(key)]
    instances = seeded(pool[pick[0]], pool[pick[1]])
    assert ri.problems(instances) == module_verdict(instances)


def test_unreadable_content_and_unread_files_fall_back_to_comparing_as_given():
    doc = fc.chatgpt_seed('one')[0]
    found = ri.problems(listed({'name': 'a', 'codex_home': '/srv/a', 'seed_content': '{not json'},
                               {'name': 'b', 'codex_home': '/srv/b', 'seed_content': '{not json'},
                               {'name': 'c', 'codex_home': '/srv/c', 'seed_file': '/s/one.json'},
                               {'name': 'd', 'codex_home': '/srv/d', 'seed_file': '/s/one.json'},
                               {'name': 'e', 'codex_home': '/srv/e', 'seed_content': fc.dumps(doc)},
                               {'name': 'f', 'codex_home': '/srv/f', 'seed_file': '/s/f.json'}))
    assert [item['instances'] for item in found] == [['c', 'd'], ['a', 'b']]
    assert all('the same seed_' in item['message'] for item in found)


def test_a_seed_method_instance_only_is_compared():
    doc = fc.chatgpt_seed('one')[0]
    instances = seeded(fc.dumps(doc), fc.dumps(doc))
    instances[1]['method'] = 'api_key'
    instances[1]['api_key'] = KEY_SECRET
    assert [item['code'] for item in ri.problems(instances)] == []
