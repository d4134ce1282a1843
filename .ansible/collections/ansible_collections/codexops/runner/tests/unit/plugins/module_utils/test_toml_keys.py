# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""config.toml top-level key editing: Codex ignores a "top-level" key written after a table header."""

import math
import tomllib

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.codexops.runner.plugins.module_utils import toml_keys

STORE = 'cli_auth_credentials_store'


def apply(text, values):
    new_text, changes = toml_keys.set_top_level(text, values)
    assert toml_keys.validate(new_text) is None, new_text
    return new_text, changes


def top(text):
    return {k: v for k, v in tomllib.loads(text).items() if not isinstance(v, dict)}


def assert_idempotent(text, values):
    again, changes = toml_keys.set_top_level(text, values)
    assert changes == {}
    assert again == text


# -- inserting ------------------------------------------------------------------------------------

def test_empty_document():
    text, changes = apply('', {STORE: 'file'})
    assert text == 'cli_auth_credentials_store = "file"\n'
    assert changes == {STORE: 'added'}
    assert_idempotent(text, {STORE: 'file'})


def test_only_tables_inserts_before_first_header():
    doc = '[mcp_servers.docs]\ncommand = "npx"\nargs = ["-y", "docs"]\n\n[profiles.ci]\nmodel = "o3"\n'
    text, changes = apply(doc, {STORE: 'file'})
    assert changes == {STORE: 'added'}
    parsed = tomllib.loads(text)
    assert parsed[STORE] == 'file'
    assert parsed['mcp_servers']['docs'] == {'command': 'npx', 'args': ['-y', 'docs']}
    assert STORE not in parsed['mcp_servers']['docs']
    assert text.index(STORE) < text.index('[mcp_servers.docs]')
    assert text.endswith(doc)  # the tables are untouched, byte for byte
    assert_idempotent(text, {STORE: 'file'})


def test_comments_then_tables():
    doc = '# Codex config\n\n[tui]\nnotifications = true\n'
    text, _changes = apply(doc, {STORE: 'file', 'model': 'o3'})
    assert top(text) == {STORE: 'file', 'model': 'o3'}
    assert tomllib.loads(text)['tui'] == {'notifications': True}
    assert '# Codex config\n' in text


def test_insert_after_last_top_level_key():
    doc = ('# leading comment\n'
           'model = "o3"   # the model\n'
           '\n'
           '# about the tables\n'
           '[tui]\n'
           'x = 1\n')
    text, changes = apply(doc, {STORE: 'file'})
    assert changes == {STORE: 'added'}
    assert text == ('# leading comment\n'
                    'model = "o3"   # the model\n'
                    'cli_auth_credentials_store = "file"\n'
                    '\n'
                    '# about the tables\n'
                    '[tui]\n'
                    'x = 1\n')


def test_array_of_tables_header():
    doc = 'model = "o3"\n[[hooks]]\nname = "a"\n[[hooks]]\nname = "b"\n'
    text, _changes = apply(doc, {STORE: 'file'})
    parsed = tomllib.loads(text)
    assert parsed[STORE] == 'file'
    assert parsed['hooks'] == [{'name': 'a'}, {'name': 'b'}]


# -- updating -------------------------------------------------------------------------------------

def test_update_in_place_keeps_inline_comment():
    doc = ('# top\n'
           'model = "o3"\n'
           'cli_auth_credentials_store = "keyring"  # set by the desktop app\n'
           'approval_policy = "never"\n'
           '[tui]\n'
           'x = 1\n')
    text, changes = apply(doc, {STORE: 'file'})
    assert changes == {STORE: 'updated'}
    lines = text.splitlines(True)
    assert lines[2].startswith('cli_auth_credentials_store = "file"')
    assert lines[2].rstrip().endswith('# set by the desktop app')
    old_lines = doc.splitlines(True)
    assert lines[:2] + lines[3:] == old_lines[:2] + old_lines[3:]
    assert top(text)[STORE] == 'file'
    assert text.count(STORE) == 1
    assert_idempotent(text, {STORE: 'file'})


