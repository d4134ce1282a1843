# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""codex-job-credential: the job-time round trip of a runner's auth.json, run ON the runner by the CI
runner's own hooks (GitHub ACTIONS_RUNNER_HOOK_JOB_STARTED / _COMPLETED, GitLab pre_build_script /
post_build_script), as the runner user. Standard library only (Python 3.9+); the role
codexops.runner.codex_job_hooks installs it with the module_utils files it imports.

    codex-job-credential restore   [--config PATH]   before the job
    codex-job-credential writeback [--config PATH]   after the job

restore: the runner's own secret -> CODEX_HOME/auth.json, only when the file is absent or the store's
  copy is newer. The verdict is _writeback_rules.decide with the store's copy as the candidate and the
  runner's file as the copy it would replace: the same rules as a write-back, in the other direction.
  Written under Codex's locks (auth.lock, then auth.json.lock), O_EXCL temp 0600, fsync, rename, in
  a 0700 CODEX_HOME.
writeback: CODEX_HOME/auth.json (read under Codex's locks, so a refresh in flight finishes first) ->
  the store, through the contract's loop (_store_contract.write_back: read, decide, check-and-set,
  one re-read) and the same decide. It never creates the secret.

The config (JSON, default ~/.config/codexops/job-credential.json or $CODEXOPS_JOB_CREDENTIAL_CONFIG)
names CODEX_HOME, the store and the secret, and may hold the store credential; it must be a regular
file of the runner user that no one else can read or write. A credential can also come from the
environment the runner starts the hook with (VAULT_ADDR / VAULT_TOKEN / VAULT_NAMESPACE / VAULT_CACERT;
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN / AWS_REGION). Never from argv.

