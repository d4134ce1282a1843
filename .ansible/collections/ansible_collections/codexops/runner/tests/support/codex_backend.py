"""A loopback stand-in for the OpenAI endpoints Codex talks to about credentials.

Only what cannot run here is mocked, and it behaves like the real thing: the whoami endpoint used by
`codex login --with-access-token` (reached through CODEX_AUTHAPI_BASE_URL) answers 200 with the
account metadata for known personal access tokens and 401 otherwise. Every request is logged
with a fingerprint of the bearer token, never the token.
"""

import hashlib
import http.server
import json
import threading

WHOAMI_PATH = '/v1/user-auth-credential/whoami'


def token_fingerprint(token):
    return hashlib.sha256(token.encode()).hexdigest()[:12] if token else None


class CodexBackend:

    def __init__(self):
        self.access_tokens = {}   # token -> metadata
        self.requests = []        # (method, path, status, token fingerprint)
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self):
        return 'http://127.0.0.1:%d' % self._server.server_address[1]

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def allow_access_token(self, token, account_id='acct-fake-0001', plan='enterprise'):
        self.access_tokens[token] = {
            'email': None, 'chatgpt_user_id': 'user-fake-0001', 'chatgpt_account_id': account_id,
            'chatgpt_plan_type': plan, 'chatgpt_account_is_fedramp': False,
        }

    def revoke_access_token(self, token):
        self.access_tokens.pop(token, None)

    def count(self, path_suffix):
        with self._lock:
            return len([r for r in self.requests if r[1].endswith(path_suffix)])

    def _log(self, method, path, status, token):
        with self._lock:
            self.requests.append((method, path, status, token_fingerprint(token)))

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
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                token = self._bearer()
                if self.path.endswith(WHOAMI_PATH):
                    metadata = backend.access_tokens.get(token)
                    status = 200 if metadata else 401
                    backend._log('GET', self.path, status, token)
                    self._reply(status, metadata or {'error': {'code': 'invalid_token',
                                                               'message': 'unknown access token'}})
                    return
                backend._log('GET', self.path, 404, token)
                self._reply(404, {'error': {'code': 'not_found'}})

        return Handler
