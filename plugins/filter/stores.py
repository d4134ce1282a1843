# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The secret stores' naming rule, for the roles: the one function in module_utils/_store_contract.py, with the
instance part of a runner instance's secret from module_utils/_runner_instances.secret_instance (the `default`
instance's secret is its user's, as the codex_auth role's seed source names it)."""

from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.module_utils import _runner_instances
from ansible_collections.codexops.runner.plugins.module_utils import _store_contract


def codex_secret_name(host, instance, user=None):
    """The default secret of runner instance `instance` on `host`; given its `user`, the `default` instance's secret
    is the user's (_runner_instances.secret_instance, the rule the codex_auth role's seed source follows)."""
    if user is not None:
        instance = _runner_instances.secret_instance({'name': instance, 'user': user})
    try:
        return _store_contract.secret_name(host, instance)
    except _store_contract.StoreError as exc:
        raise AnsibleFilterError('codex_secret_name: %s' % exc.message)


class FilterModule(object):

    def filters(self):
        return {'codex_secret_name': codex_secret_name}
