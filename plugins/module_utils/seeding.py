# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Seeding auth.json into a CODEX_HOME: the replace policy and the locked, atomic write.

Private to this collection. Codex rotates the refresh token on every refresh, so the file on the
runner is usually newer than any seed: the default policy writes only when auth.json is absent,
and every policy re-reads the file under Codex's lock before it decides.
"""

import os
import stat

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import config_file
from ansible_collections.codexops.runner.plugins.module_utils import health
from ansible_collections.codexops.runner.plugins.module_utils import safe_files

REPLACE_POLICIES = ('never', 'invalid', 'older', 'different', 'always')
_RANK = dict((name, rank) for rank, name in enumerate(REPLACE_POLICIES))


class SeedError(Exception):
    pass


def load_seed(data, allowed_modes, require_refresh_token):
    """Validate seed bytes; SeedError names what is wrong, never what the seed contains."""
    try:
        seed = auth_model.AuthFile(data)
    except auth_model.AuthFileError as exc:
        raise SeedError('the seed is not a usable auth.json (%s: %s) Nothing was written.' % (exc.code, exc.message))
    found = seed.credential_problems(allowed_modes, require_refresh_token)
    if found:
        raise SeedError('the seed is not a usable auth.json (%s) Nothing was written.'
                        % '; '.join('%s: %s' % (item['code'], item['message']) for item in found))
    return seed


def decide(existing, seed_data, seed, policy, allowed_modes, require_refresh_token):
    """(replace, reason) for the bytes currently in auth.json (None when absent)."""
    if existing is None:
        return True, 'auth.json was absent'
    if existing == seed_data:
        return False, 'auth.json already holds exactly this seed'
    if policy == 'never':
        return False, 'auth.json exists and replace is never (Codex may have refreshed it since)'
    try:
        current = auth_model.AuthFile(existing)
        faults = [item['code'] for item in current.credential_problems(allowed_modes, require_refresh_token)]
    except auth_model.AuthFileError as exc:
        current, faults = None, [exc.code]
    if faults:
        return True, 'the existing auth.json is invalid (%s)' % ', '.join(faults)
    if _RANK[policy] >= _RANK['older'] and seed.last_refresh is not None and (
            current.last_refresh is None or seed.last_refresh > current.last_refresh):
        return True, "the seed's last_refresh is newer than the existing file's"
    if _RANK[policy] >= _RANK['different'] and seed.credential_identity() != current.credential_identity():
        return True, 'the existing auth.json holds different credentials'
    if policy == 'always':
        return True, 'replace is always'
    return False, {
        'invalid': 'the existing auth.json is valid',
        'older': 'the existing auth.json is valid and not older than the seed',
        'different': 'the existing auth.json is valid, not older, and holds the same credentials',
    }[policy]


def describe(data, st, salt):
    """Metadata for --diff: never content."""
    if data is None:
        return {'state': 'absent'}
    described = {'state': 'present', 'mode': '%04o' % stat.S_IMODE(st['mode']), 'owner': safe_files.user_name(st['uid'])}
    try:
        parsed = auth_model.AuthFile(data)
        described.update(auth_mode=parsed.mode,
                         last_refresh=auth_model.isoformat(parsed.last_refresh) if parsed.last_refresh else None,
                         refresh_token_fingerprint=parsed.refresh_token_fingerprint(salt))
    except auth_model.AuthFileError as exc:
        described['invalid'] = exc.code
    return described


class SeedRun:
    """One codex_auth_seed invocation. `run()` returns the module result."""

    def __init__(self, home, seed_data, seed, policy='never', uid=None, gid=None, backup=False,
                 check_mode=False, verify_options=None, config_settings=None):
        self.home = home
        self.path = os.path.join(home, health.AUTH_FILE)
        self.seed_data = seed_data
        self.seed = seed
        self.policy = policy
        self.uid, self.gid = uid, gid
        self.backup = backup
        self.check_mode = check_mode
        self.verify_options = verify_options or {}
        # config.toml settings applied in the same run: one module round trip provisions a runner.
        self.config_settings = config_settings
        self.config = {'changes': {}, 'warnings': [], 'text': None}
        if config_settings is not None:
            config_file.check_settings(config_settings)

    def run(self):
        home_st = safe_files.check_home(self.home)
        if self.check_mode:
            self._configure()
            return self._plan(home_st)
        # Refuse, before anything is written (a repaired CODEX_HOME, config.toml, lock files), what
        # would be refused later: a symlinked, hard-linked or special auth.json, an invalid config.
        if home_st is not None:
            safe_files.check_regular(self.path, 'auth')
        if self.config_settings is not None:
            config_file.apply_settings(self.home, self.config_settings, self.uid, self.gid, check_mode=True)
        dir_changes = safe_files.ensure_directory(self.home, self.uid, self.gid)
        self._configure()
        with safe_files.codex_lock(self.home, self.uid, self.gid):
            return self._apply(dir_changes)

    def _configure(self):
        """Apply (or, in check mode, predict) the config.toml settings before the seed."""
        if self.config_settings is None:
            return
        changes, _dirs, warnings, text = config_file.apply_settings(
            self.home, self.config_settings, self.uid, self.gid, check_mode=self.check_mode)
        self.config = {'changes': changes, 'warnings': warnings, 'text': text}

    def _predicted_config(self, home_st):
        if self.config['text'] is not None and (self.config['changes'] or home_st is None):
            owner = self.uid if self.uid is not None else os.geteuid()
            return {'state': 'present', 'data': self.config['text'].encode('utf-8'), 'mode': 0o600, 'uid': owner}
        if home_st is None:
            return {'state': 'missing'}
        return health.read_file_state(os.path.join(self.home, health.CONFIG_FILE), 'config', health.MAX_CONFIG_BYTES)

    def _read_existing(self):
        data, st = safe_files.read_regular(self.path, 'auth', auth_model.MAX_AUTH_BYTES)
        return data, (None if st is None else {'mode': st.st_mode, 'uid': st.st_uid, 'gid': st.st_gid})

    def _ids_for_write(self, existing_st):
        """Owner and group for the new file: as asked, else those of the file it replaces."""
        uid, gid = self.uid, self.gid
        if existing_st is not None:
            uid = existing_st['uid'] if uid is None else uid
            gid = existing_st['gid'] if gid is None else gid
        return uid, gid

    def _plan(self, home_st):
        """Check mode: everything a real run would do, predicted from a read-only look."""
        if home_st is None:
            dir_changes, existing, existing_st, temps = ['created'], None, None, []
        else:
            dir_changes = safe_files.mode_changes(home_st, self.uid, self.gid, 0o700)
            existing, existing_st = self._read_existing()
            temps = safe_files.leftover_temp_files(self.home)
        replace, reason = decide(existing, self.seed_data, self.seed, self.policy,
                                 self.verify_options.get('allowed_auth_modes'),
                                 self.verify_options.get('require_refresh_token', True))
        file_changes = []
        if existing_st is not None and not replace:
            file_changes = safe_files.mode_changes(os.lstat(self.path), self.uid, self.gid, 0o600)
        result_data = self.seed_data if replace else existing
        owner = self._ids_for_write(existing_st)[0]
        owner = os.geteuid() if owner is None else owner
        after_st = {'mode': 0o600, 'uid': owner}
        backup_file = None
        if replace and existing is not None and self.backup:
            backup_file = '%s.<timestamp>.bak' % self.path
        snapshot = {
            'home': {'state': 'present', 'mode': 0o700,
                     'uid': self.uid if self.uid is not None else (home_st.st_uid if home_st else os.geteuid())},
            'auth': {'state': 'present', 'data': result_data, 'mode': 0o600, 'uid': owner},
            'config': self._predicted_config(home_st),
            'temp_files': [],
        }
        return self._result(existing, existing_st, replace, reason, dir_changes, file_changes, temps,
                            backup_file, result_data, after_st, snapshot)

    def _apply(self, dir_changes):
        temps = safe_files.leftover_temp_files(self.home)
        safe_files.remove_files(temps)
        existing, existing_st = self._read_existing()
        replace, reason = decide(existing, self.seed_data, self.seed, self.policy,
                                 self.verify_options.get('allowed_auth_modes'),
                                 self.verify_options.get('require_refresh_token', True))
        backup_file = None
        file_changes = []
        if replace:
            if existing is not None and self.backup:
                backup_file = safe_files.write_backup(self.path, existing, self.uid, self.gid)
            uid, gid = self._ids_for_write(existing_st)
            safe_files.atomic_write(self.path, self.seed_data, uid, gid)
        elif existing is not None:
            file_changes = safe_files.repair_file(self.path, self.uid, self.gid, 0o600)
        after = os.lstat(self.path)
        snapshot = health.take_snapshot(self.home)
        return self._result(existing, existing_st, replace, reason, dir_changes, file_changes, temps, backup_file,
                            self.seed_data if replace else existing, {'mode': after.st_mode, 'uid': after.st_uid},
                            snapshot)

    def _result(self, existing, existing_st, replace, reason, dir_changes, file_changes, temps, backup_file,
                after_data, after_st, snapshot):
        salt = self.verify_options.get('salt')
        if replace:
            action = 'created' if existing is None else 'replaced'
        else:
            action = 'kept'
        changed = bool(replace or dir_changes or file_changes or temps or self.config['changes'])
        attribute_changes = ['codex_home_%s' % item for item in dir_changes] + ['auth_%s' % item for item in file_changes]
        if not replace and attribute_changes:
            reason += '; repaired %s' % ', '.join(attribute_changes)
        options = dict(self.verify_options)
        options.pop('salt', None)
        return {
            'changed': changed,
            'action': action,
            'reason': reason,
            'backup_file': backup_file,
            'attributes_changed': attribute_changes,
            'removed_temp_files': len(temps),
            'config_changed_keys': self.config['changes'],
            'config_warnings': self.config['warnings'],
            'auth': health.evaluate(snapshot, owner_uid=self.uid, salt=salt, **options),
            'diff': {
                'before_header': self.path,
                'after_header': self.path,
                'before': describe(existing, existing_st, salt),
                'after': describe(after_data, after_st, salt),
            },
        }
