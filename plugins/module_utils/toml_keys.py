# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read and edit top-level keys of a TOML document (Codex's config.toml) in place.

Private to this collection. A key appended after a `[table]` header belongs to that table and
Codex silently ignores it as a top-level setting, so a line-oriented editor must know where the
top-level region ends. This one splits the document into statements (a key/value pair may span
lines in multi-line strings and arrays), edits only the statements of the keys it is asked for,
and inserts new keys after the last top-level statement, which is always before the first table.
Comments, order, formatting, tables and every other key are kept byte for byte.

Standard library only: tomllib (Python 3.11+) validates the result where the runner has it.
"""

import itertools
import json
import math
import operator
import re

try:
    import tomllib as _toml
except ImportError:  # Python < 3.11 on the runner
    try:
        import tomli as _toml
    except ImportError:
        _toml = None

# \Z, not $: $ also matches before a final line break, and 'key\n' is not a bare key.
BARE_KEY = re.compile(r'^[A-Za-z0-9_-]+\Z')
_UNPARSED = object()

# -- parse limits -------------------------------------------------------------------------------
# The runner user writes config.toml and root parses it, so the document must not choose what a
# parse costs. check_bounds() enforces these limits before any parser (tomllib, or this module's
# own reader) sees the text.
#
# Codex (0.169.0, and 0.171.0: re-checked) itself refuses a key of more than 80 dotted parts ("recursion limit") and arrays
# and inline tables nested more than 80 deep ("max recursion depth met"), so these two caps never
# refuse a file Codex accepts. tomllib is quadratic in the parts of one dotted key (32768 parts:
# 16 s) and recursive in the nesting.
MAX_KEY_PARTS = 80
MAX_NESTING = 80
# A key cannot span lines, so this also bounds the length of a key. Real lines are a few hundred
# characters at most; longer text belongs in a multi-line string.
MAX_LINE_CHARS = 64 * 1024
# Each key, separator, bracket, string, comment, line break and escape costs tomllib up to about
# a microsecond and a half; this many keep one parse well under a second. A large real config.toml
# (a thousand trusted projects and some MCP servers) holds about ten thousand.
MAX_SYNTAX_ITEMS = 100000
# Setting strings aside costs check_bounds itself a quarter of a microsecond for every quote and
# backslash, inside strings too; counted first, in the raw text. Enough for MAX_SYNTAX_ITEMS strings.
MAX_QUOTING_CHARS = 3 * MAX_SYNTAX_ITEMS

# Strings and comments, each to be replaced by one '"' before the structure is measured: brackets,
# dots and '=' inside them are text. Every alternative always matches once it has started (an
# unterminated string runs to the end of its line or of the document), so nothing backtracks.
_STRINGS_AND_COMMENTS = re.compile(
    r'"""(?:[^"\\]+|\\[\s\S]?|"(?!""))*(?:"{3,5}|\Z)'
    r"|'''(?:[^']+|'(?!''))*(?:'{3,5}|\Z)"
    r'|"(?:[^"\\\n]+|\\.?)*"?'
    r"|'[^'\n]*'?"
    r'|#[^\n]*')
# What tomllib spends its time on, outside strings and comments.
_ITEM_CHARS = '=,.[]{}"'
_LONG_LINE = re.compile(r'^[^\n]{%d}' % (MAX_LINE_CHARS + 1), re.M)
_NOT_BRACKET = re.compile(r'[^\[\]{}]+')
_BRACKET_STEP = {'[': 1, '{': 1, ']': -1, '}': -1}
# Text between the characters that end a key: '=', ',', brackets and line breaks. In valid TOML
# one such segment holds at most one dotted key, number or date-time, so its dots bound the parts
# of any key in it; and there are no more segments than items.
_SEGMENT = re.compile(r'[^=,\[\]{}\n]+')
_DOTS = operator.methodcaller('count', '.')


class TomlEditError(Exception):
    pass


class TomlLimitError(TomlEditError):
    """The document is over a parse limit, so it was not parsed."""


def check_bounds(text):
    """None when text is within the parse limits, else which limit it breaks (never its content).

    Linear in the length of text, and made of str.count and regular expressions that never
    backtrack, with no Python step per character: the check itself cannot be made slow."""
    if len(text) > MAX_LINE_CHARS and _LONG_LINE.search(text):
        return 'a line is longer than the limit of %d characters' % MAX_LINE_CHARS
    escapes = text.count('\\')
    if text.count('"') + text.count("'") + escapes > MAX_QUOTING_CHARS:
        return 'it holds more quotes and backslashes than the limit of %d' % MAX_QUOTING_CHARS
    code = _STRINGS_AND_COMMENTS.sub('"', text)
    # Line breaks and escapes are counted in the raw text: this module's reader visits every line,
    # also inside multi-line strings, and tomllib decodes every escape.
    items = sum(code.count(char) for char in _ITEM_CHARS) + text.count('\n') + escapes
    if items > MAX_SYNTAX_ITEMS:
        return ('it holds more keys, values, separators, strings, comments, line breaks and escapes than the '
                'limit of %d' % MAX_SYNTAX_ITEMS)
    if _nested_too_deep(code):
        return 'arrays and inline tables are nested deeper than the limit of %d (Codex refuses that too)' % MAX_NESTING
    if _too_many_key_parts(code):
        return 'a key or table name has more dotted parts than the limit of %d (Codex refuses that too)' % MAX_KEY_PARTS
    return None


def _nested_too_deep(code):
    """Whether brackets in code (strings and comments already taken out) nest over MAX_NESTING."""
    if code.count('[') + code.count('{') <= MAX_NESTING:
        return False  # too few openers to get there; the walk below is kept short by the item limit
    brackets = _NOT_BRACKET.sub('', code)
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets))) > MAX_NESTING


