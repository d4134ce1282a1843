# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The keepalives of a host's runner instances (filter codex_keepalive_instances, _runner_instances.keepalives): one
per instance that refreshes auth.json, named by the one rule, never two with one name or one cron file, and what
codex_auth_verify's probe runs for each instance is the script the role installs for it."""

import hashlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.filter import keepalive as kf
from ansible_collections.codexops.runner.plugins.filter import runners as rf
from ansible_collections.codexops.runner.plugins.module_utils import _runner_instances as ri
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status as ks

SECRET = 'sk-API-SECRET-0123456789abcdef'


def keepalives(*entries):
    return kf.codex_keepalive_instances(list(entries))


def refused(*entries):
    with pytest.raises(AnsibleFilterError) as info:
        kf.codex_keepalive_instances(list(entries))
    return str(info.value)


def test_the_filter_is_registered():
    assert sorted(kf.FilterModule().filters()) == ['codex_keepalive_cron_file', 'codex_keepalive_home_sh',
                                                   'codex_keepalive_instances', 'codex_keepalive_name',
                                                   'codex_keepalive_unit']


def test_one_keepalive_per_seed_instance_named_by_the_one_rule():
    found = keepalives({'name': 'gh-1', 'user': 'ci', 'codex_home': '/srv/gh-1/.codex'},
                       {'name': 'gh-2', 'user': 'ci', 'home': '/srv/gh-2/.codex', 'method': 'seed'},
                       {'name': 'gl-1', 'user': 'gl', 'codex_home': '~gl/.codex'},
                       {'name': 'api', 'user': 'gl', 'codex_home': '/srv/api/.codex', 'method': 'api_key',
                        'api_key': SECRET},
                       {'name': 'pat', 'user': 'gl', 'codex_home': '/srv/pat/.codex', 'method': 'access_token'})
    assert [item['name'] for item in found] == ['gh-1', 'gh-2', 'gl-1']
    for item in found:
        expected = ks.keepalive_name(item['user'], item['codex_home'], item['name'])
        pair = ('%s\0%s' % (item['user'], item['name'])).encode()
        assert item['keepalive_name'] == expected == 'codex-keepalive-%s-%s-%s' % (
            item['user'], item['name'], hashlib.sha256(pair).hexdigest()[:8])
        assert item['cron_name'] == item['unit_name'] == item['keepalive_name']
        assert sorted(item) == ['codex_home', 'cron_name', 'keepalive_name', 'name', 'replaces', 'unit_name', 'user']
    assert found[1]['codex_home'] == '/srv/gh-2/.codex'
    assert len(set(item['keepalive_name'] for item in found)) == 3


def test_the_default_instance_keeps_the_single_runner_name():
    found = keepalives({'name': 'default', 'user': 'ci', 'codex_home': '~ci/.codex'},
                       {'name': 'other', 'user': 'ci', 'codex_home': '/srv/other/.codex'})
    assert found[0]['keepalive_name'] == 'codex-keepalive-ci' == ks.keepalive_name('ci', '~ci/.codex')


def test_a_cron_file_name_keeps_only_safe_characters():
    found = keepalives({'name': 'a', 'user': 'ci.runner', 'codex_home': '/srv/a/.codex'})
    assert found[0]['keepalive_name'].startswith('codex-keepalive-ci.runner-a-')
    assert found[0]['cron_name'] == found[0]['keepalive_name'].replace('.', '_')
    assert found[0]['cron_name'] == ks.cron_file_name(found[0]['keepalive_name'])
    # systemd takes the dot: the unit keeps the keepalive's name.
    assert found[0]['unit_name'] == found[0]['keepalive_name'] == ks.unit_name(found[0]['keepalive_name'])


def test_a_unit_name_keeps_only_what_systemd_takes():
    found = keepalives({'name': 'a', 'user': 'ci$', 'codex_home': '/srv/a/.codex'})
    assert found[0]['keepalive_name'].startswith('codex-keepalive-ci$-a-')
    assert found[0]['unit_name'] == found[0]['cron_name'] == found[0]['keepalive_name'].replace('$', '_')


