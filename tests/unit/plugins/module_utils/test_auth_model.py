# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""auth.json model: mode resolution, JWT and timestamp parsing, facts, summaries (codex-facts.md)."""

import base64
import datetime
import json
import re

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils.auth_model import AuthFile, AuthFileError
from support import fake_credentials as fc

UTC = datetime.timezone.utc


def b64(obj):
    return fc.b64url(json.dumps(obj).encode())


def encode(doc):
    return json.dumps(doc).encode('utf-8')


def assert_no_secret(text, secrets):
    for secret in secrets:
        assert secret not in text, 'a secret leaked into %r' % text[:200]


# -- mode resolution ------------------------------------------------------------------------------

@pytest.mark.parametrize('mode', auth_model.KNOWN_AUTH_MODES)
def test_declared_auth_mode_wins(mode):
    doc = {'auth_mode': mode, 'OPENAI_API_KEY': 'sk-FAKE', 'personal_access_token': 'at-FAKE'}
    assert auth_model.resolve_auth_mode(doc) == mode


@pytest.mark.parametrize('doc, expected', [
    ({'personal_access_token': 'at-FAKE'}, 'personalAccessToken'),
    ({'OPENAI_API_KEY': None, 'personal_access_token': 'at-FAKE'}, 'personalAccessToken'),
    # personal_access_token is checked before OPENAI_API_KEY
    ({'OPENAI_API_KEY': 'sk-FAKE', 'personal_access_token': 'at-FAKE'}, 'personalAccessToken'),
    ({'OPENAI_API_KEY': 'sk-FAKE'}, 'apikey'),
    ({'OPENAI_API_KEY': None}, 'chatgpt'),
    ({'OPENAI_API_KEY': None, 'tokens': {}}, 'chatgpt'),
    ({}, 'chatgpt'),
    ({'auth_mode': None}, 'chatgpt'),
    ({'auth_mode': None, 'OPENAI_API_KEY': 'sk-FAKE'}, 'apikey'),
    ({'auth_mode': None, 'personal_access_token': 'at-FAKE'}, 'personalAccessToken'),
])
def test_mode_resolution_without_auth_mode(doc, expected):
    assert auth_model.resolve_auth_mode(doc) == expected


def test_empty_object_loads_as_chatgpt():
    auth = AuthFile(b'{}')
    assert auth.mode == 'chatgpt'
    assert not auth.has_refresh_token
    assert [p['code'] for p in auth.credential_problems()] == ['refresh_token_missing']


@pytest.mark.parametrize('value', ['api_key', 'ApiKey', 'chatgpt ', 'bogus', '', 1, True, ['chatgpt']])
def test_unknown_auth_mode_is_invalid(value):
    with pytest.raises(AuthFileError) as info:
        auth_model.resolve_auth_mode({'auth_mode': value})
    assert info.value.code == 'auth_mode_invalid'
    with pytest.raises(AuthFileError) as info:
        AuthFile(encode({'auth_mode': value}))
    assert info.value.code == 'auth_mode_invalid'
    assert info.value.as_problem()['code'] == 'auth_mode_invalid'


# -- JWT ------------------------------------------------------------------------------------------

VALID_JWT = '.'.join([b64({'alg': 'none'}), b64({'sub': 'x', 'n': 1}), fc.b64url(b'sig')])


@pytest.mark.parametrize('token', [
    'a.b',                                                        # 2 parts
    '%s.%s' % (b64({}), b64({'sub': 'x'})),                       # 2 parts, valid JSON
    VALID_JWT + '.extra',                                         # 4 parts
    '.%s.sig' % b64({'a': 1}),                                    # empty header
    'hdr..sig',                                                   # empty payload
    'hdr.%s.' % b64({'a': 1}),                                    # empty signature
    'hdr.%s=.sig' % b64({'a': 1}),                                # padding '='
    'hdr.%s.sig' % base64.urlsafe_b64encode(b'{"a":10}').decode(),  # padded payload
    'hdr.%s.sig' % base64.b64encode(b'{"a": "~~~"}').decode(),     # standard alphabet '+'
    'hdr.%s.sig' % base64.b64encode(b'{"a": "???>"}').decode().rstrip('='),  # standard alphabet '/'
    'hdr.a!b.sig',                                                # non-base64 character
    'hdr.a b.sig',
    'hdr.A.sig',                                                  # impossible base64 length
    'hdr.%s.sig' % fc.b64url(b'not json'),                        # payload not JSON
    'hdr.%s.sig' % fc.b64url(b'\xff\xfe\xfd'),                    # payload not UTF-8
    'hdr.%s.sig' % b64([1, 2, 3]),                                # JSON array
    'hdr.%s.sig' % b64('string'),                                 # JSON string
    'hdr.%s.sig' % b64(42),                                       # JSON number
    '',
    None,
    42,
    b'hdr.e30.sig',
])
def test_decode_jwt_claims_refuses(token):
    assert auth_model.decode_jwt_claims(token) is None


