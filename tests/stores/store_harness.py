# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One harness per store kind, so every test in tests/stores runs the same steps against both real
servers: make a store (as the admin, or with a narrower credential), seed a secret, look at it
behind the contract's back (content, number of versions), plant a copy of the wrong shape."""

import datetime
import hashlib
import os
import secrets
import uuid

from ansible.module_utils.common.text.converters import to_bytes
from ansible.parsing.vault import VaultLib, VaultSecret

from ansible_collections.codexops.runner.plugins.plugin_utils import _store_aws, _store_file, _store_vault
from support import fake_credentials
from support.store_servers import closed_port

# Every fake secret a test made, for the leak checks.
SECRETS = []


def auth_file(minutes_ago, account='acct-fake-stores', user='user-fake-stores'):
    """A realistic ChatGPT auth.json (bytes) last refreshed `minutes_ago` minutes ago."""
    moment = fake_credentials.now() - datetime.timedelta(minutes=minutes_ago)
    doc, made = fake_credentials.chatgpt_seed(account_id=account, user_id=user, last_refresh=moment)
    SECRETS.extend(made)
    return fake_credentials.dumps(doc).encode('utf-8')


def new_name(prefix='runner'):
    return 'codexops-test/%s-%s/auth' % (prefix, uuid.uuid4().hex[:12])


class FileHarness(object):
    """The `file` store: vault-encrypted files in a 0700 directory, as the writeback role keeps them."""
    kind = 'file'
    label = 'ci'

    def __init__(self, directory):
        self.directory = str(directory)
        os.chmod(self.directory, 0o700)
        password = 'fake-vault-password-%s' % secrets.token_hex(8)
        SECRETS.append(password)
        self.secret = (self.label, VaultSecret(password.encode('ascii')))

    @staticmethod
    def file_name(name):
        return name.replace('/', '_')

    def path(self, name):
        return os.path.join(self.directory, self.file_name(name) + _store_file.SUFFIX)

    def store(self, secret=None):
        secret = secret or self.secret
        return NamedFileStore(self.directory, [secret], secret)

    def seed(self, name, data):
        with open(self.path(name), 'wb') as handle:
            handle.write(to_bytes(VaultLib().encrypt(data, self.secret[1], vault_id=self.label)) + b'\n')
        os.chmod(self.path(name), 0o600)

    def raw(self, name):
        with open(self.path(name), 'rb') as handle:
            stored = handle.read()
        return VaultLib([self.secret]).decrypt(stored).decode('utf-8'), hashlib.sha256(stored).hexdigest()

    def state(self, name):
        try:
            info = os.stat(self.path(name))
        except FileNotFoundError:
            return None
        with open(self.path(name), 'rb') as handle:
            return info.st_ino, info.st_mtime_ns, hashlib.sha256(handle.read()).hexdigest()

    def plant_wrong_shape(self, name):
        with open(self.path(name), 'wb') as handle:
            handle.write(b'x' * (2 * 1024 * 1024))

    def scoped_store(self, name, capabilities):
        """The file store's credential is the vault secret: a wrong one cannot read. (Root ignores file
        modes, so a read-only credential cannot be shown for this store.)"""
        assert not capabilities
        password = 'fake-wrong-password-%s' % secrets.token_hex(8)
        SECRETS.append(password)
        return self.store((self.label, VaultSecret(password.encode('ascii'))))

    def unreachable_store(self):
        return NamedFileStore(os.path.join(self.directory, 'no-such-directory'), [self.secret], self.secret)


class NamedFileStore(_store_file.FileStore):
    """The tests' secret names have slashes (Vault paths, AWS names); a file store takes file names."""

    def read(self, name):
        return super(NamedFileStore, self).read(FileHarness.file_name(name))

    def write(self, name, data, expected_version):
        return super(NamedFileStore, self).write(FileHarness.file_name(name), data, expected_version)

    def describe(self, name):
        return super(NamedFileStore, self).describe(FileHarness.file_name(name))


