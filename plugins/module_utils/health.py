# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The health of one runner's CODEX_HOME: a read-only snapshot, and a pure evaluation of it.

Private to this collection. codex_auth_verify evaluates the snapshot it reads; codex_auth_seed and
codex_access_token_login evaluate the snapshot they predict (check mode) or leave behind, so
every module returns the same summary and provisioning needs no separate verify round trip.
"""

import stat

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import codex_home
from ansible_collections.codexops.runner.plugins.module_utils import config_schema
from ansible_collections.codexops.runner.plugins.module_utils import constants
from ansible_collections.codexops.runner.plugins.module_utils import _filesystems as filesystems
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status
from ansible_collections.codexops.runner.plugins.module_utils import safe_files
from ansible_collections.codexops.runner.plugins.module_utils import toml_keys

# Codex stops at its first error; a report lists the first few and counts the rest.
MAX_CONFIG_TYPE_PROBLEMS = 10

# Every code a verify result can carry. The fix for each is written once, in docs/troubleshooting.md
# (its **Fix:** lines); the tests check both ways that every code here has a section there.
PROBLEM_CODES = (
    'codex_home_missing', 'codex_home_relative', 'codex_home_symlink', 'codex_home_not_dir',
    'codex_home_path_symlink', 'codex_home_path_shared', 'codex_home_mode', 'codex_home_owner',
    'auth_missing', 'auth_symlink', 'auth_hardlink', 'auth_not_regular', 'auth_unreadable', 'auth_too_large',
    'auth_mode_bits', 'auth_owner', 'auth_not_json', 'auth_invalid', 'auth_mode_invalid',
    'auth_mode_unexpected', 'id_token_invalid', 'last_refresh_invalid', 'refresh_token_missing',
    'credential_missing', 'store_not_file', 'config_invalid', 'config_unreadable', 'forced_login_conflict',
    'env_shadowing', 'codex_status_failed', 'runner_unknown', 'refresh_failed', 'lock_unusable', 'keepalive_failing',
    'codex_home_network_fs', 'runner_env_codex_home_missing', 'runner_env_codex_home_mismatch', 'runner_env_unreadable',
)
WARNING_CODES = (
    'stale', 'access_token_expired', 'store_key_in_table', 'temp_files_left', 'environment_file_unreadable',
    'keepalive_failed', 'keepalive_overdue', 'keepalive_status_invalid', 'keepalive_probe_failed',
)


def take_snapshot(home):
    """Read everything evaluate() needs from the open HomeDir `home` (None: CODEX_HOME is missing).
    Never writes, never follows a link."""
    snap = {'home': {'state': 'missing'}, 'auth': {'state': 'missing'}, 'config': {'state': 'missing'},
            'temp_files': [], 'keepalive': {'state': 'missing'}}
    if home is None:
        return snap
    st = home.stat()
    snap['home'] = {'state': 'present', 'mode': stat.S_IMODE(st.st_mode), 'uid': st.st_uid,
                    'filesystem': filesystems.filesystem_type(home.fd)}
    snap['temp_files'] = home.leftover_temp_files()
    snap['auth'] = read_file_state(home, constants.AUTH_FILE, 'auth', auth_model.MAX_AUTH_BYTES)
    snap['config'] = read_file_state(home, constants.CONFIG_FILE, 'config', constants.MAX_CONFIG_BYTES)
    # What the last keepalive run recorded (already parsed: the record is JSON-safe as it is).
    snap['keepalive'] = keepalive_status.read(home, constants.AUTH_FILE)
    snap['locks'] = lock_states(home)
    return snap


def lock_states(home):
    """Codex's lock files as they are (lstat, nothing opened): [{name, fault, uid}]."""
    found = []
    for name in safe_files.LOCK_FILES:
        st = home.lstat(name)
        if st is not None:
            found.append({'name': name, 'fault': safe_files.lock_fault(st), 'uid': st.st_uid})
    return found


def _lock_problems(locks, home_uid):
    """A lock file Codex cannot take: its next refresh cannot be saved."""
    problems = []
    for lock in locks:
        if lock['fault']:
            why = '%s; provisioning refuses it too (lock_unavailable)' % lock['fault']
        elif lock['uid'] != home_uid:
            why = ('belongs to %s, not to the owner of CODEX_HOME, so Codex running as the runner cannot take it'
                   % safe_files.user_name(lock['uid']))
        else:
            continue
        problems.append(auth_model.problem('lock_unusable', '%s %s; Codex could not save a refreshed auth.json.'
                                           % (lock['name'], why)))
    return problems


