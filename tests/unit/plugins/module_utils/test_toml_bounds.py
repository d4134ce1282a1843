# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""config.toml parse limits: checked before any parser runs, each one exactly at its value, never
fooled by strings or comments, and cheap on the shapes that made tomllib quadratic or recursive."""

import functools
import time
import tomllib

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.codexops.runner.plugins.module_utils import toml_keys

STORE = 'cli_auth_credentials_store = "file"\n'
KEYS = ('cli_auth_credentials_store', 'forced_login_method', 'forced_chatgpt_workspace_id')
PARTS, DEPTH, LINE, ITEMS = (toml_keys.MAX_KEY_PARTS, toml_keys.MAX_NESTING, toml_keys.MAX_LINE_CHARS,
                             toml_keys.MAX_SYNTAX_ITEMS)


@pytest.fixture(params=['tomllib', 'fallback'])
def reader(request, monkeypatch):
    """Both readers: tomllib, and this module's own (Python < 3.11 on the runner)."""
    if request.param == 'fallback':
        monkeypatch.setattr(toml_keys, '_toml', None)
    return request.param


def dotted(parts):
    return '.'.join('k%d' % index for index in range(parts))


def arrays(depth):
    return '[' * depth + ']' * depth


def inline_tables(depth):
    return '{ a = ' * depth + '1' + ' }' * depth


def a_line(length):
    """`x = "aaa..."`: one line of exactly `length` characters before its newline."""
    return 'x = "%s"' % ('a' * (length - 6))


