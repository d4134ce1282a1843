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

import json
import math
import re

try:
    import tomllib as _toml
except ImportError:  # Python < 3.11 on the runner
    try:
        import tomli as _toml
    except ImportError:
        _toml = None

BARE_KEY = re.compile(r'^[A-Za-z0-9_-]+$')
_UNPARSED = object()


class TomlEditError(Exception):
    pass


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
    if _toml is not None:
        try:
            _toml.loads(text)
        except Exception as exc:  # tomllib.TOMLDecodeError, tomli's own; both subclass ValueError
            return _position_only(str(exc))
        return None
    try:
        parse_layout(text)
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
        path, value_pos = _parse_key(lines[index], index)
        end = _scan_value(lines, index, value_pos)
        statements.append(Statement('key', index, end, path=path, table=table))
        index = end
    return lines, statements


def _parse_header(stripped, index):
    array = stripped.startswith('[[')
    closing = ']]' if array else ']'
    body = stripped[2:] if array else stripped[1:]
    path, rest = _parse_dotted(body, index, closing)
    rest = rest.strip()
    if rest and not rest.startswith('#'):
        raise TomlEditError('unexpected text after the table header on line %d' % (index + 1))
    return path


def _parse_key(line, index):
    path, rest = _parse_dotted(line, index, '=')
    return path, len(line) - len(rest)


def _parse_dotted(text, index, terminator):
    """Parse `a."b".c` up to terminator; returns (path, text after terminator)."""
    parts = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in ' \t':
            pos += 1
        if pos < len(text) and text[pos] in '"\'':
            quote = text[pos]
            end = _string_end(text, pos, quote)
            if end < 0:
                raise TomlEditError('unterminated quoted key on line %d' % (index + 1))
            raw = text[pos:end + 1]
            parts.append(_parse_simple_string(raw))
            pos = end + 1
        else:
            match = re.match(r'[A-Za-z0-9_-]+', text[pos:])
            if not match:
                raise TomlEditError('expected a key on line %d' % (index + 1))
            parts.append(match.group(0))
            pos += match.end()
        while pos < len(text) and text[pos] in ' \t':
            pos += 1
        if text.startswith(terminator, pos):
            return tuple(parts), text[pos + len(terminator):]
        if pos < len(text) and text[pos] == '.':
            pos += 1
            continue
        raise TomlEditError('expected %r on line %d' % (terminator, index + 1))


def _string_end(text, pos, quote):
    """Index of the closing quote of a one-line string starting at pos, or -1."""
    index = pos + 1
    while index < len(text):
        char = text[index]
        if quote == '"' and char == '\\':
            index += 2
            continue
        if char == quote:
            return index
        if char == '\n':
            return -1
        index += 1
    return -1


def _scan_value(lines, index, pos):
    """Index of the line after the one where the value starting at (index, pos) ends."""
    depth = 0
    multiline = None
    line_no = index
    while line_no < len(lines):
        line = lines[line_no]
        while pos < len(line):
            if multiline:
                if multiline == '"""' and line[pos] == '\\':
                    pos += 2
                    continue
                if line.startswith(multiline, pos):
                    pos += 3
                    # Up to two more quotes may close the string ("""a"""" is legal).
                    while pos < len(line) and line[pos] == multiline[0]:
                        pos += 1
                    multiline = None
                    continue
                pos += 1
                continue
            char = line[pos]
            if char == '#':
                break
            if line.startswith('"""', pos) or line.startswith("'''", pos):
                multiline = line[pos:pos + 3]
                pos += 3
                continue
            if char in '"\'':
                end = _string_end(line, pos, char)
                if end < 0:
                    raise TomlEditError('unterminated string on line %d' % (line_no + 1))
                pos = end + 1
                continue
            if char in '[{':
                depth += 1
            elif char in ']}':
                depth -= 1
            pos += 1
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
    if _toml is not None:
        doc = _toml.loads(text)
        return dict((key, value) for key, value in doc.items() if not isinstance(value, dict))
    lines, statements = parse_layout(text)
    values = {}
    for st in statements:
        if st.kind == 'key' and st.table == () and len(st.path) == 1:
            value = parse_value(_value_text(lines, st))
            if value is not _UNPARSED:
                values[st.path[0]] = value
    return values


