"""Each integration target runs through real ansible-playbook at -vvvv with --diff.

The targets assert the module behaviour (check -> run -> check -> run, files, the real Codex
CLI's verdict); these tests make the inputs, count what reached the loopback backend, and the
workspace fixture fails the test if any secret leaked into an output or a loose file.
"""

import datetime
import json
import secrets

from support import fake_credentials


def _bad_seeds(space):
    """Seeds that must each fail validation and write nothing."""
    good, tokens = fake_credentials.chatgpt_seed()
    space.remember(tokens)
    broken_id = json.loads(json.dumps(good))
    broken_id['tokens']['id_token'] = 'not-a-jwt'
    no_refresh = json.loads(json.dumps(good))
    no_refresh['tokens']['refresh_token'] = ''
    bad_time = json.loads(json.dumps(good))
    bad_time['last_refresh'] = '2025-01-01 10:00:00'
    api_key_mode = json.loads(json.dumps(good))
    api_key_mode['auth_mode'] = 'api_key'
    text = fake_credentials.dumps(good)
    return [
        space.seed_file('bad-truncated', text=text[:len(text) // 2]),
        space.seed_file('bad-empty', text=''),
        space.seed_file('bad-array', text='[1, 2]'),
        space.seed_file('bad-id-token', broken_id),
        space.seed_file('bad-no-refresh', no_refresh),
        space.seed_file('bad-last-refresh', bad_time),
        space.seed_file('bad-api-key-mode', api_key_mode),
    ]


def test_codex_auth_seed(workspace):
    week_ago = fake_credentials.now() - datetime.timedelta(days=2)
    seeds = {
        'chatgpt': workspace.chatgpt_seed('chatgpt', last_refresh=week_ago),
        'chatgpt_newer': workspace.chatgpt_seed('chatgpt-newer'),
        'apikey': workspace.apikey_seed('apikey'),
        'bad': _bad_seeds(workspace),
    }
    workspace.play('codex_auth_seed', {'seeds': seeds})


def test_codex_config(workspace):
    workspace.play('codex_config', {'seeds': {'chatgpt': workspace.chatgpt_seed('chatgpt')}})


def test_codex_auth_verify(workspace):
    doc, tokens = fake_credentials.chatgpt_seed()
    workspace.remember(tokens)
    doc['tokens']['refresh_token'] = ''
    seeds = {'chatgpt': workspace.chatgpt_seed('chatgpt'), 'no_refresh': workspace.seed_file('no-refresh', doc)}
    salt = 'salt-' + secrets.token_hex(8)
    workspace.remember([salt])
    workspace.play('codex_auth_verify', {'seeds': seeds, 'salt': salt})


def test_codex_access_token_login(workspace, backend):
    good = fake_credentials.personal_access_token()
    rejected = fake_credentials.personal_access_token()
    workspace.remember([good, rejected])
    backend.allow_access_token(good)
    tokens = {'good': workspace.seed_file('good-token', text=good),
              'rejected': workspace.seed_file('rejected-token', text=rejected)}
    before = backend.count('/whoami')
    workspace.play('codex_access_token_login', {'tokens': tokens})
    # One login, one `codex login status`, one rejected login: the second and the check-mode
    # runs never reached the network, because the stored token was recognised locally.
    assert backend.count('/whoami') - before == 3


def test_modules_on_target_python39(workspace):
    """Python 3.9 has no tomllib: the config editor's own reader and the rest of module_utils run."""
    from support.workspace import python39  # pylint: disable=import-outside-toplevel
    interpreter = python39()
    seeds = {'chatgpt': workspace.chatgpt_seed('chatgpt')}
    workspace.play('codex_config', {'seeds': seeds}, interpreter=interpreter)
    doc, tokens = fake_credentials.chatgpt_seed()
    workspace.remember(tokens)
    doc['tokens']['refresh_token'] = ''
    seeds['no_refresh'] = workspace.seed_file('no-refresh', doc)
    workspace.play('codex_auth_verify', {'seeds': seeds, 'salt': 'not-secret-salt'}, interpreter=interpreter)
