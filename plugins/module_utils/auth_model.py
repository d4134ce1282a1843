# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The auth.json model: parse it, resolve its auth mode as Codex does, read JWT claims.

Private to this collection. Everything here answers with facts about credentials (booleans,
timestamps, non-secret claims, short salted fingerprints) and never with a credential itself, so
callers can return any summary it builds without a no_log review.
"""

import base64
import binascii
import datetime
import hashlib
import hmac
import itertools
import json
import re

from ansible_collections.codexops.runner.plugins.module_utils import errors

KNOWN_AUTH_MODES = (
    'apikey', 'chatgpt', 'chatgptAuthTokens', 'callerProvided', 'agentIdentity',
    'personalAccessToken', 'bedrockApiKey', 'bedrockAccessKeys',
)
# Modes whose credential is the refreshable `tokens` object.
TOKEN_MODES = ('chatgpt', 'chatgptAuthTokens')
MAX_AUTH_BYTES = 1024 * 1024
# The runner user writes auth.json and root parses it (and the JWT payloads inside it), so the
# structure is measured before json.loads runs. A real auth.json nests two levels and a JWT payload
# three or four; 64 is generous, and keeps json.loads, json.dumps and every walk of the document
# far from Python's recursion limit (about 1000 frames; a recursive walk failed at 450 levels).
MAX_JSON_DEPTH = 64
# Python before 3.9.14 / 3.10.7 converts a long integer in quadratic time (a million digits: 4 s);
# newer Pythons refuse more than 4300 digits on their own. A real file has at most ten.
MAX_JSON_NUMBER_DIGITS = 4300
DEFAULT_FINGERPRINT_SALT = 'codexops.runner'
# Codex refreshes proactively this long before the access token expires.
REFRESH_MARGIN = datetime.timedelta(minutes=5)

# Fields of Codex's auth.json structs: Codex refuses a file that repeats one of them, or whose value
# holds an invalid \u escape (a lone UTF-16 surrogate); unknown fields are ignored, as Codex does.
_FILE_FIELDS = ('auth_mode', 'OPENAI_API_KEY', 'tokens', 'last_refresh', 'agent_identity', 'personal_access_token')
_TOKEN_FIELDS = ('id_token', 'access_token', 'refresh_token', 'account_id')

_AUTH_CLAIMS = 'https://api.openai.com/auth'
_PROFILE_CLAIMS = 'https://api.openai.com/profile'
_JWT_SEGMENT = re.compile(r'^[A-Za-z0-9_-]+$')
# chrono's DateTime<Utc> FromStr: RFC 3339 with 'T' or a space, an offset is mandatory.
_RFC3339 = re.compile(
    r'^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$')


# JSON strings, each to be replaced by one '"' before brackets and digits are counted. The body
# never fails to match (an unterminated string runs to the end), so nothing backtracks.
_JSON_STRING = re.compile(r'"(?:[^"\\]+|\\[\s\S]?)*"?')
_NOT_BRACKET = re.compile(r'[^\[\]{}]+')
_BRACKET_STEP = {'[': 1, '{': 1, ']': -1, '}': -1}
# A match starts only where no digit precedes it, so each run of digits is scanned once.
_LONG_NUMBER = re.compile(r'(?<![0-9])[0-9]{%d}' % (MAX_JSON_NUMBER_DIGITS + 1))


def problem(code, message):
    return {'code': code, 'message': message}


class AuthFileError(errors.CodexOpsError):
    """auth.json content that Codex cannot load at all; the code is a verify problem code."""

    def __init__(self, code, message):
        super(AuthFileError, self).__init__(message, code)

    def as_problem(self):
        return problem(self.code, self.message)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def isoformat(moment):
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def parse_rfc3339(value):
    """Return an aware datetime, or None when Codex would refuse the timestamp."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or '0')[:6].ljust(6, '0'))
    if int(second) == 60:
        # chrono accepts a leap second (it keeps it as :59 plus a second of nanoseconds).
        second, micro = 59, 999999
    try:
        if offset in ('Z', 'z'):
            tz = datetime.timezone.utc
        else:
            # chrono refuses offsets like +24:00 or +00:60; timezone() would raise on the first.
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            if hours > 23 or minutes > 59:
                return None
            sign = 1 if offset[0] == '+' else -1
            tz = datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))
        return datetime.datetime(int(year), int(month), int(day), int(hour), int(minute),
                                 int(second), micro, tzinfo=tz)
    except ValueError:
        return None


