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
import os

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import codex_process
from ansible_collections.codexops.runner.plugins.module_utils import health
from ansible_collections.codexops.runner.plugins.module_utils import safe_files

PERSONAL_PREFIX = 'at-'


class LoginError(Exception):
    pass


def token_kind(token):
    return 'personal_access_token' if token.startswith(PERSONAL_PREFIX) else 'agent_identity'


def expected_file(token):
    """What Codex 0.169 writes for this token, used to predict check-mode results."""
    if token_kind(token) == 'personal_access_token':
        doc = {'OPENAI_API_KEY': None, 'personal_access_token': token}
    else:
        doc = {'auth_mode': 'agentIdentity', 'OPENAI_API_KEY': None, 'agent_identity': token}
    return json.dumps(doc).encode('utf-8')


class AccessTokenLogin:

    def __init__(self, home, codex_path, uid=None, gid=None, check_mode=False, verify_options=None):
        self.home = home
        self.path = os.path.join(home, health.AUTH_FILE)
        self.codex_path = codex_path
        self.uid, self.gid = uid, gid
        self.check_mode = check_mode
        self.verify_options = verify_options or {}

    def _existing(self):
        if safe_files.check_home(self.home) is None:
            return None
        data, _st = safe_files.read_regular(self.path, 'auth', auth_model.MAX_AUTH_BYTES)
        return data

    def present(self, token, force=False, smoke_test=False):
        token = token.strip()
        if not token:
            raise LoginError('access_token is empty.')
        if auth_model.has_lone_surrogate(token):
            raise LoginError('access_token is not valid Unicode text (it holds a lone UTF-16 surrogate).')
        existing = self._existing()
        stored = False
        if existing is not None and not force:
            try:
                stored = auth_model.AuthFile(existing).stored_access_token_matches(token)
            except auth_model.AuthFileError:
                stored = False
        result = {'token_kind': token_kind(token), 'logged_in': False}
        if stored:
            changes = self._repair()
            result.update(changed=bool(changes), attributes_changed=changes)
            if smoke_test and not self.check_mode:
                result['smoke_test'] = self._smoke_test(None, token, restore=False)
        elif self.check_mode:
            result.update(changed=True, attributes_changed=[], logged_in=True)
            return self._finish(result, predicted=expected_file(token))
        else:
            safe_files.ensure_directory(self.home, self.uid, self.gid)
            rc, output = codex_process.run_codex(self.codex_path, ['login', '--with-access-token'], self.home,
                                                 stdin=token.encode('utf-8'), uid=self.uid, gid=self.gid,
                                                 secrets=[token])
            if rc != 0:
                raise LoginError('codex login --with-access-token failed (exit %d): %s. The previous auth.json '
                                 'was left as it was.' % (rc, output or 'no output'))
            result.update(changed=True, logged_in=True, attributes_changed=self._repair())
            if smoke_test:
                result['smoke_test'] = self._smoke_test(existing, token)
        return self._finish(result)

    def _smoke_test(self, previous, token, restore=True):
        """Ask Codex whether the login works. After a new login that fails it, put the previous
        auth.json back, so a bad rotation never leaves a runner without its working login."""
        rc, output = codex_process.run_codex(self.codex_path, ['login', 'status'], self.home, uid=self.uid,
                                             gid=self.gid, secrets=[token], timeout=60)
        if rc == 0 and output.startswith('Logged in'):
            return {'rc': rc, 'message': output}
        if not restore:
            raise LoginError('the stored access token fails `codex login status` (exit %d): %s'
                             % (rc, output or 'no output'))
        with safe_files.codex_lock(self.home, self.uid, self.gid):
            if previous is None:
                safe_files.remove_files([self.path])
            else:
                safe_files.atomic_write(self.path, previous, self.uid, self.gid)
        raise LoginError('the new access token logged in, but `codex login status` then failed (exit %d): %s. The '
                         'previous auth.json was restored.' % (rc, output or 'no output'))

    def absent(self):
        existing = self._existing()
        result = {'token_kind': None, 'logged_in': False, 'attributes_changed': []}
        if existing is None:
            result['changed'] = False
            return self._finish(result)
        result['changed'] = True
        if self.check_mode:
            return self._finish(result, predicted=None)
        rc, output = codex_process.run_codex(self.codex_path, ['logout'], self.home, uid=self.uid, gid=self.gid)
        if rc != 0:
            raise LoginError('codex logout failed (exit %d): %s' % (rc, output or 'no output'))
        return self._finish(result)

    def _repair(self):
        """Codex ran as the runner user, so ownership is right; make sure of the modes anyway."""
        if self.check_mode:
            st = safe_files.check_regular(self.path, 'auth')
            return ['auth_%s' % change for change in safe_files.mode_changes(st, self.uid, self.gid, 0o600)]
        changes = ['codex_home_%s' % change for change in safe_files.ensure_directory(self.home, self.uid, self.gid)]
        if safe_files.check_regular(self.path, 'auth') is not None:
            with safe_files.codex_lock(self.home, self.uid, self.gid):
                changes += ['auth_%s' % c for c in safe_files.repair_file(self.path, self.uid, self.gid, 0o600)]
        return changes

    def _finish(self, result, predicted=False):
        snapshot = health.take_snapshot(self.home)
        if predicted is not False:
            owner = self.uid if self.uid is not None else os.geteuid()
            snapshot['home'] = {'state': 'present', 'mode': 0o700, 'uid': owner}
            snapshot['auth'] = ({'state': 'missing'} if predicted is None else
                                {'state': 'present', 'data': predicted, 'mode': 0o600, 'uid': owner})
        options = dict(self.verify_options)
        salt = options.pop('salt', None)
        summary = health.evaluate(snapshot, owner_uid=self.uid, salt=salt, **options)
        result['auth'] = summary
        result['auth_mode'] = summary['auth_mode']
        return result
