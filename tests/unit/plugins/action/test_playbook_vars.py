# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbook_vars (action plugin): what each playbook variable accepts. The integration tests
(tests/integration/test_playbooks.py) run it through ansible-playbook: deprecations, per-host values."""

import pytest

from ansible_collections.codexops.runner.plugins.action import playbook_vars as plugin


@pytest.mark.parametrize('kind,value', [
    ('bool', True), ('bool', 'yes'), ('bool', 'false'), ('bool', 0),
    ('pattern', 'codex_runners'), ('pattern', ['runner-1', 'runner-2']),
    ('hosts', []), ('hosts', ['runner-7']),
    ('serial', 1), ('serial', '25%'), ('serial', '3'), ('serial', [1, '25%']),
    ('percentage', 0), ('percentage', 12.5), ('percentage', '100'), ('percentage', '25%'),
])
def test_accepted(kind, value):
    assert plugin.check_value(kind, value) is None


@pytest.mark.parametrize('kind,value', [
    ('bool', 'sometimes'), ('bool', 2), ('bool', [True]),
    ('pattern', ''), ('pattern', 5), ('pattern', []),
    ('hosts', 'runner-7'), ('hosts', [1]),
    ('serial', 'a quarter'), ('serial', True), ('serial', -1), ('serial', [1, 'x']),
    # Ansible's serial takes whole numbers only: these would pass a looser check and fail the play.
    ('serial', '2.5'), ('serial', '12.5%'), ('serial', '25% '),
    ('percentage', 101), ('percentage', 'lots'), ('percentage', True),
])
def test_refused_with_what_it_must_be(kind, value):
    assert plugin.check_value(kind, value).startswith('must be ')


def test_every_old_name_is_the_new_one_without_ops():
    for new, old, _kind, _per_host, playbooks in plugin.VARIABLES:
        assert new == old.replace('codex_', 'codexops_', 1) and set(playbooks) <= set(plugin.PLAYBOOKS)


def test_a_long_value_is_not_quoted_whole():
    assert len(plugin.check_value('bool', 'x' * 500)) < 120


def test_reseed_hosts_must_be_in_the_inventory():
    # add_host would make up a host of that name, and the reseed play would try to reach it.
    assert plugin.unknown_hosts('hosts', ['runner-1', 'runnr-2'], {'runner-1', 'runner-2'}) == (
        'names hosts that are not in the inventory: runnr-2')
    assert plugin.unknown_hosts('hosts', ['runner-1'], {'runner-1'}) is None
    assert plugin.unknown_hosts('pattern', 'nowhere', {'runner-1'}) is None
    # A runner instance is host/instance: its host must be in the inventory (reseed refuses an unknown instance).
    assert plugin.unknown_hosts('hosts', ['runner-1/gh-2'], {'runner-1'}) is None
    assert plugin.unknown_hosts('hosts', ['runnr-1/gh-2'], {'runner-1'}) == (
        'names hosts that are not in the inventory: runnr-1/gh-2')