Output: one JSON line of facts and codes on stdout, never a secret. Exit status:
  0  done: restored / unchanged / kept (the runner's file is newer), stored / unchanged / refused as
     older (another job wrote a newer copy first)
  1  an error with a stable code (the store codes of _store_contract, the CODEX_HOME / auth.json codes
     of safe_files, config_invalid); nothing was written
  2  usage
  3  the verdict refused for another reason (a broken, future-dated or other account's file, no
     auth.json after the job): nothing was written, a person should look
"""

import errno
import json
import os
import stat
import sys

from ansible_collections.codexops.runner.plugins.module_utils import _runner_stores
from ansible_collections.codexops.runner.plugins.module_utils import _store_contract as contract
from ansible_collections.codexops.runner.plugins.module_utils import _writeback_rules
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import constants
from ansible_collections.codexops.runner.plugins.module_utils import safe_files
from ansible_collections.codexops.runner.plugins.module_utils.errors import CodexOpsError

COMMANDS = ('restore', 'writeback')
CONFIG_ENV = 'CODEXOPS_JOB_CREDENTIAL_CONFIG'
DEFAULT_CONFIG = '~/.config/codexops/job-credential.json'
MAX_CONFIG_BYTES = 64 * 1024
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
# Verdicts that are the normal outcome of a round trip, not a problem: the newer copy is where it is.
BENIGN = {'restore': ('runner_older',), 'writeback': ('runner_older',)}
STORE_KINDS = ('vault', 'aws_secretsmanager')
CONFIG_KEYS = ('codex_home', 'store', 'secret', 'allowed_auth_modes', 'allow_identity_change', 'fingerprint_salt',
               'lock_timeout', 'vault', 'aws')
VAULT_KEYS = ('url', 'token', 'role_id', 'secret_id', 'approle_mount_point', 'mount_point', 'namespace', 'ca_file',
              'timeout')
AWS_KEYS = ('region', 'endpoint_url', 'access_key_id', 'secret_access_key', 'session_token', 'ca_file', 'timeout')


class ConfigInvalid(CodexOpsError):
    default_code = 'config_invalid'


def load_config(path):
    """The config as a dict, read only from a regular file of ours that nobody else can read or write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
    except OSError as exc:
        raise ConfigInvalid('cannot open the config %s: %s (a symlink is refused)' % (path, exc.strerror))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise ConfigInvalid('the config %s is not a regular file with one link' % path)
        if st.st_uid != os.geteuid():
            raise ConfigInvalid('the config %s belongs to uid %d, not to the runner user (uid %d) that runs this '
                                'command' % (path, st.st_uid, os.geteuid()))
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise ConfigInvalid('the config %s is mode %04o: it may hold the store credential, so no group or other '
                                'bits (chmod 0600)' % (path, stat.S_IMODE(st.st_mode)))
        raw = os.read(fd, MAX_CONFIG_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigInvalid('the config %s is larger than %d bytes' % (path, MAX_CONFIG_BYTES))
    try:
        config = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        raise ConfigInvalid('the config %s is not JSON' % path)  # (its text is never quoted: it holds a credential)
    return check_config(config, path)


def check_config(config, path):
    if not isinstance(config, dict):
        raise ConfigInvalid('the config %s must be a JSON object' % path)
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigInvalid('the config %s has unknown keys: %s' % (path, ', '.join(unknown)))
    home = config.get('codex_home')
    if not isinstance(home, str) or not os.path.isabs(home):
        raise ConfigInvalid('the config %s needs codex_home, an absolute path' % path)
    if config.get('store') not in STORE_KINDS:
        raise ConfigInvalid('the config %s needs store: one of %s' % (path, ', '.join(STORE_KINDS)))
    contract.check_name(config.get('secret'))
    modes = config.get('allowed_auth_modes', ['chatgpt'])
    if not isinstance(modes, list) or not modes or not all(isinstance(mode, str) for mode in modes):
        raise ConfigInvalid('allowed_auth_modes must be a non-empty list of auth mode names')
    if not isinstance(config.get('allow_identity_change', False), bool):
        raise ConfigInvalid('allow_identity_change must be true or false')
    timeout = config.get('lock_timeout', safe_files.DEFAULT_LOCK_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ConfigInvalid('lock_timeout must be a number of seconds')
    for section, keys in (('vault', VAULT_KEYS), ('aws', AWS_KEYS)):
        value = config.get(section, {})
        if not isinstance(value, dict) or set(value) - set(keys):
            raise ConfigInvalid('the config section %s must be an object with only: %s' % (section, ', '.join(keys)))
    return config


def _pick(section, key, environ, *names):
    value = section.get(key)
    if value in (None, ''):
        for name in names:
            if environ.get(name):
                return environ[name]
        return None
    return value


def open_store(config, environ):
    """The runner's store from the config, credentials falling back to the standard environment."""
    if config['store'] == 'vault':
        section = config.get('vault') or {}
        url = _pick(section, 'url', environ, 'VAULT_ADDR')
        if not url or not url.startswith(('http://', 'https://')):
            raise contract.StoreOptionsInvalid('the vault store needs an address: vault.url or VAULT_ADDR (http(s)://)')
        vault = _runner_stores.VaultStore(
            url, None, section.get('mount_point') or _runner_stores.DEFAULT_MOUNT,
            _pick(section, 'namespace', environ, 'VAULT_NAMESPACE'),
            section.get('timeout') or _runner_stores.DEFAULT_TIMEOUT, _pick(section, 'ca_file', environ, 'VAULT_CACERT'))
        role_id, secret_id = section.get('role_id'), section.get('secret_id')
        token = _pick(section, 'token', environ, 'VAULT_TOKEN')
        if role_id or secret_id:
            if not (role_id and secret_id) or section.get('token'):
                raise contract.StoreOptionsInvalid('the vault store takes a token or an AppRole (role_id and '
                                                   'secret_id), not both, not half')
            vault.login_approle(role_id, secret_id, section.get('approle_mount_point') or 'approle')
        elif token:
            vault._token = token  # pylint: disable=protected-access
        else:
            raise contract.StoreOptionsInvalid('the vault store needs a credential: vault.token or VAULT_TOKEN, or an '
                                               'AppRole (vault.role_id and vault.secret_id)')
        return vault
    section = config.get('aws') or {}
    region = _pick(section, 'region', environ, 'AWS_REGION', 'AWS_DEFAULT_REGION')
    key_id = _pick(section, 'access_key_id', environ, 'AWS_ACCESS_KEY_ID')
    secret_key = _pick(section, 'secret_access_key', environ, 'AWS_SECRET_ACCESS_KEY')
    if section.get('access_key_id') or section.get('secret_access_key'):
        token = section.get('session_token')  # a key pair from the config never borrows the environment's token
    else:
        token = _pick(section, 'session_token', environ, 'AWS_SESSION_TOKEN')
    if not region:
        raise contract.StoreOptionsInvalid('the aws_secretsmanager store needs a region: aws.region or AWS_REGION')
    if not key_id or not secret_key:
        raise contract.StorePermissionDenied('the aws_secretsmanager store needs a key pair: aws.access_key_id and '
                                             'aws.secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY')
    endpoint = _pick(section, 'endpoint_url', environ, 'AWS_ENDPOINT_URL_SECRETS_MANAGER', 'AWS_ENDPOINT_URL')
    return _runner_stores.AwsSecretsManagerStore(region, key_id, secret_key, token, endpoint,
                                                 section.get('timeout') or _runner_stores.DEFAULT_TIMEOUT,
                                                 _pick(section, 'ca_file', environ, 'AWS_CA_BUNDLE'))


def open_home(path, create):
    """A HomeDir on CODEX_HOME: never through a symlink, owned by us, 0700 (tightened if looser).
    Created 0700 when missing and `create` (Codex needs it to exist when CODEX_HOME is set)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENOENT and create:
            try:
                os.mkdir(path, constants.HOME_MODE)
            except OSError as inner:
                raise safe_files.UnsafePathError('codex_home_missing', 'cannot create CODEX_HOME %s: %s'
                                                 % (path, inner.strerror))
            fd = os.open(path, flags)
        elif exc.errno == errno.ENOENT:
            raise safe_files.UnsafePathError('codex_home_missing', 'CODEX_HOME %s does not exist' % path)
        elif exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise safe_files.UnsafePathError('codex_home_symlink', 'CODEX_HOME %s is a symlink or not a directory; '
                                             'give the real directory' % path)
        else:
            raise safe_files.UnsafePathError('codex_home_unreadable', 'cannot open CODEX_HOME %s: %s'
                                             % (path, exc.strerror))
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        os.close(fd)
        raise safe_files.UnsafePathError('codex_home_owner', 'CODEX_HOME %s belongs to uid %d, not to the runner user '
                                         '(uid %d)' % (path, st.st_uid, os.geteuid()))
    if stat.S_IMODE(st.st_mode) != constants.HOME_MODE:
        os.fchmod(fd, constants.HOME_MODE)
    return safe_files.HomeDir(fd, path)


def _verdict(config):
    def decide(candidate, current):
        return _writeback_rules.decide(candidate, current, config.get('allowed_auth_modes') or ['chatgpt'],
                                       config.get('fingerprint_salt'),
                                       allow_identity_change=config.get('allow_identity_change', False))
    return decide


def _read_auth(home):
    """The runner's auth.json bytes (None: absent; `too_large`: larger than any auth.json)."""
    try:
        data, _st = home.read_regular(constants.AUTH_FILE, 'auth', auth_model.MAX_AUTH_BYTES)
    except safe_files.UnsafePathError as exc:
        if exc.code == 'auth_too_large':
            return 'too_large'
        raise
    return data


def restore(config, environ):
    decide = _verdict(config)
    store = open_store(config, environ)
    stored, version = store.read(config['secret'])
    if stored is None:
        raise contract.StoreSecretMissing('the %s does not exist (or has no current value); seed it from a trusted '
                                          'machine first. Nothing was written.' % store.describe(config['secret']))
    home = open_home(config['codex_home'], create=True)
    try:
        with home.codex_lock(timeout=config.get('lock_timeout', safe_files.DEFAULT_LOCK_TIMEOUT)):
            local = _read_auth(home)
            # The store's copy is the candidate; the runner's file is what it would replace.
            decision = decide(stored, None if local == 'too_large' else (local or b''))
            if local == 'too_large':
                decision = dict(decision, action='refuse', code='store_copy_invalid',
                                reason="the runner's auth.json is larger than any auth.json")
            if decision['action'] == 'store':
                home.atomic_write(constants.AUTH_FILE, stored, mode=constants.AUTH_MODE)
    finally:
        os.close(home.fd)
    action = {'store': 'restored', 'unchanged': 'unchanged'}.get(decision['action'], 'kept')
    return dict(_facts('restore', decision, store, config, version), action=action,
                reason=_restore_reason(decision, local is None))


def _restore_reason(decision, absent):
    code = decision['code']
    if decision['action'] == 'store':
        return 'the runner had no auth.json' if absent else "the store's copy is newer than the runner's file"
    if decision['action'] == 'unchanged':
        return "the runner's auth.json is the store's copy"
    return {
        'runner_older': "the runner's auth.json is newer than the store's copy; it is kept",
        'runner_file_invalid': "the store's copy is not a usable auth.json; the runner's file is kept",
        'runner_from_future': "the store's copy says it was refreshed in the future; it is not believed",
        'runner_identity_changed': "the store's copy is for another account than the runner's auth.json; set "
                                   'allow_identity_change if intended',
        'runner_last_refresh_missing': "the store's copy has no last_refresh, so it cannot be shown to be newer",
        'store_copy_invalid': "the runner's auth.json is not usable and is kept as it is (a copy that cannot be "
                              'judged is never replaced): remove it, then restore',
    }.get(code, decision['reason'])


def writeback(config, environ):
    decide = _verdict(config)
    home = open_home(config['codex_home'], create=False)
    try:
        with home.codex_lock(timeout=config.get('lock_timeout', safe_files.DEFAULT_LOCK_TIMEOUT)):
            local = _read_auth(home)
    finally:
        os.close(home.fd)
    if local is None:
        return {'command': 'writeback', 'action': 'refuse', 'code': 'auth_missing', 'written': False,
                'reason': 'the runner has no auth.json after the job (a job logged out or removed it); the store '
                          'keeps its copy', 'store_kind': config['store'], 'secret': config['secret']}
    store = open_store(config, environ)
    result = contract.write_back(
        store, config['secret'], b'' if local == 'too_large' else local,
        lambda runner, store_text: decide(None if local == 'too_large' else runner,
                                          store_text.encode('utf-8', 'surrogatepass')))
    facts = _facts('writeback', result, store, config, result['version'])
    return dict(facts, action='stored' if result['written'] else result['action'], written=result['written'],
                reason=result['reason'], attempts=result['attempts'], cas_lost=result['cas_lost'])


def _facts(command, decision, store, config, version):
    """What a run reports: facts and codes only (no credential, no token; fingerprints are salted hashes).
    `candidate` is the copy that would replace the other (restore: the store's; writeback: the runner's),
    `replaced` the copy it would replace: decide's `runner` and `store` in both directions."""
    incoming, current = decision.get('runner'), decision.get('store')
    return {'command': command, 'code': decision.get('code'), 'store_kind': store.kind, 'secret': config['secret'],
            'version': version if isinstance(version, (int, str)) else None,
            'candidate': incoming, 'replaced': current, 'codex_home': config['codex_home']}


def exit_status(command, result):
    if result.get('code') is None or result['code'] in BENIGN[command]:
        return EXIT_OK
    return EXIT_REFUSED


def main(argv=None, environ=None, out=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    out = out or sys.stdout
    command, config_path = None, None
    while argv:
        word = argv.pop(0)
        if word in COMMANDS and command is None:
            command = word
        elif word == '--config' and argv and config_path is None:
            config_path = argv.pop(0)
        elif word.startswith('--config=') and config_path is None:
            config_path = word.split('=', 1)[1]
        else:
            out.write(json.dumps({'code': 'usage', 'message': 'usage: codex-job-credential restore|writeback '
                                  '[--config PATH]'}) + '\n')
            return EXIT_USAGE
    if command is None:
        out.write(json.dumps({'code': 'usage', 'message': 'usage: codex-job-credential restore|writeback '
                              '[--config PATH]'}) + '\n')
        return EXIT_USAGE
    config_path = os.path.expanduser(config_path or environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    try:
        config = load_config(config_path)
        result = (restore if command == 'restore' else writeback)(config, environ)
        status = exit_status(command, result)
    except CodexOpsError as exc:
        result = {'command': command, 'action': 'error', 'code': exc.code, 'message': exc.message}
        status = EXIT_ERROR
    except Exception as exc:  # pylint: disable=broad-except
        # An unexpected failure: its class only (its text could quote what it was handling).
        result = {'command': command, 'action': 'error', 'code': 'internal_error', 'message': exc.__class__.__name__}
        status = EXIT_ERROR
    out.write(json.dumps(result, sort_keys=True) + '\n')
    out.flush()
    return status
