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
    ('percentage', 0), ('percentage', 12.5), ('percentage', '100'),
])
def test_accepted(kind, value):
    assert plugin.check_value(kind, value) is None


@pytest.mark.parametrize('kind,value', [
    ('bool', 'sometimes'), ('bool', 2), ('bool', [True]),
    ('pattern', ''), ('pattern', 5), ('pattern', []),
    ('hosts', 'runner-7'), ('hosts', [1]),
    ('serial', 'a quarter'), ('serial', True), ('serial', -1), ('serial', [1, 'x']),
    ('percentage', 101), ('percentage', 'lots'), ('percentage', True),
])
def test_refused_with_what_it_must_be(kind, value):
    assert plugin.check_value(kind, value).startswith('must be ')


def test_every_old_name_is_the_new_one_without_ops():
    for new, old, _kind, _per_host, playbooks in plugin.VARIABLES:
        assert new == old.replace('codex_', 'codexops_', 1) and set(playbooks) <= set(plugin.PLAYBOOKS)


def test_a_long_value_is_not_quoted_whole():
    assert len(plugin.check_value('bool', 'x' * 500)) < 120