def test_comment_with_quotes_and_hash_in_value():
    doc = 'cli_auth_credentials_store = "key#ring" # it\'s "odd"\n'
    text, _changes = apply(doc, {STORE: 'file'})
    assert text == 'cli_auth_credentials_store = "file"  # it\'s "odd"\n'


def test_key_only_inside_a_table():
    doc = ('model = "o3"\n'
           '\n'
           '[mcp_servers.x]\n'
           'command = "srv"\n'
           'cli_auth_credentials_store = "keyring"\n')
    assert toml_keys.tables_holding(doc, STORE) == ['mcp_servers.x']
    text, changes = apply(doc, {STORE: 'file'})
    assert changes == {STORE: 'added'}
    parsed = tomllib.loads(text)
    assert parsed[STORE] == 'file'
    assert parsed['mcp_servers']['x'][STORE] == 'keyring'
    assert 'cli_auth_credentials_store = "keyring"\n' in text
    assert toml_keys.tables_holding(text, STORE) == ['mcp_servers.x']
    assert_idempotent(text, {STORE: 'file'})


def test_tables_holding_ignores_top_level_and_nested_paths():
    doc = 'cli_auth_credentials_store = "file"\n[a]\nb.cli_auth_credentials_store = 1\n[c]\n' \
          'cli_auth_credentials_store = 2\n[[d]]\ncli_auth_credentials_store = 3\n'
    assert toml_keys.tables_holding(doc, STORE) == ['c', 'd']


def test_byte_for_byte_preservation():
    doc = ('# Codex configuration  \n'
           '   # indented comment\n'
           '\n'
           '\n'
           'model    =   "o3"    # spaced out\n'
           'cli_auth_credentials_store = "keyring"\n'
           "notify = ['a', 'b']\n"
           '\n'
           '# tables follow\n'
           '[mcp_servers.docs]   # a comment on a header\n'
           'env = { TOKEN = "mcp-FAKE-secret" }\n'
           '[ profiles . "ci" ]\n'
           'model = "o4"\n')
    text, _changes = apply(doc, {STORE: 'file'})
    old_lines = doc.splitlines(True)
    new_lines = text.splitlines(True)
    assert len(old_lines) == len(new_lines)
    differing = [i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b]
    assert differing == [5]
    assert new_lines[5] == 'cli_auth_credentials_store = "file"\n'


# -- multi-line values ----------------------------------------------------------------------------

MULTILINE_DOC = (
    'notes = """\n'
    '[not_a_table]\n'
    'cli_auth_credentials_store = "keyring"\n'
    '# not a comment = \\"\n'
    '"""\n'
    "raw = '''\n"
    '[also_not_a_table]\n'
    "x = 'y' # \"\n"
    "'''\n"
    'list = [\n'
    '  "[", # a comment with ] and =\n'
    "  '=#',\n"
    '  [1, 2],\n'
    ']\n'
    'tail = "after"\n'
    '[real_table]\n'
    'k = "v"\n'
)


def test_multiline_values_are_one_statement():
    lines, statements = toml_keys.parse_layout(MULTILINE_DOC)
    keys = [(s.path, s.table, s.start, s.end) for s in statements if s.kind == 'key']
    assert keys == [(('notes',), (), 0, 5), (('raw',), (), 5, 9), (('list',), (), 9, 14),
                    (('tail',), (), 14, 15), (('k',), ('real_table',), 16, 17)]
    assert [s.path for s in statements if s.kind == 'table'] == [('real_table',)]
    assert len(lines) == 17


def test_multiline_values_insertion():
    text, changes = apply(MULTILINE_DOC, {STORE: 'file'})
    assert changes == {STORE: 'added'}
    parsed = tomllib.loads(text)
    original = tomllib.loads(MULTILINE_DOC)
    assert parsed[STORE] == 'file'
    for key in ('notes', 'raw', 'list', 'tail', 'real_table'):
        assert parsed[key] == original[key]
    assert text.index('cli_auth_credentials_store = "file"') > text.index('tail = "after"')
    assert text.index('cli_auth_credentials_store = "file"') < text.index('[real_table]')
    assert_idempotent(text, {STORE: 'file'})


