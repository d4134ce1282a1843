# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Access-token login (`codex login --with-access-token`) for a runner user.

Private to this collection. Idempotent without a network call: when auth.json already holds the
same token (compared in constant time) nothing runs. Otherwise Codex itself checks the token
online and writes auth.json; on a rejected token Codex leaves the old file byte-identical, which
is what lets a rotation fail safe.
"""

import json

from ansible_collections.codexops.runner.plugins.module_utils import _runner_process
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import codex_home
from ansible_collections.codexops.runner.plugins.module_utils import codex_process
from ansible_collections.codexops.runner.plugins.module_utils import config_file
from ansible_collections.codexops.runner.plugins.module_utils import constants
from ansible_collections.codexops.runner.plugins.module_utils import errors
from ansible_collections.codexops.runner.plugins.module_utils import health
from ansible_collections.codexops.runner.plugins.module_utils import safe_files

PERSONAL_PREFIX = 'at-'


class LoginError(errors.CodexOpsError):
    default_code = 'login_failed'


def token_kind(token):
    return 'personal_access_token' if token.startswith(PERSONAL_PREFIX) else 'agent_identity'


def expected_file(token):
    """What Codex (0.169.0 and 0.171.0 alike) writes for this token, used to predict check-mode results."""
    if token_kind(token) == 'personal_access_token':
        doc = {'OPENAI_API_KEY': None, 'personal_access_token': token}
    else:
        doc = {'auth_mode': 'agentIdentity', 'OPENAI_API_KEY': None, 'agent_identity': token}
    return json.dumps(doc).encode('utf-8')


class AccessTokenLogin:

    def __init__(self, home, codex_path, uid=None, gid=None, check_mode=False, verify_options=None,
                 codex_environment=None, lock_timeout=safe_files.DEFAULT_LOCK_TIMEOUT, config_settings=None):
        self.home_path = home
        self.codex_path = codex_path
        self.uid, self.gid = uid, gid
        self.check_mode = check_mode
        self.verify_options = verify_options or {}
        self.codex_environment = codex_environment or {}
        self.lock_timeout = lock_timeout
        codex_process.check_environment(self.codex_environment)
        # config.toml settings (cli_auth_credentials_store = "file", ...) written before Codex logs in, in the same
        # run: Codex reads them when it stores the login. None: config.toml is left alone.
        self.config_settings = config_settings
        self.config = {'changes': {}, 'warnings': [], 'text': None, 'stat': None}
        if config_settings is not None:
            config_file.check_settings(config_settings)

    def _act(self, func, *args):
        return codex_home.act(self.home_path, codex_home.Target(self.uid, self.gid), func, *args)

    @staticmethod
    def _existing(context):
        if not context.exists:
            return None
        data, _st = context.home.read_regular(constants.AUTH_FILE, 'auth', auth_model.MAX_AUTH_BYTES)
        return data

    def _runner(self, context):
        """Who runs Codex: the owner asked for, else the non-root user CODEX_HOME belongs to once
        ensured. Asked before anything is written (and in check mode), so a refusal changes nothing."""
        try:
            return _runner_process.runner_for(self.uid, context.owner_after(), 'codex login')
        except _runner_process.RunnerProcessError as exc:
            raise LoginError(exc.message, code=exc.code)

    def _codex(self, context, args, stdin=b'', secrets=(), timeout=120):
        return codex_process.run_codex(self.codex_path, args, self.home_path, self._runner(context), stdin=stdin,
                                       secrets=secrets, timeout=timeout, extra_env=self.codex_environment)

    def present(self, token, force=False, smoke_test=False):
        token = token.strip()
        if not token:
            raise LoginError('access_token is empty.')
        if auth_model.has_lone_surrogate(token):
            raise LoginError('access_token is not valid Unicode text (it holds a lone UTF-16 surrogate).')
        return self._act(self._present, token, force, smoke_test)

    def _plan_config(self, context):
        if self.config_settings is None:
            return
        changes, warnings, text, st = config_file.plan_settings(context.home, self.config_settings)
        self.config = {'changes': changes, 'warnings': warnings, 'text': text, 'stat': st}

    def _write_config(self, context):
        """As the runner: config.toml as planned (planned again: the file may have changed since)."""
        if not self.config['changes']:
            return
        self._plan_config(context)
        if self.config['changes']:
            config_file.write_settings(context.home, self.config['text'], self.config['stat'], *context.file_ids)

    def _present(self, context, token, force, smoke_test):
        # Refused (an invalid config.toml, a value Codex would not load) before anything is written.
        self._plan_config(context)
        existing = self._existing(context)
        stored = False
        if existing is not None and not force:
            try:
                stored = auth_model.AuthFile(existing).stored_access_token_matches(token)
            except auth_model.AuthFileError:
                stored = False
        result = {'token_kind': token_kind(token), 'logged_in': False}
        if not stored or smoke_test:
            self._runner(context)
        if context.exists:
            # Codex (or the repair) takes its locks: refuse one it could not use before Codex runs (a
            # FIFO would hold it until its timeout), and in check mode, as the run would.
            context.home.check_locks()
        if self.check_mode:
            if stored:
                result.update(attributes_changed=self._predicted_repairs(context))
                result['changed'] = bool(result['attributes_changed'] or self.config['changes'])
                # As the run leaves it: the repairs made (0700, 0600, the runner's).
                return self._finish(context, result, predicted=existing)
            # Codex replaces auth.json with a 0600 file of the runner's: only CODEX_HOME's repairs remain.
            result.update(changed=True, logged_in=True,
                          attributes_changed=['codex_home_%s' % change for change in context.predicted_changes()])
            return self._finish(context, result, predicted=expected_file(token))
        dir_changes = ['codex_home_%s' % change for change in context.ensure()]
        # Codex runs as the runner and writes in CODEX_HOME: from here on, as the runner.
        return context.as_owner(self._present_as_owner, token, stored, existing, smoke_test, result, dir_changes)

    def _present_as_owner(self, context, token, stored, existing, smoke_test, result, dir_changes):
        self._write_config(context)
        if stored:
            changes = dir_changes + self._repair(context)
            result.update(changed=bool(changes or self.config['changes']), attributes_changed=changes)
            if smoke_test:
                result['smoke_test'] = self._smoke_test(context, None, token, restore=False)
            return self._finish(context, result)
        rc, output = self._codex(context, ['login', '--with-access-token'], stdin=token.encode('utf-8'),
                                 secrets=[token])
        if rc != 0:
            raise LoginError('codex login --with-access-token failed (exit %d): %s. The previous auth.json '
                             'was left as it was.' % (rc, output or 'no output'))
        result.update(changed=True, logged_in=True, attributes_changed=dir_changes + self._repair(context))
        if smoke_test:
            result['smoke_test'] = self._smoke_test(context, existing, token)
        return self._finish(context, result)

    def _smoke_test(self, context, previous, token, restore=True):
        """Ask Codex whether the login works. After a new login that fails it, put the previous
        auth.json back, so a bad rotation never leaves a runner without its working login."""
        status = codex_process.login_status(self.codex_path, self.home_path, self._runner(context), secrets=[token],
                                            extra_env=self.codex_environment)
        if status['logged_in']:
            return {'rc': status['rc'], 'message': status['message']}
        if not restore:
            raise LoginError('the stored access token fails `codex login status` (exit %d): %s'
                             % (status['rc'], status['message'] or 'no output'))
        with context.home.codex_lock(*context.file_ids, timeout=self.lock_timeout):
            if previous is None:
                context.home.remove([constants.AUTH_FILE])
            else:
                context.home.atomic_write(constants.AUTH_FILE, previous, *context.file_ids)
        raise LoginError('the new access token logged in, but `codex login status` then failed (exit %d): %s. The '
                         'previous auth.json was restored.' % (status['rc'], status['message'] or 'no output'))

    def absent(self):
        return self._act(self._absent)

    def _absent(self, context):
        existing = self._existing(context)
        result = {'token_kind': None, 'logged_in': False, 'attributes_changed': []}
        if existing is None:
            result['changed'] = False
            return self._finish(context, result)
        result['changed'] = True
        context.home.check_locks()
        self._runner(context)
        if self.check_mode:
            return self._finish(context, result, predicted=None)
        context.ensure()
        return context.as_owner(self._logout, result)

    def _logout(self, context, result):
        rc, output = self._codex(context, ['logout'])
        if rc != 0:
            raise LoginError('codex logout failed (exit %d): %s' % (rc, output or 'no output'))
        return self._finish(context, result)

    @staticmethod
    def _predicted_repairs(context):
        return (['codex_home_%s' % change for change in context.predicted_changes()]
                + ['auth_%s' % change for change in context.predicted_auth_repairs()])

    def _repair(self, context):
        """Codex ran as the runner user, so ownership is right; make sure of the modes anyway."""
        with context.home.codex_lock(*context.file_ids, timeout=self.lock_timeout):
            return ['auth_%s' % change for change in context.repair_auth()]

    def _finish(self, context, result, predicted=False):
        snapshot = health.take_snapshot(context.home)
        if predicted is not False:
            snapshot = health.predicted_snapshot(snapshot, context.owner_after(), predicted)
            if self.config_settings is not None:
                snapshot['config'] = health.predicted_config(context, self.config)
        if self.config_settings is not None:
            result.update(config_changed_keys=self.config['changes'], config_warnings=self.config['warnings'])
        options = dict(self.verify_options)
        salt = options.pop('salt', None)
        summary = health.evaluate(snapshot, owner_uid=self.uid, salt=salt, **options)
        result['auth'] = summary
        result['auth_mode'] = summary['auth_mode']
        return result
