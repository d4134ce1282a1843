# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The write-back loop over a secret store (preview): read, decide, write with check-and-set.

The rules are not here: whether a runner's file goes into the store is codex_writeback_decision's
verdict (plugins/filter/writeback.py), asked as it is, with whatever keyword arguments the caller
passes on. The loop (module_utils/_store_contract.write_back, shared with the runner's job-time command)
only reads the store's copy and version, asks, writes on `store` with the
version read, and on a lost check-and-set reads and asks once more: the other writer may have stored
something newer (then the decision refuses), or older. A second loss fails with store_cas_lost.
Nothing is written on any error, and on `unchanged` (byte-identical) no version is made.
"""

import base64

from ansible_collections.codexops.runner.plugins.filter.writeback import codex_writeback_decision
from ansible_collections.codexops.runner.plugins.module_utils import _store_contract
from ansible_collections.codexops.runner.plugins.plugin_utils import _secret_store as store

ATTEMPTS = _store_contract.ATTEMPTS


def write_back(secret_store, name, runner_data, create=False, **decision_options):
    """Bring `runner_data` (the runner's auth.json bytes) into `secret_store` under `name` if the
    decision says `store`. Returns the decision (action, reason, runner and store facts) plus
    `written` (a new version was made), `version` (the store's version after the call), `attempts`
    and `cas_lost` (how many writes another writer beat).

    `create`: a missing secret is created (the operator's first seed); a write-back from a runner
    leaves it False, so a wrong name never makes a second credential: store_secret_missing.
    The loop is the contract's (module_utils/_store_contract.write_back), the same one the runner's
    job-time command runs."""
    if not isinstance(runner_data, bytes):
        raise store.StoreOptionsInvalid("the runner's auth.json must be given as bytes")
    content_b64 = base64.b64encode(runner_data).decode('ascii')

    def decide(_runner_data, store_text):
        return codex_writeback_decision(content_b64, store_text, **decision_options)

    return _store_contract.write_back(secret_store, name, runner_data, decide, create=create)