def test_multiline_value_update_and_removal():
    text, changes = apply(MULTILINE_DOC, {'list': ['x'], 'notes': None})
    assert changes == {'list': 'updated', 'notes': 'removed'}
    parsed = tomllib.loads(text)
    assert parsed['list'] == ['x']
    assert 'notes' not in parsed
    assert parsed['raw'] == tomllib.loads(MULTILINE_DOC)['raw']
    assert '[not_a_table]' not in text
    assert text.startswith("raw = '''\n")


def test_multiline_string_with_escaped_quotes_and_quote_run():
    doc = ('a = """x\\"""" \n'      # escaped quote, then the closing quotes
           'b = """\\\\"""\n'         # an escaped backslash right before the closing quotes
           "c = \'\'\'y\'\'\'\'\'\n"  # two extra quotes belong to the string
           'e = """z"""""\n'
           '[t]\n')
    original = tomllib.loads(doc)
    assert original['a'] == 'x"' and original['b'] == '\\' and original['c'] == "y''" and original['e'] == 'z""'
    text, _changes = apply(doc, {'d': 1})
    parsed = tomllib.loads(text)
    assert parsed == dict(original, d=1)
    assert text.index('d = 1') < text.index('[t]')
    assert 'd' not in parsed['t']


# -- keys -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('line', [
    '"cli_auth_credentials_store" = "keyring"\n',
    "'cli_auth_credentials_store' = \"keyring\"\n",
    '  cli_auth_credentials_store\t=\t"keyring"\n',
])
def test_quoted_and_spaced_keys_are_matched(line):
    doc = line + '[t]\n'
    text, changes = apply(doc, {STORE: 'file'})
    assert changes == {STORE: 'updated'}
    assert top(text) == {STORE: 'file'}
    assert text.count(STORE) == 1


def test_dotted_key_is_not_the_literal_key():
    doc = 'a.b = "x"\n'
    text, changes = apply(doc, {'a.b': 'y'})
    assert changes == {'a.b': 'added'}
    parsed = tomllib.loads(text)
    assert parsed['a'] == {'b': 'x'}
    assert parsed['a.b'] == 'y'
    assert text == 'a.b = "x"\n"a.b" = "y"\n'


def test_dotted_key_with_same_first_part_not_matched():
    doc = 'cli_auth_credentials_store.x = "keyring"\n'
    _lines, statements = toml_keys.parse_layout(doc)
    assert [s.path for s in statements] == [(STORE, 'x')]
    assert toml_keys._top_level(statements, STORE) == []
    # Nothing to remove: the key does not exist at the top level.
    assert toml_keys.set_top_level(doc, {STORE: None}) == (doc, {})


# -- removal, idempotence, duplicates -------------------------------------------------------------

def test_remove_key():
    doc = 'model = "o3"\ncli_auth_credentials_store = "keyring" # c\n# keep\n[t]\nx = 1\n'
    text, changes = apply(doc, {STORE: None})
    assert changes == {STORE: 'removed'}
    assert text == 'model = "o3"\n# keep\n[t]\nx = 1\n'
    assert_idempotent(text, {STORE: None})


def test_remove_absent_key_is_no_change():
    doc = 'model = "o3"\n[t]\ncli_auth_credentials_store = "keyring"\n'
    assert toml_keys.set_top_level(doc, {STORE: None}) == (doc, {})


def test_duplicates_are_collapsed():
    doc = 'cli_auth_credentials_store = "keyring"\nmodel = "o3"\ncli_auth_credentials_store = "auto"\n'
    text, changes = toml_keys.set_top_level(doc, {STORE: 'file'})
    assert changes == {STORE: 'updated'}
    assert text == 'cli_auth_credentials_store = "file"\nmodel = "o3"\n'
    assert top(text) == {STORE: 'file', 'model': 'o3'}


