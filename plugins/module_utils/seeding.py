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
import time

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import codex_home
from ansible_collections.codexops.runner.plugins.module_utils import config_file
from ansible_collections.codexops.runner.plugins.module_utils import constants
from ansible_collections.codexops.runner.plugins.module_utils import errors
from ansible_collections.codexops.runner.plugins.module_utils import health
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status
from ansible_collections.codexops.runner.plugins.module_utils import safe_files

REPLACE_POLICIES = ('never', 'invalid', 'older', 'different', 'always')
_RANK = dict((name, rank) for rank, name in enumerate(REPLACE_POLICIES))


class SeedError(errors.CodexOpsError):
    default_code = 'seed_invalid'


def load_seed(data, allowed_modes, require_refresh_token):
    """Validate seed bytes; SeedError names what is wrong, never what the seed contains."""
    seed, found = auth_model.judge(data, allowed_modes, require_refresh_token)
    if found:
        raise SeedError('the seed is not a usable auth.json (%s) Nothing was written.' % faults_text(found))
    return seed


def faults_text(found):
    """What auth_model.judge found wrong with a seed, in words (codes and messages, never content)."""
    return '; '.join('%s: %s' % (item['code'], item['message']) for item in found)


def decide(existing, seed_data, seed, policy, allowed_modes, require_refresh_token):
    """(replace, reason) for the bytes currently in auth.json (None when absent)."""
    if existing is None:
        return True, 'auth.json was absent'
    if existing == seed_data:
        return False, 'auth.json already holds exactly this seed'
    if policy == 'never':
        return False, 'auth.json exists and replace is never (Codex may have refreshed it since)'
    current, faults = auth_model.judge(existing, allowed_modes, require_refresh_token)
    if faults:
        return True, 'the existing auth.json is invalid (%s)' % ', '.join(item['code'] for item in faults)
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
    parsed, found = auth_model.judge(data, require_refresh_token=False)
    if parsed is None:
        described['invalid'] = found[0]['code']
    else:
        described.update(parsed.identity_facts(salt))
    return described