def _too_many_key_parts(code):
    """Whether a key in code (strings already reduced to '"') has more than MAX_KEY_PARTS parts."""
    if code.count('.') < MAX_KEY_PARTS:
        return False
    return max(map(_DOTS, _SEGMENT.findall(code))) >= MAX_KEY_PARTS


def _checked(text):
    reason = check_bounds(text)
    if reason:
        raise TomlLimitError(reason)
    return text


class Statement:
    """One logical line of the document: lines[start:end] hold it."""

    def __init__(self, kind, start, end, path=None, table=None):
        self.kind = kind      # 'key', 'table', 'trivia'
        self.start = start
        self.end = end
        self.path = path      # key path (tuple) or table path for headers
        self.table = table    # the table a key belongs to; () at top level


def validate(text):
    """None if valid (or no TOML parser on this Python), else a short reason without content."""
    reason = check_bounds(text)
    if reason:
        return reason
    if _toml is not None:
        try:
            _toml.loads(text)
        except Exception as exc:  # tomllib.TOMLDecodeError, tomli's own; both subclass ValueError
            return _position_only(str(exc))
        return None
    try:
        _layout(text)
    except TomlEditError as exc:
        return str(exc)
    return None


def _position_only(message):
    # tomllib messages are "Invalid value (at line 3, column 7)"; no document content.
    return message.split('\n')[0][:200]


def has_full_validation():
    return _toml is not None


def split_lines(text):
    """Lines with their endings. TOML breaks lines at LF only; str.splitlines would also break
    at U+2028 and friends, which may sit inside a TOML string."""
    lines = re.split(r'(?<=\n)', text)
    return lines[:-1] if lines and lines[-1] == '' else lines


def parse_layout(text):
    return _layout(_checked(text))


def _layout(text):
    """parse_layout() of a text already within the parse limits."""
    lines = split_lines(text)
    statements = []
    table = ()
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if not stripped or stripped.startswith('#'):
            statements.append(Statement('trivia', index, index + 1))
            index += 1
            continue
        if stripped.startswith('['):
            table = _parse_header(stripped, index)
            statements.append(Statement('table', index, index + 1, path=table, table=table))
            index += 1
            continue
        path, value_pos = _parse_dotted_at(lines[index], 0, index, '=')
        end = _scan_value(lines, index, value_pos)
        statements.append(Statement('key', index, end, path=path, table=table))
        index = end
    return lines, statements


def _parse_header(stripped, index):
    array = stripped.startswith('[[')
    closing = ']]' if array else ']'
    path, after = _parse_dotted_at(stripped, 2 if array else 1, index, closing)
    rest = stripped[after:].strip()
    if rest and not rest.startswith('#'):
        raise TomlEditError('unexpected text after the table header on line %d' % (index + 1))
    return path


