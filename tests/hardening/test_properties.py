"""Property-based tests (hypothesis) of the auth.json model and the config.toml editor.

auth.json model:
- a summary (and every refusal message) never contains a secret of the file, whatever it holds;
- the resolved auth mode, and whether the file loads at all, match a reference implementation of
  Codex's rules written from codex-facts.md (and that reference is checked against the real
  Codex CLI on a table of documents);
- refresh-token fingerprints are stable: formatting, key order and every other field leave them
  unchanged, the salt changes them, and they never hold the token;
- any bytes, and any mutation of a valid file, end in the model's documented refusal
  (AuthFileError) or a summary, never another exception, in-process through health.evaluate.

TOML editor (generated documents: comments, blank lines, quoted and dotted keys, inline comments,
multi-line strings and arrays, literal strings, dates, tables and arrays of tables):
- its output always parses, holds exactly the values asked for, and every other key of the
  document (top level or in any table) keeps its value;
- every line outside the edited statements is kept byte for byte, in order;
- a second application changes nothing;
- without tomllib (Python 3.9/3.10 runners) the edit is the same text.
"""

import copy
import datetime
import json
import os
import re
import subprocess
import tomllib

import pytest
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from hardening_support import codex_binary
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import health
from ansible_collections.codexops.runner.plugins.module_utils import toml_keys
from support import fake_credentials

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies: auth.json ------------------------------------------------------------------------

SECRET_BODY = st.text(alphabet='ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_', min_size=10,
                      max_size=40)
secret = st.builds(lambda kind, body: 'SECRET%s%s' % (kind, body), st.sampled_from(['rt', 'at', 'ak', 'pat', 'ai']),
                   SECRET_BODY)
# Text as JSON can carry it: any code point, lone surrogates included (written as \\udXXX escapes).
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=()), max_size=12)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 6, 10 ** 6), st.floats(allow_nan=False,
                                                                                            allow_infinity=False),
                        ANY_TEXT)
json_value = st.recursive(json_scalar, lambda children: st.one_of(st.lists(children, max_size=3),
                                                                  st.dictionaries(st.text(max_size=6), children,
                                                                                  max_size=3)), max_leaves=8)
MODES = st.one_of(st.sampled_from(auth_model.KNOWN_AUTH_MODES), st.sampled_from(['api_key', 'ChatGPT', '', 'bogus']),
                  st.none(), st.integers(0, 3))


def jwt_with(claims):
    return fake_credentials.make_jwt(claims)


@st.composite
def timestamps(draw):
    """RFC 3339-looking text, right and wrong: any digits in every field, any offset."""
    two = st.integers(0, 99).map(lambda n: '%02d' % n)
    date = '%04d-%s-%s' % (draw(st.integers(0, 9999)), draw(two), draw(two))
    clock = '%s:%s:%s' % (draw(two), draw(two), draw(two))
    fraction = draw(st.sampled_from(['', '.5', '.283816069', '.1234567890123']))
    numeric = st.builds(lambda sign, h, m: '%s%s:%s' % (sign, h, m), st.sampled_from('+-'), two, two)
    offset = draw(st.one_of(st.sampled_from(['Z', 'z', '']), numeric))
    return date + draw(st.sampled_from(['T', 't', ' ', '_'])) + clock + fraction + offset


