# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""auth.json parse limits: nesting and number length measured before json.loads, in the file and
in the JWT payloads it holds; no RecursionError ever escapes, and claims of the wrong type never
reach a summary."""

import functools
import json
import time

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import health
from ansible_collections.codexops.runner.plugins.module_utils.auth_model import AuthFile, AuthFileError
from support import fake_credentials as fc

DEPTH = auth_model.MAX_JSON_DEPTH
DIGITS = auth_model.MAX_JSON_NUMBER_DIGITS
MiB = 1024 * 1024
# Seconds. Loose on purpose: these shapes took minutes to hours before the limits (quadratic in a
# dotted key), and a busy test machine must not fail them; tests/hardening prints the real figures.
SLOW = 5.0


def nested(depth, leaf='1'):
    return '[' * depth + leaf + ']' * depth


def jwt(payload_text):
    return '%s.%s.%s' % (fc.b64url(b'{"alg":"none"}'), fc.b64url(payload_text.encode()), fc.b64url(b'sig'))


def chatgpt(**tokens):
    doc, _secrets = fc.chatgpt_seed(account_id='acct-bounds')
    doc['tokens'].update(tokens)
    return doc


def document(field, value_text):
    """An auth.json whose `field` (a.b for tokens.b) holds value_text verbatim."""
    doc = chatgpt()
    marker = '"@@value@@"'
    if field.startswith('tokens.'):
        doc['tokens'][field.split('.', 1)[1]] = '@@value@@'
    else:
        doc[field] = '@@value@@'
    return json.dumps(doc).replace(marker, value_text).encode()


FIELDS = ['OPENAI_API_KEY', 'last_refresh', 'auth_mode', 'personal_access_token', 'agent_identity', 'tokens',
          'tokens.account_id', 'tokens.refresh_token', 'tokens.id_token', 'tokens.access_token', 'unknown_field',
          'tokens.unknown_field']


# -- nesting --------------------------------------------------------------------------------------

@pytest.mark.parametrize('field', FIELDS)
@pytest.mark.parametrize('depth', [DEPTH, DEPTH + 1, 450, 500, 990, 5000, 200000])
def test_nesting_anywhere_ends_in_a_problem_code_never_an_exception(field, depth):
    data = document(field, nested(depth - 1))  # the file's own object is one level
    try:
        AuthFile(data)
    except AuthFileError as exc:
        assert exc.code in health.PROBLEM_CODES
        if depth > DEPTH:
            assert exc.code == 'auth_not_json'
            assert 'nested deeper than the limit of %d' % DEPTH in exc.message
    else:
        assert depth <= DEPTH and field.endswith('unknown_field')  # only unknown fields may hold a list


@pytest.mark.parametrize('depth', [DEPTH, DEPTH + 1, 5000])
def test_nesting_at_the_top(depth):
    data = ('{"a":' * depth + '1' + '}' * depth).encode()
    if depth <= DEPTH:
        assert auth_model.load_document(data)
    else:
        with pytest.raises(AuthFileError) as info:
            auth_model.load_document(data)
        assert info.value.code == 'auth_not_json'


@pytest.mark.parametrize('text', [
    '{"x": "%s"}' % ('[' * 500),
    '{"x": "\\"%s"}' % ('{' * 500),
    '{"x": "\\\\", "y": "%s"}' % (']' * 500),
    '{"x": ["%s", "]]]]"]}' % ('[[' * 500),
])
def test_brackets_inside_strings_are_text(text):
    assert auth_model.json_bounds_problem(text) is None
    assert auth_model.load_document(text.encode())


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.one_of(st.text(), st.integers(), st.booleans(), st.none(),
                              st.floats(allow_nan=False, allow_infinity=False)),
                    lambda children: st.one_of(st.lists(children, max_size=3),
                                               st.dictionaries(st.text(max_size=5), children, max_size=3)),
                    max_leaves=15))
def test_measured_depth_is_the_real_depth(value):
    """Whatever strings hold (quotes, backslashes, brackets), the limit sees the document's own depth."""
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert _measured_depth(auth_model._JSON_STRING.sub('"', text)) == _depth(value)


def _depth(value):
    if isinstance(value, (list, dict)):
        items = value.values() if isinstance(value, dict) else value
        return 1 + max([_depth(item) for item in items] or [0])
    return 0


def _measured_depth(code):
    depth = deepest = 0
    for char in code:
        depth += {'[': 1, '{': 1, ']': -1, '}': -1}.get(char, 0)
        deepest = max(deepest, depth)
    return deepest


# -- JWT payloads -----------------------------------------------------------------------------------

@pytest.mark.parametrize('depth', [DEPTH, DEPTH + 1, 450, 990, 50000])
def test_nested_claims(depth):
    payload = '{"a":%s}' % nested(depth - 1)
    claims = auth_model.decode_jwt_claims(jwt(payload))
    assert (claims is not None) == (depth <= DEPTH)
    # In the id_token Codex needs them: a file that Codex may not read; in the access token they
    # only give the expiry, so the token counts as opaque.
    if depth > DEPTH:
        with pytest.raises(AuthFileError) as info:
            AuthFile(json.dumps(chatgpt(id_token=jwt(payload))).encode())
        assert info.value.code == 'id_token_invalid'
        for doc in (chatgpt(access_token=jwt(payload)),
                    {'auth_mode': 'agentIdentity', 'agent_identity': jwt(payload)}):
            assert AuthFile(json.dumps(doc).encode()).access_token_expires_at is None