def items(count):
    """A document of exactly `count` items: the store key is three ('=', a string, a line break),
    every other key two ('=', a line break), a blank line one."""
    keys = ''.join('k%d = 1\n' % index for index in range((count - 3) // 2))
    return STORE + keys + '\n' * ((count - 3) % 2)


# -- each limit, at its value and one over --------------------------------------------------------

AT_LIMIT = [
    ('key parts', STORE + '%s = 1\n' % dotted(PARTS)),
    ('quoted key parts', STORE + '%s = 1\n' % '.'.join(['"a.b"', "'c'"] * (PARTS // 2))),
    ('spaced key parts', STORE + '%s = 1\n' % ' . '.join(['a'] * PARTS)),
    ('table name parts', STORE + '[%s]\nx = 1\n' % dotted(PARTS)),
    ('array table name parts', STORE + '[[%s]]\nx = 1\n' % dotted(PARTS)),
    ('inline table key parts', STORE + 'x = { %s = 1 }\n' % dotted(PARTS)),
    ('nested arrays', STORE + 'x = %s\n' % arrays(DEPTH)),
    ('nested inline tables', STORE + 'x = %s\n' % inline_tables(DEPTH)),
    ('nested mixed', STORE + 'x = %s1%s\n' % ('[{a=' * (DEPTH // 2), '}]' * (DEPTH // 2))),
    ('nested across lines', STORE + 'x = %s\n' % ('[\n' * DEPTH + ']\n' * DEPTH)),
    ('line length', STORE + a_line(LINE) + '\n'),
    ('items', items(ITEMS)),
]
OVER_LIMIT = [
    ('key parts', STORE + '%s = 1\n' % dotted(PARTS + 1), 'dotted parts'),
    ('quoted key parts', STORE + '%s = 1\n' % '.'.join(['"a.b"'] * (PARTS + 1)), 'dotted parts'),
    ('spaced key parts', STORE + '%s = 1\n' % ' .\t'.join(['a'] * (PARTS + 1)), 'dotted parts'),
    ('table name parts', STORE + '[%s]\nx = 1\n' % dotted(PARTS + 1), 'dotted parts'),
    ('array table name parts', STORE + '[[%s]]\nx = 1\n' % dotted(PARTS + 1), 'dotted parts'),
    ('inline table key parts', STORE + 'x = { %s = 1 }\n' % dotted(PARTS + 1), 'dotted parts'),
    ('nested arrays', STORE + 'x = %s\n' % arrays(DEPTH + 1), 'nested deeper'),
    ('nested inline tables', STORE + 'x = %s\n' % inline_tables(DEPTH + 1), 'nested deeper'),
    ('nested mixed', STORE + 'x = %s1%s\n' % ('[{a=' * (DEPTH // 2 + 1), '}]' * (DEPTH // 2 + 1)), 'nested deeper'),
    ('nested across lines', STORE + 'x = %s\n' % ('[\n' * (DEPTH + 1) + ']\n' * (DEPTH + 1)), 'nested deeper'),
    ('never closed', STORE + 'x = %s\n' % ('[' * (DEPTH + 1)), 'nested deeper'),
    ('line length', STORE + a_line(LINE + 1) + '\n', 'longer than the limit'),
    ('line length, no newline', a_line(LINE + 1), 'longer than the limit'),
    ('items', items(ITEMS + 1), 'than the limit of %d' % ITEMS),
]


def test_item_documents_count_exactly():
    assert toml_keys.check_bounds(items(ITEMS)) is None
    assert toml_keys.check_bounds(items(ITEMS + 1))


@pytest.mark.parametrize('name, text', AT_LIMIT, ids=[case[0] for case in AT_LIMIT])
def test_at_the_limit_is_parsed(reader, name, text):
    assert toml_keys.check_bounds(text) is None
    assert toml_keys.validate(text) is None
    values, misplaced = toml_keys.read_settings(text, KEYS, KEYS[0])
    assert values == {KEYS[0]: 'file'} and misplaced == []
    tomllib.loads(text)  # and it is TOML


@pytest.mark.parametrize('name, text, words', OVER_LIMIT, ids=[case[0] for case in OVER_LIMIT])
def test_over_the_limit_is_refused_before_parsing(reader, monkeypatch, name, text, words):
    reason = toml_keys.check_bounds(text)
    assert reason and words in reason and 'the limit of' in reason
    assert toml_keys.validate(text) == reason

    # No parser may see the text: make every one of them fail loudly if it is called.
    def no_parser(*_args):
        raise AssertionError('a parser ran on a document over a limit')
    monkeypatch.setattr(toml_keys, '_layout', no_parser)
    if toml_keys._toml is not None:
        monkeypatch.setattr(toml_keys._toml, 'loads', no_parser)
    for call in (lambda: toml_keys.read_settings(text, KEYS, KEYS[0]), lambda: toml_keys.read_top_level(text),
                 lambda: toml_keys.tables_holding(text, KEYS[0]), lambda: toml_keys.parse_layout(text),
                 lambda: toml_keys.set_top_level(text, {KEYS[0]: 'file'})):
        with pytest.raises(toml_keys.TomlLimitError) as info:
            call()
        assert str(info.value) == reason
        assert isinstance(info.value, toml_keys.TomlEditError)  # callers that catch that still do


def test_limit_messages_never_quote_the_document():
    for _name, text, _words in OVER_LIMIT:
        reason = toml_keys.check_bounds(text.replace('k1', 'mcp-FAKE-secret'))
        assert 'mcp-FAKE-secret' not in reason and 'aaaa' not in reason and '\n' not in reason


# -- strings and comments are text, not structure -------------------------------------------------

@pytest.mark.parametrize('text', [
    STORE + 'x = "%s"\n' % ('[{' * 200),
    STORE + "x = '%s'\n" % ('[{' * 200),
    STORE + 'x = """\n%s\n"""\n' % ('[[[[\n' * 200),
    STORE + "x = '''\n%s\n'''\n" % ('{{{{\n' * 200),
    STORE + '# %s\n' % ('[' * 500),
    STORE + 'x = [ # %s\n1]\n' % ('[' * 500),
    STORE + '"%s" = 1\n' % '.'.join(['a'] * 500),        # one quoted part, whatever its dots
    STORE + "x = '%s'\n" % '.'.join(['a'] * 500),
    STORE + 'x = "\\"%s"\n' % ('[' * 200),                # an escaped quote does not end the string
    STORE + 'x = """a""""\ny = "%s"\n' % ('[' * 200),     # four quotes close with the last three
    STORE + 'x = """\\""" %s"""\n' % ('[' * 200),         # an escaped quote inside a multi-line string
    STORE + ''.join('x%d = 1.5\ny%d = 07:32:00.999\n' % (n, n) for n in range(PARTS + 1)),  # numbers, times
])
def test_strings_comments_and_numbers_are_not_structure(reader, text):
    tomllib.loads(text)
    assert toml_keys.check_bounds(text) is None
    assert toml_keys.read_settings(text, KEYS, KEYS[0])[0] == {KEYS[0]: 'file'}


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.one_of(st.text(max_size=6), st.integers(), st.booleans(), st.floats(allow_nan=False)),
                    lambda children: st.one_of(st.lists(children, max_size=3),
                                               st.dictionaries(st.text(max_size=4), children, max_size=3)),
                    max_leaves=12))
def test_measured_nesting_is_the_real_nesting(value):
    """Whatever strings hold (quotes, brackets, dots, '#', escapes), the nesting and parts the
    limits see are those of the document: at a cap of the value's own depth it passes, one less fails."""
    text = 'v = %s\n' % toml_keys.format_value(value)
    assert tomllib.loads(text)['v'] == value
    depth = _depth(value)
    assert toml_keys.check_bounds(text) is None
    code = toml_keys._STRINGS_AND_COMMENTS.sub('"', text)
    assert _measured_depth(code) == depth


def _depth(value):
    if isinstance(value, list):
        return 1 + max([_depth(item) for item in value] or [0])
    if isinstance(value, dict):
        return 1 + max([_depth(item) for item in value.values()] or [0])
    return 0


def _measured_depth(code):
    depth = deepest = 0
    for char in code:
        if char in '[{':
            depth += 1
            deepest = max(deepest, depth)
        elif char in ']}':
            depth -= 1
    return deepest


# -- the reader without tomllib has its own limit too ---------------------------------------------

def test_fallback_reader_caps_nesting_itself(monkeypatch):
    # parse_value reads one value without the whole-document check: its recursion is capped too.
    monkeypatch.setattr(toml_keys, '_toml', None)
    assert toml_keys.parse_value(arrays(DEPTH)) is not toml_keys._UNPARSED
    assert toml_keys.parse_value(arrays(DEPTH + 1)) is toml_keys._UNPARSED
    assert toml_keys.parse_value(arrays(5000)) is toml_keys._UNPARSED  # not a RecursionError
    assert toml_keys.parse_value(inline_tables(5000)) is toml_keys._UNPARSED


@pytest.mark.parametrize('value', ['file', 'bogus', 'inf_x', 'true1'])
def test_fallback_reader_refuses_bare_words(monkeypatch, value):
    monkeypatch.setattr(toml_keys, '_toml', None)
    assert toml_keys.parse_value(value) is toml_keys._UNPARSED
    with pytest.raises(toml_keys.TomlEditError) as info:
        toml_keys.read_settings('cli_auth_credentials_store = %s\n' % value, KEYS, KEYS[0])
    assert value not in str(info.value)


def test_fallback_reader_keeps_dates_as_written(monkeypatch):
    monkeypatch.setattr(toml_keys, '_toml', None)
    assert toml_keys.parse_value('1979-05-27T07:32:00Z') == '1979-05-27T07:32:00Z'


# -- read_settings --------------------------------------------------------------------------------

@pytest.mark.parametrize('text, values', [
    ('', {}),
    (STORE, {KEYS[0]: 'file'}),
    ('cli_auth_credentials_store = 5\n', {KEYS[0]: 5}),
    ('forced_chatgpt_workspace_id = ["a", "b"]\n', {KEYS[2]: ['a', 'b']}),
    ('[cli_auth_credentials_store]\nx = 1\n', {KEYS[0]: {'x': 1}}),
    ('cli_auth_credentials_store.x = 1\n', {KEYS[0]: {'x': 1}}),
    ('forced_login_method = { a = 1 }\n', {KEYS[1]: {'a': 1}}),
    ('model = "o3"\n[profiles.ci]\ncli_auth_credentials_store = "file"\n', {}),
])
def test_read_settings_values(reader, text, values):
    got, _misplaced = toml_keys.read_settings(text, KEYS, KEYS[0])
    if reader == 'fallback':
        # Without tomllib a table made of headers or dotted keys is known to be one, and no more.
        got, values = tables_as_such(got), tables_as_such(values)
    assert got == values


def tables_as_such(values):
    return dict((key, 'a table' if isinstance(value, dict) else value) for key, value in values.items())


def test_read_settings_names_the_tables_holding_the_key(reader):
    text = STORE + '[profiles.ci]\ncli_auth_credentials_store = "keyring"\n[[a]]\ncli_auth_credentials_store = "x"\n'
    assert toml_keys.read_settings(text, KEYS, KEYS[0]) == ({KEYS[0]: 'file'}, ['profiles.ci', 'a'])


@pytest.mark.parametrize('text, fallback_sees_it', [
    ('x = \n', False), ('a = 1\na = 2\n', False),  # the reader without tomllib checks the layout only
    ('[t\n', True), ('x = "open\n', True), ('cli_auth_credentials_store = "a" "b"\n', True),
])
def test_read_settings_refuses_documents_that_are_not_toml(reader, text, fallback_sees_it):
    # A case outside the fallback reader's contract (it is not a missing tool): a skip under CI too.
    if reader == 'fallback' and not fallback_sees_it:
        pytest.skip('a layout-only check')
    with pytest.raises(toml_keys.TomlEditError) as info:
        toml_keys.read_settings(text, KEYS, KEYS[0])
    assert not isinstance(info.value, toml_keys.TomlLimitError)


@pytest.mark.parametrize('value, name', [
    ('x', 'a string'), (True, 'a boolean'), (5, 'an integer'), (1.5, 'a float'), ([], 'an array of strings'),
    (['a'], 'an array of strings'), (['a', 1], 'an array'), ([['a']], 'an array'), ({}, 'a table'),
    (tomllib.loads('d = 1979-05-27')['d'], 'a date or time'),
])
def test_type_name(value, name):
    assert toml_keys.type_name(value) == name


# -- cost ------------------------------------------------------------------------------------------

MiB = 1024 * 1024
# Seconds. Loose on purpose: these shapes took minutes to hours before the limits (quadratic in a
# dotted key), and a busy test machine must not fail them; tests/hardening prints the real figures.
SLOW = 5.0


@functools.lru_cache(maxsize=None)
def pathological(size):
    """The shapes that made the old reader slow, quadratic or recursive, at `size` characters."""
    return {
        'dotted key': 'a' + '.a' * (size // 2) + ' = 1\n',
        'dotted keys, one per line': ('%s = 1\n' % ('a.' * PARTS + 'a')) * (size // (2 * PARTS + 6)),
        'dotted table names': '[' + 'a.' * (size // 2) + 'a]\n',
        'deep arrays': 'x = ' + '[' * (size // 2) + ']' * (size // 2) + '\n',
        'deep arrays over lines': 'x = ' + '[\n' * (size // 4) + ']\n' * (size // 4),
        'deep inline tables': 'x = ' + '{a=' * (size // 4) + '1' + '}' * (size // 4) + '\n',
        'unclosed brackets': 'x = ' + '[' * size,
        'many tables': ''.join('[t%d]\n' % index for index in range(size // 10)),
        'many keys': ''.join('k%d = 1\n' % index for index in range(size // 10)),
        'huge array': 'x = [' + '1,' * (size // 2) + ']\n',
        'huge array over lines': 'x = [' + '1,\n' * (size // 3) + ']\n',
        'long line': 'x = "' + 'a' * size + '"\n',
        'empty strings': 'x = [' + '"",' * (size // 3) + ']\n',
        'escapes': 'x = """' + '\\n' * (size // 2) + '"""\n',
        'unterminated multi-line string': 'x = """' + ('a"' * 50 + '\n') * (size // 101),
        'escaped quotes': 'x = """' + ('\\"""' * 25 + '\n') * (size // 101),
        'quote runs': ('"' * 100 + '\n') * (size // 101),
    }


@pytest.mark.parametrize('name', sorted(pathological(1024)))
def test_pathological_shapes_are_refused_quickly(reader, name):
    text = pathological(4 * MiB)[name]
    started = time.perf_counter()
    with pytest.raises(toml_keys.TomlEditError):
        toml_keys.read_settings(text, KEYS, KEYS[0])
    elapsed = time.perf_counter() - started
    assert elapsed < SLOW, '%s took %.2f s' % (name, elapsed)


@functools.lru_cache(maxsize=None)
def worst_within_limits():
    """Documents as expensive as the limits allow, about 4 MiB where the shape permits."""
    body = 'a' * (LINE - 20)
    key = dotted(PARTS - 1)
    return {
        'most key parts': STORE + ''.join('%s.k%d = 1\n' % (key, index) for index in range(ITEMS // (PARTS + 1) - 2)),
        'deepest nesting': STORE + ''.join('x%d = %s\n' % (index, arrays(DEPTH)) for index in range(ITEMS // (2 * DEPTH + 2) - 2)),
        'most keys': STORE + ''.join('k%d = 1\n' % index for index in range(ITEMS // 2 - 20)),
        'most array items': STORE + 'x = [' + ',\n'.join(['1'] * (ITEMS // 2 - 20)) + ']\n',
        'longest lines': STORE + ''.join('k%d = "%s"\n' % (index, body) for index in range(4 * MiB // LINE - 1)),
        'longest multi-line string': STORE + 'x = """\n' + '\n'.join([body] * (4 * MiB // LINE - 1)) + '"""\n',
        # Long bare words and lines at the limit: what a search that may start anywhere would
        # make quadratic (the dotted-key search runs when there are enough dots).
        'long bare keys': (STORE + ''.join('k%d%s = 1\n' % (index, 'a' * (LINE - 20)) for index in range(60))
                           + ''.join('y%d = 1.5\n' % index for index in range(PARTS))),
        'long numbers': STORE + ''.join('x%d = %s\n' % (index, '1' * 1000) for index in range(4 * MiB // 1010)),
    }


@pytest.mark.parametrize('name', sorted(worst_within_limits()))
def test_the_worst_documents_within_the_limits_parse_quickly(reader, name):
    text = worst_within_limits()[name]
    assert toml_keys.check_bounds(text) is None
    started = time.perf_counter()
    assert toml_keys.read_settings(text, KEYS, KEYS[0])[0] == {KEYS[0]: 'file'}
    elapsed = time.perf_counter() - started
    assert elapsed < SLOW, '%s took %.2f s' % (name, elapsed)


def test_a_key_ending_in_a_line_break_is_quoted():
    # Found by the property test above: BARE_KEY's '$' matched before a final line break.
    assert not toml_keys.BARE_KEY.match('key\n')
    text = 'v = %s\n' % toml_keys.format_value({'0\n': ''})
    assert tomllib.loads(text) == {'v': {'0\n': ''}}
    assert toml_keys.set_top_level('', {'k\n': 1})[0] == '"k\\n" = 1\n'
