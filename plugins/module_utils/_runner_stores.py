# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The secret stores as the runner reaches them at job time: standard library only (urllib), the same
contract (_store_contract: read -> (data, version), write with check-and-set, the same error codes),
the same data layout as the controller's stores (plugin_utils/_store_vault.py, _store_aws.py), so a
secret seeded from the controller is restored on the runner and the other way round.

- `vault`: HashiCorp Vault / OpenBao KV v2 over HTTP. The secret's data is {"auth_json": "<text>"};
  the version read is sent back as `options.cas`, so the server refuses a write when anyone wrote in
  between (HTTP 400 "check-and-set parameter did not match").
- `aws_secretsmanager`: the JSON API signed with Signature Version 4. GetSecretValue always asks for
  VersionStage AWSCURRENT; a write is PutSecretValue with a fresh ClientRequestToken and only the
  stage CODEXOPS_WRITEBACK, then UpdateSecretVersionStage AWSCURRENT MoveToVersionId=new,
  RemoveFromVersionId=the version read, which the service refuses once AWSCURRENT has moved.

Credentials are held in memory only: never put in a message, a result or argv.
"""

import datetime
import hashlib
import hmac
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid

from ansible_collections.codexops.runner.plugins.module_utils import _store_contract as contract

FIELD = 'auth_json'
DEFAULT_MOUNT = 'secret'
DEFAULT_TIMEOUT = 10
# Answers are JSON documents around one auth.json; anything far larger is not a store's answer.
MAX_ANSWER_BYTES = 4 * contract.MAX_COPY_BYTES
CURRENT = 'AWSCURRENT'
PENDING_STAGE = 'CODEXOPS_WRITEBACK'
NO_CURRENT = ''


def redact_url(url):
    """The address without a user:password@ part, for messages."""
    scheme, sep, rest = (url or '').partition('://')
    if not sep:
        return url
    host, slash, path = rest.partition('/')
    return '%s://%s%s%s' % (scheme, host.rpartition('@')[2], slash, path)


class _Http(object):
    """One JSON request: (status, parsed body or None). Network failures are StoreUnreachable."""

    def __init__(self, timeout=DEFAULT_TIMEOUT, ca_file=None, describe=None):
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.describe = describe

    def request(self, method, url, headers, body, where, doing):
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        handlers = [urllib.request.HTTPSHandler(context=self.context)] if self.context else []
        # No proxy from the environment: a job could set one to see the store credential go by.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), *handlers)
        try:
            with opener.open(request, timeout=self.timeout) as answer:
                return answer.status, _json(answer.read(MAX_ANSWER_BYTES + 1))
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, _json(exc.read(MAX_ANSWER_BYTES + 1))
            finally:
                exc.close()
        except (urllib.error.URLError, socket.timeout, OSError, ValueError) as exc:
            raise contract.StoreUnreachable('%s the %s failed: no answer (%s). Nothing was written.'
                                            % (doing, where, exc.__class__.__name__))


def _json(raw):
    if not raw or len(raw) > MAX_ANSWER_BYTES:
        return None
    try:
        value = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class VaultStore(object):
    """Vault / OpenBao KV v2 over urllib."""

    kind = 'vault'

    def __init__(self, url, token, mount_point=DEFAULT_MOUNT, namespace=None, timeout=DEFAULT_TIMEOUT,
                 ca_file=None):
        self.url = url.rstrip('/')
        self._token = token
        self.mount_point = mount_point
        self.namespace = namespace
        self.http = _Http(timeout, ca_file)

    def describe(self, name):
        if name is None:
            return 'vault server at %s (AppRole login)' % redact_url(self.url)
        return 'vault secret %s/%s at %s' % (self.mount_point, name, redact_url(self.url))

    def _call(self, method, path, name, doing, payload=None):
        headers = {'Accept': 'application/json'}
        if self._token:
            headers['X-Vault-Token'] = self._token
        if self.namespace:
            headers['X-Vault-Namespace'] = self.namespace
        body = None
        if payload is not None:
            body = json.dumps(payload).encode('utf-8')
            headers['Content-Type'] = 'application/json'
        return self.http.request(method, '%s/v1/%s' % (self.url, path), headers, body, self.describe(name), doing)

    def _path(self, kind, name):
        return '%s/%s/%s' % (urllib.parse.quote(self.mount_point), kind, urllib.parse.quote(name))

    def login_approle(self, role_id, secret_id, mount_point='approle'):
        status, body = self._call('POST', 'auth/%s/login' % urllib.parse.quote(mount_point), None, 'logging in to',
                                  {'role_id': role_id, 'secret_id': secret_id})
        token = ((body or {}).get('auth') or {}).get('client_token') if status == 200 else None
        if not token:
            error = self._error(status, body, None, 'logging in to')
            if isinstance(error, contract.StoreRequestInvalid):
                # Vault and OpenBao answer a wrong role_id or secret_id with 400 "invalid role or secret ID".
                error = contract.StorePermissionDenied(error.message)
            raise error
        self._token = token

    def read(self, name):
        contract.check_name(name)
        status, body = self._call('GET', self._path('data', name), name, 'reading')
        if status == 404:
            return None, self._version_without_data(name)
        if status != 200:
            raise self._error(status, body, name, 'reading')
        data = (body or {}).get('data') or {}
        version = (data.get('metadata') or {}).get('version')
        content = data.get('data')
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise contract.StoreRequestInvalid('the %s answered without a version; is %s a KV version 2 mount?'
                                               % (self.describe(name), self.mount_point))
        if not isinstance(content, dict) or set(content) != {FIELD} or not isinstance(content[FIELD], str):
            raise contract.StoreCopyInvalid('the %s does not hold exactly one text field %s (the shape this '
                                            'collection writes); it is not a runner\'s auth.json. Nothing was '
                                            'written.' % (self.describe(name), FIELD))
        return contract.check_copy(self, name, content[FIELD].encode('utf-8', 'surrogatepass')), version

    def _version_without_data(self, name):
        """The version to write over when the latest version is deleted or destroyed; 0 when there is
        no secret at all."""
        status, body = self._call('GET', self._path('metadata', name), name, 'reading the metadata of')
        if status == 404:
            return 0
        if status != 200:
            raise self._error(status, body, name, 'reading the metadata of')
        version = ((body or {}).get('data') or {}).get('current_version')
        return version if isinstance(version, int) and not isinstance(version, bool) and version >= 0 else 0

    def write(self, name, data, expected_version):
        contract.check_name(name)
        if not isinstance(expected_version, int) or isinstance(expected_version, bool) or expected_version < 0:
            raise contract.StoreOptionsInvalid('a vault write needs the version read (an integer, 0 to create)')
        try:
            text = data.decode('utf-8')
        except (AttributeError, UnicodeDecodeError):
            raise contract.StoreCopyInvalid('only UTF-8 text goes into the %s; nothing was written'
                                            % self.describe(name))
        status, body = self._call('POST', self._path('data', name), name, 'writing',
                                  {'options': {'cas': expected_version}, 'data': {FIELD: text}})
        if status not in (200, 204):
            raise self._error(status, body, name, 'writing')
        version = ((body or {}).get('data') or {}).get('version')
        if not isinstance(version, int):
            raise contract.StoreRequestInvalid('the %s accepted the write but returned no version'
                                               % self.describe(name))
        return version

    def _error(self, status, body, name, doing):
        where = self.describe(name)
        errors = '; '.join(str(item) for item in ((body or {}).get('errors') or [])) or 'HTTP %d' % status
        if status in (401, 403):
            return contract.StorePermissionDenied('%s the %s was refused: %s. The token or AppRole needs a policy '
                                                  'that allows read and update on this path. Nothing was written.'
                                                  % (doing, where, errors))
        if status == 400 and contract.VAULT_CAS_MISMATCH in errors:
            return contract.StoreCasLost('the %s changed since it was read (%s)' % (where, errors))
        if status == 404:
            return contract.StoreSecretMissing('%s the %s: no such secret or mount (%s)' % (doing, where, errors))
        if status >= 500 or status == 429:
            return contract.StoreUnreachable('%s the %s failed: the server is not serving (%s). Nothing was written.'
                                             % (doing, where, errors))
        return contract.StoreRequestInvalid('%s the %s was refused: %s. Nothing was written.' % (doing, where, errors))


def _sign(key, text):
    return hmac.new(key, text.encode('utf-8'), hashlib.sha256).digest()


def sigv4_headers(method, url, region, service, body, access_key, secret_key, session_token=None,
                  extra_headers=None, now=None):
    """The headers of an AWS Signature Version 4 request (Authorization, X-Amz-Date, and the ones
    signed). Only the key id appears in a header; the secret key only keys the HMAC."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    stamp, day = now.strftime('%Y%m%dT%H%M%SZ'), now.strftime('%Y%m%d')
    parts = urllib.parse.urlsplit(url)
    headers = dict((key.lower(), ' '.join(str(value).split())) for key, value in (extra_headers or {}).items())
    headers['host'] = parts.netloc
    headers['x-amz-date'] = stamp
    if session_token:
        headers['x-amz-security-token'] = session_token
    signed = ';'.join(sorted(headers))
    canonical = '\n'.join([
        method, urllib.parse.quote(parts.path or '/', safe='/-_.~'), parts.query,
        ''.join('%s:%s\n' % (key, headers[key]) for key in sorted(headers)), signed,
        hashlib.sha256(body).hexdigest()])
    scope = '%s/%s/%s/aws4_request' % (day, region, service)
    to_sign = '\n'.join(['AWS4-HMAC-SHA256', stamp, scope, hashlib.sha256(canonical.encode('utf-8')).hexdigest()])
    key = _sign(_sign(_sign(_sign(('AWS4' + secret_key).encode('utf-8'), day), region), service), 'aws4_request')
    headers['authorization'] = ('AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s'
                                % (access_key, scope, signed, hmac.new(key, to_sign.encode('utf-8'),
                                                                       hashlib.sha256).hexdigest()))
    return headers


