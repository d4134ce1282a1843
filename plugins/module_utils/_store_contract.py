# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The secret-store contract's facts that both sides share: the error codes, what a secret name and
a store copy may be, and the write-back loop (read, decide, write with check-and-set, re-read once).

Private to this collection; standard library only. The controller's stores (plugin_utils, hvac and
boto3) and the runner's job-time command (codex_job_credential, urllib) both use these, so an error
has one code and a lost check-and-set is handled one way wherever it happens. The verdict itself is
_writeback_rules.decide's; the loop takes it as an argument.

A store holds one secret per runner instance, addressed by `name`:

    read(name)  -> (data, version)   data: the stored auth.json bytes, or None when the store has no
                                     copy; version: an opaque token for `write`'s check-and-set
    write(name, data, expected_version) -> new version
                                     writes only if the secret is still at `expected_version`;
                                     otherwise raises StoreCasLost and writes nothing
"""

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils.errors import CodexOpsError

# A store copy larger than the largest auth.json the model reads is not one.
MAX_COPY_BYTES = auth_model.MAX_AUTH_BYTES
# A write-back reads, decides and writes at most this many times (a lost check-and-set re-reads once).
ATTEMPTS = 2

# AWS error codes (the `__type` of the JSON protocol, botocore's Error.Code) and what they mean.
AWS_UNREACHABLE = (
    'InternalServiceError', 'InternalFailure', 'ServiceUnavailable', 'ThrottlingException',
    'RequestTimeout', 'RequestTimeoutException')
AWS_DENIED = (
    'AccessDeniedException', 'AccessDenied', 'UnrecognizedClientException', 'InvalidSignatureException',
    'ExpiredTokenException', 'InvalidClientTokenId', 'SignatureDoesNotMatch', 'IncompleteSignature',
    'DecryptionFailure', 'KMSAccessDeniedException')
# Vault's / OpenBao's answer to a KV v2 write whose `cas` is not the current version.
VAULT_CAS_MISMATCH = 'check-and-set parameter did not match'


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


# The one default secret naming rule: runner instance INSTANCE on inventory host HOST keeps its auth.json in
# `codexops/runners/HOST/INSTANCE` (a KV v2 path under the mount, a Secrets Manager name). The job hooks role's
# default secret, the codex_auth role's seed source and the docs all ask secret_name (the filter
# codexops.runner.codex_secret_name exposes it).
SECRET_PREFIX = 'codexops/runners'


def secret_name(host, instance):
    """The default secret of runner instance `instance` on inventory host `host`: SECRET_PREFIX/host/instance.
    Both must be non-empty text without `/`, blanks around or control characters (check_name's rule), so the
    name is a valid secret name and no two (host, instance) pairs share one."""
    for what, value in (('host', host), ('instance', instance)):
        if not isinstance(value, str) or not value or value != value.strip() or '/' in value or value in ('.', '..'):
            raise StoreOptionsInvalid('the default secret name needs a non-empty %s name without "/" (got a %s)'
                                      % (what, type(value).__name__))
    return check_name('%s/%s/%s' % (SECRET_PREFIX, host, instance))


def write_back(secret_store, name, runner_data, decide, create=False):
    """Bring `runner_data` (the runner's auth.json bytes) into `secret_store` under `name` if
    `decide(runner_data, store_text)` (store_text: the store's copy as text, '' when none) says
    `store`. Returns the decision plus `store_kind`, `name`, `written` (a new version was made),
    `version` (the store's version after the call), `attempts` and `cas_lost` (how many writes another
    writer beat). A lost check-and-set reads and decides once more: the other writer may have stored
    something newer (then the decision refuses), or older. A second loss fails with store_cas_lost.
    Nothing is written on any error, and on `unchanged` (byte-identical) no version is made.

    `create`: a missing secret is created (the operator's first seed); a write-back from a runner
    leaves it False, so a wrong name never makes a second credential: store_secret_missing."""
    if not isinstance(runner_data, bytes):
        raise StoreOptionsInvalid("the runner's auth.json must be given as bytes")
    cas_lost = 0
    for attempt in range(1, ATTEMPTS + 1):
        stored, version = secret_store.read(name)
        if stored is None and not create:
            raise StoreSecretMissing(
                'the %s does not exist (or has no current value). A write-back never creates one: seed it from a '
                'trusted machine first, or check the name. Nothing was written.' % secret_store.describe(name))
        try:
            store_text = '' if stored is None else stored.decode('utf-8')
        except UnicodeDecodeError:
            raise StoreCopyInvalid('the %s is not UTF-8 text; it is not an auth.json. Nothing was written.'
                                   % secret_store.describe(name))
        decision = decide(runner_data, store_text)
        result = dict(decision, store_kind=secret_store.kind, name=name, written=False, version=version,
                      attempts=attempt, cas_lost=cas_lost)
        if decision['action'] != 'store':
            return result
        try:
            result['version'] = secret_store.write(name, runner_data, version)
        except StoreCasLost:
            cas_lost += 1
            continue
        result['written'] = True
        return result
    raise StoreCasLost('the %s changed between the read and the write %d times in a row; nothing was written. '
                       'Another writer is busy with the same runner\'s secret: one runner instance, one secret.'
                       % (secret_store.describe(name), ATTEMPTS))