def test_many_keys_at_once_idempotent():
    doc = 'model = "o3"\n[t]\n'
    values = {STORE: 'file', 'forced_login_method': 'chatgpt', 'forced_chatgpt_workspace_id': ['w1', 'w2'],
              'model': 'o4'}
    text, changes = apply(doc, values)
    assert changes == {STORE: 'added', 'forced_login_method': 'added', 'forced_chatgpt_workspace_id': 'added',
                       'model': 'updated'}
    assert top(text) == values
    assert_idempotent(text, values)
    for key in values:
        assert sum(1 for line in text.splitlines() if line.startswith(key + ' ')) == 1


# -- line endings ---------------------------------------------------------------------------------

def test_crlf_document():
    doc = '# c\r\nmodel = "o3"\r\ncli_auth_credentials_store = "keyring"\r\n\r\n[t]\r\nx = 1\r\n'
    text, changes = apply(doc, {STORE: 'file', 'other': True})
    assert changes == {STORE: 'updated', 'other': 'added'}
    assert '\n' not in text.replace('\r\n', '')
    assert text == ('# c\r\nmodel = "o3"\r\ncli_auth_credentials_store = "file"\r\nother = true\r\n'
                    '\r\n[t]\r\nx = 1\r\n')
    assert_idempotent(text, {STORE: 'file', 'other': True})


def test_crlf_tables_only():
    doc = '[t]\r\nx = 1\r\n'
    text, _changes = apply(doc, {STORE: 'file'})
    assert text == 'cli_auth_credentials_store = "file"\r\n\r\n[t]\r\nx = 1\r\n'


def test_no_trailing_newline_append():
    doc = 'model = "o3"'
    text, _changes = apply(doc, {STORE: 'file'})
    assert text == 'model = "o3"\ncli_auth_credentials_store = "file"\n'


def test_no_trailing_newline_update():
    doc = 'model = "o3"\ncli_auth_credentials_store = "keyring"'
    text, changes = apply(doc, {STORE: 'file'})
    assert changes == {STORE: 'updated'}
    assert text.startswith('model = "o3"\ncli_auth_credentials_store = "file"')
    assert top(text) == {'model': 'o3', STORE: 'file'}


def test_no_trailing_newline_in_table():
    doc = '[t]\nx = 1'
    text, _changes = apply(doc, {STORE: 'file'})
    assert top(text) == {STORE: 'file'}
    assert tomllib.loads(text)['t'] == {'x': 1}
    assert text.endswith('[t]\nx = 1')


# -- values ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('value, written', [
    ('file', '"file"'),
    (True, 'true'),
    (False, 'false'),
    (0, '0'),
    (-42, '-42'),
    (2 ** 40, str(2 ** 40)),
    (1.5, '1.5'),
    (-0.25, '-0.25'),
    (1e100, '1e+100'),
    (float('inf'), 'inf'),
    (float('-inf'), '-inf'),
    ([], '[]'),
    (['a', 1, True, 2.5], '["a", 1, true, 2.5]'),
    ([['x'], []], '[["x"], []]'),
])
def test_value_types(value, written):
    assert toml_keys.format_value(value) == written
    text, _changes = apply('[t]\n', {'k': value})
    assert text.startswith('k = %s\n' % written)
    assert tomllib.loads(text)['k'] == value
    assert_idempotent(text, {'k': value})


def test_nan_is_written():
    text, _changes = apply('', {'k': float('nan')})
    assert math.isnan(tomllib.loads(text)['k'])


def test_nan_is_idempotent():
    text, _changes = apply('', {'k': float('nan')})
    assert_idempotent(text, {'k': float('nan')})


@pytest.mark.parametrize('existing, wanted', [
    ('1', True),
    ('true', 1),
    ('0', False),
    ('1', 1.0),
    ('1.0', 1),
    ('[1, 0]', [True, False]),
])
def test_type_change_is_written(existing, wanted):
    doc = 'k = %s\n' % existing
    text, changes = toml_keys.set_top_level(doc, {'k': wanted})
    assert changes == {'k': 'updated'}
    assert type(tomllib.loads(text)['k']) is type(wanted)


def test_unsupported_value_type():
    with pytest.raises(toml_keys.TomlEditError):
        toml_keys.set_top_level('', {'k': object()})
    with pytest.raises(toml_keys.TomlEditError):
        toml_keys.format_value(None)