_BLANKS = re.compile(r'[ \t]*')
_BARE_PART = re.compile(r'[A-Za-z0-9_-]+')


def _parse_dotted(text, index, terminator):
    """Parse `a."b".c` up to terminator; returns (path, text after terminator)."""
    path, pos = _parse_dotted_at(text, 0, index, terminator)
    return path, text[pos:]


def _parse_dotted_at(text, pos, index, terminator):
    """Parse `a."b".c` from text[pos] up to terminator; returns (path, position after terminator).
    Positions, not slices: a slice per part would copy the rest of the line once per part."""
    parts = []
    while True:
        pos = _BLANKS.match(text, pos).end()
        if pos < len(text) and text[pos] in '"\'':
            end = _string_end(text, pos, text[pos])
            if end < 0:
                raise TomlEditError('unterminated quoted key on line %d' % (index + 1))
            parts.append(_parse_simple_string(text[pos:end + 1]))
            pos = end + 1
        else:
            match = _BARE_PART.match(text, pos)
            if not match:
                raise TomlEditError('expected a key on line %d' % (index + 1))
            parts.append(match.group(0))
            pos = match.end()
        pos = _BLANKS.match(text, pos).end()
        if text.startswith(terminator, pos):
            return tuple(parts), pos + len(terminator)
        if pos < len(text) and text[pos] == '.':
            pos += 1
            continue
        raise TomlEditError('expected %r on line %d' % (terminator, index + 1))


# The body of a one-line string: a basic one ends at an unescaped '"', a literal one at "'"; both
# end at a line break. Written so that a match never fails, hence never backtracks.
_STRING_BODY = {
    '"': re.compile(r'[^"\\\n]*(?:\\[\s\S][^"\\\n]*)*'),
    "'": re.compile(r"[^'\n]*"),
}


def _string_end(text, pos, quote):
    """Index of the closing quote of a one-line string starting at pos, or -1."""
    end = _STRING_BODY[quote].match(text, pos + 1).end()
    return end if end < len(text) and text[end] == quote else -1


# In a multi-line basic string an escape may hide a quote; in a literal one nothing is escaped.
_BASIC_MULTILINE_STOP = re.compile(r'\\[\s\S]?|"""')
_QUOTE_RUN = {'"': re.compile(r'"*'), "'": re.compile(r"'*")}


def _closing_quotes(text, pos, delimiter):
    """Start of the delimiter closing the multi-line string whose body goes on at text[pos], or -1.
    A longer run of quotes closes with its last three: four quotes end a body with one quote."""
    if delimiter == "'''":
        start = text.find(delimiter, pos)
    else:
        # One step per escape (escapes are counted by check_bounds), never one per character.
        start = next((match.start() for match in _BASIC_MULTILINE_STOP.finditer(text, pos)
                      if match.group() == delimiter), -1)
    if start < 0:
        return -1
    return _QUOTE_RUN[delimiter[0]].match(text, start).end() - 3


# What matters while looking for the end of a value: strings, comments and brackets.
_VALUE_SPECIAL = re.compile(r'"""|\'\'\'|["\'#\[\]{}]')


def _scan_value(lines, index, pos):
    """Index of the line after the one where the value starting at (index, pos) ends."""
    depth = 0
    multiline = None
    line_no = index
    while line_no < len(lines):
        line = lines[line_no]
        while True:
            if multiline:
                close = _closing_quotes(line, pos, multiline)
                if close < 0:
                    break  # the string goes on on the next line
                multiline, pos = None, close + 3
                continue
            match = _VALUE_SPECIAL.search(line, pos)
            if not match or match.group() == '#':
                break
            token, pos = match.group(), match.end()
            if len(token) == 3:
                multiline = token
            elif token in '"\'':
                end = _string_end(line, match.start(), token)
                if end < 0:
                    raise TomlEditError('unterminated string on line %d' % (line_no + 1))
                pos = end + 1
            elif token in '[{':
                depth += 1
            else:
                depth -= 1
        line_no += 1
        if not multiline and depth <= 0:
            return line_no
        pos = 0
    raise TomlEditError('a value starting on line %d is never closed' % (index + 1))