def test_two_keepalives_with_one_unit_name_are_refused(monkeypatch):
    monkeypatch.setattr(ri, 'keepalive_name', lambda instance: 'codex-keepalive-%s' % instance['user'])
    message = refused({'name': 'a', 'user': 'ci+x', 'codex_home': '/srv/a'},
                      {'name': 'b', 'user': 'ci$x', 'codex_home': '/srv/b'})
    assert 'instances a and b would get one keepalive, codex-keepalive-ci_x' in message


def test_the_instances_the_codex_auth_role_normalises_are_taken_as_they_are():
    """The provision playbook passes codex_runner_instances' result (secret fields and all): none comes back."""
    variables = {'codex_auth_user': 'ci', 'codex_auth_seed_dir': '/inv/codex_seeds', 'codex_auth_api_key': SECRET}
    instances = rf.codex_runner_instances([{'name': 'gh-1'}, {'name': 'gh-2', 'user': 'gh'},
                                           {'name': 'k', 'method': 'api_key', 'codex_home': '/srv/k'}], variables, 'h1')
    found = kf.codex_keepalive_instances(instances)
    assert [(item['name'], item['user'], item['codex_home']) for item in found] == [
        ('gh-1', 'ci', '~ci/.codex'), ('gh-2', 'gh', '~gh/.codex')]
    assert SECRET not in repr(found)


@pytest.mark.parametrize('entries, text', [
    ([{'name': 'a', 'user': 'ci', 'codex_home': '/srv/a'}, {'name': 'a', 'user': 'gh', 'codex_home': '/srv/b'}],
     'have the same name a'),
    ([{'name': 'a', 'user': 'ci', 'codex_home': '/srv/a'}, {'name': 'b', 'user': 'ci', 'codex_home': '/srv/a/'}],
     'instances a and b have the same CODEX_HOME'),
    ([{'name': 'a', 'user': 'ci', 'codex_home': '/srv/a'}, {'name': 'b', 'user': 'ci', 'codex_home': '/srv/a/b'}],
     'the CODEX_HOME of instance b lies inside that of instance a'),
    ([{'name': 'A b', 'user': 'ci', 'codex_home': '/srv/a'}], 'instance 1 needs a name'),
    ([{'name': 'a', 'user': 'c i', 'codex_home': '/srv/a'}], 'a needs a runner user'),
    ([{'name': 'a', 'user': 'ci', 'codex_home': 'relative'}], 'a needs an absolute CODEX_HOME'),
    ([{'name': 'a', 'user': 'ci', 'codex_home': '/srv/a', 'method': 'magic'}], 'a: method must be one of'),
    ([{'name': 'a', 'user': 'ci', 'home': '/srv/a', 'codex_home': '/srv/a'}], 'a sets both home and codex_home'),
    ([{'name': 'a', 'user': 'ci', 'codex_home': '/srv/a', 'sekrit': SECRET}], 'a has unknown fields sekrit'),
    (['a'], 'instance 1 is a str'),
])
def test_bad_lists_are_refused_naming_the_instances_never_a_value(entries, text):
    message = refused(*entries)
    assert text in message and message.startswith('codex_keepalive_runners: Refusing the runner instances')
    assert SECRET not in message


@pytest.mark.parametrize('runners', [None, [], 'gh-1', {'name': 'a'}])
def test_not_a_list_is_refused(runners):
    with pytest.raises(AnsibleFilterError, match='must be a non-empty list'):
        kf.codex_keepalive_instances(runners)


def test_two_keepalives_with_one_cron_file_are_refused(monkeypatch):
    """The name rule keeps instances apart; should it ever not (or a cron file name fold two into one), the list is
    refused rather than one keepalive overwriting another."""
    monkeypatch.setattr(ri, 'keepalive_name', lambda instance: 'codex-keepalive-%s' % instance['user'])
    message = refused({'name': 'a', 'user': 'ci.x', 'codex_home': '/srv/a'},
                      {'name': 'b', 'user': 'ci_x', 'codex_home': '/srv/b'})
    assert 'instances a and b would get one keepalive, codex-keepalive-ci_x' in message


