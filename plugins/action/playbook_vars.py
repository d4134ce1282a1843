# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbook_vars: check the codexops_* playbook variables of a play's hosts, on the controller.

The collection's playbooks run it once (run_once), in their first play: it reads every host's
variables through hostvars, so a value set per host (host_vars, a group) is checked for that host,
and it never contacts a host - no module runs, so it costs no round trip per runner.

It returns, in hosts_with, the hosts each runner-selecting boolean (codexops_install_cli,
codexops_keepalive) is true for: the provision playbook builds its optional plays' groups from it.

It checks types and values (a clear failure naming the variable and the host, before anything is
written) and warns, with an Ansible deprecation, about the old names (codex_hosts, codex_become,
...), which still work until 0.3.0: the playbooks read `codexops_X | default(codex_X)`. When both
names are set, the new one wins.
"""

import re

from ansible.module_utils.common.validation import check_type_bool, check_type_float
from ansible.module_utils.six import string_types
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.codexops.runner.plugins.module_utils import errors

display = Display()

PLAYBOOKS = ('provision', 'verify', 'reseed', 'rotate_access_token', 'writeback', 'job_hooks')
ALL = PLAYBOOKS

# (new name, old name, kind, per host, playbooks that read it)
# Per host: read for each host of the play (become, the optional provision steps). Otherwise the
# value is the play's (hosts, serial, max_fail_percentage are templated before any host is known,
# so only extra vars reach them; reseed_hosts is read once for the play).
VARIABLES = (
    ('codexops_hosts', 'codex_hosts', 'pattern', False, ALL),
    ('codexops_become', 'codex_become', 'bool', True, ALL),
    ('codexops_install_cli', 'codex_install_cli', 'bool', True, ('provision',)),
    ('codexops_keepalive', 'codex_keepalive', 'bool', True, ('provision',)),
    ('codexops_reseed_hosts', 'codex_reseed_hosts', 'hosts', False, ('reseed',)),
    ('codexops_reseed_serial', 'codex_reseed_serial', 'serial', False, ('reseed',)),
    ('codexops_reseed_max_fail_percentage', 'codex_reseed_max_fail_percentage', 'percentage', False, ('reseed',)),
)
# Booleans (default false) that select runners for an optional play: returned as the hosts they select.
SELECTORS = ('codexops_install_cli', 'codexops_keepalive')
# What Ansible's serial takes: a whole number of hosts, or a whole percentage of them.
SERIAL_ITEM = re.compile(r'^\s*[0-9]+%?$')
MAX_HOSTS_NAMED = 5


class PlaybookVarsError(errors.CodexOpsError):
    default_code = 'playbook_vars_invalid'


def check_value(kind, value):
    """Why value is not a valid `kind`, or None. Never quotes more than a short repr of the value."""
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + '...'
    if kind == 'bool':
        if isinstance(value, bool):
            return None
        try:
            check_type_bool(value)
        except TypeError:
            return 'must be a boolean (true or false), not %s' % shown
        return None
    if kind == 'pattern':
        if isinstance(value, string_types) and value.strip():
            return None
        if isinstance(value, list) and value and all(isinstance(item, string_types) and item for item in value):
            return None
        return 'must be a host pattern (a non-empty string, or a list of them), not %s' % shown
    if kind == 'hosts':
        if isinstance(value, list) and all(isinstance(item, string_types) and item for item in value):
            return None
        return ('must be a list of inventory host names or host/instance names (e.g. -e '
                '\'{"codexops_reseed_hosts": ["runner-7", "runner-8/gh-2"]}\'), '
                'not %s' % shown)
    if kind == 'serial':
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, bool) or not (isinstance(item, int) and item >= 0
                                              or isinstance(item, string_types) and SERIAL_ITEM.match(item)):
                return ('must be a number of hosts (25), a percentage of them ("25%%") or a list of those '
                        '([1, "25%%"]), not %s' % shown)
        return None
    if kind == 'percentage':
        try:
            # max_fail_percentage takes "25%" as well as 25.
            number = None if isinstance(value, bool) else check_type_float(
                value[:-1] if isinstance(value, string_types) and value.endswith('%') else value)
        except TypeError:
            number = None
        if number is None or not 0 <= number <= 100:
            return 'must be a number from 0 to 100 (a percentage of the hosts of a batch), not %s' % shown
        return None
    raise ValueError(kind)


def unknown_hosts(kind, value, inventory):
    """For a list of host names: why some are not in the inventory (add_host would make them up). A runner
    instance is named host/instance: its host must be in the inventory (the reseed playbook refuses an
    instance the host does not have)."""
    unknown = [name for name in value if name not in inventory
               and not ('/' in name and name.rsplit('/', 1)[0] in inventory)] if kind == 'hosts' else []
    return 'names hosts that are not in the inventory: %s' % host_list(unknown) if unknown else None


def host_list(hosts):
    named = ', '.join(hosts[:MAX_HOSTS_NAMED])
    if len(hosts) > MAX_HOSTS_NAMED:
        named += ' and %d more' % (len(hosts) - MAX_HOSTS_NAMED)
    return named


def naming(hosts):
    if not hosts[0]:
        return ''  # a value of the play, not of a host
    return ' (%s %s)' % ('host' if len(hosts) == 1 else 'hosts', host_list(hosts))


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # nothing runs on a host

        _validation, args = self.validate_argument_spec(argument_spec=dict(
            playbook=dict(type='str', required=True, choices=list(PLAYBOOKS)),
        ))
        try:
            result.update(self._check(args['playbook'], task_vars))
        except PlaybookVarsError as exc:
            result.update(failed=True, changed=False, msg=exc.message, error_code=exc.code)
        return result

    def _check(self, playbook, task_vars):
        hostvars = task_vars.get('hostvars') or {}
        hosts = list(task_vars.get('ansible_play_hosts') or [task_vars.get('inventory_hostname')])
        problems, old_names = {}, []
        inventory = set((task_vars.get('groups') or {}).get('all') or hosts)
        selected = dict((name, []) for name, _old, _kind, _per_host, playbooks in VARIABLES
                        if name in SELECTORS and playbook in playbooks)
        # Each host's variables are computed once (hostvars[host] asks the variable manager every time).
        per_host_vars = [(host, hostvars[host]) for host in hosts if host in hostvars]
        for new, old, kind, per_host, playbooks in VARIABLES:
            if playbook not in playbooks:
                continue
            if per_host:
                sources = per_host_vars
            else:
                sources = [(None, task_vars)]
            old_hosts, differ = [], False
            for host, variables in sources:
                found = {}
                for name in (new, old):
                    if name in variables:
                        # hostvars come templated; the task's own variables (the play's values) do not.
                        found[name] = variables[name] if host else self._templar.template(variables[name])
                        why = check_value(kind, found[name]) or unknown_hosts(kind, found[name], inventory)
                        if why:
                            problems.setdefault((name, why), []).append(host)
                if new in SELECTORS:
                    value = found.get(new, found.get(old, False))
                    if not check_value(kind, value) and check_type_bool(value):
                        selected.setdefault(new, []).append(host)
                if old in found:
                    old_hosts.append(host)
                    differ = differ or (new in found and found[new] != found[old])
            if old_hosts:
                old_names.append(old)
                where = ' (set for %s)' % host_list(old_hosts) if per_host else ''
                display.deprecated(
                    msg='The playbook variable %s%s is deprecated: use %s, which means the same.%s'
                        % (old, where, new, ' %s is set too and wins.' % new if differ else ''),
                    version='0.3.0', collection_name='codexops.runner')
        if problems:
            raise PlaybookVarsError('Invalid playbook variables of the %s playbook, nothing was done: %s' % (
                playbook, ' '.join('%s%s %s.' % (name, naming(hosts), why) for (name, why), hosts in problems.items())))
        return dict(changed=False, deprecated_names=old_names, hosts_with=selected,
                    msg='the %s playbook variables are valid%s' % (
                        playbook, ' (deprecated names used: %s)' % ', '.join(old_names) if old_names else ''))