@pytest.mark.parametrize('value', [
    'with "double" quotes',
    "with 'single' quotes",
    'back\\slash\\',
    'new\nline\r\ncrlf\ttab',
    'del\x7fchar',
    'nul\x00 bell\x07 esc\x1b us\x1f',
    'unicode: é ü 日本 \U0001F600 \u00a0 \u200b',
    '"""triple"""',
    "'''triple'''",
    '# not a comment',
    '[not.a.table]',
    '',
])
def test_string_escaping_round_trips(value):
    text, _changes = apply('', {'k': value})
    assert tomllib.loads(text)['k'] == value
    assert toml_keys.read_top_level(text) == {'k': value}
    assert_idempotent(text, {'k': value})
    assert text.count('\n') == 1  # always a one-line basic string


# Python's str.splitlines() also breaks at these; TOML does not.
UNICODE_LINE_BREAKS = '\x85\u2028\u2029'


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=('Cs',), blacklist_characters=UNICODE_LINE_BREAKS)))
def test_any_string_round_trips(value):
    text, _changes = apply('[t]\nx = 1\n', {'k': value, 'weird key "%s"' % value[:5]: value})
    parsed = tomllib.loads(text)
    assert parsed['k'] == value
    assert parsed['t'] == {'x': 1}
    again, changes = toml_keys.set_top_level(text, {'k': value})
    assert changes == {} and again == text


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.one_of(st.booleans(), st.integers(-2 ** 63, 2 ** 63 - 1),
                              st.floats(allow_nan=False), st.text(max_size=8)),
                    lambda children: st.lists(children, max_size=3), max_leaves=6))
def test_any_value_round_trips(value):
    text, _changes = apply('# c\n[t]\n', {'k': value})
    assert tomllib.loads(text)['k'] == value


@pytest.mark.parametrize('char', list(UNICODE_LINE_BREAKS))
def test_unicode_line_separator_in_value_can_be_edited_again(char):
    text, _changes = apply('', {'k': 'a%sb' % char})
    assert tomllib.loads(text)['k'] == 'a%sb' % char
    again, changes = toml_keys.set_top_level(text, {'k': 'a%sb' % char, STORE: 'file'})
    assert changes == {STORE: 'added'}
    assert tomllib.loads(again) == {'k': 'a%sb' % char, STORE: 'file'}


@pytest.mark.parametrize('char', list(UNICODE_LINE_BREAKS))
def test_unicode_line_separator_in_comment(char):
    doc = '# note%s [not_a_table] = 1\nmodel = "o3"\n[t]\n' % char
    assert tomllib.loads(doc)['model'] == 'o3'
    text, changes = toml_keys.set_top_level(doc, {STORE: 'file'})
    assert changes == {STORE: 'added'}
    assert tomllib.loads(text)[STORE] == 'file'
    assert text.startswith(doc.split('\n')[0])


def test_quoted_key_written_for_non_bare_names():
    text, changes = apply('', {'a b': 1, 'é': 2, 'x.y': 3})
    assert changes == {'a b': 'added', 'é': 'added', 'x.y': 'added'}
    assert tomllib.loads(text) == {'a b': 1, 'é': 2, 'x.y': 3}
    assert_idempotent(text, {'a b': 1, 'é': 2, 'x.y': 3})


# -- layout errors and validation -----------------------------------------------------------------

@pytest.mark.parametrize('doc', [
    'a = "unterminated\n',
    'a = [1, 2\n',
    'a = """never closed\n',
    '[table\n',
    '[t] junk\n',
    '= 1\n',
    'a 1\n',
])
def test_parse_layout_errors(doc):
    with pytest.raises(toml_keys.TomlEditError):
        toml_keys.set_top_level(doc, {STORE: 'file'})


def test_validate():
    assert toml_keys.validate('') is None
    assert toml_keys.validate(MULTILINE_DOC) is None
    assert toml_keys.validate('a = "x"\n[t]\nb = 1\n') is None
    for bad in ('a = \n', 'a = "x"\na = "y"\n', '[t]\n[t]\n', 'a = 1 2\n', 'a = "mcp-FAKE-secret\n'):
        reason = toml_keys.validate(bad)
        assert isinstance(reason, str) and reason
        assert 'mcp-FAKE-secret' not in reason
        assert '\n' not in reason
    assert toml_keys.has_full_validation()


