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

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils.errors import CodexOpsError

# A store copy larger than the largest auth.json the model reads is not one.
MAX_COPY_BYTES = auth_model.MAX_AUTH_BYTES

# The store kinds and the private module that implements each (imported on first use: a controller
# without hvac can still use boto3, and the other way round).
BACKENDS = {
    'file': '_store_file',
    'vault': '_store_vault',
    'aws_secretsmanager': '_store_aws',
}


class StoreError(CodexOpsError):
    """A store could not be used; nothing was written."""

    default_code = 'store_error'

    def __init__(self, message, code=None):
        super(StoreError, self).__init__(message, code or self.default_code)


class StoreUnreachable(StoreError):
    """No answer, a timeout, a sealed or failing server."""
    default_code = 'store_unreachable'


class StoreSecretMissing(StoreError):
    """The runner's secret (or its mount) does not exist; a write-back never creates it."""
    default_code = 'store_secret_missing'


class StorePermissionDenied(StoreError):
    """The store refused the credential (unknown, expired, or not allowed this secret)."""
    default_code = 'store_permission_denied'


class StoreCasLost(StoreError):
    """Someone else wrote the secret since it was read (after one re-read: twice)."""
    default_code = 'store_cas_lost'


class StoreCopyInvalid(StoreError):
    """The store holds something that cannot be an auth.json (wrong shape, binary, too large)."""
    default_code = 'store_copy_invalid'


class StoreOptionsInvalid(StoreError):
    """The store's options are incomplete or contradictory (no address, no credential...)."""
    default_code = 'store_options_invalid'


class StoreLibraryMissing(StoreError):
    """The client library the store needs is not installed on the controller."""
    default_code = 'store_library_missing'


class StoreRequestInvalid(StoreError):
    """The store refused a request for another reason than the ones above (its text is kept)."""
    default_code = 'store_request_invalid'


ERROR_CODES = tuple(sorted(cls.default_code for cls in (
    StoreUnreachable, StoreSecretMissing, StorePermissionDenied, StoreCasLost, StoreCopyInvalid,
    StoreOptionsInvalid, StoreLibraryMissing, StoreRequestInvalid)))


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


def check_copy(store, name, data):
    """The store's copy as bytes, refused (StoreCopyInvalid) when it is larger than an auth.json."""
    if len(data) > MAX_COPY_BYTES:
        raise StoreCopyInvalid('the %s holds %d bytes, more than an auth.json can have (%d); it is not a '
                               'runner\'s credential. Nothing was written.'
                               % (store.describe(name), len(data), MAX_COPY_BYTES))
    return data


def check_name(name):
    """A secret's name: text without blanks around it or control characters, and, where it is a path
    (Vault), no empty, `.` or `..` segment that the server would resolve to another secret."""
    if not isinstance(name, str) or not name or name != name.strip() or any(ord(char) < 32 or ord(char) == 127
                                                                            for char in name):
        raise StoreOptionsInvalid('a secret name must be a non-empty string without surrounding blanks or control '
                                  'characters')
    if any(segment in ('', '.', '..') for segment in name.split('/')):
        raise StoreOptionsInvalid('a secret name must not have an empty, "." or ".." path segment')
    return name


def open_store(kind, options=None):
    """The store of that kind, configured from `options` (a dict; credentials fall back to the usual
    environment of each backend)."""
    import importlib
    module_name = BACKENDS.get(kind)
    if module_name is None:
        raise StoreOptionsInvalid('unknown store kind %r; known: %s' % (kind, ', '.join(sorted(BACKENDS))))
    module = importlib.import_module('ansible_collections.codexops.runner.plugins.plugin_utils.' + module_name)
    return module.open_store(options or {})