def test_decode_jwt_claims_valid():
    assert auth_model.decode_jwt_claims(VALID_JWT) == {'sub': 'x', 'n': 1}
    assert auth_model.decode_jwt_claims('h.%s.s' % b64({})) == {}


def test_decode_jwt_claims_of_factory_tokens():
    doc, _secrets = fc.chatgpt_seed(account_id='acct-jwt')
    claims = auth_model.decode_jwt_claims(doc['tokens']['id_token'])
    assert claims[fc.AUTH_CLAIMS]['chatgpt_account_id'] == 'acct-jwt'


def test_decode_jwt_claims_every_payload_length():
    # Unpadded base64url of every length mod 4 that exists (0, 2, 3) must decode.
    for size in range(1, 12):
        payload = {'k': 'x' * size}
        assert auth_model.decode_jwt_claims('h.%s.s' % b64(payload)) == payload


# -- RFC 3339 -------------------------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('2026-11-21T10:22:00Z', datetime.datetime(2026, 11, 21, 10, 22, 0, tzinfo=UTC)),
    ('2026-11-21t10:22:00z', datetime.datetime(2026, 11, 21, 10, 22, 0, tzinfo=UTC)),
    ('2026-11-21T10:22:00+02:00', datetime.datetime(2026, 11, 21, 8, 22, 0, tzinfo=UTC)),
    ('2026-11-21T10:22:00-05:30', datetime.datetime(2026, 11, 21, 15, 52, 0, tzinfo=UTC)),
    ('2026-11-21T10:22:00.283816069Z', datetime.datetime(2026, 11, 21, 10, 22, 0, 283816, tzinfo=UTC)),
    ('2026-11-21T10:22:00.5Z', datetime.datetime(2026, 11, 21, 10, 22, 0, 500000, tzinfo=UTC)),
    ('2026-11-21 10:22:00Z', datetime.datetime(2026, 11, 21, 10, 22, 0, tzinfo=UTC)),
    ('2024-02-29T00:00:00Z', datetime.datetime(2024, 2, 29, tzinfo=UTC)),
])
def test_parse_rfc3339_accepts(text, expected):
    parsed = auth_model.parse_rfc3339(text)
    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize('text', [
    '2025-01-01 10:00:00',          # no offset: Codex fails to load this
    '2025-01-01T10:00:00',
    '2025-02-30T10:00:00Z',         # invalid date
    '2025-13-01T10:00:00Z',
    '2025-01-01T25:00:00Z',
    '2025-01-01',
    '2025-01-01T10:00Z',
    '2025-01-01T10:00:00+0200',
    '2025-01-01T10:00:00.Z',
    ' 2025-01-01T10:00:00Z',
    '2025-01-01T10:00:00Z ',
    '',
    None,
    1700000000,
])
def test_parse_rfc3339_rejects(text):
    assert auth_model.parse_rfc3339(text) is None


def test_last_refresh_without_offset_is_invalid_file():
    doc, _secrets = fc.chatgpt_seed()
    doc['last_refresh'] = '2025-01-01 10:00:00'
    with pytest.raises(AuthFileError) as info:
        AuthFile(encode(doc))
    assert info.value.code == 'last_refresh_invalid'


# -- load_document --------------------------------------------------------------------------------

SECRET_WORDS = ['rt-FAKE-loaddoc-secret', 'sk-proj-FAKE-loaddoc-secret']


