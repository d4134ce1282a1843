# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Seeding auth.json: the replace policy, seed validation, and real runs in tmp dirs."""

import copy
import datetime
import json
import os
import re
import stat

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import safe_files
from ansible_collections.codexops.runner.plugins.module_utils import seeding
from support import fake_credentials as fc

POLICIES = seeding.REPLACE_POLICIES
DAY = datetime.timedelta(days=1)


def encode(doc):
    return (json.dumps(doc, indent=2) + '\n').encode('utf-8')


def mode_of(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


# -- decide() -------------------------------------------------------------------------------------

T0 = fc.now() - 2 * DAY
SEED_DOC, SEED_SECRETS = fc.chatgpt_seed(tag='seed', account_id='acct-a', user_id='user-a', last_refresh=T0)
SEED_DATA = encode(SEED_DOC)


def _chatgpt(tag, account='acct-a', user='user-a', last_refresh=T0):
    return encode(fc.chatgpt_seed(tag=tag, account_id=account, user_id=user, last_refresh=last_refresh)[0])


def _same_tokens(last_refresh):
    doc = copy.deepcopy(SEED_DOC)
    doc['last_refresh'] = fc.rfc3339(last_refresh)
    return encode(doc)


EXISTING = {
    'absent': None,
    'identical': SEED_DATA,
    'invalid_json': b'{"tokens": {"refresh_token": "rt-FAKE-broken',
    'valid_older': _chatgpt('older', last_refresh=T0 - 5 * DAY),
    'valid_newer': _same_tokens(T0 + DAY),
    'same_identity_refreshed': _chatgpt('refreshed', last_refresh=T0 + 3 * DAY),
    'same_identity_same_time': _chatgpt('rotated', last_refresh=T0),
    'different_account': _chatgpt('other', account='acct-b', user='user-b', last_refresh=T0 + DAY),
    'different_account_older': _chatgpt('other-old', account='acct-b', user='user-b', last_refresh=T0 - DAY),
    'no_refresh_token': encode(dict(SEED_DOC, tokens=dict(SEED_DOC['tokens'], refresh_token=''))),
    'wrong_mode': encode(fc.apikey_seed()[0]),
}

# Expected `replace` per policy, in the order never, invalid, older, different, always.
EXPECTED = {
    'absent': (True, True, True, True, True),
    'identical': (False, False, False, False, False),
    'invalid_json': (False, True, True, True, True),
    'valid_older': (False, False, True, True, True),
    'valid_newer': (False, False, False, False, True),
    'same_identity_refreshed': (False, False, False, False, True),
    'same_identity_same_time': (False, False, False, False, True),
    'different_account': (False, False, False, True, True),
    'different_account_older': (False, False, True, True, True),
    'no_refresh_token': (False, True, True, True, True),
    'wrong_mode': (False, True, True, True, True),
}


@pytest.mark.parametrize('state', sorted(EXISTING))
@pytest.mark.parametrize('policy', POLICIES)
def test_decide_matrix(state, policy):
    seed = seeding.load_seed(SEED_DATA, ['chatgpt'], True)
    replace, reason = seeding.decide(EXISTING[state], SEED_DATA, seed, policy, ['chatgpt'], True)
    assert replace is EXPECTED[state][POLICIES.index(policy)]
    assert isinstance(reason, str) and reason
    for secret in SEED_SECRETS:
        assert secret not in reason


def test_decide_reasons():
    seed = seeding.load_seed(SEED_DATA, ['chatgpt'], True)

    def reason(state, policy):
        return seeding.decide(EXISTING[state], SEED_DATA, seed, policy, ['chatgpt'], True)[1]

    assert reason('absent', 'never') == 'auth.json was absent'
    assert 'exactly this seed' in reason('identical', 'always')
    assert 'replace is never' in reason('invalid_json', 'never')
    assert reason('invalid_json', 'invalid') == 'the existing auth.json is invalid (auth_not_json)'
    assert reason('no_refresh_token', 'invalid') == 'the existing auth.json is invalid (refresh_token_missing)'
    assert reason('wrong_mode', 'invalid') == 'the existing auth.json is invalid (auth_mode_unexpected)'
    assert 'newer' in reason('valid_older', 'older')
    assert 'different credentials' in reason('different_account', 'different')
    assert reason('valid_newer', 'always') == 'replace is always'
    assert reason('valid_newer', 'different') == ('the existing auth.json is valid, not older, and holds the same '
                                                  'credentials')


APIKEY_SEED, APIKEY_SECRETS = fc.apikey_seed(tag='seed')
APIKEY_DATA = encode(APIKEY_SEED)


@pytest.mark.parametrize('policy, expected', list(zip(POLICIES, (False, False, False, True, True))))
def test_decide_apikey_different_key(policy, expected):
    seed = seeding.load_seed(APIKEY_DATA, ['apikey'], True)
    other = encode(fc.apikey_seed(tag='other')[0])
    assert seeding.decide(other, APIKEY_DATA, seed, policy, ['apikey'], True)[0] is expected


@pytest.mark.parametrize('policy, expected', list(zip(POLICIES, (False, False, False, False, True))))
def test_decide_apikey_same_key_reformatted(policy, expected):
    seed = seeding.load_seed(APIKEY_DATA, ['apikey'], True)
    same = json.dumps(APIKEY_SEED, indent=4).encode()
    assert same != APIKEY_DATA
    assert seeding.decide(same, APIKEY_DATA, seed, policy, ['apikey'], True)[0] is expected


# -- load_seed ------------------------------------------------------------------------------------

def _bad_seeds():
    chatgpt, secrets = fc.chatgpt_seed(tag='badseed')
    apikey, key = fc.apikey_seed(tag='badseed')
    no_refresh = copy.deepcopy(chatgpt)
    no_refresh['tokens']['refresh_token'] = ''
    bad_id = copy.deepcopy(chatgpt)
    bad_id['tokens']['id_token'] = secrets[2]  # a refresh token is not a JWT
    bad_time = copy.deepcopy(chatgpt)
    bad_time['last_refresh'] = '2025-01-01 10:00:00'
    bad_mode = dict(apikey, auth_mode='api_key')
    all_secrets = secrets + key
    raw = encode(chatgpt)
    return [
        ('truncated', raw[:len(raw) // 2], 'auth_not_json'),
        ('not_json', ('token: %s' % secrets[2]).encode(), 'auth_not_json'),
        ('array', json.dumps([secrets[2]]).encode(), 'auth_not_json'),
        ('empty', b'', 'auth_not_json'),
        ('apikey_not_allowed', encode(apikey), 'auth_mode_unexpected'),
        ('no_refresh_token', encode(no_refresh), 'refresh_token_missing'),
        ('bad_id_token', encode(bad_id), 'id_token_invalid'),
        ('bad_last_refresh', encode(bad_time), 'last_refresh_invalid'),
        ('bad_auth_mode', encode(bad_mode), 'auth_mode_invalid'),
    ], all_secrets


BAD_SEEDS, BAD_SECRETS = _bad_seeds()


@pytest.mark.parametrize('name, data, code', BAD_SEEDS, ids=[b[0] for b in BAD_SEEDS])
def test_load_seed_rejects(name, data, code):
    with pytest.raises(seeding.SeedError) as info:
        seeding.load_seed(data, ['chatgpt'], True)
    message = str(info.value)
    assert code in message
    assert 'Nothing was written' in message
    for secret in BAD_SECRETS:
        assert secret not in message
        for part in secret.split('.'):
            assert len(part) < 16 or part not in message


def test_load_seed_accepts():
    assert seeding.load_seed(SEED_DATA, ['chatgpt'], True).mode == 'chatgpt'
    assert seeding.load_seed(APIKEY_DATA, ['apikey'], True).mode == 'apikey'
    no_refresh = encode(dict(SEED_DOC, tokens=dict(SEED_DOC['tokens'], refresh_token='')))
    assert seeding.load_seed(no_refresh, ['chatgpt'], False).has_refresh_token is False


# -- SeedRun on real directories ------------------------------------------------------------------

VERIFY = {'allowed_auth_modes': ['chatgpt'], 'require_refresh_token': True, 'max_age_days': 8,
          'require_file_store': False, 'salt': 'unit'}


def seed_run(home, data=SEED_DATA, check_mode=False, modes=('chatgpt',), **kwargs):
    seed = seeding.load_seed(data, list(modes), True)
    options = dict(VERIFY, allowed_auth_modes=list(modes))
    return seeding.SeedRun(str(home), data, seed, check_mode=check_mode, verify_options=options, **kwargs).run()


def comparable(result, keys=None):
    out = copy.deepcopy(result)
    out.pop('diff')
    out['auth'].pop('age_days')
    if out['backup_file']:
        out['backup_file'] = re.sub(r'\.[0-9T.]+Z(\.\d+)?\.bak$', '.<timestamp>.bak', out['backup_file'])
    if keys:
        out = dict((key, out[key]) for key in keys)
    return out


def check_then_run(home, keys=None, **kwargs):
    """Run in check mode, then for real; check mode must predict the real result exactly."""
    predicted = seed_run(home, check_mode=True, **kwargs)
    actual = seed_run(home, **kwargs)
    assert comparable(predicted, keys) == comparable(actual, keys)
    return actual


def leftover_temp_files(home):
    fd = os.open(str(home), os.O_RDONLY | os.O_DIRECTORY)
    try:
        return safe_files.HomeDir(fd, str(home)).leftover_temp_files()
    finally:
        os.close(fd)


def test_created(tmp_path):
    home = tmp_path / 'runner' / '.codex'
    result = check_then_run(home)
    assert result['changed'] is True
    assert result['action'] == 'created'
    assert result['reason'] == 'auth.json was absent'
    assert result['attributes_changed'] == ['codex_home_created']
    assert mode_of(home) == 0o700
    assert mode_of(home / 'auth.json') == 0o600
    assert (home / 'auth.json').read_bytes() == SEED_DATA
    assert result['auth']['healthy'] is True, result['auth']['problems']
    assert result['auth']['auth_mode'] == 'chatgpt'
    assert result['diff']['before'] == {'state': 'absent'}
    assert result['diff']['after']['state'] == 'present'
    assert leftover_temp_files(home) == []
    dumped = json.dumps(result)
    for secret in SEED_SECRETS:
        assert secret not in dumped


def test_kept_on_second_run(tmp_path):
    home = tmp_path / '.codex'
    seed_run(home)
    before = (home / 'auth.json').read_bytes(), os.lstat(str(home / 'auth.json')).st_ino
    result = check_then_run(home)
    assert result['changed'] is False
    assert result['action'] == 'kept'
    assert result['attributes_changed'] == []
    assert ((home / 'auth.json').read_bytes(), os.lstat(str(home / 'auth.json')).st_ino) == before


def test_kept_when_codex_refreshed_it(codex_home):
    refreshed = EXISTING['same_identity_refreshed']
    home = codex_home(auth=refreshed)
    result = check_then_run(home, policy='different')
    assert result['changed'] is False and result['action'] == 'kept'
    assert (home / 'auth.json').read_bytes() == refreshed


def test_umask_does_not_matter(tmp_path):
    old = os.umask(0)
    try:
        seed_run(tmp_path / '.codex')
    finally:
        os.umask(old)
    assert mode_of(tmp_path / '.codex') == 0o700
    assert mode_of(tmp_path / '.codex' / 'auth.json') == 0o600


@pytest.mark.parametrize('backup', [True, False])
def test_replaced_with_backup(codex_home, backup):
    old = EXISTING['different_account']
    home = codex_home(auth=old, auth_mode=0o644)
    result = check_then_run(home, policy='different', backup=backup)
    assert result['changed'] is True and result['action'] == 'replaced'
    assert (home / 'auth.json').read_bytes() == SEED_DATA
    assert mode_of(home / 'auth.json') == 0o600
    backups = sorted(p for p in os.listdir(str(home)) if p.endswith('.bak'))
    if backup:
        assert len(backups) == 1
        assert result['backup_file'] == str(home / backups[0])
        assert (home / backups[0]).read_bytes() == old
        assert mode_of(home / backups[0]) == 0o600
    else:
        assert backups == [] and result['backup_file'] is None
    assert result['diff']['before']['mode'] == '0644'
    assert result['diff']['after']['mode'] == '0600'


def test_check_mode_backup_prediction(codex_home):
    home = codex_home(auth=EXISTING['valid_older'])
    predicted = seed_run(home, check_mode=True, policy='older', backup=True)
    assert predicted['backup_file'].endswith('.bak')
    assert not [p for p in os.listdir(str(home)) if p.endswith('.bak')]
    assert (home / 'auth.json').read_bytes() == EXISTING['valid_older']


def test_mode_repair_is_a_change(codex_home):
    home = codex_home(auth=SEED_DATA, auth_mode=0o644, home_mode=0o755)
    result = check_then_run(home)
    assert result['changed'] is True
    assert result['action'] == 'kept'
    assert result['attributes_changed'] == ['codex_home_mode', 'auth_mode']
    assert 'repaired' in result['reason']
    assert mode_of(home) == 0o700 and mode_of(home / 'auth.json') == 0o600
    assert (home / 'auth.json').read_bytes() == SEED_DATA
    assert seed_run(home)['changed'] is False


def test_owner_repair(codex_home):
    home = codex_home(auth=SEED_DATA)
    result = check_then_run(home, uid=65534, gid=65534)
    assert result['attributes_changed'] == ['codex_home_owner', 'auth_owner']
    for path in (home, home / 'auth.json'):
        st = os.lstat(str(path))
        assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert result['auth']['owner'] == safe_files.user_name(65534)


def test_created_for_owner(tmp_path):
    home = tmp_path / '.codex'
    result = check_then_run(home, keys=('changed', 'action', 'reason', 'auth'), uid=65534, gid=65534)
    assert result['action'] == 'created'
    assert result['auth']['owner'] == safe_files.user_name(65534)
    assert result['auth']['healthy'] is True
    for path in (home, home / 'auth.json', home / 'auth.lock', home / 'auth.json.lock'):
        st = os.lstat(str(path))
        assert (st.st_uid, st.st_gid) == (65534, 65534), path


def test_created_for_owner_attributes_match_check_mode(tmp_path):
    home = tmp_path / '.codex'
    predicted = seed_run(home, check_mode=True, uid=65534, gid=65534)
    actual = seed_run(home, uid=65534, gid=65534)
    assert actual['attributes_changed'] == predicted['attributes_changed'] == ['codex_home_created']


def test_leftover_temp_file_removed(codex_home):
    home = codex_home(auth=SEED_DATA)
    temp = home / '.codexops-auth.json-dead00.tmp'
    temp.write_bytes(b'{"partial')
    codex_temp = home / '.auth-ABC123'
    codex_temp.write_bytes(b'{}')
    result = check_then_run(home)
    assert result['changed'] is True
    assert result['removed_temp_files'] == 1
    assert not temp.exists()
    assert codex_temp.exists()  # never Codex's own temp files
    again = seed_run(home)
    assert again['changed'] is False and again['removed_temp_files'] == 0


def test_check_mode_writes_nothing(tmp_path, codex_home):
    seed_run(tmp_path / 'absent', check_mode=True)
    assert not (tmp_path / 'absent').exists()
    home = codex_home(auth=EXISTING['invalid_json'], auth_mode=0o644, home_mode=0o755)
    listing = sorted(os.listdir(str(home)))
    result = seed_run(home, check_mode=True, policy='invalid')
    assert result['changed'] is True and result['action'] == 'replaced'
    assert sorted(os.listdir(str(home))) == listing
    assert (home / 'auth.json').read_bytes() == EXISTING['invalid_json']
    assert mode_of(home) == 0o755 and mode_of(home / 'auth.json') == 0o644


def test_check_mode_predicts_config_problems(codex_home):
    home = codex_home(auth=None, config='cli_auth_credentials_store = "keyring"\n')
    seed = seeding.load_seed(SEED_DATA, ['chatgpt'], True)
    options = dict(VERIFY, require_file_store=True)
    predicted = seeding.SeedRun(str(home), SEED_DATA, seed, check_mode=True, verify_options=options).run()
    actual = seeding.SeedRun(str(home), SEED_DATA, seed, verify_options=options).run()
    assert [p['code'] for p in predicted['auth']['problems']] == ['store_not_file']
    assert comparable(predicted) == comparable(actual)


def test_symlinked_auth_json_refused(codex_home, tmp_path):
    home = codex_home()
    target = tmp_path / 'elsewhere.json'
    target.write_bytes(b'{"old": true}')
    (home / 'auth.json').symlink_to(target)
    for check_mode in (True, False):
        with pytest.raises(safe_files.UnsafePathError) as info:
            seed_run(home, check_mode=check_mode, policy='always')
        assert info.value.code == 'auth_symlink'
    assert target.read_bytes() == b'{"old": true}'
    assert os.path.islink(str(home / 'auth.json'))
    # Refused before anything is written: not even Codex's lock files.
    assert sorted(os.listdir(str(home))) == ['auth.json', 'config.toml']
    assert sorted(os.listdir(str(tmp_path))) == ['codex-home-1', 'elsewhere.json']


def test_hardlinked_auth_json_refused(codex_home, tmp_path):
    home = codex_home(auth=EXISTING['valid_older'])
    os.link(str(home / 'auth.json'), str(tmp_path / 'other-link'))
    with pytest.raises(safe_files.UnsafePathError) as info:
        seed_run(home, policy='always')
    assert info.value.code == 'auth_hardlink'
    assert (tmp_path / 'other-link').read_bytes() == EXISTING['valid_older']
    assert (home / 'auth.json').read_bytes() == EXISTING['valid_older']
    assert os.lstat(str(home / 'auth.json')).st_nlink == 2


def test_symlinked_home_refused(tmp_path):
    real = tmp_path / 'real-home'
    real.mkdir(mode=0o755)
    link = tmp_path / '.codex'
    link.symlink_to(real)
    for check_mode in (True, False):
        with pytest.raises(safe_files.UnsafePathError) as info:
            seed_run(link, check_mode=check_mode)
        assert info.value.code == 'codex_home_symlink'
    assert os.listdir(str(real)) == []
    assert mode_of(real) == 0o755


def test_lock_is_held_while_writing(codex_home, monkeypatch):
    home = codex_home(auth=None)
    seen = []
    real_write = safe_files.HomeDir.atomic_write

    def checking_write(self, name, data, *args, **kwargs):
        import fcntl
        for lock in safe_files.LOCK_FILES:
            fd = os.open(str(home / lock), os.O_RDWR)
            try:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append(lock)
            finally:
                os.close(fd)
        return real_write(self, name, data, *args, **kwargs)

    monkeypatch.setattr(safe_files.HomeDir, 'atomic_write', checking_write)
    assert seed_run(home)['action'] == 'created'
    assert seen == list(safe_files.LOCK_FILES)


def test_describe_never_returns_content():
    described = seeding.describe(SEED_DATA, {'mode': 0o100600, 'uid': 0}, 'salt')
    assert described['state'] == 'present' and described['mode'] == '0600' and described['owner'] == 'root'
    assert described['auth_mode'] == 'chatgpt'
    assert len(described['refresh_token_fingerprint']) == 16
    broken = seeding.describe(b'{"x": "rt-FAKE-secret', {'mode': 0o100644, 'uid': 0}, None)
    assert broken['invalid'] == 'auth_not_json'
    assert 'rt-FAKE-secret' not in json.dumps(broken)
    for secret in SEED_SECRETS:
        assert secret not in json.dumps(described)


def test_auth_summary_matches_model(tmp_path):
    result = seed_run(tmp_path / '.codex')
    auth = auth_model.AuthFile(SEED_DATA)
    assert result['auth']['refresh_token_fingerprint'] == auth.refresh_token_fingerprint('unit')
    assert result['auth']['account_id'] == 'acct-a'


def _runner_owned_home(codex_home):
    home = codex_home(auth=EXISTING['valid_older'])
    for path in (home, home / 'auth.json'):
        os.chown(str(path), 65534, 65534)
    return home


def test_replace_without_owner_keeps_the_runner_user(codex_home):
    home = _runner_owned_home(codex_home)
    result = seed_run(home, policy='older')
    assert result['action'] == 'replaced'
    assert os.lstat(str(home / 'auth.json')).st_uid == 65534
    assert result['auth']['owner'] == safe_files.user_name(65534)


def test_check_mode_predicts_owner_of_replaced_file(codex_home):
    home = _runner_owned_home(codex_home)
    predicted = seed_run(home, check_mode=True, policy='older')
    actual = seed_run(home, policy='older')
    assert actual['auth']['owner'] == safe_files.user_name(65534)
    assert predicted['auth']['owner'] == actual['auth']['owner']


def test_replace_without_group_keeps_the_group(codex_home):
    home = _runner_owned_home(codex_home)
    seed_run(home, policy='older')
    assert os.lstat(str(home / 'auth.json')).st_gid == 65534


@pytest.mark.parametrize('name', ['auth.lock', 'auth.json.lock'])
def test_a_lock_file_the_run_cannot_use_fails_the_plan_as_it_fails_the_run(codex_home, name):
    home = codex_home(auth=SEED_DATA)
    os.mkfifo(str(home / name), 0o600)
    for check_mode in (True, False):
        with pytest.raises(safe_files.UnsafePathError) as info:
            seed_run(home, check_mode=check_mode)
        assert info.value.code == 'lock_unavailable' and name in info.value.message
    assert (home / 'auth.json').read_bytes() == SEED_DATA
