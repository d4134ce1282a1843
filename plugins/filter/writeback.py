# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write-back decisions for ephemeral runners, on the controller.

An ephemeral runner loses its disk, so its refreshed auth.json must come back into the seed store
before the next restore; the store must never go backwards (an older file over a newer one would
resurrect a used refresh token) and never take a broken file. The decision returns facts only.
"""

import base64
import binascii

from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.module_utils import auth_model


def _facts(data, allowed_modes, salt):
    try:
        parsed = auth_model.AuthFile(data)
    except auth_model.AuthFileError as exc:
        return {'valid': False, 'problems': [exc.code], 'auth_mode': None, 'last_refresh': None,
                'refresh_token_fingerprint': None, '_when': None}
    problems = [item['code'] for item in parsed.credential_problems(allowed_modes, True)]
    return {'valid': not problems, 'problems': problems, 'auth_mode': parsed.mode,
            'last_refresh': auth_model.isoformat(parsed.last_refresh) if parsed.last_refresh else None,
            'refresh_token_fingerprint': parsed.refresh_token_fingerprint(salt), '_when': parsed.last_refresh}


def codex_writeback_decision(runner_content_b64, store_content, allowed_auth_modes=None, salt=None):
    """Decide what to do with a runner's auth.json (base64, as slurp returns it) given the store's
    copy (text, '' when the store has none). Returns {action: store|unchanged|refuse, reason,
    runner, store} where runner and store are facts (mode, last_refresh, fingerprint, problems)."""
    allowed = list(allowed_auth_modes or ['chatgpt'])
    try:
        runner_data = base64.b64decode(runner_content_b64 or '', validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise AnsibleFilterError('codex_writeback_decision expects the base64 content slurp returns')
    runner = _facts(runner_data, allowed, salt)
    store_data = (store_content or '').encode('utf-8')
    store = _facts(store_data, allowed, salt) if store_data.strip() else None

    def decided(action, reason):
        public = dict((key, value) for key, value in runner.items() if not key.startswith('_'))
        kept = None if store is None else dict((key, value) for key, value in store.items() if not key.startswith('_'))
        return {'action': action, 'reason': reason, 'runner': public, 'store': kept}

    if not runner['valid']:
        return decided('refuse', "the runner's auth.json is not usable (%s); the store keeps what it has"
                       % ', '.join(runner['problems']))
    if store is None:
        return decided('store', 'the store had no file for this runner')
    if runner_data.strip() == store_data.strip():
        return decided('unchanged', 'the store already holds this exact file')
    if not store['valid']:
        return decided('store', "the store's copy is not usable (%s)" % ', '.join(store['problems']))
    if runner['_when'] is None:
        return decided('refuse', "the runner's auth.json has no last_refresh, so it cannot be shown to be newer")
    if store['_when'] is None or runner['_when'] > store['_when']:
        return decided('store', "the runner's file is newer (runner %s, store %s)"
                       % (runner['last_refresh'], store['last_refresh']))
    if runner['_when'] == store['_when']:
        return decided('unchanged', 'the runner and the store were last refreshed at the same time')
    return decided('refuse', "the runner's file is older than the store's (runner %s, store %s); an older file "
                   'never replaces a newer one' % (runner['last_refresh'], store['last_refresh']))


class FilterModule(object):

    def filters(self):
        return {'codex_writeback_decision': codex_writeback_decision}
