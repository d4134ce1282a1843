# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The keepalive's name, for the roles: the one function in module_utils/keepalive_status.py, and the names its cron
file and systemd units get from it (keepalive_status.cron_file_name, unit_name); and the keepalives of a host's runner
instances (module_utils/_runner_instances.keepalives), for the codex_keepalive role."""

import re
import shlex

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


def _scheduler_name(name, rule, filter_name):
    try:
        return rule(name)
    except ValueError as exc:
        raise AnsibleFilterError('%s: %s (got a %s)' % (filter_name, exc, type(name).__name__))


def codex_keepalive_cron_file(name):
    """The cron file name (no directory) of the keepalive called `name`."""
    return _scheduler_name(name, keepalive_status.cron_file_name, 'codex_keepalive_cron_file')


def codex_keepalive_unit(name):
    """The systemd unit name (no .service or .timer) of the keepalive called `name`."""
    return _scheduler_name(name, keepalive_status.unit_name, 'codex_keepalive_unit')


# A leading `~` or `~user` that the shell expands (with the slash after it, unquoted).
_TILDE = re.compile(r'^~[A-Za-z0-9._-]*(?=/|$)')


def codex_keepalive_home_sh(home):
    """CODEX_HOME as the sh word the keepalive script assigns (`CODEX_HOME=WORD`): a leading `~` or `~user` stays
    unquoted, and so does the slash after it, or the shell does not expand it; the rest is quoted. The one rule: the
    script's line, and the line the role looks for in an installed script."""
    if not isinstance(home, str) or not home:
        raise AnsibleFilterError('codex_keepalive_home_sh needs a CODEX_HOME (got a %s)' % type(home).__name__)
    tilde = _TILDE.match(home)
    if tilde is None:
        return shlex.quote(home)
    return '%s/%s' % (tilde.group(0), shlex.quote(home[len(tilde.group(0)) + 1:]))


def codex_keepalive_instances(runners):
    """[{name, user, codex_home, keepalive_name, cron_name, unit_name, replaces}] of the instances that need a keepalive (seed)."""
    try:
        return _runner_instances.keepalives(runners)
    except _runner_instances.InstanceError as exc:
        raise AnsibleFilterError('codex_keepalive_runners: %s' % exc.message)


class FilterModule(object):

    def filters(self):
        return {'codex_keepalive_name': codex_keepalive_name,
                'codex_keepalive_cron_file': codex_keepalive_cron_file,
                'codex_keepalive_unit': codex_keepalive_unit,
                'codex_keepalive_home_sh': codex_keepalive_home_sh,
                'codex_keepalive_instances': codex_keepalive_instances}