def json_bounds_problem(text):
    """None when json.loads may run on text, else which limit it breaks (never its content).
    Linear, and made of regular expressions and str.count: no Python loop per character."""
    code = _JSON_STRING.sub('"', text)
    if _nested_too_deep(code):
        return 'arrays or objects are nested deeper than the limit of %d' % MAX_JSON_DEPTH
    if _LONG_NUMBER.search(code):
        return 'a number is longer than the limit of %d digits' % MAX_JSON_NUMBER_DIGITS
    return None


def _nested_too_deep(code):
    if code.count('[') + code.count('{') <= MAX_JSON_DEPTH:
        return False  # too few openers to get there
    brackets = _NOT_BRACKET.sub('', code)
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets))) > MAX_JSON_DEPTH


def decode_jwt_claims(token):
    """Claims of a JWT the way Codex reads them: no signature check, three non-empty parts,
    an unpadded base64url JSON object as payload. None when Codex would refuse it."""
    if not isinstance(token, str):
        return None
    parts = token.split('.')
    if len(parts) != 3 or not all(_JWT_SEGMENT.match(part) for part in parts):
        return None
    payload = parts[1]
    try:
        text = base64.urlsafe_b64decode(payload + '=' * (-len(payload) % 4)).decode('utf-8')
        if json_bounds_problem(text):
            return None
        claims = json.loads(text, parse_constant=_refuse_constant)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(claims, dict) or has_lone_surrogate(claims):
        return None
    return claims


class _NotJson(ValueError):
    pass


def _refuse_constant(name):
    # Python's json reads NaN and Infinity; they are not JSON, and Codex refuses them.
    raise _NotJson('%s is not a JSON value' % name)


class _JsonObject(dict):
    """A JSON object that remembers the keys it held more than once."""
    duplicates = frozenset()


def _json_object(pairs):
    # Called for every object in the file: a plain dict unless a key repeats (the common case
    # stays cheap when an auth.json holds hundreds of thousands of objects).
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        obj = _JsonObject(obj)
        obj.duplicates = frozenset(key for key, _value in pairs if key in seen or seen.add(key))
    return obj


