"""A loopback stand-in for the OpenAI endpoints Codex talks to about credentials.

Only what cannot run here is mocked, and it behaves like the real thing:
- the token endpoint (Codex reaches it through CODEX_REFRESH_TOKEN_URL_OVERRIDE) takes
  `{"grant_type": "refresh_token", "refresh_token": ...}`, accepts each refresh token once, answers
  with new JWT id and access tokens (with `exp`) and a new refresh token, and refuses a token used
  before with 401 `refresh_token_reused`, a token of a revoked login with `refresh_token_invalidated`;
- the whoami endpoint used by `codex login --with-access-token` (reached through
  CODEX_AUTHAPI_BASE_URL) answers 200 with account metadata for known personal access tokens and
  401 otherwise.
A login can be made to fail the way the real endpoint fails (`fail_refresh`): 401 with
`refresh_token_expired` / `refresh_token_invalidated` / `refresh_token_reused`, a plain 401 without an
error code (`unauthorized`), or an answer that takes longer than Codex waits (`slow`).
- the ChatGPT backend (Codex reaches it through `chatgpt_base_url`, CHATGPT_PATH below): the
  workspace's cloud config bundle (`wham/config/bundle`, fetched before anything else on business,
  enterprise and edu plans), workspace routing (`wham/accounts/check`) and the model endpoint
  (`codex/responses`) answer 401 to an access token that is unknown, expired or of a revoked login, as
  the real backend does, so Codex walks its real unauthorized-recovery path (refresh, then report the
  refresh's own error); a valid access token gets an empty bundle, its account, and a one-word reply.
  Refreshed access tokens live `access_ttl` (an hour: longer than Codex's 5-minute refresh window, as
  the real ones).
Every request is logged with a fingerprint of the token, never the token.
"""

import datetime
import hashlib
import http.server
import json
import secrets
import threading

from support import fake_credentials

WHOAMI_PATH = '/v1/user-auth-credential/whoami'
TOKEN_PATH = '/oauth/token'
# Where `chatgpt_base_url` points (config.toml or `-c chatgpt_base_url=...`): CHATGPT_BASE_PATH
# appended to base_url. chatgpt_config() gives the config.toml line.
CHATGPT_BASE_PATH = '/backend-api/'
BUNDLE_PATH = '/wham/config/bundle'
ACCOUNTS_CHECK_PATH = '/wham/accounts/check'
RESPONSES_PATH = '/codex/responses'
# Plans whose logins load the workspace's cloud config bundle first (Codex: business-like, enterprise, edu).
BUNDLE_PLANS = ('business', 'team', 'enterprise', 'edu')
ERROR_MESSAGES = {
    'refresh_token_reused': 'refresh token was already used',
    'refresh_token_invalidated': 'refresh token was revoked',
    'refresh_token_expired': 'refresh token has expired',
}


def token_fingerprint(token):
    return hashlib.sha256(token.encode()).hexdigest()[:12] if token else None


