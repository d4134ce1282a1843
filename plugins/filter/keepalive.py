# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The keepalive's name, for the roles: the one function in module_utils/keepalive_status.py; and the keepalives
of a host's runner instances (module_utils/_runner_instances.keepalives), for the codex_keepalive role."""

from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.module_utils import _runner_instances
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status


def codex_keepalive_name(home, user, instance=None):
    try:
        return keepalive_status.keepalive_name(user, home, instance)
    except ValueError as exc:
        # Types only: the values come from the inventory and could be anything.
        raise AnsibleFilterError('codex_keepalive_name: %s (got a CODEX_HOME of type %s, a user of type %s and an '
                                 'instance of type %s)' % (exc, type(home).__name__, type(user).__name__,
                                                           type(instance).__name__))


def codex_keepalive_instances(runners):
    """[{name, user, codex_home, keepalive_name, cron_name}] of the instances that need a keepalive (seed)."""
    try:
        return _runner_instances.keepalives(runners)
    except _runner_instances.InstanceError as exc:
        raise AnsibleFilterError('codex_keepalive_runners: %s' % exc.message)


class FilterModule(object):

    def filters(self):
        return {'codex_keepalive_name': codex_keepalive_name,
                'codex_keepalive_instances': codex_keepalive_instances}