def predicted_snapshot(base, home_owner, auth_data, auth_owner=None):
    """The snapshot `base` as a write leaves it, for check mode: CODEX_HOME present, 0700 and
    `home_owner`'s; auth.json 0600, holding `auth_data` (None: no auth.json) and `auth_owner`'s
    (default: the home's). Everything else (config, keepalive, temp files) comes from `base`."""
    snap = dict(base, home={'state': 'present', 'mode': constants.HOME_MODE, 'uid': home_owner,
                            'filesystem': base.get('home', {}).get('filesystem')})
    snap.pop('locks', None)
    snap['auth'] = {'state': 'missing'} if auth_data is None else {
        'state': 'present', 'data': auth_data, 'mode': constants.AUTH_MODE,
        'uid': home_owner if auth_owner is None else auth_owner}
    return snap


def predicted_config(context, plan):
    """config.toml's state in a snapshot as a write leaves it, for check mode: `plan` is {'text', 'changes'} of
    config_file.plan_settings (text None: no settings asked), `context` the HomeContext (codex_home.act)."""
    if plan['text'] is not None and (plan['changes'] or not context.exists):
        return {'state': 'present', 'data': plan['text'].encode('utf-8'), 'mode': constants.CONFIG_MODE,
                'uid': context.owner_after()}
    if not context.exists:
        return {'state': 'missing'}
    return read_file_state(context.home, constants.CONFIG_FILE, 'config', constants.MAX_CONFIG_BYTES)


def snapshot_path(path):
    """take_snapshot of the CODEX_HOME at `path`, read as whoever owns it now (codex_home.act); a
    path we refuse to open is a refused snapshot, not an error."""
    try:
        snap = codex_home.act(path, codex_home.reader(), lambda context: _portable(take_snapshot(context.home)))
    except safe_files.UnsafePathError as exc:
        return refused_snapshot(exc)
    return _portable(snap, back=True)


def _portable(snap, back=False):
    """A snapshot that can cross the privilege boundary as JSON (file bytes as latin-1 text), or back."""
    for key in ('auth', 'config'):
        data = snap[key].get('data')
        if data is not None:
            snap[key] = dict(snap[key], data=data.encode('latin-1') if back else data.decode('latin-1'))
    return snap


def refused_snapshot(exc):
    """The snapshot of a CODEX_HOME we refused to open (a link, a path someone else controls)."""
    snap = take_snapshot(None)
    snap['home'] = {'state': 'refused', 'code': exc.code, 'message': exc.message}
    return snap


def read_file_state(home, name, code, max_bytes):
    try:
        data, st = home.read_regular(name, code, max_bytes)
    except safe_files.UnsafePathError as exc:
        refused = {'state': 'refused', 'code': exc.code, 'message': exc.message}
        st = home.lstat(name)
        if st is not None and exc.code == '%s_unreadable' % code:
            # Someone else's file the reader may not read: its owner and mode are still facts.
            refused.update(uid=st.st_uid, mode=stat.S_IMODE(st.st_mode))
        return refused
    if data is None:
        return {'state': 'missing'}
    return {'state': 'present', 'data': data, 'mode': stat.S_IMODE(st.st_mode), 'uid': st.st_uid}