class VaultHarness(object):
    kind = 'vault'
    mount = 'secret'

    def __init__(self, bao):
        self.bao = bao
        self.root = bao.client()
        SECRETS.append(bao.root_token)

    def store(self, token=None):
        return _store_vault.VaultStore(self.bao.client(token), self.mount, self.bao.url)

    def seed(self, name, data):
        self.root.secrets.kv.v2.create_or_update_secret(path=name, secret={_store_vault.FIELD: data.decode('utf-8')},
                                                        mount_point=self.mount)

    def raw(self, name):
        """(text, version) as the server holds them, read as root."""
        answer = self.root.secrets.kv.v2.read_secret_version(path=name, mount_point=self.mount,
                                                             raise_on_deleted_version=True)
        return answer['data']['data'].get(_store_vault.FIELD), answer['data']['metadata']['version']

    def versions(self, name):
        """How many versions the secret has (0: none)."""
        try:
            metadata = self.root.secrets.kv.v2.read_secret_metadata(path=name, mount_point=self.mount)
        except Exception as exc:  # pylint: disable=broad-except
            if exc.__class__.__name__ == 'InvalidPath':
                return 0
            raise
        return metadata['data']['current_version']

    def state(self, name):
        return self.versions(name)

    def plant_wrong_shape(self, name):
        self.root.secrets.kv.v2.create_or_update_secret(path=name, secret={'password': 'not-an-auth-json'},
                                                        mount_point=self.mount)

    def policy_text(self, name, capabilities):
        return ('path "%s/data/%s" { capabilities = [%s] }\npath "%s/metadata/%s" { capabilities = ["read"] }\n'
                % (self.mount, name, ', '.join('"%s"' % c for c in capabilities), self.mount, name))

    def scoped_store(self, name, capabilities):
        """A store whose token may only do `capabilities` on this one secret (none: the default policy)."""
        policies = []
        if capabilities:
            policy = 'codexops-test-%s' % uuid.uuid4().hex[:12]
            self.root.sys.create_or_update_policy(name=policy, policy=self.policy_text(name, capabilities))
            policies.append(policy)
        token = self.root.auth.token.create(policies=policies or ['default'], ttl='10m')['auth']['client_token']
        SECRETS.append(token)
        return self.store(token)

    def unreachable_store(self):
        import hvac
        client = hvac.Client(url='http://127.0.0.1:%d' % closed_port(), token='fake-unused-token', timeout=2)
        return _store_vault.VaultStore(client, self.mount, client.url)


class AwsHarness(object):
    kind = 'aws_secretsmanager'

    def __init__(self, moto):
        self.moto = moto
        self.admin = moto.client('secretsmanager')
        SECRETS.append(moto.admin_key['SecretAccessKey'])

    def options(self, **extra):
        return dict(dict(endpoint_url=self.moto.url, region=self.moto.region, max_attempts=1), **extra)

    def store(self, key=None):
        return _store_aws.open_store(self.options(), session=self.moto.session(key))

    def seed(self, name, data):
        self.admin.create_secret(Name=name, SecretString=data.decode('utf-8'))

    def raw(self, name):
        answer = self.admin.get_secret_value(SecretId=name, VersionStage='AWSCURRENT')
        return answer.get('SecretString'), answer['VersionId']

    def versions(self, name):
        # moto answers ListSecretVersionIds on a missing secret with a 500: ask DescribeSecret first.
        try:
            self.admin.describe_secret(SecretId=name)
        except self.admin.exceptions.ResourceNotFoundException:
            return 0
        answer = self.admin.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)
        return len(answer['Versions'])

    def state(self, name):
        if not self.versions(name):
            return ()
        answer = self.admin.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)
        return tuple(sorted((item['VersionId'], tuple(sorted(item.get('VersionStages') or ())))
                            for item in answer['Versions']))

    def plant_wrong_shape(self, name):
        self.admin.create_secret(Name=name, SecretBinary=b'\x00\x01binary, not an auth.json')

    def scoped_store(self, name, capabilities):
        """A store whose IAM user may do only these actions (moto checks actions, not the secret's ARN,
        so `name` narrows nothing here)."""
        actions = {'read': ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
                   'update': ['secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecretVersionStage'],
                   'create': ['secretsmanager:CreateSecret']}
        wanted = [action for capability in capabilities for action in actions[capability]]
        key = self.moto.user_with_policy('codexops-test-%s' % uuid.uuid4().hex[:12], wanted)
        SECRETS.append(key['SecretAccessKey'])
        return self.store(key)

    def unreachable_store(self):
        options = dict(endpoint_url='http://127.0.0.1:%d' % closed_port(), region=self.moto.region, max_attempts=1,
                       connect_timeout=2, read_timeout=2)
        return _store_aws.open_store(options, session=self.moto.session())
