"""Obviously fake Codex credentials for tests and the demo.

Every secret carries a recognisable canary (`FAKE`, the kind, and a random tag), so leak checks
can search any output for the exact strings. Nothing here is a real credential.
"""

import base64
import datetime
import json
import secrets

AUTH_CLAIMS = 'https://api.openai.com/auth'


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def make_jwt(claims, header=None):
    header = header or {'alg': 'RS256', 'typ': 'JWT', 'kid': 'fake'}
    signature = 'FAKESIG' + secrets.token_hex(8)
    return '.'.join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()),
                     b64url(signature.encode())])


def rfc3339(moment):
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def chatgpt_seed(tag=None, account_id='acct-fake-0001', user_id='user-fake-0001', plan='enterprise',
                 last_refresh=None, access_expires_in=datetime.timedelta(days=10), email='ci@example.invalid'):
    """(document, secrets) for a ChatGPT-managed auth.json."""
    tag = tag or secrets.token_hex(6)
    moment = now()
    refresh = last_refresh if last_refresh is not None else moment
    id_token = make_jwt({'email': email, 'exp': int((moment + datetime.timedelta(hours=1)).timestamp()),
                         AUTH_CLAIMS: {'chatgpt_plan_type': plan, 'chatgpt_user_id': user_id,
                                       'chatgpt_account_id': account_id},
                         'canary': 'FAKE-ID-%s' % tag})
    access_token = make_jwt({'exp': int((moment + access_expires_in).timestamp()), 'canary': 'FAKE-AT-%s' % tag,
                             AUTH_CLAIMS: {'chatgpt_account_id': account_id}})
    refresh_token = 'rt-FAKE-%s-%s' % (tag, secrets.token_hex(16))
    doc = {
        'auth_mode': 'chatgpt',
        'OPENAI_API_KEY': None,
        'tokens': {'id_token': id_token, 'access_token': access_token, 'refresh_token': refresh_token,
                   'account_id': account_id},
        'last_refresh': rfc3339(refresh),
    }
    return doc, [id_token, access_token, refresh_token]


def apikey_seed(tag=None):
    tag = tag or secrets.token_hex(6)
    key = 'sk-proj-FAKE-%s-%s' % (tag, secrets.token_hex(12))
    return {'auth_mode': 'apikey', 'OPENAI_API_KEY': key}, [key]


def personal_access_token(tag=None):
    return 'at-FAKE-%s-%s' % (tag or secrets.token_hex(6), secrets.token_hex(16))


def dumps(doc):
    return json.dumps(doc, indent=2) + '\n'
