# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""codex_auth_writeback: a runner's refreshed auth.json back into the controller's seed store.

Runs on the controller. In this order, so that nothing is read from the runner when the file could
not be stored anyway:

1. the vault secret: one the play was given (--vault-password-file, --ask-vault-pass, --vault-id,
   ANSIBLE_VAULT_PASSWORD_FILE / vault_identity_list - what Ansible's loader holds), the one labelled
   vault_id when that is set; or, deprecated, the secret read from vault_password_file;
2. the store's copy (decrypted with the play's secrets);
3. the runner's file, read by the codex_auth_export module on the host (as the owner of CODEX_HOME);
4. the decision (codex_writeback_decision: store only a valid file that is believably newer - not from
   the future - and of the same account, unless allow_identity_change);
5. on `store` only: the file encrypted with that secret, written through a 0600 temp file in the
   store's directory and renamed over the old one.

The result holds facts only (the decision, the label used); the file's content never leaves this
plugin: it is not returned, not put in a host variable, and not shown in a diff.

With `runners` (a host's runner instances, each with its own CODEX_HOME and its own store file `dest`), the same
steps for all of them in one task: the list is refused as a whole - an invalid or repeated name or CODEX_HOME
(_runner_instances.layout_problems, the modules' rule), a relative dest, a missing store directory, two instances
with one dest, a store copy that cannot be read - before anything is read from the runner or written; then one
codex_auth_export run reads every instance's file, and each instance is decided and stored on its own. A refused
instance (or one whose file could not be read or stored) does not keep the others from being stored; the result's
`runners` says, per instance (`host/instance`), what was done.
"""

import base64
import binascii
import errno
import os
import tempfile

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.parsing.vault import VaultLib, get_file_vault_secret, is_encrypted
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.codexops.runner.plugins.filter.writeback import codex_writeback_decision
from ansible_collections.codexops.runner.plugins.module_utils import _runner_instances
from ansible_collections.codexops.runner.plugins.module_utils import errors

display = Display()

EXPORT_MODULE = 'codexops.runner.codex_auth_export'
# A vault file is about twice the size of what it holds; a store file larger than this is not a seed.
MAX_STORE_BYTES = 8 * 1024 * 1024
MISSING_SECRET_FIX = ('run ansible-playbook with --vault-password-file, --ask-vault-pass or --vault-id, or set '
                      'codex_writeback_encrypt: false (option encrypt: false) to store it unencrypted')

ARGUMENT_SPEC = dict(
    # Not type=path: a `~user` CODEX_HOME is the runner's, expanded on the runner by codex_auth_export.
    codex_home=dict(type='str'),
    owner=dict(type='str'),
    runners=dict(type='list', elements='dict', options=dict(
        name=dict(type='str', required=True),
        codex_home=dict(type='str', required=True),
        owner=dict(type='str'),
        dest=dict(type='path', required=True),
    )),
    allow_identity_change=dict(type='bool', default=False),
    dest=dict(type='path'),
    encrypt=dict(type='bool', default=True),
    vault_id=dict(type='str'),
    vault_password_file=dict(type='path'),
    allowed_auth_modes=dict(type='list', elements='str', default=['chatgpt']),
    fingerprint_salt=dict(type='str', no_log=True),
)
# One runner (codex_home, dest) or several instances (runners, each with its own), never both.
ARGUMENT_RULES = dict(
    mutually_exclusive=[('codex_home', 'runners'), ('owner', 'runners'), ('dest', 'runners')],
    required_one_of=[('codex_home', 'runners')],
    required_together=[('codex_home', 'dest')],
)


class WritebackError(errors.CodexOpsError):
    """A refusal with a stable code and a message that never quotes a file's content or a secret."""

    def __init__(self, code, message):
        super(WritebackError, self).__init__(message, code)


def play_secrets(loader):
    """[(label, VaultSecret)] the play was given, in Ansible's order (--vault-id before
    --vault-password-file, each in the order given). The loader holds them; ansible-core 2.19+
    also keeps them in VaultSecretsContext."""
    vault = getattr(loader, '_vault', None)
    secrets = list(getattr(vault, 'secrets', None) or [])
    if not secrets:
        try:
            from ansible.parsing.vault import VaultSecretsContext
        except ImportError:
            return []
        context = VaultSecretsContext.current(optional=True)
        secrets = list(context.secrets or []) if context else []
    return [(label, secret) for label, secret in secrets if secret is not None]


def labels_of(secrets):
    labels = []
    for label, _secret in secrets:
        if label not in labels:
            labels.append(label)
    return labels


def choose_secret(secrets, vault_id=None, encrypt_identity=None):
    """(label, secret, why) to encrypt with: the one labelled vault_id, else the one labelled
    Ansible's vault_encrypt_identity when that is configured (as ansible-vault encrypt does), else
    the first the play was given. A label that is asked for and missing is an error, never a fallback
    to another secret, so a file never carries a label its secret does not have."""
    if not secrets:
        raise WritebackError('vault_secret_missing', 'no vault secret to encrypt the store file with')
    wanted = vault_id or encrypt_identity
    if wanted:
        for label, secret in secrets:
            if label == wanted:
                return label, secret, 'vault_id' if vault_id else 'vault_encrypt_identity'
        raise WritebackError('vault_id_unknown', 'the play has no vault secret labelled %s (it has: %s); run with '
                             '--vault-id %s@SOURCE or set codex_writeback_vault_id to one of those labels'
                             % (wanted, ', '.join(labels_of(secrets)), wanted))
    label, secret = secrets[0]
    return label, secret, 'first'


def read_store(path):
    """The store's bytes, or None when it has no file for this runner."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read(MAX_STORE_BYTES + 1)
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise WritebackError('store_unreadable', 'could not read the store file %s: %s' % (path, exc.strerror))
    if len(data) > MAX_STORE_BYTES:
        raise WritebackError('store_too_large', 'the store file %s is larger than %d bytes; it is not a seed'
                             % (path, MAX_STORE_BYTES))
    return data


def store_plaintext(path, data, secrets):
    """The store's copy in the clear ('' when there is none)."""
    if data is None:
        return ''
    if is_encrypted(data):
        if not secrets:
            raise WritebackError('store_undecryptable', 'the store file %s is vault-encrypted and the play has no '
                                 'vault secret to read it; %s' % (path, MISSING_SECRET_FIX))
        try:
            data = VaultLib(secrets).decrypt(data)
        except AnsibleError:
            raise WritebackError('store_undecryptable', 'none of the vault secrets of this play (%s) decrypts the '
                                 'store file %s; run with the secret it was encrypted with'
                                 % (', '.join(labels_of(secrets)), path))
    return to_text(data, errors='replace')


def write_atomically(path, data):
    """data into path: a 0600 temp file in the same directory, flushed to disk, renamed over path."""
    directory = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(dir=directory, prefix='.%s.' % os.path.basename(path), suffix='.tmp')
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def check_dest(dest, shown=None):
    """A store file the controller can write: absolute, in a directory that exists. Refused before anything is read."""
    prefix = '%s: ' % shown if shown else ''
    if not os.path.isabs(dest):
        raise WritebackError('dest_relative', '%sdest must be an absolute path on the controller, not %s'
                             % (prefix, dest))
    if not os.path.isdir(os.path.dirname(dest)):
        raise WritebackError('store_dir_missing', '%sthe store directory %s does not exist on the controller; '
                             'create it (0700) or set codex_writeback_store_dir. Nothing was read from the '
                             'runner.' % (prefix, os.path.dirname(dest)))


def dest_key(dest):
    """What makes two store files one: the same name in the same directory, its links resolved (the controller's
    store is the operator's own)."""
    return os.path.join(os.path.realpath(os.path.dirname(dest)), os.path.basename(dest))


def check_instances(entries, host, labels):
    """Refuse the list of instances (WritebackError naming them host/instance) before anything is read or written:
    no instance at all, what the modules refuse (_runner_instances.layout_problems: a bad or repeated name or
    CODEX_HOME, one inside another's), a store file that cannot be written, two instances with one store file."""
    if not entries:
        raise WritebackError('runner_instances_empty', 'runners is empty: give at least one instance, or codex_home '
                             'and dest. Nothing was read from the runner.')
    found = _runner_instances.layout_problems([{'name': entry['name'], 'codex_home': entry['codex_home']}
                                               for entry in entries])
    if found:
        error = _runner_instances.InstanceError(found)
        raise WritebackError(error.code or 'runner_instances_invalid', '%s: %s' % (host, error.message))
    for entry, shown in zip(entries, labels):
        check_dest(entry['dest'], shown)
    owners = {}
    for entry, shown in zip(entries, labels):
        owners.setdefault(dest_key(entry['dest']), []).append(shown)
    shared = ['%s have the same dest %s' % (' and '.join(names), key) for key, names in owners.items()
              if len(names) > 1]
    if shared:
        raise WritebackError('runner_instance_dest_duplicate', 'Refusing the runner instances before anything was '
                             'read or written: %s; each instance writes back into its own store file (its own '
                             'seed file)' % '; '.join(shared))


def encode(content, encrypt, label, secret):
    """The store file's bytes from the runner's base64 content: vault-encrypted with `secret` under `label`, or (with
    `encrypt` off) as they are."""
    try:
        plaintext = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise WritebackError('runner_content_invalid', 'codex_auth_export returned content that is not base64')
    if not encrypt:
        return plaintext
    try:
        return to_bytes(VaultLib().encrypt(plaintext, secret, vault_id=label)) + b'\n'
    except AnsibleError as exc:
        raise WritebackError('vault_encrypt_failed', 'could not encrypt the store file: %s' % exc.__class__.__name__)


def store(dest, data):
    """data into the store file, atomically; the old file is left as it was on any error."""
    try:
        write_atomically(dest, data)
    except (IOError, OSError) as exc:
        raise WritebackError('store_write_failed', 'could not write the store file %s: %s; the old file is '
                             'unchanged' % (dest, exc.strerror or exc.__class__.__name__))


def instances_result(host, results, encrypted, vault_id):
    """The task's result for a host's instances: `runners` (one entry each), changed when any was (or, in check mode,
    would be) stored, failed when any could not be read or stored (not for a refusal: the role fails on those, as
    for one runner, with codex_writeback_fail_on_refusal)."""
    errors_found = [item for item in results if item['action'] == 'error']
    counts = dict((action, len([item for item in results if item['action'] == action]))
                  for action in ('store', 'unchanged', 'refuse', 'error'))
    result = {'changed': any(item['changed'] for item in results), 'runners': results, 'encrypted': encrypted,
              'vault_id': vault_id,
              'msg': '%s: %d runner instances: %d stored, %d unchanged, %d refused, %d failed'
                     % (host, len(results), counts['store'], counts['unchanged'], counts['refuse'], counts['error'])}
    if errors_found:
        codes = set(item['code'] for item in errors_found)
        failures = '; '.join('%s (%s): %s' % (item['label'], item['code'], item['reason']) for item in errors_found)
        result.update(failed=True, error_code=codes.pop() if len(codes) == 1 else 'runner_instances_failed',
                      msg='write-back failed for %s; %s' % (failures, result['msg']))
    return result


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # the module's temp dir is made and removed by _execute_module / below

        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC, **ARGUMENT_RULES)
        try:
            if args['runners'] is not None:
                result.update(self._writeback_instances(args, task_vars))
            else:
                result.update(self._writeback(args, task_vars))
        except WritebackError as exc:
            result.update(failed=True, changed=False, msg=exc.message, error_code=exc.code)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _writeback(self, args, task_vars):
        dest = args['dest']
        check_dest(dest)

        # 1. The secret, before anything is read.
        label, secret, decrypting = self._secret(args, dest)

        # 2. The store's copy.
        store_text = store_plaintext(dest, read_store(dest), decrypting)

        # 3. The runner's file.
        module_args = {'codex_home': args['codex_home'], 'return_content': True}
        if args['owner']:
            # A CODEX_HOME that is not the runner's (planted where its own is missing) is refused unread.
            module_args['owner'] = args['owner']
        if args['fingerprint_salt']:
            module_args['fingerprint_salt'] = args['fingerprint_salt']
        exported = self._execute_module(module_name=EXPORT_MODULE, module_args=module_args, task_vars=task_vars)
        content = exported.pop('content', None) or ''
        if exported.get('failed'):
            # Only the message and its code: a module failure's stdout/stderr are not passed on.
            return {'failed': True, 'changed': False, 'error_code': exported.get('error_code'),
                    'msg': 'reading the runner\'s auth.json failed: %s' % exported.get('msg', 'unknown error')}

        # 4. The decision (facts only).
        decision = codex_writeback_decision(content, store_text, args['allowed_auth_modes'],
                                            args['fingerprint_salt'], args['allow_identity_change'])
        result = dict(decision, changed=False, dest=dest, encrypted=bool(secret is not None and args['encrypt']),
                      vault_id=label if args['encrypt'] else None)
        if decision['action'] != 'store':
            return result

        # 5. Write (not in check mode), only now.
        data = encode(content, args['encrypt'], label, secret)
        result['changed'] = True
        if self._task.check_mode:
            return result
        store(dest, data)
        return result

    def _writeback_instances(self, args, task_vars):
        """The same steps for every runner instance of the host (`runners`), in one task and one export run. The list
        is refused as a whole before anything is read or written; after that each instance stands alone."""
        host = str(task_vars.get('inventory_hostname', 'localhost'))
        entries = args['runners']
        labels = ['%s/%s' % (host, label) for label in _runner_instances.labels(entries)]
        check_instances(entries, host, labels)

        # 1. The secret, before anything is read.
        label, secret, decrypting = self._secret(args, 'the store files of %s' % ', '.join(labels))

        # 2. Every store copy; one that cannot be read refuses the list before the runner is read.
        store_texts = []
        for entry, shown in zip(entries, labels):
            try:
                store_texts.append(store_plaintext(entry['dest'], read_store(entry['dest']), decrypting))
            except WritebackError as exc:
                exc.message = '%s: %s. Nothing was read from the runner.' % (shown, exc.message)
                raise

        # 3. Every instance's file, in one codex_auth_export run.
        module_args = {'runners': [dict((field, entry[field]) for field in ('name', 'codex_home', 'owner')
                                        if entry[field] is not None) for entry in entries],
                       'return_content': True}
        if args['fingerprint_salt']:
            module_args['fingerprint_salt'] = args['fingerprint_salt']
        exported = self._execute_module(module_name=EXPORT_MODULE, module_args=module_args, task_vars=task_vars)
        exports = exported.pop('runners', None)
        if exported.get('failed') or not isinstance(exports, list) or len(exports) != len(entries):
            # Only the message and its code (the list refused on the host: an unknown owner, ...).
            return {'failed': True, 'changed': False, 'error_code': exported.get('error_code') or 'export_failed',
                    'msg': 'reading the runner instances\' auth.json on %s failed: %s'
                           % (host, exported.get('msg', 'unknown error'))}
        encrypted = bool(secret is not None and args['encrypt'])
        results = []
        for entry, shown, store_text, item in zip(entries, labels, store_texts, exports):
            content = (item.pop('content', None) if isinstance(item, dict) else None) or ''
            results.append(self._instance(args, entry, shown, store_text, item, content, label, secret))
        return instances_result(host, results, encrypted, label if args['encrypt'] else None)

    def _instance(self, args, entry, shown, store_text, exported, content, label, secret):
        """Steps 4 and 5 for one instance: its entry in the result's `runners` (facts only)."""
        result = {'name': entry['name'], 'label': shown, 'dest': entry['dest'], 'changed': False}
        if not isinstance(exported, dict) or exported.get('error_code') or exported.get('name') != entry['name']:
            # Its CODEX_HOME could not be read (missing, refused); only the module's message, never the file.
            exported = exported if isinstance(exported, dict) else {}
            return dict(result, action='error', code=exported.get('error_code') or 'export_failed', runner=None,
                        store=None, reason='reading its auth.json failed: %s' % exported.get('msg', 'unknown error'))
        decision = codex_writeback_decision(content, store_text, args['allowed_auth_modes'],
                                            args['fingerprint_salt'], args['allow_identity_change'])
        result.update(decision)
        if decision['action'] != 'store':
            return result
        try:
            data = encode(content, args['encrypt'], label, secret)
            result['changed'] = True
            if not self._task.check_mode:
                store(entry['dest'], data)
        except WritebackError as exc:
            # This instance's store file is unchanged; the others go on.
            result.update(action='error', code=exc.code, reason=exc.message, changed=False)
        return result

    def _secret(self, args, what):
        """(label, secret, decrypting): the secret to encrypt `what` with (None, None without encryption) and every
        secret to decrypt the store's copies with - found before anything is read."""
        secrets = play_secrets(self._loader)
        label = secret = None
        if args['vault_password_file']:
            label, secret = self._override_secret(args['vault_password_file'], args['vault_id'])
        elif args['encrypt']:
            try:
                label, secret, why = choose_secret(secrets, args['vault_id'], C.DEFAULT_VAULT_ENCRYPT_IDENTITY)
            except WritebackError as exc:
                if exc.code == 'vault_secret_missing':
                    exc.message = ('This play has no vault secret to encrypt %s with: %s. Nothing was read from '
                                   'the runner.' % (what, MISSING_SECRET_FIX))
                else:
                    exc.message += '. Nothing was read from the runner.'
                raise
            if why == 'first' and len(labels_of(secrets)) > 1:
                # No per-runner detail: Display drops repeats, so a fleet sees this once.
                display.warning('codex_auth_writeback: the play has several vault secrets (%s); the store files are '
                                'encrypted with the first, %s. Set codex_writeback_vault_id (option vault_id) to choose.'
                                % (', '.join(labels_of(secrets)), label))
        decrypting = ([(label, secret)] if secret is not None else []) + secrets
        return label, secret, decrypting

    def _override_secret(self, path, vault_id):
        display.deprecated(
            msg='codex_auth_writeback vault_password_file (role variable codex_writeback_vault_password_file) is '
                "deprecated: the store file is encrypted with the play's own vault secret. Run with "
                '--vault-password-file, --ask-vault-pass or --vault-id (and codex_writeback_vault_id to choose '
                'a label) instead',
            version='0.3.0', collection_name='codexops.runner')
        label = vault_id or C.DEFAULT_VAULT_IDENTITY
        try:
            secret = get_file_vault_secret(filename=path, vault_id=label, loader=self._loader)
            secret.load()
        except AnsibleError as exc:
            raise WritebackError('vault_password_file_unreadable', 'could not read the vault password file %s (%s). '
                                 'Nothing was read from the runner.' % (path, to_native(exc.message)))
        return label, secret
