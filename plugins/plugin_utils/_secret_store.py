# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The secret-store contract (preview): one interface for every place a runner's auth.json is kept.

Controller side only (plugin_utils, not module_utils): the backends use the client libraries the
Ansible ecosystem already runs on the controller (hvac, boto3), which persistent runners never get.

A store holds one secret per runner instance, addressed by `name`:

    read(name)  -> (data, version)   data: the stored auth.json bytes, or None when the store has no
                                     copy; version: an opaque token for `write`'s check-and-set
    write(name, data, expected_version) -> new version
                                     writes only if the secret is still at `expected_version` (the
                                     token `read` returned, also when data was None: that creates
                                     it); otherwise raises StoreCasLost and writes nothing

Every failure is a StoreError with a stable `code`; its message names the store and the secret,
never a credential or the secret's content.
"""

# The error codes, the name and copy checks are the contract's facts, shared with the runner's job-time
# command (module_utils/_store_contract.py); they are named here too, where the controller's stores look.
from ansible_collections.codexops.runner.plugins.module_utils._store_contract import (  # noqa: F401 pylint: disable=unused-import
    ERROR_CODES, MAX_COPY_BYTES, StoreCasLost, StoreCopyInvalid, StoreError, StoreLibraryMissing,
    StoreOptionsInvalid, StorePermissionDenied, StoreRequestInvalid, StoreSecretMissing, StoreUnreachable,
    check_copy, check_name)

# The store kinds and the private module that implements each (imported on first use: a controller
# without hvac can still use boto3, and the other way round).
BACKENDS = {
    'file': '_store_file',
    'vault': '_store_vault',
    'aws_secretsmanager': '_store_aws',
}


class SecretStore(object):
    """The contract. `kind` names the backend in messages and results."""

    kind = None

    def read(self, name):
        raise NotImplementedError

    def write(self, name, data, expected_version):
        raise NotImplementedError

    def describe(self, name):
        """Where the secret lives, for messages (no credential)."""
        return '%s secret %s' % (self.kind, name)


def open_store(kind, options=None):
    """The store of that kind, configured from `options` (a dict; credentials fall back to the usual
    environment of each backend)."""
    import importlib
    module_name = BACKENDS.get(kind)
    if module_name is None:
        raise StoreOptionsInvalid('unknown store kind %r; known: %s' % (kind, ', '.join(sorted(BACKENDS))))
    module = importlib.import_module('ansible_collections.codexops.runner.plugins.plugin_utils.' + module_name)
    return module.open_store(options or {})