@pytest.mark.parametrize('data, code', [
    (b'', 'auth_not_json'),
    (b'   \n\t ', 'auth_not_json'),
    (b'\xff\xfe{"OPENAI_API_KEY": "sk-proj-FAKE-loaddoc-secret"}', 'auth_not_json'),
    (b'{"tokens": {"refresh_token": "rt-FAKE-loaddoc-secret"', 'auth_not_json'),
    (b'{"OPENAI_API_KEY": sk-proj-FAKE-loaddoc-secret}', 'auth_not_json'),
    (b'rt-FAKE-loaddoc-secret', 'auth_not_json'),
    (b'["rt-FAKE-loaddoc-secret"]', 'auth_not_json'),
    (b'"sk-proj-FAKE-loaddoc-secret"', 'auth_not_json'),
    (b'null', 'auth_not_json'),
    (b'{"k": "rt-FAKE-loaddoc-secret"}' + b' ' * auth_model.MAX_AUTH_BYTES, 'auth_too_large'),
])
def test_load_document_errors_never_quote_content(data, code):
    with pytest.raises(AuthFileError) as info:
        auth_model.load_document(data)
    assert info.value.code == code
    assert_no_secret(str(info.value), SECRET_WORDS)
    assert_no_secret(json.dumps(info.value.as_problem()), SECRET_WORDS)


def test_load_document_limit_is_inclusive():
    body = b'{}'
    data = body + b' ' * (auth_model.MAX_AUTH_BYTES - len(body))
    assert auth_model.load_document(data) == {}


@pytest.mark.parametrize('doc, code', [
    ({'OPENAI_API_KEY': 5}, 'auth_invalid'),
    ({'personal_access_token': ['at-FAKE-secret']}, 'auth_invalid'),
    ({'tokens': 'rt-FAKE-secret'}, 'auth_invalid'),
    ({'tokens': {'access_token': 5, 'refresh_token': 'rt-FAKE-secret'}}, 'auth_invalid'),
    ({'tokens': {'refresh_token': 'rt-FAKE-secret', 'id_token': VALID_JWT}}, 'auth_invalid'),
    ({'tokens': {'access_token': 'x', 'refresh_token': 'rt-FAKE-secret', 'id_token': 'rt-FAKE-secret'}},
     'id_token_invalid'),
    ({'tokens': {'access_token': 'x', 'refresh_token': 'rt-FAKE-secret'}}, 'id_token_invalid'),
    ({'last_refresh': 'rt-FAKE-secret'}, 'last_refresh_invalid'),
])
def test_shape_errors_never_quote_content(doc, code):
    with pytest.raises(AuthFileError) as info:
        AuthFile(encode(doc))
    assert info.value.code == code
    assert 'rt-FAKE-secret' not in info.value.message
    assert 'at-FAKE-secret' not in info.value.message


# -- facts ----------------------------------------------------------------------------------------

def test_chatgpt_facts():
    doc, _secrets = fc.chatgpt_seed(account_id='acct-1', plan='enterprise')
    auth = AuthFile(encode(doc))
    assert auth.mode == 'chatgpt'
    assert auth.has_refresh_token and auth.has_id_token and auth.has_access_token
    assert not auth.has_api_key
    assert auth.account_id == 'acct-1'
    assert auth.plan_type == 'enterprise'
    assert auth.user_id == 'user-fake-0001'
    expected_exp = fc.now() + datetime.timedelta(days=10)
    assert abs((auth.access_token_expires_at - expected_exp).total_seconds()) < 60
    assert auth.credential_problems(['chatgpt']) == []


def test_account_id_falls_back_to_id_token_claims():
    doc, _secrets = fc.chatgpt_seed(account_id='acct-from-claims')
    doc['tokens']['account_id'] = None
    assert AuthFile(encode(doc)).account_id == 'acct-from-claims'
    del doc['tokens']['account_id']
    assert AuthFile(encode(doc)).account_id == 'acct-from-claims'


def test_account_id_from_tokens_wins_over_claims():
    doc, _secrets = fc.chatgpt_seed(account_id='acct-claims')
    doc['tokens']['account_id'] = 'acct-tokens'
    assert AuthFile(encode(doc)).account_id == 'acct-tokens'