def has_lone_surrogate(value):
    """True for text holding a lone UTF-16 surrogate (from a \\ud800 escape): not valid Unicode.
    Nested lists and dicts are walked with a list of pending items, not by recursion, so that no
    nesting can raise RecursionError here."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode('utf-8')
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def fingerprint(secret, salt=None):
    """A short salted SHA-256 of a secret: equal secrets give equal fingerprints across a fleet
    that shares the salt, and nothing about the secret can be read back from it."""
    if not secret:
        return None
    # surrogatepass: a salt given as a module option may hold a lone surrogate; hash it, never fail.
    key = (salt or DEFAULT_FINGERPRINT_SALT).encode('utf-8', 'surrogatepass')
    return hmac.new(key, secret.encode('utf-8', 'surrogatepass'), hashlib.sha256).hexdigest()[:16]


def load_document(data):
    """bytes -> dict, or AuthFileError(auth_not_json / auth_too_large)."""
    if len(data) > MAX_AUTH_BYTES:
        raise AuthFileError('auth_too_large', 'auth.json is larger than %d bytes; a real one is a few KiB.'
                            % MAX_AUTH_BYTES)
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        raise AuthFileError('auth_not_json', 'auth.json is not UTF-8 text.')
    if not text.strip():
        raise AuthFileError('auth_not_json', 'auth.json is empty.')
    reason = json_bounds_problem(text)
    if reason:
        raise AuthFileError('auth_not_json', 'auth.json was not parsed: %s; a real one is a small, flat JSON '
                            'object.' % reason)
    try:
        doc = json.loads(text, object_pairs_hook=_json_object, parse_constant=_refuse_constant)
    except _NotJson:
        raise AuthFileError('auth_not_json', 'auth.json is not valid JSON (NaN and Infinity are not JSON numbers).')
    except RecursionError:
        raise AuthFileError('auth_not_json', 'auth.json nests arrays or objects too deeply to be an auth.json.')
    except ValueError as exc:
        # The position is useful, the excerpt json would quote is not: it may hold a token.
        raise AuthFileError('auth_not_json', 'auth.json is not valid JSON (line %d, column %d).'
                            % (getattr(exc, 'lineno', 0), getattr(exc, 'colno', 0)))
    if not isinstance(doc, dict):
        raise AuthFileError('auth_not_json', 'auth.json must hold a JSON object, found a %s.'
                            % type(doc).__name__)
    _check_fields(doc)
    return doc


def _check_fields(doc):
    """Codex refuses a repeated field and invalid text in a field it reads (it ignores the others)."""
    tokens = doc.get('tokens')
    token_fields = tokens if isinstance(tokens, dict) else {}
    repeated = [key for key in _FILE_FIELDS if key in getattr(doc, 'duplicates', ())]
    repeated += ['tokens.%s' % key for key in _TOKEN_FIELDS if key in getattr(token_fields, 'duplicates', ())]
    if repeated:
        raise AuthFileError('auth_invalid', 'auth.json repeats the field(s) %s; Codex refuses to load it.'
                            % ', '.join(repeated))
    values = [doc[key] for key in _FILE_FIELDS if key in doc and key != 'tokens']
    values += [token_fields[key] for key in _TOKEN_FIELDS if key in token_fields]
    if not isinstance(tokens, dict) and tokens is not None:
        values.append(tokens)
    if any(has_lone_surrogate(value) for value in values):
        raise AuthFileError('auth_not_json', 'auth.json holds an invalid \\u escape (a lone UTF-16 surrogate); '
                            'Codex cannot load it.')


def _nonempty_str(value):
    return isinstance(value, str) and value != ''


def resolve_auth_mode(doc):
    """The mode Codex would use, or AuthFileError(auth_mode_invalid)."""
    declared = doc.get('auth_mode')
    if declared is not None:
        if declared not in KNOWN_AUTH_MODES:
            raise AuthFileError('auth_mode_invalid', 'auth_mode is not one Codex knows; expected one of: %s.'
                                % ', '.join(KNOWN_AUTH_MODES))
        return declared
    if doc.get('personal_access_token') is not None:
        return 'personalAccessToken'
    if doc.get('OPENAI_API_KEY') is not None:
        return 'apikey'
    return 'chatgpt'


def _check_types(doc):
    """Shape errors that make Codex refuse to load the file. Returns the id_token's claims (None
    without tokens), so that the token is decoded once."""
    for key in ('OPENAI_API_KEY', 'personal_access_token', 'agent_identity'):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise AuthFileError('auth_invalid', '%s must be a string or null.' % key)
    tokens = doc.get('tokens')
    if tokens is None:
        return None
    if not isinstance(tokens, dict):
        raise AuthFileError('auth_invalid', 'tokens must be a JSON object.')
    for key in ('access_token', 'refresh_token'):
        if key in tokens and not isinstance(tokens[key], str):
            raise AuthFileError('auth_invalid', 'tokens.%s must be a string.' % key)
    if 'access_token' not in tokens:
        raise AuthFileError('auth_invalid', 'tokens has no access_token field.')
    if tokens.get('account_id') is not None and not isinstance(tokens['account_id'], str):
        raise AuthFileError('auth_invalid', 'tokens.account_id must be a string or null.')
    claims = decode_jwt_claims(tokens.get('id_token'))
    if claims is None:
        raise AuthFileError('id_token_invalid', 'tokens.id_token is not a JWT Codex can read '
                            '(three non-empty base64url parts with a JSON object payload).')
    return claims


class AuthFile:
    """A parsed auth.json. Attributes are facts; the secrets stay in `_doc`."""

    def __init__(self, data):
        self._doc = load_document(data)
        self.mode = resolve_auth_mode(self._doc)
        id_claims = _check_types(self._doc)
        self.last_refresh = None
        raw_refresh = self._doc.get('last_refresh')
        if raw_refresh is not None:
            self.last_refresh = parse_rfc3339(raw_refresh)
            if self.last_refresh is None:
                raise AuthFileError('last_refresh_invalid', 'last_refresh is not an RFC 3339 timestamp with a '
                                    'time zone (e.g. 2026-11-21T10:22:00Z).')
        tokens = self._doc.get('tokens') or {}
        self._tokens = tokens
        self.id_claims = id_claims or {}
        self.access_claims = decode_jwt_claims(tokens.get('access_token') or self._doc.get('agent_identity')) or {}

    # -- facts ------------------------------------------------------------------------------
    @property
    def has_refresh_token(self):
        return _nonempty_str(self._tokens.get('refresh_token'))

    @property
    def has_id_token(self):
        return _nonempty_str(self._tokens.get('id_token'))

    @property
    def has_api_key(self):
        return _nonempty_str(self._doc.get('OPENAI_API_KEY'))

    @property
    def has_access_token(self):
        return any(_nonempty_str(value) for value in (
            self._tokens.get('access_token'), self._doc.get('personal_access_token'),
            self._doc.get('agent_identity')))

    def _auth_claim(self, name):
        """A string claim of the id_token's auth section, or None: claims are whatever JSON the
        token holds, and a list or an object where a string belongs must not reach a summary."""
        auth = self.id_claims.get(_AUTH_CLAIMS)
        value = auth.get(name) if isinstance(auth, dict) else None
        return value if isinstance(value, str) else None

    @property
    def account_id(self):
        return self._tokens.get('account_id') or self._auth_claim('chatgpt_account_id')

    @property
    def user_id(self):
        return self._auth_claim('chatgpt_user_id') or self._auth_claim('user_id')

    @property
    def plan_type(self):
        return self._auth_claim('chatgpt_plan_type')

    @property
    def access_token_expires_at(self):
        exp = self.access_claims.get('exp')
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            return None
        try:
            return datetime.datetime.fromtimestamp(exp, datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None

    def credential_problems(self, allowed_modes=None, require_refresh_token=True):
        """Problems that make this file unusable for the given policy (empty when usable)."""
        found = []
        if allowed_modes is not None and self.mode not in allowed_modes:
            found.append(problem('auth_mode_unexpected', 'auth mode is %s, but only %s is allowed here.'
                                 % (self.mode, ', '.join(allowed_modes))))
        if self.mode in TOKEN_MODES:
            if require_refresh_token and not self.has_refresh_token:
                found.append(problem('refresh_token_missing', 'ChatGPT auth without a refresh token cannot '
                                     'be refreshed; seed it again from a trusted machine.'))
        elif self.mode == 'apikey' and not self.has_api_key:
            found.append(problem('credential_missing', 'auth mode is apikey but OPENAI_API_KEY is empty.'))
        elif self.mode == 'personalAccessToken' and not _nonempty_str(self._doc.get('personal_access_token')):
            found.append(problem('credential_missing', 'auth mode is personalAccessToken but the token is empty.'))
        elif self.mode == 'agentIdentity' and not _nonempty_str(self._doc.get('agent_identity')):
            found.append(problem('credential_missing', 'auth mode is agentIdentity but agent_identity is empty.'))
        return found

    def refresh_token_fingerprint(self, salt=None):
        return fingerprint(self._tokens.get('refresh_token'), salt)

    def refresh_token_digest(self):
        """The full SHA-256 of the refresh token (None without one): equal for two copies of one token, for
        comparing seeds on one host without keeping or showing the token."""
        token = self._tokens.get('refresh_token')
        if not _nonempty_str(token):
            return None
        return hashlib.sha256(token.encode('utf-8', 'surrogatepass')).hexdigest()

    def identity_facts(self, salt=None):
        """What tells two copies of a credential apart, secret-free: mode, last refresh, fingerprint."""
        return {'auth_mode': self.mode,
                'last_refresh': isoformat(self.last_refresh) if self.last_refresh else None,
                'refresh_token_fingerprint': self.refresh_token_fingerprint(salt)}

    def credential_identity(self):
        """Who these credentials are, as a digest. Refreshing does not change it (the refresh
        token rotates, the account does not), so `replace: different` never undoes a refresh."""
        if self.mode in TOKEN_MODES:
            parts = ('chatgpt', self.account_id or '', self.user_id or '')
        else:
            secret = {
                'apikey': self._doc.get('OPENAI_API_KEY'),
                'personalAccessToken': self._doc.get('personal_access_token'),
                'agentIdentity': self._doc.get('agent_identity'),
            }.get(self.mode)
            parts = (self.mode, secret or json.dumps(self._doc, sort_keys=True))
        return hashlib.sha256('\0'.join(parts).encode('utf-8')).hexdigest()

    def stored_access_token_matches(self, token):
        """Constant-time check that this file already holds `token` (access-token login)."""
        stored = self._doc.get('personal_access_token') or self._doc.get('agent_identity') or ''
        return hmac.compare_digest(stored.encode('utf-8'), token.encode('utf-8'))

    def summary(self, now=None, max_age_days=8, salt=None):
        """The secret-free facts codex_auth_verify returns, plus staleness warnings."""
        now = now or utcnow()
        expires = self.access_token_expires_at
        age_days = None
        if self.last_refresh is not None:
            age_days = round((now - self.last_refresh).total_seconds() / 86400.0, 2)
        warnings = []
        refreshable = self.mode in TOKEN_MODES
        expired = expires is not None and expires <= now
        too_old = age_days is not None and max_age_days is not None and age_days > max_age_days
        if refreshable and too_old:
            warnings.append(problem('stale', 'last refresh was %.1f days ago (more than %s); is the keepalive '
                                    'running?' % (age_days, max_age_days)))
        if expired:
            warnings.append(problem('access_token_expired', 'the access token expired at %s; Codex refreshes it '
                                    'on the next run if the refresh token still works.' % isoformat(expires)))
        facts = dict(self.identity_facts(salt), **{
            'age_days': age_days,
            'stale': bool(refreshable and (too_old or expired)),
            'has_access_token': self.has_access_token,
            'has_id_token': self.has_id_token,
            'has_refresh_token': self.has_refresh_token,
            'has_api_key': self.has_api_key,
            'access_token_expires_at': isoformat(expires) if expires else None,
            'account_id': self.account_id,
            'plan_type': self.plan_type,
        })
        return facts, warnings


def judge(data, allowed_modes=None, require_refresh_token=True):
    """(AuthFile, problems) for auth.json bytes: the one verdict on whether a file is usable, for
    seeds, the file on a runner and the store's copy alike. The AuthFile is None when Codex could
    not load the file at all; problems is empty when it is usable under the policy given."""
    try:
        parsed = AuthFile(data)
    except AuthFileError as exc:
        return None, [exc.as_problem()]
    return parsed, parsed.credential_problems(allowed_modes, require_refresh_token)


EMPTY_FACTS = {
    'auth_mode': None, 'last_refresh': None, 'age_days': None, 'stale': False,
    'has_access_token': False, 'has_id_token': False, 'has_refresh_token': False, 'has_api_key': False,
    'access_token_expires_at': None, 'account_id': None, 'plan_type': None,
    'refresh_token_fingerprint': None,
}