def evaluate(snap, owner_uid=None, allowed_auth_modes=None, require_refresh_token=True, max_age_days=8,
             require_file_store=True, salt=None, now=None,
             keepalive_failure_threshold=keepalive_status.DEFAULT_FAILURE_THRESHOLD):
    """Snapshot -> the codex_auth_verify result (without `changed`)."""
    problems, warnings = [], []
    result = dict(auth_model.EMPTY_FACTS)
    result.update(codex_home_mode=None, auth_file_mode=None, owner=None, credentials_store=None,
                  forced_login_method=None)
    result.update(keepalive_status.EMPTY_FACTS)
    home, auth, config = snap['home'], snap['auth'], snap['config']

    if home['state'] == 'refused':
        problems.append(auth_model.problem(home['code'], home['message']))
    elif home['state'] == 'missing':
        problems.append(auth_model.problem('codex_home_missing', 'CODEX_HOME does not exist; Codex fails every '
                                           'command when CODEX_HOME points to a missing directory.'))
    else:
        result['codex_home_mode'] = '%04o' % home['mode']
        result['owner'] = safe_files.user_name(home['uid'])
        # Group/other access exposes the credentials; a missing owner bit stops Codex from
        # creating its lock and temp files, so a refresh succeeds at the server and is lost.
        if home['mode'] & 0o077 or home['mode'] & constants.HOME_MODE != constants.HOME_MODE:
            problems.append(auth_model.problem('codex_home_mode', 'CODEX_HOME is mode %04o; it must be 0700 '
                                               '(all access for the runner user, none for anyone else).'
                                               % home['mode']))
        if owner_uid is not None and home['uid'] != owner_uid:
            problems.append(auth_model.problem('codex_home_owner', 'CODEX_HOME is owned by %s, expected %s.'
                                               % (safe_files.user_name(home['uid']),
                                                  safe_files.user_name(owner_uid))))
        # A predicted snapshot carries no lock states: the write takes the locks itself (root hands
        # them over with CODEX_HOME), and fails with lock_unavailable on one it cannot use.
        problems.extend(_lock_problems(snap.get('locks', ()), home['uid']))
        fstype = home.get('filesystem')
        if filesystems.is_network_type(fstype):
            problems.append(auth_model.problem('codex_home_network_fs', 'CODEX_HOME is on a network filesystem '
                                               '(%s): Codex\'s flock-based locks do not hold there, so two Codex '
                                               'processes can refresh at once and burn the rotating refresh '
                                               'token. Move CODEX_HOME to a local disk.' % fstype))
        if snap.get('temp_files'):
            warnings.append(auth_model.problem('temp_files_left', '%d leftover temp file(s) from an '
                                               'interrupted write.' % len(snap['temp_files'])))

    if home['state'] == 'present':
        # Without a CODEX_HOME, the missing home is the one problem worth naming.
        auth_file = _evaluate_auth(auth, owner_uid, allowed_auth_modes, require_refresh_token, max_age_days,
                                   salt, now, problems, warnings, result)
        _evaluate_config(config, auth_file, require_file_store, problems, warnings, result)
        # Snapshots predicted by a writing module may carry no keepalive record.
        facts, keepalive_problems, keepalive_warnings = keepalive_status.evaluate(
            snap.get('keepalive'), owner_uid=owner_uid, now=now, user_name=safe_files.user_name,
            failure_threshold=keepalive_failure_threshold)
        result.update(facts)
        problems.extend(keepalive_problems)
        warnings.extend(keepalive_warnings)

    result['healthy'] = not problems
    result['problems'] = problems
    # 'warnings' is reserved in module results (Ansible consumes it as its own warning list).
    result['health_warnings'] = warnings
    return result


def _evaluate_auth(auth, owner_uid, allowed, require_refresh, max_age_days, salt, now,
                   problems, warnings, result):
    if auth['state'] == 'refused':
        if 'uid' in auth:
            result['auth_file_mode'] = '%04o' % auth['mode']
            result['owner'] = safe_files.user_name(auth['uid'])
        if 'uid' in auth and owner_uid is not None and auth['uid'] != owner_uid:
            problems.append(auth_model.problem('auth_owner', 'auth.json is owned by %s, expected %s; it was not read.'
                                               % (safe_files.user_name(auth['uid']), safe_files.user_name(owner_uid))))
        else:
            problems.append(auth_model.problem(auth['code'], auth['message']))
        return None
    if auth['state'] == 'missing':
        problems.append(auth_model.problem('auth_missing', 'auth.json does not exist; Codex reports '
                                           '"Not logged in".'))
        return None
    result['auth_file_mode'] = '%04o' % auth['mode']
    result['owner'] = safe_files.user_name(auth['uid'])
    if auth['mode'] != constants.AUTH_MODE:
        problems.append(auth_model.problem('auth_mode_bits', 'auth.json is mode %04o; it must be 0600 '
                                           '(readable and writable by the runner user only).' % auth['mode']))
    if owner_uid is not None and auth['uid'] != owner_uid:
        problems.append(auth_model.problem('auth_owner', 'auth.json is owned by %s, expected %s.'
                                           % (safe_files.user_name(auth['uid']), safe_files.user_name(owner_uid))))
    try:
        auth_file = auth_model.AuthFile(auth['data'])
    except auth_model.AuthFileError as exc:
        problems.append(exc.as_problem())
        return None
    facts, stale_warnings = auth_file.summary(now=now, max_age_days=max_age_days, salt=salt)
    result.update(facts)
    warnings.extend(stale_warnings)
    problems.extend(auth_file.credential_problems(allowed, require_refresh))
    return auth_file