@st.composite
def auth_documents(draw):
    """A document Codex might meet, with every secret recorded."""
    secrets_in = []
    doc = {}
    if draw(st.booleans()):
        doc['auth_mode'] = draw(MODES)
    for key in ('OPENAI_API_KEY', 'personal_access_token', 'agent_identity'):
        choice = draw(st.sampled_from(['absent', 'null', 'secret', 'empty']))
        if choice == 'null':
            doc[key] = None
        elif choice == 'empty':
            doc[key] = ''
        elif choice == 'secret':
            value = draw(secret)
            if key == 'agent_identity' and draw(st.booleans()):
                value = jwt_with({'exp': draw(st.integers(0, 2 ** 33)), 'canary': value})
            doc[key] = value
            secrets_in.append(value)
    if draw(st.booleans()):
        refresh = draw(st.one_of(secret, st.just('')))
        access_canary = draw(secret)
        id_canary = draw(secret)
        access = draw(st.one_of(
            st.builds(lambda exp: jwt_with({'exp': exp, 'canary': access_canary}),
                      st.one_of(st.integers(-2 ** 40, 2 ** 40), st.floats(allow_nan=False), st.text(max_size=4))),
            st.just(access_canary)))
        id_token = jwt_with({'email': 'ci@example.invalid', 'canary': id_canary, fake_credentials.AUTH_CLAIMS: {
            'chatgpt_account_id': draw(st.sampled_from(['acct-1', 'acct-2'])), 'chatgpt_plan_type': 'plus'}})
        tokens = {'id_token': id_token, 'access_token': access, 'refresh_token': refresh,
                  'account_id': draw(st.one_of(st.none(), st.just('acct-1')))}
        for key in draw(st.lists(st.sampled_from(['refresh_token', 'account_id']), max_size=1)):
            del tokens[key]
        doc['tokens'] = tokens
        secrets_in += [value for value in (refresh, access, id_token) if value]
        secrets_in += [access_canary, id_canary]
        secrets_in += id_token.split('.')[1:]
        if '.' in access:
            secrets_in += access.split('.')[1:]
    if draw(st.booleans()):
        doc['last_refresh'] = draw(timestamps())
    for _unused in range(draw(st.integers(0, 2))):
        doc['extra_%d' % _unused] = draw(json_value)
    return doc, [s for s in secrets_in if s]


def contains_secret(text, secrets_in):
    return [s for s in secrets_in if len(s) >= 8 and s in text]


# -- the auth.json model -------------------------------------------------------------------------

@PROPERTY
@given(auth_documents(), st.one_of(st.none(), secret), st.booleans())
def test_summary_and_refusals_never_contain_a_secret(case, salt, indent):
    doc, secrets_in = case
    data = json.dumps(doc, indent=2 if indent else None).encode()
    if salt:
        secrets_in = secrets_in + [salt]
    try:
        parsed = auth_model.AuthFile(data)
    except auth_model.AuthFileError as exc:
        assert not contains_secret(exc.message, secrets_in)
        return
    facts, warnings = parsed.summary(salt=salt)
    problems = parsed.credential_problems(list(auth_model.KNOWN_AUTH_MODES), True)
    text = json.dumps([facts, warnings, problems])
    assert not contains_secret(text, secrets_in), text


@PROPERTY
@given(auth_documents(), st.one_of(st.none(), secret))
def test_health_summary_of_a_real_home_never_contains_a_secret(tmp_path_factory, case, salt):
    doc, secrets_in = case
    home = tmp_path_factory.mktemp('home')
    os.chmod(str(home), 0o700)
    path = home / 'auth.json'
    path.write_text(json.dumps(doc))
    os.chmod(str(path), 0o644)  # a problem of its own, reported with the rest
    (home / 'config.toml').write_text('cli_auth_credentials_store = "file"\nforced_login_method = "api"\n')
    result = health.evaluate(health.snapshot_path(str(home)), salt=salt)
    assert not contains_secret(json.dumps(result), secrets_in + ([salt] if salt else []))


INVALID = 'INVALID'


