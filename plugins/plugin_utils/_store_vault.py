# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The `vault` store: HashiCorp Vault / OpenBao KV v2 through hvac (controller side).

One KV v2 secret per runner instance; its data is {"auth_json": "<the auth.json text>"}, so the
bytes come back exactly as they were written. The version token is the KV version read (0: no
secret yet); a write sends it as `cas`, so the server refuses it when anyone wrote in between (and
`cas=0` creates the secret only if it still does not exist).

Credentials: options `token`, or `role_id` + `secret_id` (AppRole), else the environment Vault's own
tools read: VAULT_TOKEN, then ANSIBLE_HASHI_VAULT_ROLE_ID / ANSIBLE_HASHI_VAULT_SECRET_ID (the names
community.hashi_vault reads). The address: option `url`, else VAULT_ADDR. They are held by the hvac
client only: never returned, logged, or put in a message.
"""

import os

from ansible_collections.codexops.runner.plugins.plugin_utils import _secret_store as store

try:
    import hvac
    from hvac import exceptions as hvac_exceptions
    import requests
except ImportError:
    hvac = hvac_exceptions = requests = None

FIELD = 'auth_json'
DEFAULT_MOUNT = 'secret'
DEFAULT_TIMEOUT = 10
CAS_MISMATCH = 'check-and-set parameter did not match'


def redact_url(url):
    """The address without a user:password@ part, for messages."""
    scheme, sep, rest = (url or '').partition('://')
    if not sep:
        return url
    host, slash, path = rest.partition('/')
    return '%s://%s%s%s' % (scheme, host.rpartition('@')[2], slash, path)


class VaultStore(store.SecretStore):

    kind = 'vault'

    def __init__(self, client, mount_point=DEFAULT_MOUNT, url=None):
        self.client = client
        self.mount_point = mount_point
        self.url = redact_url(url)

    def describe(self, name):
        if name is None:
            return 'vault server at %s (AppRole login)' % self.url
        return 'vault secret %s/%s at %s' % (self.mount_point, name, self.url)

    def read(self, name):
        store.check_name(name)
        try:
            answer = self.client.secrets.kv.v2.read_secret_version(
                path=name, mount_point=self.mount_point, raise_on_deleted_version=True)
        except Exception as exc:  # pylint: disable=broad-except
            if hvac_exceptions is None or not isinstance(exc, hvac_exceptions.InvalidPath):
                raise self._error(exc, name, 'reading')
            return None, self._version_without_data(name)
        data = answer.get('data') or {}
        version = (data.get('metadata') or {}).get('version')
        content = data.get('data')
        if not isinstance(version, int) or version < 1:
            raise store.StoreRequestInvalid('the %s answered without a version; is %s a KV version 2 mount?'
                                            % (self.describe(name), self.mount_point))
        if not isinstance(content, dict) or set(content) != {FIELD} or not isinstance(content[FIELD], str):
            raise store.StoreCopyInvalid('the %s does not hold exactly one text field %s (the shape this collection '
                                         'writes); it is not a runner\'s auth.json. Nothing was written.'
                                         % (self.describe(name), FIELD))
        return store.check_copy(self, name, content[FIELD].encode('utf-8', 'surrogatepass')), version

    def _version_without_data(self, name):
        """The version to write over when the latest version is deleted or destroyed; 0 when there
        is no secret at all (then `cas=0` creates it)."""
        try:
            metadata = self.client.secrets.kv.v2.read_secret_metadata(path=name, mount_point=self.mount_point)
        except Exception as exc:  # pylint: disable=broad-except
            if isinstance(exc, hvac_exceptions.InvalidPath):
                return 0
            raise self._error(exc, name, 'reading the metadata of')
        version = ((metadata or {}).get('data') or {}).get('current_version')
        return version if isinstance(version, int) and version >= 0 else 0

    def write(self, name, data, expected_version):
        store.check_name(name)
        if not isinstance(expected_version, int) or isinstance(expected_version, bool) or expected_version < 0:
            raise store.StoreOptionsInvalid('a vault write needs the version read (an integer, 0 to create)')
        try:
            text = data.decode('utf-8')
        except (AttributeError, UnicodeDecodeError):
            raise store.StoreCopyInvalid('only UTF-8 text goes into the %s; nothing was written' % self.describe(name))
        try:
            answer = self.client.secrets.kv.v2.create_or_update_secret(
                path=name, secret={FIELD: text}, cas=expected_version, mount_point=self.mount_point)
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(exc, name, 'writing')
        version = ((answer or {}).get('data') or {}).get('version')
        if not isinstance(version, int):
            raise store.StoreRequestInvalid('the %s accepted the write but returned no version' % self.describe(name))
        return version

    def _error(self, exc, name, doing):
        """The StoreError for an exception of hvac or requests (only its class and the server's own
        error text, which quotes neither the token nor the data)."""
        where = self.describe(name)
        if isinstance(exc, store.StoreError):
            return exc
        if requests is not None and isinstance(exc, requests.exceptions.RequestException):
            return store.StoreUnreachable('%s the %s failed: no answer (%s). Nothing was written.'
                                          % (doing, where, exc.__class__.__name__))
        if hvac_exceptions is None or not isinstance(exc, hvac_exceptions.VaultError):
            return store.StoreError('%s the %s failed: %s' % (doing, where, exc.__class__.__name__), 'store_error')
        errors = '; '.join(str(item) for item in (getattr(exc, 'errors', None) or [])) or exc.__class__.__name__
        if isinstance(exc, (hvac_exceptions.Forbidden, hvac_exceptions.Unauthorized)):
            return store.StorePermissionDenied('%s the %s was refused: %s. The token or AppRole needs a policy that '
                                               'allows read and update on this path. Nothing was written.'
                                               % (doing, where, errors))
        if isinstance(exc, hvac_exceptions.InvalidRequest) and CAS_MISMATCH in errors:
            return store.StoreCasLost('the %s changed since it was read (%s)' % (where, errors))
        if isinstance(exc, hvac_exceptions.InvalidPath):
            return store.StoreSecretMissing('%s the %s: no such secret or mount (%s)' % (doing, where, errors))
        if isinstance(exc, (hvac_exceptions.VaultDown, hvac_exceptions.InternalServerError,
                            hvac_exceptions.BadGateway, hvac_exceptions.RateLimitExceeded,
                            hvac_exceptions.VaultNotInitialized)):
            return store.StoreUnreachable('%s the %s failed: the server is not serving (%s: %s). Nothing was written.'
                                          % (doing, where, exc.__class__.__name__, errors))
        return store.StoreRequestInvalid('%s the %s was refused: %s. Nothing was written.' % (doing, where, errors))


def _option(options, key, env=()):
    value = options.get(key)
    if value in (None, ''):
        for name in env:
            if os.environ.get(name):
                return os.environ[name]
        return None
    return value


def open_store(options):
    """A VaultStore from options: url, token | role_id + secret_id, mount_point (default secret),
    approle_mount_point (default approle), namespace, verify (bool or CA bundle path), timeout."""
    if hvac is None:
        raise store.StoreLibraryMissing('the vault store needs the Python library hvac on the controller '
                                        '(pip install hvac; it is in the collection\'s requirements.txt)')
    url = _option(options, 'url', ('VAULT_ADDR',))
    if not url:
        raise store.StoreOptionsInvalid('the vault store needs an address: option url or VAULT_ADDR')
    verify = options.get('verify')
    if verify is None:
        verify = os.environ.get('VAULT_CACERT') or not os.environ.get('VAULT_SKIP_VERIFY')
    token = _option(options, 'token', ('VAULT_TOKEN',))
    role_id = _option(options, 'role_id', ('ANSIBLE_HASHI_VAULT_ROLE_ID',))
    secret_id = _option(options, 'secret_id', ('ANSIBLE_HASHI_VAULT_SECRET_ID',))
    if options.get('token') and (options.get('role_id') or options.get('secret_id')):
        raise store.StoreOptionsInvalid('the vault store takes a token or an AppRole (role_id, secret_id), not both')
    client = hvac.Client(url=url, namespace=_option(options, 'namespace', ('VAULT_NAMESPACE',)), verify=verify,
                         timeout=options.get('timeout') or DEFAULT_TIMEOUT)
    vault = VaultStore(client, options.get('mount_point') or DEFAULT_MOUNT, url)
    if role_id and not options.get('token'):
        if not secret_id:
            raise store.StoreOptionsInvalid('the vault store\'s AppRole login needs a secret_id with the role_id')
        try:
            client.auth.approle.login(role_id=role_id, secret_id=secret_id,
                                      mount_point=options.get('approle_mount_point') or 'approle')
        except Exception as exc:  # pylint: disable=broad-except
            error = vault._error(exc, None, 'logging in to')
            if isinstance(error, store.StoreRequestInvalid):
                # Vault and OpenBao answer a wrong role_id or secret_id with 400 "invalid role or secret ID".
                error = store.StorePermissionDenied(error.message, 'store_permission_denied')
            raise error
    elif token:
        client.token = token
    else:
        raise store.StoreOptionsInvalid('the vault store needs a credential: option token or VAULT_TOKEN, or an '
                                        'AppRole (role_id and secret_id)')
    return vault
