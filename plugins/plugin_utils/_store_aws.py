# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The `aws_secretsmanager` store: AWS Secrets Manager through boto3 (controller side).

One secret per runner instance; its SecretString is the auth.json text. The version token is the
VersionId that carries AWSCURRENT when read (always read with VersionStage='AWSCURRENT': a read
without it can return the previous value right after a stage move on some implementations).

A write cannot be a plain PutSecretValue, which would make any copy current, an older one included.
It is two steps:
  1. PutSecretValue with a fresh ClientRequestToken (it becomes the VersionId; a retried request is
     idempotent) and VersionStages=[PENDING_STAGE], so the new version is not current yet;
  2. UpdateSecretVersionStage(VersionStage='AWSCURRENT', MoveToVersionId=new,
     RemoveFromVersionId=the version read): the service refuses it when AWSCURRENT has moved since the
     read, so an older copy never becomes current (StoreCasLost). The refused version keeps only the
     PENDING_STAGE label, which the next write moves on; AWS removes unlabelled versions itself.

Credentials come from the usual AWS chain (environment, shared files, profile, instance role) via a
boto3 Session; this module never takes a key as an option.
"""

import uuid

from ansible_collections.codexops.runner.plugins.plugin_utils import _secret_store as store

try:
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError:
    boto3 = botocore = None

CURRENT = 'AWSCURRENT'
PENDING_STAGE = 'CODEXOPS_WRITEBACK'
# The secret exists but has no value yet (created without one): writes then move AWSCURRENT without
# a RemoveFromVersionId, which the service refuses if another writer attached it meanwhile.
NO_CURRENT = ''

UNREACHABLE = (
    'InternalServiceError', 'InternalFailure', 'ServiceUnavailable', 'ThrottlingException',
    'RequestTimeout', 'RequestTimeoutException')
DENIED = (
    'AccessDeniedException', 'AccessDenied', 'UnrecognizedClientException', 'InvalidSignatureException',
    'ExpiredTokenException', 'InvalidClientTokenId', 'SignatureDoesNotMatch', 'IncompleteSignature',
    'DecryptionFailure', 'KMSAccessDeniedException')


class AwsSecretsManagerStore(store.SecretStore):

    kind = 'aws_secretsmanager'

    def __init__(self, client, region=None):
        self.client = client
        self.region = region

    def describe(self, name):
        return 'AWS Secrets Manager secret %s%s' % (name, ' in %s' % self.region if self.region else '')

    def read(self, name):
        store.check_name(name)
        try:
            answer = self.client.get_secret_value(SecretId=name, VersionStage=CURRENT)
        except Exception as exc:  # pylint: disable=broad-except
            error = self._error(exc, name, 'reading')
            if not isinstance(error, store.StoreSecretMissing) or _code(exc) != 'ResourceNotFoundException':
                raise error  # (a secret scheduled for deletion cannot be written, nor created: restore it first)
            return None, self._token_without_value(name)
        if 'SecretString' not in answer or answer.get('SecretString') is None:
            raise store.StoreCopyInvalid('the %s holds a binary value (SecretBinary), not the auth.json text this '
                                         'collection writes. Nothing was written.' % self.describe(name))
        data = answer['SecretString'].encode('utf-8', 'surrogatepass')
        return store.check_copy(self, name, data), answer['VersionId']

    def _token_without_value(self, name):
        """NO_CURRENT when the secret exists without a current value, None when there is no secret."""
        try:
            described = self.client.describe_secret(SecretId=name)
        except Exception as exc:  # pylint: disable=broad-except
            error = self._error(exc, name, 'describing')
            if isinstance(error, store.StoreSecretMissing):
                return None
            raise error
        if described.get('DeletedDate'):
            raise store.StoreSecretMissing('the %s is scheduled for deletion; restore it (RestoreSecret) first. Nothing '
                                           'was written.' % self.describe(name))
        return NO_CURRENT

    def write(self, name, data, expected_version):
        store.check_name(name)
        try:
            text = data.decode('utf-8')
        except (AttributeError, UnicodeDecodeError):
            raise store.StoreCopyInvalid('only UTF-8 text goes into the %s; nothing was written' % self.describe(name))
        token = str(uuid.uuid4())
        if expected_version is None:
            try:
                answer = self.client.create_secret(Name=name, SecretString=text, ClientRequestToken=token)
            except Exception as exc:  # pylint: disable=broad-except
                raise self._error(exc, name, 'creating')
            return answer['VersionId']
        try:
            answer = self.client.put_secret_value(SecretId=name, SecretString=text, ClientRequestToken=token,
                                                  VersionStages=[PENDING_STAGE])
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(exc, name, 'writing')
        new_version = answer['VersionId']
        if CURRENT in (answer.get('VersionStages') or ()):
            # The secret's first version: the service makes it current whatever stage was asked for.
            return new_version
        move = dict(SecretId=name, VersionStage=CURRENT, MoveToVersionId=new_version)
        if expected_version != NO_CURRENT:
            move['RemoveFromVersionId'] = expected_version
        try:
            self.client.update_secret_version_stage(**move)
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(exc, name, 'making the new version current in', staging=True)
        return new_version

    def _error(self, exc, name, doing, staging=False):
        where = self.describe(name)
        if isinstance(exc, store.StoreError):
            return exc
        if botocore is None:
            return store.StoreError('%s the %s failed: %s' % (doing, where, exc.__class__.__name__), 'store_error')
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return store.StorePermissionDenied('%s the %s: no AWS credentials in the usual chain (environment, shared '
                                               'files, profile, instance role). Nothing was written.' % (doing, where))
        if isinstance(exc, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
                            botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError,
                            botocore.exceptions.HTTPClientError)):
            return store.StoreUnreachable('%s the %s failed: no answer (%s). Nothing was written.'
                                          % (doing, where, exc.__class__.__name__))
        if not isinstance(exc, botocore.exceptions.ClientError):
            return store.StoreError('%s the %s failed: %s' % (doing, where, exc.__class__.__name__), 'store_error')
        error = exc.response.get('Error') or {}
        code = error.get('Code') or ''
        status = exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode', 0)
        text = '%s (%s)' % (code, error.get('Message') or 'no message')
        if code in DENIED or status in (401, 403):
            return store.StorePermissionDenied('%s the %s was refused: %s. The credential needs '
                                               'secretsmanager:GetSecretValue, DescribeSecret, PutSecretValue and '
                                               'UpdateSecretVersionStage on this secret. Nothing was written.'
                                               % (doing, where, text))
        if code == 'ResourceNotFoundException':
            return store.StoreSecretMissing('%s the %s: no such secret, or no current value (%s)' % (doing, where, text))
        if code == 'ResourceExistsException' or (staging and code == 'InvalidParameterException'):
            return store.StoreCasLost('the %s changed since it was read: %s' % (where, text))
        if code == 'InvalidRequestException' and 'marked' in text.lower() and 'delet' in text.lower():
            return store.StoreSecretMissing('%s the %s: it is scheduled for deletion (%s)' % (doing, where, text))
        if code in UNREACHABLE or status >= 500:
            return store.StoreUnreachable('%s the %s failed: the service is not serving (%s). Nothing was written.'
                                          % (doing, where, text))
        return store.StoreRequestInvalid('%s the %s was refused: %s. Nothing was written.' % (doing, where, text))


def _code(exc):
    response = getattr(exc, 'response', None) or {}
    return (response.get('Error') or {}).get('Code')


def open_store(options, session=None):
    """An AwsSecretsManagerStore from options: region, profile, endpoint_url (an AWS-compatible
    endpoint), connect_timeout, read_timeout, max_attempts. `session`: a boto3 Session to use
    instead of one from the chain (tests)."""
    if boto3 is None:
        raise store.StoreLibraryMissing('the aws_secretsmanager store needs the Python library boto3 on the '
                                        'controller (pip install boto3; it is in the collection\'s requirements.txt)')
    try:
        session = session or boto3.session.Session(profile_name=options.get('profile') or None)
        config = botocore.config.Config(
            connect_timeout=options.get('connect_timeout') or 10, read_timeout=options.get('read_timeout') or 30,
            retries={'max_attempts': options.get('max_attempts') or 3, 'mode': 'standard'})
        client = session.client('secretsmanager', region_name=options.get('region') or None,
                                endpoint_url=options.get('endpoint_url') or None, config=config)
    except botocore.exceptions.ProfileNotFound:
        raise store.StoreOptionsInvalid('the AWS profile %s is not configured' % options.get('profile'))
    except botocore.exceptions.NoRegionError:
        raise store.StoreOptionsInvalid('the aws_secretsmanager store needs a region: option region, AWS_REGION or '
                                        'AWS_DEFAULT_REGION, or the profile\'s region')
    return AwsSecretsManagerStore(client, client.meta.region_name)