def reference_mode(doc):
    """Codex's rules (codex-facts.md), written independently of the model. Only the fields that
    decide the mode are generated with wrong types here; tokens, when present, are well formed."""
    # Optional string fields: null is "absent"; any other non-string fails deserialization.
    for key in ('OPENAI_API_KEY', 'personal_access_token', 'agent_identity'):
        if key in doc and doc[key] is not None and not isinstance(doc[key], str):
            return INVALID
    declared = doc.get('auth_mode')
    if declared is not None:
        # An enum: exactly one of the known spellings, and nothing else ("api_key" is refused).
        if not isinstance(declared, str) or declared not in (
                'apikey', 'chatgpt', 'chatgptAuthTokens', 'callerProvided', 'agentIdentity',
                'personalAccessToken', 'bedrockApiKey', 'bedrockAccessKeys'):
            return INVALID
        return declared
    precedence = (('personal_access_token', 'personalAccessToken'), ('OPENAI_API_KEY', 'apikey'))
    for key, mode in precedence:
        if doc.get(key) is not None:
            return mode
    return 'chatgpt'


def model_mode(doc):
    try:
        return auth_model.AuthFile(json.dumps(doc).encode()).mode
    except auth_model.AuthFileError:
        return INVALID


mode_documents = st.fixed_dictionaries({}, optional={
    'auth_mode': MODES,
    'OPENAI_API_KEY': st.one_of(st.none(), st.just(''), st.just('sk-FAKE'), st.integers(), st.lists(st.text())),
    'personal_access_token': st.one_of(st.none(), st.just(''), st.just('at-FAKE'), st.booleans()),
    'agent_identity': st.one_of(st.none(), st.just('x.y.z'), st.integers()),
    'tokens': st.just({'id_token': fake_credentials.make_jwt({'email': 'a@b.invalid'}), 'access_token': 'a',
                       'refresh_token': 'r'}),
    'unrelated': json_value,
})


@settings(max_examples=400, deadline=None)
@given(mode_documents)
@example({})
@example({'auth_mode': None, 'OPENAI_API_KEY': 'sk-FAKE', 'personal_access_token': 'at-FAKE'})
@example({'auth_mode': 'api_key'})
@example({'personal_access_token': '', 'OPENAI_API_KEY': 'sk-FAKE'})
def test_resolved_mode_matches_the_reference(doc):
    assert model_mode(doc) == reference_mode(doc)


ORACLE_DOCS = [
    ({}, 'Logged in using ChatGPT'),
    ({'OPENAI_API_KEY': None}, 'Logged in using ChatGPT'),
    ({'OPENAI_API_KEY': 'sk-proj-FAKE-oracle-ABCDE'}, 'API key configured'),
    ({'auth_mode': None, 'OPENAI_API_KEY': 'sk-proj-FAKE-oracle-ABCDE'}, 'API key configured'),
    ({'auth_mode': 'apikey'}, 'API key auth is missing a key'),
    ({'auth_mode': 'api_key', 'OPENAI_API_KEY': 'sk-proj-FAKE-oracle-ABCDE'}, 'invalid credential JSON'),
    ({'auth_mode': 7}, 'failed to deserialize'),
    ({'OPENAI_API_KEY': 7}, 'failed to deserialize'),
    ({'auth_mode': 'chatgpt', 'OPENAI_API_KEY': 'sk-proj-FAKE-oracle-ABCDE'}, 'Logged in using ChatGPT'),
]
STATUS_MODES = {'Logged in using ChatGPT': 'chatgpt', 'API key configured': 'apikey',
                'API key auth is missing a key': 'apikey', 'invalid credential JSON': INVALID,
                'failed to deserialize': INVALID}