def _top_level(statements, key):
    return [st for st in statements if st.kind == 'key' and st.table == () and st.path == (key,)]


def read_top_level(text):
    """Top-level key -> value. Uses tomllib when present, else this module's own reader (which
    understands strings, booleans, numbers and arrays: all Codex's top-level auth settings)."""
    _checked(text)
    if _toml is not None:
        doc = _toml.loads(text)
        return dict((key, value) for key, value in doc.items() if not isinstance(value, dict))
    lines, statements = _layout(text)
    values = {}
    for st in statements:
        if st.kind == 'key' and st.table == () and len(st.path) == 1:
            value = parse_value(_value_text(lines, st))
            if value is not _UNPARSED:
                values[st.path[0]] = value
    return values


def read_settings(text, keys, misplaced_key):
    """What verify reads from config.toml: ({key: value} of the top-level `keys` present, names
    of the tables holding `misplaced_key`), checking the limits once and running each parser once.

    A key that is a table (`[key]`, `key.sub = 1`) comes back as a dict, so that the caller can say
    it has the wrong type instead of taking it for unset. Raises TomlLimitError for a document over
    a limit and TomlEditError for one that is not TOML; neither quotes the document."""
    _checked(text)
    doc = None
    if _toml is not None:
        try:
            doc = _toml.loads(text)
        except Exception as exc:  # as in validate()
            raise TomlEditError(_position_only(str(exc)))
    lines, statements = _layout(text)
    if doc is not None:
        values = dict((key, doc[key]) for key in keys if key in doc)
    else:
        values = _layout_values(lines, statements, keys)
    return values, _tables_holding(statements, misplaced_key)


def _layout_values(lines, statements, keys):
    """read_settings() values without tomllib: this module's reader, on the statements of `keys`."""
    values = {}
    for st in statements:
        key = st.path[0] if st.path else None
        if key not in keys:
            continue
        if st.kind == 'table' or (st.kind == 'key' and st.table == () and len(st.path) > 1):
            values[key] = {}  # [key] or key.sub = ...: a table, whatever it holds
        elif st.kind == 'key' and st.table == ():
            value = parse_value(_value_text(lines, st))
            if value is _UNPARSED:
                raise TomlEditError('the value of %s on line %d is not a TOML value' % (key, st.start + 1))
            values[key] = value
    return values


def tables_holding(text, key):
    """Names of tables that hold `key` directly: a top-level setting written in the wrong place."""
    _lines, statements = parse_layout(text)
    return _tables_holding(statements, key)


def _tables_holding(statements, key):
    return ['.'.join(st.table) for st in statements
            if st.kind == 'key' and st.table != () and st.path == (key,)]


def _value_text(lines, st):
    text = ''.join(lines[st.start:st.end])
    _path, rest = _parse_dotted(text, st.start, '=')
    return rest


def type_name(value):
    """The TOML type of a value read from a document, as a message names it ('an integer')."""
    if isinstance(value, bool):
        return 'a boolean'
    if isinstance(value, int):
        return 'an integer'
    if isinstance(value, float):
        return 'a float'
    if isinstance(value, str):
        return 'a string'
    if isinstance(value, list):
        return 'an array of strings' if all(isinstance(item, str) for item in value) else 'an array'
    if isinstance(value, dict):
        return 'a table'
    return 'a date or time'  # tomllib's datetime, date and time