def test_read_top_level_skips_tables():
    doc = 'a = 1\nb = { c = 2 }\n[t]\nd = 3\n'
    assert toml_keys.read_top_level(doc) == {'a': 1}


# -- without tomllib (Python < 3.11 on the runner) ------------------------------------------------

@pytest.fixture
def no_tomllib(monkeypatch):
    monkeypatch.setattr(toml_keys, '_toml', None)
    assert not toml_keys.has_full_validation()


FALLBACK_DOC = (
    '# comment\n'
    'basic = "tab\\there \\"q\\" \\\\ \\u00e9 \\U0001F600" # c\n'
    "literal = 'C:\\path\\no\\escapes'\n"
    'yes = true\n'
    'no = false\n'
    'int = -12_000\n'
    'hex = 0xFF\n'
    'float = 6.5e-1\n'
    'inf = -inf\n'
    'array = [\n'
    '  "a", # comment ]\n'
    "  'b',\n"
    '  [1, 2.5, true],\n'
    ']\n'
    'multi = """\n'
    'line one\\\n'
    '    continued"""\n'
    "raw = '''\n"
    "[x] = # y\n"
    "'''\n"
    '[t]\n'
    'in_table = 1\n'
)


def test_fallback_read_top_level(no_tomllib):
    expected = tomllib.loads(FALLBACK_DOC)
    del expected['t']
    got = toml_keys.read_top_level(FALLBACK_DOC)
    assert got == expected
    assert got['basic'] == 'tab\there "q" \\ é \U0001F600'
    assert got['literal'] == 'C:\\path\\no\\escapes'


@pytest.mark.parametrize('text, value', [
    ('"file"', 'file'),
    ('"file"  # comment', 'file'),
    ("'keyring'", 'keyring'),
    ('"a\\nb\\u0041\\\\"', 'a\nbA\\'),
    ('true', True),
    ('false', False),
    ('42', 42),
    ('-7', -7),
    ('1_000', 1000),
    ('3.25', 3.25),
    ('1e3', 1000.0),
    ('[]', []),
    ('["w1", "w2"]', ['w1', 'w2']),
    ('[ 1, [2, "x"], false ]', [1, [2, 'x'], False]),
])
def test_fallback_parse_value(no_tomllib, text, value):
    parsed = toml_keys.parse_value(text)
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize('text', ['"unterminated', '"a" junk', '"\\q"', "'open", '[1, 2'])
def test_fallback_parse_value_refuses(no_tomllib, text):
    assert toml_keys.parse_value(text) is toml_keys._UNPARSED


@pytest.mark.parametrize('value', ['file', 'q"\\\n\t\x7f\x00é\U0001F600', True, False, 3, 2.5, ['a', 1, [True]]])
def test_fallback_round_trip_and_idempotence(no_tomllib, value):
    doc = 'model = "o3"\n[t]\nk = 1\n'
    text, changes = toml_keys.set_top_level(doc, {'k': value})
    assert changes == {'k': 'added'}
    assert toml_keys.read_top_level(text)['k'] == value
    assert toml_keys.set_top_level(text, {'k': value}) == (text, {})
    assert tomllib.loads(text)['k'] == value


def test_fallback_validate_is_layout_only(no_tomllib):
    assert toml_keys.validate(MULTILINE_DOC) is None
    assert toml_keys.validate('a = "unterminated\n')
    assert toml_keys.validate('[t\n')


def test_fallback_edit_matches_tomllib_edit(monkeypatch):
    with_lib = toml_keys.set_top_level(MULTILINE_DOC, {STORE: 'file', 'tail': None})
    monkeypatch.setattr(toml_keys, '_toml', None)
    without_lib = toml_keys.set_top_level(MULTILINE_DOC, {STORE: 'file', 'tail': None})
    assert with_lib == without_lib