@pytest.mark.parametrize('doc, status', ORACLE_DOCS)
def test_the_reference_is_codex(tmp_path, doc, status):
    """The reference above agrees with `codex login status` of the pinned Codex CLI."""
    home = tmp_path / 'home'
    home.mkdir(mode=0o700)
    (home / 'auth.json').write_text(json.dumps(doc))
    os.chmod(str(home / 'auth.json'), 0o600)
    proc = subprocess.run([codex_binary(), 'login', 'status'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env={'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(tmp_path),
                               'CODEX_HOME': str(home)}, timeout=60, check=False)
    output = proc.stdout.decode('utf-8', 'replace')
    assert status in output, output
    assert reference_mode(doc) == STATUS_MODES[status] == model_mode(doc)


@PROPERTY
@given(secret, st.one_of(st.none(), secret), secret, auth_documents(), st.booleans(), st.randoms())
def test_fingerprint_is_stable_and_salted(refresh, salt, other_salt, case, indent, rng):
    assume(salt != other_salt)
    doc = copy.deepcopy(case[0])
    doc['auth_mode'] = 'chatgpt'
    for key in ('OPENAI_API_KEY', 'personal_access_token', 'agent_identity'):
        doc.pop(key, None)
    doc['tokens'] = {'id_token': fake_credentials.make_jwt({'a': 1}), 'access_token': 'x', 'refresh_token': refresh}
    try:
        first = auth_model.AuthFile(json.dumps(doc).encode()).refresh_token_fingerprint(salt)
    except auth_model.AuthFileError:
        return  # a last_refresh Codex refuses: no fingerprint to compare
    assert re.match(r'^[0-9a-f]{16}$', first) and refresh not in first
    assert first == auth_model.fingerprint(refresh, salt)
    # Formatting, key order and every other field leave it unchanged.
    items = list(doc.items())
    rng.shuffle(items)
    other = dict(items)
    other['tokens'] = dict(doc['tokens'], access_token='y', id_token=fake_credentials.make_jwt({'b': 2}))
    other['last_refresh'] = '2030-01-01T00:00:00Z'
    again = auth_model.AuthFile(json.dumps(other, indent=2 if indent else None).encode()).refresh_token_fingerprint(salt)
    assert again == first
    assert auth_model.fingerprint(refresh, other_salt) != first
    assert auth_model.fingerprint(refresh + 'x', salt) != first


def mutations(data, rng):
    """A handful of damaged versions of a valid file."""
    out = [data[:rng.randrange(len(data))]]
    flipped = bytearray(data)
    for _unused in range(rng.randint(1, 4)):
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
    out.append(bytes(flipped))
    position = rng.randrange(len(data))
    out.append(data[:position] + rng.choice([b'"', b'{', b']', b'\\u', b'\\ud800', b'NaN', b',', b'\x00']) + data[position:])
    return out


@PROPERTY
@given(auth_documents(), st.randoms(use_true_random=False),
       st.lists(st.tuples(st.sampled_from(['auth_mode', 'tokens', 'last_refresh', 'OPENAI_API_KEY',
                                           'personal_access_token']), json_value), max_size=3))
def test_damaged_files_end_in_a_documented_refusal(case, rng, replacements):
    doc = copy.deepcopy(case[0])
    for key, value in replacements:
        doc[key] = value
    data = json.dumps(doc).encode()
    for candidate in [data] + mutations(data, rng):
        try:
            parsed = auth_model.AuthFile(candidate)
            parsed.summary(salt='s')
            parsed.credential_problems(None, True)
            parsed.credential_identity()
        except auth_model.AuthFileError as exc:
            assert exc.code in health.PROBLEM_CODES


@PROPERTY
@given(auth_documents(), st.sampled_from(['auth_mode', 'OPENAI_API_KEY', 'tokens', 'last_refresh', 'agent_identity',
                                          'personal_access_token', 'tokens.refresh_token', 'tokens.id_token',
                                          'tokens.access_token', 'tokens.account_id']), json_value)
def test_a_repeated_field_is_refused_as_codex_does(case, field, value):
    """Codex (serde) refuses a file that repeats one of its fields, wherever the copies are."""
    doc = copy.deepcopy(case[0])
    doc.setdefault('tokens', {'id_token': fake_credentials.make_jwt({}), 'access_token': 'a', 'refresh_token': 'r'})
    if not isinstance(doc['tokens'], dict):
        doc['tokens'] = {'id_token': fake_credentials.make_jwt({}), 'access_token': 'a', 'refresh_token': 'r'}
    if field.startswith('tokens.'):
        doc['tokens'].setdefault(field[7:], 'x')
        inner = json.dumps(doc['tokens'])
        doc_text = json.dumps(dict(doc, tokens='@@TOKENS@@'))
        repeated = '{%s: %s, %s' % (json.dumps(field[7:]), json.dumps(value), inner[1:])
        text = doc_text.replace('"@@TOKENS@@"', repeated)
    else:
        doc.setdefault(field, None)
        text = '{%s: %s, %s' % (json.dumps(field), json.dumps(value), json.dumps(doc)[1:])
    with pytest.raises(auth_model.AuthFileError) as info:
        auth_model.AuthFile(text.encode())
    assert info.value.code in health.PROBLEM_CODES


@PROPERTY
@given(timestamps())
def test_timestamps_are_parsed_or_refused_never_raised(text):
    parsed = auth_model.parse_rfc3339(text)
    match = re.match(r'^\d{4}-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-](\d\d):(\d\d))$', text)
    if parsed is None:
        return
    # What chrono accepts: a real date and time (a leap second allowed), an offset under 24 h.
    assert match, text
    month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 6))
    assert 1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60
    if match.group(8):
        assert int(match.group(8)) <= 23 and int(match.group(9)) <= 59, text
    assert parsed.tzinfo is not None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_end_in_a_documented_refusal(data):
    try:
        auth_model.AuthFile(data).summary()
    except auth_model.AuthFileError as exc:
        assert exc.code in health.PROBLEM_CODES