def tables_holding(text, key):
    """Names of tables that hold `key` directly: a top-level setting written in the wrong place."""
    _lines, statements = parse_layout(text)
    return ['.'.join(st.table) for st in statements
            if st.kind == 'key' and st.table != () and st.path == (key,)]


def _value_text(lines, st):
    text = ''.join(lines[st.start:st.end])
    _path, rest = _parse_dotted(text, st.start, '=')
    return rest


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
        value, rest = _read_value(text.strip())
    except (ValueError, IndexError):
        return _UNPARSED
    rest = rest.strip()
    if rest and not rest.startswith('#'):
        return _UNPARSED
    return value


_ESCAPES = {'b': '\b', 't': '\t', 'n': '\n', 'f': '\f', 'r': '\r', '"': '"', '\\': '\\', 'e': '\x1b'}


def _parse_simple_string(raw):
    value, rest = _read_value(raw)
    if rest.strip():
        raise TomlEditError('unexpected text after a quoted key')
    return value


def _read_value(text):
    text = text.lstrip(' \t\r\n')
    for multi in ('"""', "'''"):
        if text.startswith(multi):
            end = text.index(multi, 3)
            while text[end + 3:end + 4] == multi[0]:
                end += 1
            body = text[3:end]
            if body.startswith('\r\n'):
                body = body[2:]
            elif body.startswith('\n'):
                body = body[1:]
            body = body.replace('\r\n', '\n')  # as tomllib reads a CRLF document
            if multi == '"""':
                body = _unescape(re.sub(r'\\[ \t]*\r?\n\s*', '', body))
            return body, text[end + 3:]
    if text.startswith('"'):
        end = _string_end(text, 0, '"')
        if end < 0:
            raise ValueError('unterminated string')
        return _unescape(text[1:end]), text[end + 1:]
    if text.startswith("'"):
        end = text.index("'", 1)
        return text[1:end], text[end + 1:]
    if text.startswith('['):
        items, rest = [], text[1:]
        while True:
            rest = _skip_space_and_comments(rest)
            if rest.startswith(']'):
                return items, rest[1:]
            item, rest = _read_value(rest)
            items.append(item)
            rest = _skip_space_and_comments(rest)
            if rest.startswith(','):
                rest = rest[1:]
            elif not rest.startswith(']'):
                raise ValueError('bad array')
    if text.startswith('{'):
        table, rest = {}, text[1:]
        while True:
            rest = rest.lstrip(' \t')
            if rest.startswith('}'):
                return table, rest[1:]
            path, rest = _parse_dotted(rest, 0, '=')
            item, rest = _read_value(rest)
            table['.'.join(path)] = item
            rest = rest.lstrip(' \t')
            if rest.startswith(','):
                rest = rest[1:]
    match = re.match(r'(true|false)(?![A-Za-z0-9_-])', text)
    if match:
        return match.group(1) == 'true', text[match.end():]
    match = re.match(r'[^\s,\]}#]+', text)
    if not match:
        raise ValueError('no value')
    return _scalar(match.group(0)), text[match.end():]


def _skip_space_and_comments(text):
    while True:
        text = text.lstrip(' \t\r\n')
        if text.startswith('#'):
            newline = text.find('\n')
            text = '' if newline < 0 else text[newline + 1:]
            continue
        return text


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
    return token  # dates and times: compared as written


def _unescape(body):
    out = []
    index = 0
    while index < len(body):
        char = body[index]
        if char != '\\':
            out.append(char)
            index += 1
            continue
        code = body[index + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            index += 2
        elif code in 'uU':
            width = 4 if code == 'u' else 8
            out.append(chr(int(body[index + 2:index + 2 + width], 16)))
            index += 2 + width
        elif code == 'x':
            out.append(chr(int(body[index + 2:index + 4], 16)))
            index += 4
        else:
            raise ValueError('bad escape')
    return ''.join(out)