def set_top_level(text, settings):
    """Apply {key: value or None} to the document's top level.

    Returns (new_text, {key: 'added' | 'updated' | 'removed'}) naming only keys that changed.
    """
    lines, statements = parse_layout(text)
    newline = '\r\n' if '\r\n' in text else '\n'
    changes = {}
    replacements = {}   # line index -> replacement text for a statement starting there
    dropped = set()     # line indexes to delete
    additions = []
    for key in settings:
        value = settings[key]
        matches = _top_level(statements, key)
        if value is None:
            if matches:
                for st in matches:
                    dropped.update(range(st.start, st.end))
                changes[key] = 'removed'
            continue
        wanted = format_value(value)
        if len(matches) == 1 and same_value(parse_value(_value_text(lines, matches[0])), _normalise(value)):
            continue
        if matches:
            first = matches[0]
            replacements[first.start] = '%s = %s%s%s' % (format_key(key), wanted,
                                                         _trailing_comment(lines, first), newline)
            dropped.update(range(first.start + 1, first.end))
            for st in matches[1:]:
                dropped.update(range(st.start, st.end))
            changes[key] = 'updated'
        else:
            additions.append('%s = %s%s' % (format_key(key), wanted, newline))
            changes[key] = 'added'
    if not changes:
        return text, changes

    top_keys = [st for st in statements if st.kind == 'key' and st.table == ()]
    insert_at = top_keys[-1].end if top_keys else 0
    out = []
    for index, line in enumerate(lines):
        if index == insert_at and additions:
            out.extend(additions)
            additions = []
        if index in replacements:
            out.append(replacements[index])
        elif index not in dropped:
            if index == insert_at - 1 and not line.endswith('\n'):
                line += newline
            out.append(line)
    out.extend(additions)
    if insert_at == 0 and top_keys == [] and len(out) > len(settings) and lines:
        # New keys at the top of a document that starts with tables: keep a blank line between.
        position = len([c for c in changes.values() if c == 'added'])
        if out[position].strip():
            out.insert(position, newline)
    return ''.join(out), changes


def _trailing_comment(lines, st):
    """Keep an inline comment of a one-line statement when its value is rewritten."""
    if st.end - st.start != 1:
        return ''
    line = lines[st.start].rstrip('\r\n')
    value = _value_text([line], Statement('key', 0, 1))
    position = _comment_start(value)
    return '  ' + value[position:].strip() if position >= 0 else ''


def _comment_start(value):
    index = 0
    while index < len(value):
        char = value[index]
        if char in '"\'':
            end = _string_end(value, index, char)
            if end < 0:
                return -1
            index = end + 1
            continue
        if char == '#':
            return index
        index += 1
    return -1


def format_key(key):
    return key if BARE_KEY.match(key) else _basic_string(key)


