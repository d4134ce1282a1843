# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One keepalive name: module_utils' keepalive_name, the filter the roles use, and verify's default
probe agree for every form of CODEX_HOME."""

import hashlib
import pathlib
import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.filter import keepalive as keepalive_filter
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status as ks


@pytest.mark.parametrize('home, name', [
    ('~ci/.codex', 'codex-keepalive-ci'),
    ('/home/ci/.codex', 'codex-keepalive-ci-%s' % hashlib.sha256(b'/home/ci/.codex').hexdigest()[:8]),
    ('/srv/runner-2/.codex', 'codex-keepalive-ci-%s' % hashlib.sha256(b'/srv/runner-2/.codex').hexdigest()[:8]),
    ('~ci/other', 'codex-keepalive-ci-%s' % hashlib.sha256(b'~ci/other').hexdigest()[:8]),
    ('~other/.codex', 'codex-keepalive-ci-%s' % hashlib.sha256(b'~other/.codex').hexdigest()[:8]),
])
def test_one_rule_for_the_filter_and_the_module(home, name):
    assert ks.keepalive_name('ci', home) == name
    assert keepalive_filter.FilterModule().filters()['codex_keepalive_name'](home, 'ci') == name


def test_filter_refuses_what_is_not_a_name():
    with pytest.raises(AnsibleFilterError):
        keepalive_filter.codex_keepalive_name(None, 'ci')
    with pytest.raises(AnsibleFilterError):
        keepalive_filter.codex_keepalive_name('/x', '')


def test_verify_default_probe_agrees_with_the_role_for_a_path():
    """codex_home: /home/ci/.codex given to the module: the script the role installs for that path."""
    installed = {ks.DEFAULT_SCRIPT_DIR + '/' + ks.keepalive_name('ci', '/home/ci/.codex')}
    assert ks.default_script('ci', '/home/ci/.codex', '/home/ci', exists=installed.__contains__) in installed
    # Nothing installed yet: still the role's name for that path.
    assert ks.default_script('ci', '/home/ci/.codex', '/home/ci', exists=lambda path: False) == \
        ks.DEFAULT_SCRIPT_DIR + '/' + ks.keepalive_name('ci', '/home/ci/.codex')


def test_verify_default_probe_finds_the_roles_default_home_keepalive():
    """The role given ~ci/.codex (its default) named it codex-keepalive-ci; the module sees the path
    Ansible expanded, and finds that script."""
    installed = {ks.DEFAULT_SCRIPT_DIR + '/codex-keepalive-ci'}
    assert ks.default_script('ci', '/home/ci/.codex', '/home/ci', exists=installed.__contains__) == \
        ks.DEFAULT_SCRIPT_DIR + '/codex-keepalive-ci'
    # Not the user's default home: never the legacy name.
    assert ks.default_script('ci', '/srv/x/.codex', '/home/ci', exists=installed.__contains__) != \
        ks.DEFAULT_SCRIPT_DIR + '/codex-keepalive-ci'


def test_filter_names_a_runner_instance_by_the_one_rule():
    name_of = keepalive_filter.FilterModule().filters()['codex_keepalive_name']
    assert name_of('/srv/gh-2/.codex', 'ci', 'gh-2') == ks.keepalive_name('ci', '/srv/gh-2/.codex', 'gh-2') == \
        'codex-keepalive-ci-gh-2-%s' % hashlib.sha256(b'ci\0gh-2').hexdigest()[:8]
    # The default instance, named or not, keeps the single-runner name.
    assert name_of('~ci/.codex', 'ci', 'default') == name_of('~ci/.codex', 'ci') == 'codex-keepalive-ci'


@pytest.mark.parametrize('instance', ['Gh', 'a/b', '', 5])
def test_filter_refuses_what_is_not_an_instance_name(instance):
    with pytest.raises(AnsibleFilterError) as info:
        keepalive_filter.codex_keepalive_name('/x', 'ci', instance)
    assert 'instance of type %s' % type(instance).__name__ in str(info.value)


# (keepalive name, cron file name, systemd unit name): one '_' per character each scheduler does not take.
@pytest.mark.parametrize('name, cron, unit', [
    ('codex-keepalive-ci', 'codex-keepalive-ci', 'codex-keepalive-ci'),
    ('codex-keepalive-ci.runner', 'codex-keepalive-ci_runner', 'codex-keepalive-ci.runner'),
    ('codex-keepalive-ci.runner-1a2b3c4d', 'codex-keepalive-ci_runner-1a2b3c4d', 'codex-keepalive-ci.runner-1a2b3c4d'),
    ('codex-keepalive-c i', 'codex-keepalive-c_i', 'codex-keepalive-c_i'),
    ('codex-keepalive-a/b', 'codex-keepalive-a_b', 'codex-keepalive-a_b'),
    ('codex-keepalive-../x', 'codex-keepalive-___x', 'codex-keepalive-.._x'),
    (u'codex-keepalive-j\u00fcrgen', 'codex-keepalive-j_rgen', 'codex-keepalive-j_rgen'),
    (u'codex-keepalive-\u30e6\u30fc\u30b6', 'codex-keepalive-___', 'codex-keepalive-___'),
    (u'codex-keepalive-\U0001f600', 'codex-keepalive-_', 'codex-keepalive-_'),
    ('codex-keepalive-host$', 'codex-keepalive-host_', 'codex-keepalive-host_'),
    ('codex-keepalive-a@b', 'codex-keepalive-a_b', 'codex-keepalive-a_b'),
    ('codex-keepalive-a+b\\c', 'codex-keepalive-a_b_c', 'codex-keepalive-a_b_c'),
    ('codex-keepalive-a:b_c', 'codex-keepalive-a_b_c', 'codex-keepalive-a:b_c'),
    ('codex-keepalive-a\nb', 'codex-keepalive-a_b', 'codex-keepalive-a_b'),
])
def test_one_rule_for_the_cron_file_and_the_units(name, cron, unit):
    filters = keepalive_filter.FilterModule().filters()
    assert ks.cron_file_name(name) == filters['codex_keepalive_cron_file'](name) == cron
    assert ks.unit_name(name) == filters['codex_keepalive_unit'](name) == unit
    # What each scheduler takes, whole: cron's run-parts rule and systemd's unit name characters.
    assert re.fullmatch(r'[A-Za-z0-9_-]+', cron) and re.fullmatch(r'[A-Za-z0-9:_.-]+', unit)
    # Applied twice, nothing more changes.
    assert ks.cron_file_name(cron) == cron and ks.unit_name(unit) == unit


def test_a_name_the_schedulers_take_is_kept_whole():
    """Every keepalive name the rule makes for an ordinary user: the cron file, the units and the script share it."""
    for name in (ks.keepalive_name('ci', '~ci/.codex'), ks.keepalive_name('ci', '/srv/a/.codex'),
                 ks.keepalive_name('ci', '/srv/a/.codex', 'gh-2'), ks.keepalive_name('ci_1', '/x', 'a_b')):
        assert ks.cron_file_name(name) == ks.unit_name(name) == name


@pytest.mark.parametrize('filter_name', ['codex_keepalive_cron_file', 'codex_keepalive_unit'])
@pytest.mark.parametrize('value', [None, '', 5, ['codex-keepalive-ci']])
def test_the_scheduler_name_filters_refuse_what_is_not_a_name(filter_name, value):
    with pytest.raises(AnsibleFilterError) as info:
        keepalive_filter.FilterModule().filters()[filter_name](value)
    assert str(info.value).startswith('%s: ' % filter_name)
    assert 'got a %s' % type(value).__name__ in str(info.value)


def test_the_role_names_its_cron_files_and_units_by_the_rule():
    """The codex_keepalive role asks the filters: no copy of either character class is left in it."""
    role = pathlib.Path(ks.__file__).resolve().parents[2] / 'roles' / 'codex_keepalive'
    text = '\n'.join(path.read_text() for path in sorted(role.rglob('*.yml')))
    assert '[^A-Za-z0-9_-]' not in text and '[^A-Za-z0-9:_.-]' not in text
    assert 'codexops.runner.codex_keepalive_cron_file' in text and 'codexops.runner.codex_keepalive_unit' in text