def test_facts_without_claims():
    id_token = 'h.%s.s' % b64({'email': 'x@example.invalid'})
    doc = {'tokens': {'id_token': id_token, 'access_token': 'opaque-FAKE', 'refresh_token': 'rt-FAKE'}}
    auth = AuthFile(encode(doc))
    assert auth.account_id is None
    assert auth.plan_type is None
    assert auth.user_id is None
    assert auth.access_token_expires_at is None  # opaque access token: no exp
    assert auth.has_access_token


@pytest.mark.parametrize('exp', ['soon', True, None, 1e30])
def test_unreadable_exp_gives_no_expiry(exp):
    access = 'h.%s.s' % b64({'exp': exp})
    doc = {'tokens': {'id_token': VALID_JWT, 'access_token': access, 'refresh_token': 'rt-FAKE'}}
    assert AuthFile(encode(doc)).access_token_expires_at is None


def test_apikey_facts():
    doc, _secrets = fc.apikey_seed()
    auth = AuthFile(encode(doc))
    assert auth.mode == 'apikey'
    assert auth.has_api_key
    assert not auth.has_refresh_token and not auth.has_id_token and not auth.has_access_token
    assert auth.refresh_token_fingerprint() is None
    assert auth.credential_problems(['apikey']) == []


def test_personal_access_token_facts():
    token = fc.personal_access_token()
    auth = AuthFile(encode({'OPENAI_API_KEY': None, 'personal_access_token': token}))
    assert auth.mode == 'personalAccessToken'
    assert auth.has_access_token
    assert auth.stored_access_token_matches(token)
    assert not auth.stored_access_token_matches(token + 'x')
    assert auth.credential_problems(['personalAccessToken'], require_refresh_token=True) == []


def test_agent_identity_expiry_from_jwt():
    exp = int((fc.now() + datetime.timedelta(hours=2)).timestamp())
    jwt = fc.make_jwt({'exp': exp})
    auth = AuthFile(encode({'auth_mode': 'agentIdentity', 'OPENAI_API_KEY': None, 'agent_identity': jwt}))
    assert auth.access_token_expires_at == datetime.datetime.fromtimestamp(exp, UTC)
    assert auth.stored_access_token_matches(jwt)


# -- summary --------------------------------------------------------------------------------------

def summary_at(doc, now, **kwargs):
    return AuthFile(encode(doc)).summary(now=now, **kwargs)


def test_summary_fresh_has_no_warnings():
    doc, _secrets = fc.chatgpt_seed()
    facts, warnings = summary_at(doc, fc.now())
    assert warnings == []
    assert facts['stale'] is False
    assert 0 <= facts['age_days'] < 0.01
    assert re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$', facts['last_refresh'])
    assert set(facts) == set(auth_model.EMPTY_FACTS)


def test_summary_stale_when_older_than_max_age():
    moment = fc.now()
    doc, _secrets = fc.chatgpt_seed(last_refresh=moment - datetime.timedelta(days=9))
    facts, warnings = summary_at(doc, moment, max_age_days=8)
    assert facts['stale'] is True
    assert facts['age_days'] == pytest.approx(9, abs=0.01)
    assert [w['code'] for w in warnings] == ['stale']
    # Just under the limit: not stale.
    facts, warnings = summary_at(doc, moment, max_age_days=9.5)
    assert facts['stale'] is False and warnings == []
    # No limit.
    facts, warnings = summary_at(doc, moment, max_age_days=None)
    assert facts['stale'] is False and warnings == []


def test_summary_expired_access_token():
    moment = fc.now()
    doc, _secrets = fc.chatgpt_seed(access_expires_in=datetime.timedelta(minutes=-1))
    facts, warnings = summary_at(doc, moment)
    assert facts['stale'] is True
    assert [w['code'] for w in warnings] == ['access_token_expired']
    assert facts['access_token_expires_at'] is not None


def test_summary_stale_and_expired_together():
    moment = fc.now()
    doc, _secrets = fc.chatgpt_seed(last_refresh=moment - datetime.timedelta(days=30),
                                    access_expires_in=datetime.timedelta(days=-1))
    _facts, warnings = summary_at(doc, moment)
    assert sorted(w['code'] for w in warnings) == ['access_token_expired', 'stale']


def test_apikey_is_never_stale():
    doc, _secrets = fc.apikey_seed()
    doc['last_refresh'] = fc.rfc3339(fc.now() - datetime.timedelta(days=400))
    facts, warnings = summary_at(doc, fc.now(), max_age_days=1)
    assert facts['stale'] is False
    assert warnings == []
    assert facts['age_days'] > 399


