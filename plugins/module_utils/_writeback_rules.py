# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether a runner's auth.json may replace the store's copy: the one verdict for every store.

Private to this collection; standard library only, so the same rules can run on a runner at job
time. The runner's file is written by the untrusted runner user, so it is believed only when it is:

- a usable auth.json (auth_model.judge, the verdict every other reader uses);
- strictly newer than the store's copy by `last_refresh` (an older file would resurrect a used
  refresh token); the same time, or the same bytes, means nothing to store;
- not from the future: a `last_refresh` later than now plus the clock-skew tolerance would pin the
  store (every genuine refresh afterwards would look older);
- judged against a usable store copy: a store copy that is not a usable auth.json is refused
  (store_copy_invalid), never overwritten, so a damaged secret is seen and re-seeded by a person;
- the same account and user as the store's copy, unless the operator allows a change for that
  runner: a job must not be able to swap another account's credentials into the runner's secret.

`decide` returns facts only (mode, last refresh, account, fingerprint, problems), never a secret.
"""

import datetime

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import constants

STORE, UNCHANGED, REFUSE = 'store', 'unchanged', 'refuse'
# Why a copy was refused; stable, documented in docs/troubleshooting.md (Errors when writing back).
REFUSAL_CODES = ('runner_file_invalid', 'runner_last_refresh_missing', 'runner_older', 'runner_from_future',
                 'runner_identity_changed', 'store_copy_invalid')


def facts_of(data, allowed_modes, salt):
    """(public facts, AuthFile or None) of auth.json bytes under the write-back policy."""
    parsed, found = auth_model.judge(data, allowed_modes, require_refresh_token=True)
    if parsed is None:
        return {'valid': False, 'problems': [found[0]['code']], 'auth_mode': None, 'last_refresh': None,
                'account_id': None, 'refresh_token_fingerprint': None}, None
    problems = [item['code'] for item in found]
    facts = dict(parsed.identity_facts(salt), account_id=parsed.account_id, valid=not problems, problems=problems)
    return facts, parsed


def refused_facts(code):
    return {'valid': False, 'problems': [code], 'auth_mode': None, 'last_refresh': None, 'account_id': None,
            'refresh_token_fingerprint': None}


def decide(runner_data, store_data, allowed_modes=None, salt=None, now=None, allow_identity_change=False):
    """{action: store|unchanged|refuse, code (refusals only, else None), reason, runner, store} for the
    runner's bytes (None: too large to be an auth.json) against the store's (None or empty: none)."""
    allowed = list(allowed_modes or ['chatgpt'])
    if runner_data is None:
        runner, runner_file = refused_facts('auth_too_large'), None
    else:
        runner, runner_file = facts_of(runner_data, allowed, salt)
    store = store_file = None
    if store_data is not None and store_data.strip():
        store, store_file = facts_of(store_data, allowed, salt)

    def decided(action, reason, code=None):
        return {'action': action, 'code': code, 'reason': reason, 'runner': runner, 'store': store}

    if not runner['valid']:
        return decided(REFUSE, "the runner's auth.json is not usable (%s); the store keeps what it has"
                       % ', '.join(runner['problems']), 'runner_file_invalid')
    when = runner_file.last_refresh
    now = now or auth_model.utcnow()
    if when is not None and when > now + datetime.timedelta(seconds=constants.CLOCK_SKEW_TOLERANCE_SECONDS):
        return decided(REFUSE, "the runner's auth.json says it was refreshed at %s, in the future (now %s); a "
                       'forged time would pin the store, so it is not believed'
                       % (runner['last_refresh'], auth_model.isoformat(now)), 'runner_from_future')
    if store is None:
        return decided(STORE, 'the store had no file for this runner')
    if runner_data.strip() == store_data.strip():
        return decided(UNCHANGED, 'the store already holds this exact file')
    if not store['valid']:
        return decided(REFUSE, "the store's copy is not usable (%s); a write-back never replaces what it cannot "
                       'judge (it may be newer than it looks): re-seed the store from a trusted machine'
                       % ', '.join(store['problems']), 'store_copy_invalid')
    if store_file.credential_identity() != runner_file.credential_identity() and not allow_identity_change:
        return decided(REFUSE, "the runner's auth.json is for another account or user (runner account %s, store "
                       'account %s); set allow_identity_change for this runner if the change is intended'
                       % (runner['account_id'], store['account_id']), 'runner_identity_changed')
    if when is None:
        return decided(REFUSE, "the runner's auth.json has no last_refresh, so it cannot be shown to be newer",
                       'runner_last_refresh_missing')
    stored_when = store_file.last_refresh
    if stored_when is None or when > stored_when:
        return decided(STORE, "the runner's file is newer (runner %s, store %s)"
                       % (runner['last_refresh'], store['last_refresh']))
    if when == stored_when:
        return decided(UNCHANGED, 'the runner and the store were last refreshed at the same time')
    return decided(REFUSE, "the runner's file is older than the store's (runner %s, store %s); an older file "
                   'never replaces a newer one' % (runner['last_refresh'], store['last_refresh']), 'runner_older')