class AwsSecretsManagerStore(object):
    """AWS Secrets Manager's JSON API over urllib, signed with SigV4."""

    kind = 'aws_secretsmanager'

    def __init__(self, region, access_key, secret_key, session_token=None, endpoint_url=None,
                 timeout=DEFAULT_TIMEOUT, ca_file=None):
        self.region = region
        self.endpoint = (endpoint_url or 'https://secretsmanager.%s.amazonaws.com' % region).rstrip('/') + '/'
        self._key = (access_key, secret_key, session_token)
        self.http = _Http(timeout, ca_file)

    def describe(self, name):
        return 'AWS Secrets Manager secret %s in %s' % (name, self.region)

    def _call(self, action, payload, name, doing):
        body = json.dumps(payload).encode('utf-8')
        extra = {'Content-Type': 'application/x-amz-json-1.1', 'X-Amz-Target': 'secretsmanager.%s' % action}
        headers = sigv4_headers('POST', self.endpoint, self.region, 'secretsmanager', body, self._key[0],
                                self._key[1], self._key[2], extra)
        headers.pop('host')
        status, answer = self.http.request('POST', self.endpoint, headers, body, self.describe(name), doing)
        if status != 200:
            raise self._error(status, answer, name, doing, staging=(action == 'UpdateSecretVersionStage'))
        return answer or {}

    def read(self, name):
        contract.check_name(name)
        try:
            answer = self._call('GetSecretValue', {'SecretId': name, 'VersionStage': CURRENT}, name, 'reading')
        except contract.StoreSecretMissing as exc:
            if getattr(exc, 'aws_code', None) != 'ResourceNotFoundException':
                raise
            return None, self._token_without_value(name)
        if answer.get('SecretString') is None:
            raise contract.StoreCopyInvalid('the %s holds a binary value (SecretBinary), not the auth.json text this '
                                            'collection writes. Nothing was written.' % self.describe(name))
        if not isinstance(answer.get('VersionId'), str):
            raise contract.StoreRequestInvalid('the %s answered without a VersionId' % self.describe(name))
        data = answer['SecretString'].encode('utf-8', 'surrogatepass')
        return contract.check_copy(self, name, data), answer['VersionId']

    def _token_without_value(self, name):
        try:
            described = self._call('DescribeSecret', {'SecretId': name}, name, 'describing')
        except contract.StoreSecretMissing:
            return None
        if described.get('DeletedDate'):
            raise contract.StoreSecretMissing('the %s is scheduled for deletion; restore it (RestoreSecret) first. '
                                              'Nothing was written.' % self.describe(name))
        return NO_CURRENT

    def write(self, name, data, expected_version):
        contract.check_name(name)
        if expected_version is None:
            raise contract.StoreSecretMissing('the %s does not exist; the runner never creates it. Nothing was '
                                              'written.' % self.describe(name))
        try:
            text = data.decode('utf-8')
        except (AttributeError, UnicodeDecodeError):
            raise contract.StoreCopyInvalid('only UTF-8 text goes into the %s; nothing was written'
                                            % self.describe(name))
        answer = self._call('PutSecretValue', {'SecretId': name, 'SecretString': text,
                                               'ClientRequestToken': str(uuid.uuid4()),
                                               'VersionStages': [PENDING_STAGE]}, name, 'writing')
        new_version = answer.get('VersionId')
        if not isinstance(new_version, str):
            raise contract.StoreRequestInvalid('the %s accepted the write but returned no VersionId'
                                               % self.describe(name))
        if CURRENT in (answer.get('VersionStages') or ()):
            return new_version  # the secret's first version is current at once
        move = {'SecretId': name, 'VersionStage': CURRENT, 'MoveToVersionId': new_version}
        if expected_version != NO_CURRENT:
            move['RemoveFromVersionId'] = expected_version
        self._call('UpdateSecretVersionStage', move, name, 'making the new version current in')
        return new_version

    def _error(self, status, answer, name, doing, staging=False):
        where = self.describe(name)
        answer = answer or {}
        code = str(answer.get('__type') or answer.get('code') or '').rpartition('#')[2]
        text = '%s (%s)' % (code or 'HTTP %d' % status, answer.get('message') or answer.get('Message') or 'no message')
        if code in contract.AWS_DENIED or status in (401, 403):
            error = contract.StorePermissionDenied(
                '%s the %s was refused: %s. The credential needs secretsmanager:GetSecretValue, DescribeSecret, '
                'PutSecretValue and UpdateSecretVersionStage on this secret. Nothing was written.' % (doing, where, text))
        elif code == 'ResourceNotFoundException':
            error = contract.StoreSecretMissing('%s the %s: no such secret, or no current value (%s)'
                                                % (doing, where, text))
        elif code == 'ResourceExistsException' or (staging and code == 'InvalidParameterException'):
            error = contract.StoreCasLost('the %s changed since it was read: %s' % (where, text))
        elif code == 'InvalidRequestException' and 'marked' in text.lower() and 'delet' in text.lower():
            error = contract.StoreSecretMissing('%s the %s: it is scheduled for deletion (%s)' % (doing, where, text))
        elif code in contract.AWS_UNREACHABLE or status >= 500:
            error = contract.StoreUnreachable('%s the %s failed: the service is not serving (%s). Nothing was '
                                              'written.' % (doing, where, text))
        else:
            error = contract.StoreRequestInvalid('%s the %s was refused: %s. Nothing was written.'
                                                 % (doing, where, text))
        error.aws_code = code
        return error