# -- strategies: TOML documents -------------------------------------------------------------------

BARE = st.from_regex(r'[a-z][a-z0-9_-]{0,6}', fullmatch=True)
TEXT = st.text(alphabet=st.characters(blacklist_categories=('Cs',), blacklist_characters='\x85\u2028\u2029'),
               max_size=10)
SCALARS = st.one_of(st.booleans(), st.integers(-2 ** 63, 2 ** 63 - 1), st.floats(allow_nan=False), TEXT)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.lists(st.lists(SCALARS, max_size=2), max_size=2))


def render_value(draw, value):
    """TOML text for a value, in one of the spellings a person might use."""
    if isinstance(value, str) and draw(st.booleans()):
        if "'" not in value and '\n' not in value and not re.search(r'[\x00-\x08\x0a-\x1f\x7f]', value):
            return "'%s'" % value
        if '"""' not in value and '\\' not in value and not re.search(r'[\x00-\x08\x0b-\x1f\x7f]', value) \
                and not value.endswith('"') and '\r' not in value:
            return '"""\n%s"""' % value
    if isinstance(value, list) and value and draw(st.booleans()):
        items = [toml_keys.format_value(item) for item in value]
        return '[\n' + ''.join('    %s,%s\n' % (item, draw(st.sampled_from(['', '  # item'])))
                               for item in items) + ']'
    return toml_keys.format_value(value)


@st.composite
def toml_documents(draw):
    lines = []
    top_keys = draw(st.lists(st.one_of(st.builds(lambda n: 'k%d' % n, st.integers(0, 5)), BARE.map(lambda k: 'x' + k)),
                             unique=True, max_size=6))
    inner_keys = draw(st.lists(st.builds(lambda n: 'k%d' % n, st.integers(0, 5)), unique=True, max_size=3))

    def filler():
        return draw(st.sampled_from(['', '\n', '# a comment\n', '\n# [not.a.table] = 1\n', '   \n']))

    lines.append(filler())
    for key in top_keys:
        value = draw(VALUES)
        spelled = key if draw(st.integers(0, 3)) else json.dumps(key)
        comment = draw(st.sampled_from(['', '  # note', ' #"quoted" [x]']))
        lines.append('%s%s%s%s\n' % (spelled, draw(st.sampled_from([' = ', '=', '  =  '])), render_value(draw, value),
                                     comment if not render_value(draw, value).endswith('"""') else ''))
        lines.append(filler())
    if draw(st.booleans()):
        lines.append('dotted.k1 = 1\ndotted."k2" = "two"\n')
    if draw(st.booleans()):
        lines.append('when = 1979-05-27T07:32:00Z\nday = 1979-05-27\n')
    for index in range(draw(st.integers(0, 3))):
        header = draw(st.sampled_from(['[t%d]' % index, '[t%d.sub]' % index, '[[arr]]', '[ "t%d q" ]' % index]))
        lines.append(filler() + header + draw(st.sampled_from(['', '  # table'])) + '\n')
        for key in inner_keys:
            lines.append('%s = %s\n' % (key, render_value(draw, draw(VALUES))))
    text = ''.join(lines)
    if draw(st.booleans()):
        text = text.rstrip('\n')
    if draw(st.integers(0, 4)) == 0:
        text = text.replace('\n', '\r\n')
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assume(False)
    return text