def test_too_many_instances_are_refused():
    entries = [{'name': 'i%d' % index, 'user': 'ci', 'codex_home': '/srv/%d' % index}
               for index in range(ri.MAX_INSTANCES + 1)]
    assert 'at most %d runner instances' % ri.MAX_INSTANCES in refused(*entries)


def test_verify_probes_the_script_the_role_installs_for_each_instance():
    """codex_runner_args(probe_dir=...): each verify entry's probe_command is codex_keepalive_script_dir joined with
    the keepalive name codex_keepalive_instances gives the same instance - also for the default instance whose
    CODEX_HOME is given with a tilde the runner would expand (the module alone would hash the expanded path)."""
    variables = {'codex_auth_user': 'ci', 'codex_auth_home': '~ci/runner-a', 'codex_auth_seed_dir': '/inv/s',
                 'codex_auth_seed_file': '/inv/s/h1.json'}
    instances = rf.codex_runner_instances([{'name': 'default'}, {'name': 'gh-2', 'user': 'gh'}], variables, 'h1')
    entries = rf.codex_runner_args(instances, 'codex_auth_verify', probe_dir='/opt/ka')
    installed = kf.codex_keepalive_instances(instances)
    assert [entry['probe_command'] for entry in entries] == ['/opt/ka/%s' % item['keepalive_name']
                                                             for item in installed]
    assert entries[0]['probe_command'] == '/opt/ka/' + ks.keepalive_name('ci', '~ci/runner-a')
    # Without probe_dir, the module's own default (no probe_command), as before.
    assert all('probe_command' not in entry for entry in rf.codex_runner_args(instances, 'codex_auth_verify'))
    assert all('probe_command' not in entry for entry in rf.codex_runner_args(
        instances, 'codex_auth_seed', ['{}', '{}'], probe_dir='/opt/ka'))


def test_each_instance_replaces_the_single_runner_keepalives_of_its_user_and_home():
    """Moving to runner instances: the names the single-runner rule gives the instance's user and CODEX_HOME (and the
    name every keepalive of the user had before names carried a hash), never one the list installs itself."""
    found = keepalives({'name': 'gh-1', 'user': 'ci', 'codex_home': '/srv/gh-1/.codex'},
                       {'name': 'gl-1', 'user': 'gl', 'codex_home': '~gl/.codex'})
    assert found[0]['replaces'] == [ks.keepalive_name('ci', '/srv/gh-1/.codex'), 'codex-keepalive-ci']
    # The default CODEX_HOME: both rules give one name.
    assert found[1]['replaces'] == ['codex-keepalive-gl'] == [ks.keepalive_name('gl', '~gl/.codex')]
    # An instance called default keeps the single-runner name: it rewrites that keepalive, it does not remove it.
    found = keepalives({'name': 'default', 'user': 'ci', 'codex_home': '~ci/.codex'},
                       {'name': 'other', 'user': 'ci', 'codex_home': '/srv/other/.codex'})
    assert found[0]['replaces'] == []
    assert found[1]['replaces'] == [ks.keepalive_name('ci', '/srv/other/.codex')]


@pytest.mark.parametrize('home, word', [
    ('~ci/.codex', '~ci/.codex'),
    ('~ci', "~ci/''"),
    ('~/x y', "~/'x y'"),
    ('/srv/a b/.codex', "'/srv/a b/.codex'"),
    ("/x/it's", "'/x/it'\"'\"'s'"),
    ('~c.i-x/a', '~c.i-x/a'),
    ('~ci$/x', "'~ci$/x'"),
    ('/plain/.codex', '/plain/.codex'),
])
def test_the_codex_home_sh_word_keeps_a_tilde_the_shell_expands(home, word):
    assert kf.codex_keepalive_home_sh(home) == word


@pytest.mark.parametrize('home', [None, '', 5])
def test_the_codex_home_sh_word_needs_a_home(home):
    with pytest.raises(AnsibleFilterError, match='codex_keepalive_home_sh needs a CODEX_HOME'):
        kf.codex_keepalive_home_sh(home)