def test_long_numbers_are_refused_before_json_loads():
    assert auth_model.load_document(('{"x": %s}' % ('9' * DIGITS)).encode())
    for text in ('{"x": %s}' % ('9' * (DIGITS + 1)), '{"x": 1.%s}' % ('0' * (DIGITS + 1)),
                 '{"x": [%s]}' % ','.join(['9' * DIGITS] * 2) + '9'):
        with pytest.raises(AuthFileError) as info:
            auth_model.load_document(text.encode())
        assert info.value.code == 'auth_not_json'
    with pytest.raises(AuthFileError):
        auth_model.load_document(('{"x": %s}' % ('9' * (DIGITS + 1))).encode())
    assert auth_model.decode_jwt_claims(jwt('{"exp": %s}' % ('9' * (DIGITS + 1)))) is None
    # Digits inside strings are text.
    assert auth_model.load_document(('{"x": "%s"}' % ('9' * 100000)).encode())


def test_limit_messages_never_quote_the_document():
    for text in ('{"k": "rt-FAKE-secret", "x": %s}' % nested(500), '{"k": "rt-FAKE-secret", "x": %s}' % ('9' * 5000)):
        with pytest.raises(AuthFileError) as info:
            auth_model.load_document(text.encode())
        assert 'rt-FAKE-secret' not in info.value.message and '[[' not in info.value.message


def test_surrogate_walk_needs_no_recursion():
    deep = []
    for _level in range(100000):
        deep = [deep]
    assert auth_model.has_lone_surrogate(deep) is False
    deep = ['\ud800']
    for _level in range(100000):
        deep = {'k': deep}
    assert auth_model.has_lone_surrogate(deep) is True
    assert auth_model.has_lone_surrogate({'\udfff': 1}) is True


# -- claims of the wrong type -------------------------------------------------------------------------

@pytest.mark.parametrize('value', [['acct-x'], {'a': 1}, 5, True, None, ''])
def test_claims_that_are_not_strings_are_absent(value):
    auth_claims = {'chatgpt_account_id': value, 'chatgpt_user_id': value, 'user_id': value, 'chatgpt_plan_type': value}
    doc = chatgpt(id_token=fc.make_jwt({fc.AUTH_CLAIMS: auth_claims}), account_id=None)
    auth = AuthFile(json.dumps(doc).encode())
    assert auth.account_id is None or auth.account_id == ''
    assert auth.user_id in (None, '') and auth.plan_type in (None, '')
    facts, _warnings = auth.summary()
    assert facts['account_id'] in (None, '') and facts['plan_type'] in (None, '')
    assert isinstance(auth.credential_identity(), str)  # joined the parts: a list used to raise TypeError


# -- cost -------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def one_mebibyte_shapes():
    size = auth_model.MAX_AUTH_BYTES

    def pad(text):
        return (text[:-1] + ',"zz":"' + 'p' * (size - len(text) - 10) + '"}').encode()

    half = (size - 100) // 2
    wide_claims = '{"a":[' + ','.join(['{}'] * ((size * 3 // 4 - 400) // 3)) + ']}'
    return {
        'deep at the top': ('[' * half + ']' * half).encode(),
        'deep unknown field': ('{"x":' + '[' * (half - 10) + ']' * (half - 10) + '}').encode(),
        'deep known field, padded': pad('{"last_refresh":%s}' % nested(500)),
        'deep id_token claims, padded': pad(json.dumps({'tokens': {
            'id_token': jwt('{"a":%s}' % nested(500)), 'access_token': 'x', 'refresh_token': 'r'}})),
        'unclosed brackets': ('{"x":' + '[' * (size - 10)).encode(),
        'wide known field': ('{"last_refresh":[' + ','.join(['[]'] * ((size - 100) // 3)) + ']}').encode(),
        'many objects': ('{"zz":[' + ','.join(['{}'] * ((size - 100) // 3)) + ']}').encode(),
        'wide id_token claims': json.dumps({'tokens': {'id_token': jwt(wide_claims), 'access_token': 'x',
                                                       'refresh_token': 'r'}}).encode(),
        'escapes': ('{"zz":"' + '\\"' * ((size - 20) // 2) + '"}').encode(),
        'empty strings': ('{"zz":[' + ','.join(['""'] * ((size - 100) // 3)) + ']}').encode(),
        'long number': ('{"zz":' + '9' * (size - 20) + '}').encode(),
    }


@pytest.mark.parametrize('name', sorted(one_mebibyte_shapes()))
def test_one_mebibyte_shapes_are_read_quickly(name):
    data = one_mebibyte_shapes()[name]
    assert len(data) <= auth_model.MAX_AUTH_BYTES
    started = time.perf_counter()
    try:
        AuthFile(data)
    except AuthFileError as exc:
        assert exc.code in health.PROBLEM_CODES
    elapsed = time.perf_counter() - started
    assert elapsed < SLOW, '%s took %.2f s' % (name, elapsed)