def _evaluate_config(config, auth_file, require_file_store, problems, warnings, result):
    if config['state'] == 'refused':
        code = 'config_unreadable' if config['code'] == 'config_unreadable' else 'config_invalid'
        problems.append(auth_model.problem(code, config['message']))
        return
    settings = {}
    if config['state'] == 'present':
        settings = _read_settings(config['data'], problems, warnings)
        if settings is None:
            return
    # Every setting present has a type Codex accepts (_read_settings refuses the file otherwise).
    store = settings.get('cli_auth_credentials_store')
    result['credentials_store'] = store
    result['forced_login_method'] = settings.get('forced_login_method')
    method = settings.get('forced_login_method')
    if method is not None and method not in constants.LOGIN_METHODS:
        problems.append(auth_model.problem('config_invalid', 'forced_login_method has a value Codex rejects; '
                                           'use one of %s.' % ', '.join(constants.LOGIN_METHODS)))
    if store is not None and store not in constants.STORE_VALUES:
        problems.append(auth_model.problem('config_invalid', 'cli_auth_credentials_store has a value Codex '
                                           'rejects; use one of %s.' % ', '.join(constants.STORE_VALUES)))
    elif require_file_store and store != 'file':
        problems.append(auth_model.problem('store_not_file', 'cli_auth_credentials_store is %s at the top level '
                                           'of config.toml; headless runners need "file".'
                                           % ('unset' if store is None else '"%s"' % store)))
    if auth_file is not None:
        conflict = forced_login_conflict(settings, auth_file)
        if conflict:
            problems.append(auth_model.problem('forced_login_conflict', conflict))


def _read_settings(data, problems, warnings):
    """The top-level settings verify checks, or None (with a config_invalid problem) when Codex
    would refuse the file: not UTF-8, over a parse limit, not TOML, or one of them of the wrong type."""
    # The types each one may have; Codex refuses the whole file otherwise (e.g.
    # forced_chatgpt_workspace_id = 5: "data did not match any variant of untagged enum Repr").
    expected = {
        'cli_auth_credentials_store': ('a string',),
        'forced_login_method': ('a string',),
        'forced_chatgpt_workspace_id': ('a string', 'an array of strings'),
    }
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        problems.append(auth_model.problem('config_invalid', 'config.toml is not UTF-8 text.'))
        return None
    try:
        settings, misplaced = toml_keys.read_settings(text, tuple(expected), 'cli_auth_credentials_store')
    except toml_keys.TomlLimitError as exc:
        problems.append(auth_model.problem('config_invalid', 'config.toml was not parsed: %s.' % exc))
        return None
    except (toml_keys.TomlEditError, ValueError) as exc:
        problems.append(auth_model.problem('config_invalid', 'config.toml is not valid TOML: %s.' % exc))
        return None
    if misplaced:
        warnings.append(auth_model.problem('store_key_in_table', 'cli_auth_credentials_store appears inside '
                                           '[%s], where Codex ignores it.' % '], ['.join(misplaced)))
    wrong = [key for key in expected if key in settings and toml_keys.type_name(settings[key]) not in expected[key]]
    for key in wrong:
        problems.append(auth_model.problem('config_invalid', '%s must be %s, not %s; Codex refuses to start with '
                                           'this config.toml.' % (key, ' or '.join(expected[key]),
                                                                  toml_keys.type_name(settings[key]))))
    if wrong:
        return None
    # Every other key Codex knows, against its type table (where this Python can parse TOML). The
    # two settings checked below with their allowed values are left to those checks.
    found = [(path, message) for path, message in config_schema.config_text_problems(text)
             if path not in ('cli_auth_credentials_store', 'forced_login_method')]
    for path, message in found[:MAX_CONFIG_TYPE_PROBLEMS]:
        problems.append(auth_model.problem('config_invalid', 'config.toml: %s: %s; Codex refuses to load it.'
                                           % (path, message)))
    if len(found) > MAX_CONFIG_TYPE_PROBLEMS:
        problems.append(auth_model.problem('config_invalid', 'config.toml: %d more keys of the wrong type.'
                                           % (len(found) - MAX_CONFIG_TYPE_PROBLEMS)))
    return None if found else settings


def forced_login_conflict(settings, auth_file):
    """Why Codex would log out (and delete auth.json) with these settings, or None.

    Settings of the wrong type are not a conflict (Codex refuses the whole file for them, which
    _read_settings reports); they are ignored here rather than trusted to be strings."""
    method = settings.get('forced_login_method')
    mode = auth_file.mode
    if method == 'api' and mode != 'apikey':
        return 'forced_login_method = "api" but auth.json holds %s credentials; Codex logs out.' % mode
    if method == 'chatgpt' and mode == 'apikey':
        return 'forced_login_method = "chatgpt" but auth.json holds an API key; Codex logs out.'
    workspaces = settings.get('forced_chatgpt_workspace_id')
    allowed = [workspaces] if isinstance(workspaces, str) else workspaces
    if allowed and isinstance(allowed, list) and mode in auth_model.TOKEN_MODES:
        if auth_file.account_id not in allowed:
            return ('forced_chatgpt_workspace_id does not include the account of auth.json (%s); Codex logs '
                    'out.' % (auth_file.account_id or 'no account id'))
    return None
