# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write-back decisions for ephemeral runners, on the controller.

An ephemeral runner loses its disk, so its refreshed auth.json must come back into the seed store
before the next restore; the store must never go backwards (an older file over a newer one would
resurrect a used refresh token), never take a broken, future-dated or other account's file. The rules
are module_utils/_writeback_rules.py's; this filter only decodes its arguments. Facts only.
"""

import base64
import binascii

from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.module_utils import _writeback_rules
from ansible_collections.codexops.runner.plugins.module_utils import auth_model


# base64 of the largest auth.json the model reads: anything longer is too large before decoding.
_MAX_B64_CHARS = 4 * (auth_model.MAX_AUTH_BYTES // 3 + 1) + 64


def codex_writeback_decision(runner_content_b64, store_content, allowed_auth_modes=None, salt=None,
                             allow_identity_change=False):
    """Decide what to do with a runner's auth.json (base64, as slurp returns it) given the store's
    copy (text, '' when the store has none). Returns {action: store|unchanged|refuse, code, reason,
    runner, store} where runner and store are facts (mode, last_refresh, account, fingerprint,
    problems). The rules are _writeback_rules.decide's, the one verdict every store uses."""
    allowed = _auth_modes(allowed_auth_modes)
    if salt is not None and not isinstance(salt, str):
        raise AnsibleFilterError('codex_writeback_decision: salt must be a string')
    if store_content is not None and not isinstance(store_content, str):
        raise AnsibleFilterError("codex_writeback_decision: the store's copy must be text ('' when there is none)")
    if not isinstance(allow_identity_change, bool):
        raise AnsibleFilterError('codex_writeback_decision: allow_identity_change must be true or false')
    # surrogatepass: text from a lookup may hold a lone surrogate; the model refuses it as not UTF-8.
    store_data = (store_content or '').encode('utf-8', 'surrogatepass')
    return _writeback_rules.decide(_runner_file(runner_content_b64), store_data, allowed, salt,
                                   allow_identity_change=allow_identity_change)


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
