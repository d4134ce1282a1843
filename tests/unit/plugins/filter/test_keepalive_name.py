# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One keepalive name: module_utils' keepalive_name, the filter the roles use, and verify's default
probe agree for every form of CODEX_HOME."""

import hashlib

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
