# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The keepalive's name, for the roles: the one function in module_utils/keepalive_status.py."""

from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status


def codex_keepalive_name(home, user, instance=None):
    try:
        return keepalive_status.keepalive_name(user, home, instance)
    except ValueError as exc:
        # Types only: the values come from the inventory and could be anything.
        raise AnsibleFilterError('codex_keepalive_name: %s (got a CODEX_HOME of type %s, a user of type %s and an '
                                 'instance of type %s)' % (exc, type(home).__name__, type(user).__name__,
                                                           type(instance).__name__))


class FilterModule(object):

    def filters(self):
        return {'codex_keepalive_name': codex_keepalive_name}