def test_summary_of_empty_document():
    facts, warnings = summary_at({}, fc.now())
    assert facts['auth_mode'] == 'chatgpt'
    assert facts['last_refresh'] is None and facts['age_days'] is None
    assert facts['refresh_token_fingerprint'] is None
    assert warnings == []


@pytest.mark.parametrize('maker', ['chatgpt', 'apikey', 'pat', 'agent'])
def test_summary_never_contains_a_secret(maker):
    if maker == 'chatgpt':
        doc, secrets = fc.chatgpt_seed(access_expires_in=datetime.timedelta(days=-1),
                                       last_refresh=fc.now() - datetime.timedelta(days=20))
    elif maker == 'apikey':
        doc, secrets = fc.apikey_seed()
    elif maker == 'pat':
        token = fc.personal_access_token()
        doc, secrets = {'OPENAI_API_KEY': None, 'personal_access_token': token}, [token]
    else:
        jwt = fc.make_jwt({'exp': 1, 'canary': 'FAKE-AGENT'})
        doc, secrets = {'auth_mode': 'agentIdentity', 'agent_identity': jwt}, [jwt]
    auth = AuthFile(encode(doc))
    facts, warnings = auth.summary(salt='s')
    dumped = json.dumps({'facts': facts, 'warnings': warnings, 'problems': auth.credential_problems(['chatgpt']),
                         'identity': auth.credential_identity()})
    assert_no_secret(dumped, secrets)
    # Not even a JWT segment (the signature part carries the FAKESIG canary).
    for secret in secrets:
        for part in secret.split('.'):
            if len(part) > 12:
                assert part not in dumped
    assert 'FAKE' not in dumped


# -- fingerprints ---------------------------------------------------------------------------------

def test_fingerprint_properties():
    doc, secrets = fc.chatgpt_seed()
    auth = AuthFile(encode(doc))
    first = auth.refresh_token_fingerprint()
    assert re.match(r'^[0-9a-f]{16}$', first)
    assert auth.refresh_token_fingerprint() == first
    assert AuthFile(encode(doc)).refresh_token_fingerprint() == first
    assert auth.refresh_token_fingerprint(salt='fleet-a') != first
    # Salted, it is still the digest of the refresh token itself.
    assert auth.refresh_token_fingerprint(salt='fleet-a') == auth_model.fingerprint(secrets[2], 'fleet-a')
    assert auth.refresh_token_fingerprint(salt='fleet-a') != auth.refresh_token_fingerprint(salt='fleet-b')
    assert first not in secrets[2]
    other = fc.chatgpt_seed()[0]
    assert AuthFile(encode(other)).refresh_token_fingerprint() != first
    assert auth_model.fingerprint(secrets[2]) == first


@pytest.mark.parametrize('refresh', [None, ''])
def test_fingerprint_none_without_refresh_token(refresh):
    doc, _secrets = fc.chatgpt_seed()
    doc['tokens']['refresh_token'] = refresh
    if refresh is None:
        del doc['tokens']['refresh_token']
    assert AuthFile(encode(doc)).refresh_token_fingerprint() is None
    assert auth_model.fingerprint(refresh) is None


# -- credential problems --------------------------------------------------------------------------

def codes(auth, *args, **kwargs):
    return [p['code'] for p in auth.credential_problems(*args, **kwargs)]


def test_auth_mode_unexpected():
    doc, secrets = fc.apikey_seed()
    auth = AuthFile(encode(doc))
    assert codes(auth, ['chatgpt']) == ['auth_mode_unexpected']
    assert codes(auth, ['chatgpt', 'apikey']) == []
    assert codes(auth, None) == []
    assert_no_secret(json.dumps(auth.credential_problems(['chatgpt'])), secrets)


@pytest.mark.parametrize('refresh', ['', None, 'absent'])
def test_refresh_token_missing(refresh):
    doc, _secrets = fc.chatgpt_seed()
    if refresh == 'absent':
        del doc['tokens']['refresh_token']
    else:
        doc['tokens']['refresh_token'] = refresh
    if refresh is None:
        with pytest.raises(AuthFileError):  # null is not a string: Codex cannot load it
            AuthFile(encode(doc))
        return
    auth = AuthFile(encode(doc))
    assert codes(auth, ['chatgpt']) == ['refresh_token_missing']
    assert codes(auth, ['chatgpt'], require_refresh_token=False) == []


