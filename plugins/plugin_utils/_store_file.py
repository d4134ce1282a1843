# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The `file` store: today's per-runner seed files on the controller (vault-encrypted by default),
behind the secret-store contract.

The reading, decrypting and atomic writing are the codex_auth_writeback action's own functions
(plugins/action/codex_auth_writeback.py), called as they are; this wrapper adds only what the
contract needs on top: a version token (the SHA-256 of the file's bytes as stored, None when there is
no file) and check-and-set (an exclusive flock on `.<name>.lock` in the store directory, the file
re-read under it and compared with the version read, then the atomic rename). Readers need no lock:
the rename makes a reader see the old file or the new one, never a mix.

Secrets: `secrets` are the [(label, VaultSecret)] the play was given (to decrypt); `encrypt_with` is
the one (label, secret) to encrypt with, or None to store the file in the clear (still 0600).
"""

import errno
import fcntl
import hashlib
import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_bytes
from ansible.parsing.vault import VaultLib

from ansible_collections.codexops.runner.plugins.action import codex_auth_writeback as writeback_action
from ansible_collections.codexops.runner.plugins.plugin_utils import _secret_store as store

SUFFIX = '.json'


def version_of(raw):
    return None if raw is None else hashlib.sha256(raw).hexdigest()


class FileStore(store.SecretStore):

    kind = 'file'

    def __init__(self, directory, secrets=None, encrypt_with=None):
        self.directory = directory
        self.secrets = list(secrets or [])
        self.encrypt_with = encrypt_with
        if encrypt_with is not None and encrypt_with not in self.secrets:
            self.secrets.insert(0, encrypt_with)

    def describe(self, name):
        return 'store file %s' % self._path(name, check=False)

    def _path(self, name, check=True):
        if check:
            store.check_name(name)
            if '/' in name or name in ('.', '..') or name.startswith('.'):
                raise store.StoreOptionsInvalid('a file store name is a runner\'s file name, without / or a leading dot')
        return os.path.join(self.directory, name + SUFFIX)

    def _raw(self, name):
        """The file's bytes as stored (None when there is none)."""
        path = self._path(name)
        if not os.path.isdir(self.directory):
            raise store.StoreUnreachable('the store directory %s does not exist on the controller; create it (0700). '
                                         'Nothing was written.' % self.directory)
        try:
            return writeback_action.read_store(path)
        except writeback_action.WritebackError as exc:
            raise self._mapped(exc, path)

    def _mapped(self, exc, path):
        if exc.code == 'store_too_large':
            return store.StoreCopyInvalid(exc.message + '. Nothing was written.')
        if exc.code == 'store_undecryptable':
            return store.StorePermissionDenied(exc.message + '. Nothing was written.')
        if exc.code == 'store_unreadable' and os.path.exists(path) and not os.access(path, os.R_OK):
            return store.StorePermissionDenied(exc.message + '. Nothing was written.')
        return store.StoreUnreachable(exc.message + '. Nothing was written.')

    def read(self, name):
        raw = self._raw(name)
        if raw is None:
            return None, None
        try:
            text = writeback_action.store_plaintext(self._path(name), raw, self.secrets)
        except writeback_action.WritebackError as exc:
            raise self._mapped(exc, self._path(name))
        return store.check_copy(self, name, text.encode('utf-8', 'surrogatepass')), version_of(raw)

    def write(self, name, data, expected_version):
        path = self._path(name)
        if self.encrypt_with is not None:
            label, secret = self.encrypt_with
            try:
                data = to_bytes(VaultLib().encrypt(data, secret, vault_id=label)) + b'\n'
            except AnsibleError as exc:
                raise store.StoreRequestInvalid('could not encrypt the %s: %s' % (self.describe(name),
                                                                                  exc.__class__.__name__))
        lock_path = os.path.join(self.directory, '.%s.lock' % os.path.basename(path))
        try:
            lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise store.StorePermissionDenied('cannot lock the %s (%s). Nothing was written.'
                                                  % (self.describe(name), exc.strerror))
            raise store.StoreUnreachable('cannot lock the %s (%s). Nothing was written.'
                                         % (self.describe(name), exc.strerror))
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if version_of(self._raw(name)) != expected_version:
                raise store.StoreCasLost('the %s changed since it was read' % self.describe(name))
            try:
                writeback_action.write_atomically(path, data)
            except (IOError, OSError) as exc:
                raise store.StoreUnreachable('could not write the %s: %s; the old file is unchanged'
                                             % (self.describe(name), exc.strerror or exc.__class__.__name__))
        finally:
            os.close(lock)
        return version_of(data)


def open_store(options):
    """A FileStore from options: directory (required), secrets, encrypt_with (see the module doc)."""
    directory = options.get('directory')
    if not directory or not os.path.isabs(directory):
        raise store.StoreOptionsInvalid('the file store needs an absolute directory on the controller')
    return FileStore(directory, options.get('secrets'), options.get('encrypt_with'))