class SeedRun:
    """One codex_auth_seed invocation. `run()` returns the module result."""

    def __init__(self, home, seed_data, seed, policy='never', uid=None, gid=None, backup=False,
                 check_mode=False, verify_options=None, config_settings=None,
                 lock_timeout=safe_files.DEFAULT_LOCK_TIMEOUT, backup_keep=safe_files.DEFAULT_BACKUP_KEEP):
        self.path = os.path.join(home, constants.AUTH_FILE)
        self.home_path = home
        self.seed_data = seed_data
        self.seed = seed
        self.policy = policy
        self.uid, self.gid = uid, gid
        self.backup = backup
        self.backup_keep = backup_keep
        self.lock_timeout = lock_timeout
        self.check_mode = check_mode
        self.verify_options = verify_options or {}
        # config.toml settings applied in the same run: one module round trip provisions a runner.
        self.config_settings = config_settings
        self.config = {'changes': {}, 'warnings': [], 'text': None}
        if config_settings is not None:
            config_file.check_settings(config_settings)

    def run(self):
        return codex_home.act(self.home_path, codex_home.Target(self.uid, self.gid), self._run)

    def plan_in_new_home(self):
        """Check mode for a CODEX_HOME that cannot exist yet: it lies in the home directory (`~USER/...`, which the
        runner cannot expand yet) of a user an earlier task of the run creates. Predicted as a run into a missing
        CODEX_HOME is (created, the seed written, owned by self.uid), from the seed alone: nothing is read."""
        if not self.check_mode:
            raise ValueError('plan_in_new_home predicts only (check mode)')
        target = codex_home.Target(self.uid, self.gid)
        return self._run(codex_home.HomeContext(self.home_path, None, None, target, constants.ROOT_UID))

    def _run(self, context):
        """As whoever controls CODEX_HOME (codex_home.act)."""
        self._plan_config(context)
        if self.check_mode:
            return self._plan(context)
        # Refuse, before anything is written (a repaired CODEX_HOME, config.toml, lock files), what
        # would be refused later: a symlinked, hard-linked or special auth.json, an invalid config.
        if context.exists:
            context.home.check_regular(constants.AUTH_FILE, 'auth')
        dir_changes = context.ensure()
        return context.as_owner(self._write, dir_changes)

    def _write(self, context, dir_changes):
        """As the user CODEX_HOME belongs to: config.toml, then auth.json under Codex's lock."""
        if self.config['changes']:
            # Planned again: the file may have changed since, and a stale plan must not win.
            self._plan_config(context)
            uid, gid = context.file_ids
            config_file.write_settings(context.home, self.config['text'], self.config['stat'], uid, gid)
        with context.home.codex_lock(*context.file_ids, timeout=self.lock_timeout):
            return self._apply(context, dir_changes)

    def _plan_config(self, context):
        if self.config_settings is None:
            return
        changes, warnings, text, st = config_file.plan_settings(context.home, self.config_settings)
        self.config = {'changes': changes, 'warnings': warnings, 'text': text, 'stat': st}

    def _predicted_config(self, context):
        return health.predicted_config(context, self.config)

    def _read_existing(self, home):
        data, st = home.read_regular(constants.AUTH_FILE, 'auth', auth_model.MAX_AUTH_BYTES)
        return data, (None if st is None else {'mode': st.st_mode, 'uid': st.st_uid, 'gid': st.st_gid})

    def _ids_for_write(self, context, existing_st):
        """Owner and group for the new file: as asked, else those of the file it replaces."""
        uid, gid = context.file_ids
        if existing_st is not None and self.uid is None and context.actor_uid == 0:
            uid = existing_st['uid']
            gid = existing_st['gid'] if gid is None else gid
        return uid, gid

    def _decide(self, existing):
        return decide(existing, self.seed_data, self.seed, self.policy,
                      self.verify_options.get('allowed_auth_modes'),
                      self.verify_options.get('require_refresh_token', True))

    def _plan(self, context):
        """Check mode: everything a real run would do, predicted from a read-only look."""
        if not context.exists:
            dir_changes, existing, existing_st, temps = ['created'], None, None, []
        else:
            dir_changes = context.predicted_changes()
            existing, existing_st = self._read_existing(context.home)
            temps = context.home.leftover_temp_files()
            # Every run takes Codex's locks: a lock file it could not use fails the plan as it would the run.
            context.home.check_locks()
        replace, reason = self._decide(existing)
        file_changes = [] if replace else context.predicted_auth_repairs()
        result_data = self.seed_data if replace else existing
        owner = context.owner_after()
        if existing_st is not None and self.uid is None:
            owner = existing_st['uid']
        backup_file = None
        if replace and existing is not None and self.backup:
            backup_file = '%s.<timestamp>.bak' % self.path
        keepalive = keepalive_status.read(context.home) if context.exists else {'state': 'missing'}
        if replace and keepalive.get('state') == 'present':
            # The write replaces the credentials a recorded failure was about.
            keepalive = dict(keepalive, auth_mtime=time.time())
        snapshot = health.predicted_snapshot({'config': self._predicted_config(context), 'temp_files': [],
                                              'keepalive': keepalive}, context.owner_after(), result_data, owner)
        return self._result(existing, existing_st, replace, reason, dir_changes, file_changes, temps,
                            backup_file, result_data, snapshot['auth'], snapshot)

    def _apply(self, context, dir_changes):
        home = context.home
        temps = home.leftover_temp_files()
        home.remove(temps)
        existing, existing_st = self._read_existing(home)
        replace, reason = self._decide(existing)
        backup_file = None
        file_changes = []
        if replace:
            if existing is not None and self.backup:
                backup_file = home.write_backup(constants.AUTH_FILE, existing, *context.file_ids, keep=self.backup_keep)
            home.atomic_write(constants.AUTH_FILE, self.seed_data, *self._ids_for_write(context, existing_st))
        else:
            file_changes = context.repair_auth()
        after = home.lstat(constants.AUTH_FILE)
        snapshot = health.take_snapshot(home)
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
            # The same verdict under a name changed_when cannot overwrite (roles plan in check mode).
            'pending': changed,
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