class CodexBackend:

    def __init__(self, access_ttl=datetime.timedelta(hours=1)):
        # Refreshed access tokens must outlive Codex's 5-minute refresh window, as the real ones do: a
        # shorter one makes Codex refresh again within the same run, and several refreshes can race.
        if access_ttl <= datetime.timedelta(minutes=5):
            raise ValueError('refreshed access tokens must live longer than 5 minutes')
        self.access_tokens = {}   # token -> metadata
        self.requests = []        # (method, path, status, token fingerprint, outcome)
        self.access_ttl = access_ttl
        self.logins = {}          # login id -> {'current', 'used', 'revoked', 'account_id', 'user_id', 'plan'}
        self.revoke_family_on_reuse = True
        self.login_of = {}        # refresh token -> login id
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.slow_seconds = 90
        self.issued_access = {}   # access token -> (login id, exp as a unix time)
        self.down = False         # every ChatGPT backend path refuses (503), as when the network is gone
        self.routing = True       # see accounts_check()
        self._server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self):
        return 'http://127.0.0.1:%d' % self._server.server_address[1]

    @property
    def chatgpt_base_url(self):
        return self.base_url + CHATGPT_BASE_PATH

    def chatgpt_config(self):
        """The config.toml line that sends Codex's ChatGPT backend requests here."""
        return 'chatgpt_base_url = "%s"' % self.chatgpt_base_url

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def allow_access_token(self, token, account_id='acct-fake-0001', plan='enterprise'):
        self.access_tokens[token] = {
            'email': None, 'chatgpt_user_id': 'user-fake-0001', 'chatgpt_account_id': account_id,
            'chatgpt_plan_type': plan, 'chatgpt_account_is_fedramp': False,
        }

    def revoke_access_token(self, token):
        self.access_tokens.pop(token, None)

    def count(self, path_suffix, outcome=None):
        with self._lock:
            return len([r for r in self.requests if r[1].endswith(path_suffix)
                        and (outcome is None or r[4] == outcome)])

    def _log(self, method, path, status, token, outcome=None):
        with self._lock:
            self.requests.append((method, path, status, token_fingerprint(token), outcome))

    def log_lines(self):
        """The request log, for a test's report: never a token, only its fingerprint."""
        with self._lock:
            return ['%s %s -> %d %s (token %s)' % (method, path, status, outcome or '', fp)
                    for method, path, status, fp, outcome in self.requests]

    # -- ChatGPT logins ---------------------------------------------------------------------------
    def login(self, account_id='acct-fake-0001', user_id='user-fake-0001', plan='plus', access_ttl=None,
              last_refresh=None):
        """A new ChatGPT login as a trusted machine would have it: (auth.json document, secrets)."""
        login_id = secrets.token_hex(4)
        tokens = self._issue(login_id, account_id, user_id, plan, access_ttl)
        self.remember_access(tokens['access_token'], login_id, access_ttl)
        with self._lock:
            self.logins[login_id] = {'current': tokens['refresh_token'], 'used': set(), 'revoked': False,
                                     'account_id': account_id, 'user_id': user_id, 'plan': plan}
            self.login_of[tokens['refresh_token']] = login_id
        moment = last_refresh or fake_credentials.now()
        doc = {'auth_mode': 'chatgpt', 'OPENAI_API_KEY': None,
               'tokens': dict(tokens, account_id=account_id), 'last_refresh': fake_credentials.rfc3339(moment)}
        return doc, [tokens['id_token'], tokens['access_token'], tokens['refresh_token']]

    def fail_refresh(self, refresh_token, failure, seconds=None):
        """Make every refresh of the login `refresh_token` belongs to fail: `failure` is an error code
        of ERROR_MESSAGES, 'unauthorized' (401 without a code) or 'slow' (no answer for `seconds`,
        default `slow_seconds`, then 503); None makes it work again."""
        assert failure in FAILURES or failure is None, failure
        with self._lock:
            login = self.logins[self.login_of[refresh_token]]
            login['failure'] = failure
            login['slow'] = seconds if seconds is not None else self.slow_seconds

    def refresh_elsewhere(self, refresh_token):
        """Refresh `refresh_token` as another runner holding the same auth.json would: its copies are
        then refresh_token_reused. Returns the new tokens."""
        status, body, outcome, _delay = self._refresh(refresh_token)
        assert status == 200, outcome
        return body

    def revoke_login(self, refresh_token):
        with self._lock:
            self.logins[self.login_of[refresh_token]]['revoked'] = True

    def current_refresh_token(self, refresh_token):
        """The newest refresh token of the login `refresh_token` belongs to."""
        with self._lock:
            return self.logins[self.login_of[refresh_token]]['current']

    def accounts_check(self, login):
        """Workspace routing's answer, as the real backend gives it: the account with its
        `workspace_backend_origin` (https://chatgpt.com; Codex accepts only an https origin, which a
        loopback server cannot be, so the model request then goes there and fails offline, as the model
        call of every offline test does). `routing = False` lists no account instead (Codex then stops
        with "selected workspace missing from routing discovery")."""
        if not self.routing:
            return {'accounts': [], 'default_account_id': None}
        return {'accounts': [{'id': login['account_id'], 'workspace_backend_origin': 'https://chatgpt.com',
                              'account_routing_override': 'NO_CONSTRAINT'}],
                'default_account_id': login['account_id']}

    def remember_access(self, access_token, login_id, access_ttl=None):
        ttl = access_ttl if access_ttl is not None else self.access_ttl
        with self._lock:
            self.issued_access[access_token] = (login_id, (fake_credentials.now() + ttl).timestamp())

    def access_login(self, access_token):
        """The login a valid access token belongs to, else None (unknown, expired, login revoked)."""
        with self._lock:
            login_id, exp = self.issued_access.get(access_token, (None, 0))
            login = self.logins.get(login_id)
            if login is None or login['revoked'] or exp <= fake_credentials.now().timestamp():
                return None
            return login

    def _issue(self, login_id, account_id, user_id, plan, access_ttl=None):
        moment = fake_credentials.now()
        ttl = access_ttl if access_ttl is not None else self.access_ttl
        auth = {'chatgpt_plan_type': plan, 'chatgpt_user_id': user_id, 'chatgpt_account_id': account_id}
        tag = '%s-%s' % (login_id, secrets.token_hex(3))
        return {
            'id_token': fake_credentials.make_jwt({'email': 'ci@example.invalid', 'exp': int((moment + ttl).timestamp()),
                                                  fake_credentials.AUTH_CLAIMS: auth, 'canary': 'FAKE-ID-' + tag}),
            'access_token': fake_credentials.make_jwt({'exp': int((moment + ttl).timestamp()),
                                                      fake_credentials.AUTH_CLAIMS: auth,
                                                      'canary': 'FAKE-AT-' + tag}),
            'refresh_token': 'rt-FAKE-%s-%s' % (tag, secrets.token_hex(16)),
        }

    def _refresh(self, token):
        """(status, body, outcome, seconds to wait before answering) for one refresh request."""
        with self._lock:
            login_id = self.login_of.get(token)
            login = self.logins.get(login_id)
            if login is None:
                return 401, _error('refresh_token_invalidated'), 'unknown', 0
            failure = login.get('failure')
            if failure == 'slow':
                return 503, {'error': {'code': 'unavailable', 'message': 'try later'}}, 'slow', login['slow']
            if failure == 'unauthorized':
                return 401, {'error': {'message': 'Unauthorized'}}, 'unauthorized', 0
            if failure:
                return 401, _error(failure), failure, 0
            if token in login['used']:
                # Reuse means the token leaked: like the real server, revoke the whole login (token
                # family), so the runner that refreshed first is dead too from its next refresh on.
                login['revoked'] = login['revoked'] or self.revoke_family_on_reuse
                return 401, _error('refresh_token_reused'), 'refresh_token_reused', 0
            if login['revoked']:
                return 401, _error('refresh_token_invalidated'), 'refresh_token_invalidated', 0
            login['used'].add(token)
        tokens = self._issue(login_id, login['account_id'], login['user_id'], login['plan'])
        self.remember_access(tokens['access_token'], login_id)
        with self._lock:
            login['current'] = tokens['refresh_token']
            self.login_of[tokens['refresh_token']] = login_id
        return 200, tokens, 'rotated', 0

    def _handler_class(self):
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _bearer(self):
                value = self.headers.get('Authorization', '')
                return value[len('Bearer '):] if value.startswith('Bearer ') else None

            def _reply(self, status, body):
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header('Content-Type', 'application/json')
                    self.send_header('Content-Length', str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # Codex gave up on the request (its deadline, or the run was stopped)

            def do_POST(self):
                length = int(self.headers.get('Content-Length') or 0)
                try:
                    request = json.loads(self.rfile.read(length) or b'{}')
                except ValueError:
                    request = {}
                token = request.get('refresh_token')
                if self.path.endswith(TOKEN_PATH) and request.get('grant_type') == 'refresh_token':
                    status, body, outcome, delay = backend._refresh(token)
                    backend._log('POST', self.path, status, token, outcome)
                    if delay and backend._stopping.wait(delay):
                        return  # the server is stopping: no answer at all
                    try:
                        self._reply(status, body)
                    except OSError:
                        pass  # Codex gave up waiting and closed the connection
                    return
                if self.path.startswith(CHATGPT_BASE_PATH):
                    self._chatgpt('POST')
                    return
                backend._log('POST', self.path, 400, token, 'bad_request')
                self._reply(400, {'error': {'code': 'invalid_request', 'message': 'unsupported grant'}})

            def do_GET(self):
                token = self._bearer()
                if self.path.endswith(WHOAMI_PATH):
                    metadata = backend.access_tokens.get(token)
                    status = 200 if metadata else 401
                    backend._log('GET', self.path, status, token)
                    self._reply(status, metadata or {'error': {'code': 'invalid_token',
                                                               'message': 'unknown access token'}})
                    return
                if self.path.startswith(CHATGPT_BASE_PATH):
                    self._chatgpt('GET')
                    return
                backend._log('GET', self.path, 404, token)
                self._reply(404, {'error': {'code': 'not_found'}})

            def _chatgpt(self, method):
                """The ChatGPT backend: 401 for an access token that is not valid now, then per path."""
                path = self.path.split('?', 1)[0][len(CHATGPT_BASE_PATH) - 1:]
                token = self._bearer()
                if method == 'POST':
                    self.rfile.read(int(self.headers.get('Content-Length') or 0))
                if backend.down:
                    backend._log(method, self.path, 503, token, 'down')
                    self._reply(503, {'error': {'code': 'unavailable', 'message': 'try later'}})
                    return
                login = backend.access_login(token)
                if login is None:
                    backend._log(method, self.path, 401, token, 'access_unauthorized')
                    self._reply(401, {'error': {'code': 'token_expired', 'message': 'access token invalid or expired'}})
                    return
                if path == BUNDLE_PATH:
                    backend._log(method, self.path, 200, token, 'bundle')
                    self._reply(200, {'config_toml': {'enterprise_managed': []},
                                      'requirements_toml': {'enterprise_managed': []}})
                elif path == ACCOUNTS_CHECK_PATH:
                    backend._log(method, self.path, 200, token, 'accounts')
                    self._reply(200, backend.accounts_check(login))
                elif path == RESPONSES_PATH and method == 'POST':
                    backend._log(method, self.path, 200, token, 'responses')
                    self._stream_reply()
                else:
                    backend._log(method, self.path, 404, token)
                    self._reply(404, {'error': {'code': 'not_found'}})

            def _stream_reply(self):
                """A Responses API stream that answers OK (server-sent events)."""
                response_id = 'resp_fake_' + secrets.token_hex(4)
                message = {'type': 'message', 'id': 'msg_fake', 'role': 'assistant', 'status': 'completed',
                           'content': [{'type': 'output_text', 'text': 'OK', 'annotations': []}]}
                events = [
                    ('response.created', {'type': 'response.created', 'response': {'id': response_id}}),
                    ('response.output_item.done', {'type': 'response.output_item.done', 'output_index': 0,
                                                   'item': message}),
                    ('response.completed', {'type': 'response.completed', 'response': {
                        'id': response_id, 'usage': {'input_tokens': 1, 'input_tokens_details': None,
                                                     'output_tokens': 1, 'output_tokens_details': None,
                                                     'total_tokens': 2}}}),
                ]
                data = ''.join('event: %s\ndata: %s\n\n' % (name, json.dumps(body)) for name, body in events).encode()
                try:
                    self.send_response(200)
                    self.send_header('Content-Type', 'text/event-stream')
                    self.send_header('Content-Length', str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

        return Handler


FAILURES = tuple(ERROR_MESSAGES) + ('unauthorized', 'slow')


def _error(code):
    return {'error': {'code': code, 'message': ERROR_MESSAGES[code]}}
