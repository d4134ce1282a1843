# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The write-back loop over a secret store (preview): read, decide, write with check-and-set.

The rules are not here: whether a runner's file goes into the store is codex_writeback_decision's
verdict (plugins/filter/writeback.py), asked as it is, with whatever keyword arguments the caller
passes on. This loop only reads the store's copy and version, asks, writes on `store` with the
version read, and on a lost check-and-set reads and asks once more: the other writer may have stored
something newer (then the decision refuses), or older. A second loss fails with store_cas_lost.
Nothing is written on any error, and on `unchanged` (byte-identical) no version is made.
"""

import base64

from ansible_collections.codexops.runner.plugins.filter.writeback import codex_writeback_decision
from ansible_collections.codexops.runner.plugins.plugin_utils import _secret_store as store

ATTEMPTS = 2


def write_back(secret_store, name, runner_data, create=False, **decision_options):
    """Bring `runner_data` (the runner's auth.json bytes) into `secret_store` under `name` if the
    decision says `store`. Returns the decision (action, reason, runner and store facts) plus
    `written` (a new version was made), `version` (the store's version after the call), `attempts`
    and `cas_lost` (how many writes another writer beat).

    `create`: a missing secret is created (the operator's first seed); a write-back from a runner
    leaves it False, so a wrong name never makes a second credential: store_secret_missing."""
    if not isinstance(runner_data, bytes):
        raise store.StoreOptionsInvalid("the runner's auth.json must be given as bytes")
    content_b64 = base64.b64encode(runner_data).decode('ascii')
    cas_lost = 0
    for attempt in range(1, ATTEMPTS + 1):
        stored, version = secret_store.read(name)
        if stored is None and not create:
            raise store.StoreSecretMissing(
                'the %s does not exist (or has no current value). A write-back never creates one: seed it from a '
                'trusted machine first, or check the name. Nothing was written.' % secret_store.describe(name))
        try:
            store_text = '' if stored is None else stored.decode('utf-8')
        except UnicodeDecodeError:
            raise store.StoreCopyInvalid('the %s is not UTF-8 text; it is not an auth.json. Nothing was written.'
                                         % secret_store.describe(name))
        decision = codex_writeback_decision(content_b64, store_text, **decision_options)
        result = dict(decision, store_kind=secret_store.kind, name=name, written=False, version=version,
                      attempts=attempt, cas_lost=cas_lost)
        if decision['action'] != 'store':
            return result
        try:
            result['version'] = secret_store.write(name, runner_data, version)
        except store.StoreCasLost:
            cas_lost += 1
            continue
        result['written'] = True
        return result
    raise store.StoreCasLost('the %s changed between the read and the write %d times in a row; nothing was written. '
                             'Another writer is busy with the same runner\'s secret: one runner instance, one secret.'
                             % (secret_store.describe(name), ATTEMPTS))
