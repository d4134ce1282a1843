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


# base64 of the largest auth.json the model reads: anything longer is too large before decoding.
_MAX_B64_CHARS = 4 * (auth_model.MAX_AUTH_BYTES // 3 + 1) + 64


def _refused(code):
    return {'valid': False, 'problems': [code], 'auth_mode': None, 'last_refresh': None,
            'refresh_token_fingerprint': None, '_when': None}


def _facts(data, allowed_modes, salt):
    parsed, found = auth_model.judge(data, allowed_modes, require_refresh_token=True)
    if parsed is None:
        return _refused(found[0]['code'])
    problems = [item['code'] for item in found]
    return dict(parsed.identity_facts(salt), valid=not problems, problems=problems, _when=parsed.last_refresh)


def codex_writeback_decision(runner_content_b64, store_content, allowed_auth_modes=None, salt=None):
    """Decide what to do with a runner's auth.json (base64, as slurp returns it) given the store's
    copy (text, '' when the store has none). Returns {action: store|unchanged|refuse, reason,
    runner, store} where runner and store are facts (mode, last_refresh, fingerprint, problems)."""
    allowed = _auth_modes(allowed_auth_modes)
    if salt is not None and not isinstance(salt, str):
        raise AnsibleFilterError('codex_writeback_decision: salt must be a string')
    if store_content is not None and not isinstance(store_content, str):
        raise AnsibleFilterError("codex_writeback_decision: the store's copy must be text ('' when there is none)")
    runner_data = _runner_file(runner_content_b64)
    runner = _refused('auth_too_large') if runner_data is None else _facts(runner_data, allowed, salt)
    # surrogatepass: text from a lookup may hold a lone surrogate; the model refuses it as not UTF-8.
    store_data = (store_content or '').encode('utf-8', 'surrogatepass')
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


def _runner_file(content_b64):
    """The runner's auth.json from slurp's base64, or None when it is too long to be one (the
    runner user chooses its size: it is not decoded then)."""
    if content_b64 is not None and not isinstance(content_b64, str):
        raise AnsibleFilterError('codex_writeback_decision expects the base64 content slurp returns')
    if len(content_b64 or '') > _MAX_B64_CHARS:
        return None
    try:
        return base64.b64decode(content_b64 or '', validate=True)
    except (binascii.Error, ValueError):
        raise AnsibleFilterError('codex_writeback_decision expects the base64 content slurp returns')


def _auth_modes(value):
    """allowed_auth_modes as a list of names; one name alone is a list of one, not of its letters."""
    if value is None or value == []:
        return ['chatgpt']
    modes = [value] if isinstance(value, str) else value
    if not isinstance(modes, (list, tuple)) or not all(isinstance(mode, str) for mode in modes):
        raise AnsibleFilterError('codex_writeback_decision: allowed_auth_modes must be a list of auth mode names')
    return list(modes)


class FilterModule(object):

    def filters(self):
        return {'codex_writeback_decision': codex_writeback_decision}