def format_value(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return 'nan'
        if math.isinf(value):
            return 'inf' if value > 0 else '-inf'
        return repr(value)
    if isinstance(value, str):
        return _basic_string(value)
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(format_value(item) for item in value) + ']'
    if isinstance(value, dict):
        return '{ ' + ', '.join('%s = %s' % (format_key(k), format_value(v)) for k, v in value.items()) + ' }'
    raise TomlEditError('values of type %s cannot be written to config.toml' % type(value).__name__)


def _basic_string(text):
    # JSON string escapes are all valid TOML escapes; TOML also forbids a raw DEL.
    return json.dumps(text, ensure_ascii=False).replace('\x7f', '\\u007F')


def same_value(left, right):
    """Equality as TOML sees it: 1, 1.0 and true are three different values, and nan is nan."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float) and math.isnan(left):
        return math.isnan(right)
    if isinstance(left, list):
        return len(left) == len(right) and all(same_value(a, b) for a, b in zip(left, right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same_value(left[k], right[k]) for k in left)
    return left == right


def _normalise(value):
    if isinstance(value, tuple):
        return [_normalise(item) for item in value]
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    if isinstance(value, dict):
        return dict((k, _normalise(v)) for k, v in value.items())
    return value


# -- a small value reader, for Pythons without tomllib ------------------------------------------

def parse_value(text):
    """Python value of a TOML value (with an optional trailing comment), or _UNPARSED."""
    if _toml is not None:
        try:
            return _toml.loads('v = ' + text.strip() + '\n')['v']
        except Exception:
            return _UNPARSED
    try:
        value, end = _value_at(text, 0, 0)
    except (ValueError, IndexError):
        return _UNPARSED
    rest = text[end:].strip()
    if rest and not rest.startswith('#'):
        return _UNPARSED
    return value


_ESCAPES = {'b': '\b', 't': '\t', 'n': '\n', 'f': '\f', 'r': '\r', '"': '"', '\\': '\\', 'e': '\x1b'}


def _parse_simple_string(raw):
    value, end = _value_at(raw, 0, 0)
    if raw[end:].strip():
        raise TomlEditError('unexpected text after a quoted key')
    return value


# The reader works on positions in one text and returns (value, position after it): slicing off
# the rest after every item would copy a long array once per item.
_SPACE = re.compile(r'[ \t\r\n]*')
_SPACE_AND_COMMENTS = re.compile(r'(?:[ \t\r\n]+|#[^\n]*)*')
_BOOLEAN = re.compile(r'(true|false)(?![A-Za-z0-9_-])')
_SCALAR_TOKEN = re.compile(r'[^\s,\]}#]+')


def _value_at(text, pos, depth):
    """The TOML value at text[pos:] (after blanks) and the position after it; `depth` is how many
    arrays and inline tables hold it (the reader recurses, so the depth is capped here too)."""
    pos = _SPACE.match(text, pos).end()
    for multi in ('"""', "'''"):
        if text.startswith(multi, pos):
            return _multiline_string_at(text, pos, multi)
    if text.startswith('"', pos):
        end = _string_end(text, pos, '"')
        if end < 0:
            raise ValueError('unterminated string')
        return _unescape(text[pos + 1:end]), end + 1
    if text.startswith("'", pos):
        end = text.index("'", pos + 1)
        return text[pos + 1:end], end + 1
    if text.startswith('[', pos) or text.startswith('{', pos):
        if depth >= MAX_NESTING:
            raise ValueError('arrays and inline tables nested too deeply')
        read = _array_at if text[pos] == '[' else _inline_table_at
        return read(text, pos + 1, depth + 1)
    match = _BOOLEAN.match(text, pos)
    if match:
        return match.group(1) == 'true', match.end()
    match = _SCALAR_TOKEN.match(text, pos)
    if not match:
        raise ValueError('no value')
    return _scalar(match.group(0)), match.end()


def _multiline_string_at(text, pos, multi):
    close = _closing_quotes(text, pos + 3, multi)
    if close < 0:
        raise ValueError('unterminated string')
    body = text[pos + 3:close]
    if body.startswith('\r\n'):
        body = body[2:]
    elif body.startswith('\n'):
        body = body[1:]
    body = body.replace('\r\n', '\n')  # as tomllib reads a CRLF document
    if multi == '"""':
        body = _unescape(re.sub(r'\\[ \t]*\r?\n\s*', '', body))
    return body, close + 3


def _array_at(text, pos, depth):
    items = []
    while True:
        pos = _SPACE_AND_COMMENTS.match(text, pos).end()
        if text.startswith(']', pos):
            return items, pos + 1
        item, pos = _value_at(text, pos, depth)
        items.append(item)
        pos = _SPACE_AND_COMMENTS.match(text, pos).end()
        if text.startswith(',', pos):
            pos += 1
        elif not text.startswith(']', pos):
            raise ValueError('bad array')


def _inline_table_at(text, pos, depth):
    table = {}
    while True:
        pos = _BLANKS.match(text, pos).end()
        if text.startswith('}', pos):
            return table, pos + 1
        path, pos = _parse_dotted_at(text, pos, 0, '=')
        item, pos = _value_at(text, pos, depth)
        table['.'.join(path)] = item
        pos = _BLANKS.match(text, pos).end()
        if text.startswith(',', pos):
            pos += 1


def _scalar(token):
    clean = token.replace('_', '')
    for prefix, base in (('0x', 16), ('0o', 8), ('0b', 2)):
        if clean.startswith(prefix):
            return int(clean[2:], base)
    if re.match(r'^[+-]?\d+$', clean):
        return int(clean)
    if clean in ('inf', '+inf', '-inf', 'nan', '+nan', '-nan'):
        return float(clean)
    if re.match(r'^[+-]?(\d+)(\.\d+)?([eE][+-]?\d+)?$', clean):
        return float(clean)
    if clean[:1].isdigit():
        return token  # dates and times: compared as written
    # A bare word is not a TOML value (`store = file` must be "file"); tomllib refuses it too.
    raise ValueError('not a TOML value')


# One step per escape, never one per character of the string.
_ESCAPE = re.compile(r'\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|x[0-9A-Fa-f]{2}|[\s\S]?)')


def _unescape(body):
    return _ESCAPE.sub(_unescape_one, body)


def _unescape_one(match):
    code = match.group(1)
    if len(code) > 1:
        return chr(int(code[1:], 16))  # ValueError beyond U+10FFFF
    if code in _ESCAPES:
        return _ESCAPES[code]
    raise ValueError('bad escape')