def test_chatgpt_auth_tokens_mode_needs_refresh_token_too():
    doc, _secrets = fc.chatgpt_seed()
    doc['auth_mode'] = 'chatgptAuthTokens'
    doc['tokens']['refresh_token'] = ''
    assert codes(AuthFile(encode(doc)), None) == ['refresh_token_missing']


@pytest.mark.parametrize('doc, mode', [
    ({'auth_mode': 'apikey', 'OPENAI_API_KEY': None}, 'apikey'),
    ({'auth_mode': 'apikey', 'OPENAI_API_KEY': ''}, 'apikey'),
    ({'auth_mode': 'apikey'}, 'apikey'),
    ({'auth_mode': 'personalAccessToken'}, 'personalAccessToken'),
    ({'personal_access_token': ''}, 'personalAccessToken'),
    ({'auth_mode': 'agentIdentity', 'agent_identity': None}, 'agentIdentity'),
    ({'auth_mode': 'agentIdentity', 'agent_identity': ''}, 'agentIdentity'),
])
def test_credential_missing(doc, mode):
    auth = AuthFile(encode(doc))
    assert auth.mode == mode
    assert codes(auth, None) == ['credential_missing']
    assert codes(auth, [mode]) == ['credential_missing']
    assert codes(auth, ['chatgpt']) == ['auth_mode_unexpected', 'credential_missing']


# -- credential identity --------------------------------------------------------------------------

def test_identity_survives_token_rotation():
    seed, _secrets = fc.chatgpt_seed(tag='one', account_id='acct-a')
    refreshed = fc.chatgpt_seed(tag='two', account_id='acct-a',
                                last_refresh=fc.now() + datetime.timedelta(days=3))[0]
    assert seed['tokens']['refresh_token'] != refreshed['tokens']['refresh_token']
    assert seed['tokens']['access_token'] != refreshed['tokens']['access_token']
    assert AuthFile(encode(seed)).credential_identity() == AuthFile(encode(refreshed)).credential_identity()


def test_identity_changes_with_account_or_user():
    base = fc.chatgpt_seed(account_id='acct-a', user_id='user-a')[0]
    other_account = fc.chatgpt_seed(account_id='acct-b', user_id='user-a')[0]
    other_user = fc.chatgpt_seed(account_id='acct-a', user_id='user-b')[0]
    ids = {AuthFile(encode(d)).credential_identity() for d in (base, other_account, other_user)}
    assert len(ids) == 3


def test_identity_of_api_keys():
    one = fc.apikey_seed()[0]
    two = fc.apikey_seed()[0]
    ident = AuthFile(encode(one)).credential_identity()
    assert ident == AuthFile(encode(dict(one))).credential_identity()
    assert ident != AuthFile(encode(two)).credential_identity()
    assert re.match(r'^[0-9a-f]{64}$', ident)
    assert one['OPENAI_API_KEY'] not in ident


def test_identity_differs_between_modes():
    token = fc.personal_access_token()
    pat = AuthFile(encode({'personal_access_token': token}))
    key = AuthFile(encode({'OPENAI_API_KEY': token}))
    assert pat.credential_identity() != key.credential_identity()


def test_refresh_token_digest_is_equal_for_copies_of_one_token_and_shows_nothing():
    doc, secrets = fc.chatgpt_seed(tag='digest')
    later = dict(doc, last_refresh=fc.rfc3339(fc.now() + datetime.timedelta(minutes=5)))
    other, _other_secrets = fc.chatgpt_seed(tag='digest-other')
    digest = AuthFile(encode(doc)).refresh_token_digest()
    assert digest == AuthFile(encode(later)).refresh_token_digest()
    assert digest != AuthFile(encode(other)).refresh_token_digest()
    assert re.fullmatch('[0-9a-f]{64}', digest)
    assert_no_secret(digest, secrets)
    key_doc, _key = fc.apikey_seed(tag='digest')
    assert AuthFile(encode(key_doc)).refresh_token_digest() is None