@st.composite
def edits(draw):
    keys = draw(st.lists(st.one_of(st.builds(lambda n: 'k%d' % n, st.integers(0, 5)),
                                   st.builds(lambda n: 'new%d' % n, st.integers(0, 2)),
                                   st.just('cli_auth_credentials_store')), unique=True, min_size=1, max_size=4))
    return dict((key, draw(st.one_of(st.none(), VALUES))) for key in keys)


def plain(value):
    """A canonical text of a parsed value: 1, 1.0 and true stay three different things."""
    return json.dumps(value, sort_keys=True, default=str)


def stripped(lines):
    return [line.rstrip('\r\n') for line in lines]


def edited_lines(text, settings_):
    lines, statements = toml_keys.parse_layout(text)
    touched = set()
    for statement in statements:
        if statement.kind == 'key' and statement.table == () and statement.path in [(k,) for k in settings_]:
            touched.update(range(statement.start, statement.end))
    return [line for index, line in enumerate(lines) if index not in touched]


def is_subsequence(needles, haystack):
    iterator = iter(haystack)
    return all(any(item == candidate for candidate in iterator) for item in needles)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(toml_documents(), edits())
def test_editor_changes_only_what_it_was_asked(doc, wanted):
    before = tomllib.loads(doc)
    assume(not any(isinstance(before.get(key), dict) for key in wanted))  # a table of that name
    new_text, changes = toml_keys.set_top_level(doc, wanted)
    after = tomllib.loads(new_text)  # always parses
    assert toml_keys.validate(new_text) is None
    expected = dict(before)
    for key, value in wanted.items():
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
    assert plain(after) == plain(expected)
    # Reported changes are exactly the keys whose value changed.
    differing = set(key for key in wanted if plain(before.get(key)) != plain(expected.get(key))
                    or (key in before) != (key in expected))
    assert set(changes) == differing
    # Every line outside the edited statements is kept, in order, byte for byte.
    assert is_subsequence(stripped(edited_lines(doc, wanted)), stripped(toml_keys.split_lines(new_text)))
    # Idempotent.
    assert toml_keys.set_top_level(new_text, wanted) == (new_text, {})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(toml_documents(), edits())
def test_editor_without_tomllib_writes_the_same_text(monkeypatch_module, doc, wanted):
    before = tomllib.loads(doc)
    assume(not any(isinstance(before.get(key), dict) for key in wanted))
    with_lib = toml_keys.set_top_level(doc, wanted)
    with monkeypatch_module.context() as patch:
        patch.setattr(toml_keys, '_toml', None)
        without_lib = toml_keys.set_top_level(doc, wanted)
        top = toml_keys.read_top_level(doc)
    assert without_lib == with_lib
    for key, value in before.items():
        if not isinstance(value, (dict, datetime.date, datetime.time)) and not (
                isinstance(value, list) and value and isinstance(value[0], dict)):
            assert plain(top.get(key)) == plain(value), key


@pytest.fixture(scope='module')
def monkeypatch_module():
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()
