# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The four modules, run in-process through main() with patch_module_args."""

import json
import os
import stat
import sys
import textwrap

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import access_login
from ansible_collections.codexops.runner.plugins.module_utils import codex_process
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status
from ansible_collections.codexops.runner.plugins.modules import codex_access_token_login
from ansible_collections.codexops.runner.plugins.modules import codex_auth_seed
from ansible_collections.codexops.runner.plugins.modules import codex_auth_verify
from ansible_collections.codexops.runner.plugins.modules import codex_config
from support import fake_credentials as fc
from support.codex import CODEX_VERSION
from support.module_run import run_module_main

FILE_STORE = 'cli_auth_credentials_store = "file"\n'


def run_module(module, args, capsys):
    """(exit code, result dict, raw stdout) of one module run."""
    return run_module_main(module, args, capsys)


def warning_text(result):
    # ansible-core 2.19 returns warnings as structured summaries, older versions as strings.
    return json.dumps(result.get('warnings', []))


def mode_of(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def assert_secret_free(text, secrets):
    for secret in secrets:
        assert secret not in text
        for part in secret.split('.'):
            if len(part) >= 16:
                assert part not in text


# -- codex_auth_seed ------------------------------------------------------------------------------

@pytest.fixture
def seed():
    doc, secrets = fc.chatgpt_seed(tag='module')
    return fc.dumps(doc), secrets


def test_seed_content_and_src_are_mutually_exclusive(tmp_path, capsys, seed):
    content, secrets = seed
    src = tmp_path / 'seed.json'
    src.write_text(content)
    rc, result, out = run_module(codex_auth_seed, {'codex_home': str(tmp_path / 'h'), 'content': content,
                                                   'src': str(src)}, capsys)
    assert rc == 1 and result['failed'] is True
    assert 'mutually exclusive' in result['msg']
    assert_secret_free(out, secrets)
    assert not (tmp_path / 'h').exists()


def test_seed_needs_content_or_src(tmp_path, capsys):
    rc, result, _out = run_module(codex_auth_seed, {'codex_home': str(tmp_path / 'h')}, capsys)
    assert rc == 1 and 'content' in result['msg'] and 'src' in result['msg']


def test_seed_created_then_kept(tmp_path, capsys, seed):
    content, secrets = seed
    home = tmp_path / '.codex'
    args = {'codex_home': str(home), 'content': content, 'require_file_store': False}
    rc, result, out = run_module(codex_auth_seed, args, capsys)
    assert rc == 0
    assert result['changed'] is True and result['action'] == 'created'
    assert result['auth']['healthy'] is True, result['auth']
    assert mode_of(home) == 0o700 and mode_of(home / 'auth.json') == 0o600
    assert (home / 'auth.json').read_text() == content
    assert 'diff' not in result
    assert_secret_free(out, secrets)

    rc, result, out = run_module(codex_auth_seed, args, capsys)
    assert rc == 0
    assert result['changed'] is False and result['action'] == 'kept'
    assert_secret_free(out, secrets)


def test_seed_content_as_dict(tmp_path, capsys):
    """Ansible may turn a templated JSON string into a dict; the module serializes it back."""
    doc, secrets = fc.chatgpt_seed(tag='dict')
    home = tmp_path / '.codex'
    args = {'codex_home': str(home), 'content': doc}
    rc, result, out = run_module(codex_auth_seed, args, capsys)
    assert rc == 0 and result['action'] == 'created'
    assert json.loads((home / 'auth.json').read_text()) == doc
    assert_secret_free(out, secrets)
    rc, result, _out = run_module(codex_auth_seed, args, capsys)
    assert rc == 0 and result['changed'] is False and result['action'] == 'kept'


@pytest.mark.parametrize('content', ['apikey_dict', 'list'])
def test_seed_bad_structured_content_fails_without_echo(tmp_path, capsys, content):
    doc, secrets = fc.apikey_seed(tag='structured')
    value = doc if content == 'apikey_dict' else [doc['OPENAI_API_KEY']]
    rc, result, out = run_module(codex_auth_seed, {'codex_home': str(tmp_path / '.codex'), 'content': value},
                                 capsys)
    assert rc == 1 and 'Nothing was written' in result['msg']
    assert_secret_free(out, secrets)
    assert not (tmp_path / '.codex').exists()


def test_seed_check_mode(tmp_path, capsys, seed):
    content, secrets = seed
    home = tmp_path / '.codex'
    args = {'codex_home': str(home), 'content': content, '_ansible_check_mode': True, '_ansible_diff': True}
    rc, result, out = run_module(codex_auth_seed, args, capsys)
    assert rc == 0
    assert result['changed'] is True and result['action'] == 'created'
    assert not home.exists()
    assert result['diff']['before'] == {'state': 'absent'}
    assert result['diff']['after']['mode'] == '0600'
    assert result['auth']['auth_mode'] == 'chatgpt'
    assert_secret_free(out, secrets)


def test_seed_from_src_warns_about_loose_mode(tmp_path, capsys, seed):
    content, secrets = seed
    src = tmp_path / 'seed.json'
    src.write_text(content)
    src.chmod(0o644)
    rc, result, out = run_module(codex_auth_seed, {'codex_home': str(tmp_path / '.codex'), 'src': str(src)},
                                 capsys)
    assert rc == 0 and result['action'] == 'created'
    assert 'is mode 0644' in warning_text(result)
    assert (tmp_path / '.codex' / 'auth.json').read_text() == content
    assert_secret_free(out, secrets)


def test_seed_missing_src(tmp_path, capsys):
    rc, result, _out = run_module(codex_auth_seed, {'codex_home': str(tmp_path / '.codex'),
                                                    'src': str(tmp_path / 'absent.json')}, capsys)
    assert rc == 1 and 'does not exist' in result['msg']
    assert not (tmp_path / '.codex').exists()


def _bad_seed_contents():
    doc, secrets = fc.chatgpt_seed(tag='badmodule')
    key_doc, key = fc.apikey_seed(tag='badmodule')
    text = fc.dumps(doc)
    no_refresh = dict(doc, tokens=dict(doc['tokens'], refresh_token=''))
    return [
        ('truncated', text[:len(text) - 40]),
        ('apikey', fc.dumps(key_doc)),
        ('no_refresh_token', fc.dumps(no_refresh)),
        ('bad_id_token', fc.dumps(dict(doc, tokens=dict(doc['tokens'], id_token=secrets[2])))),
        ('plain_text', 'refresh token is %s and key %s' % (secrets[2], key[0])),
    ], secrets + key


BAD_CONTENTS, BAD_SECRETS = _bad_seed_contents()


@pytest.mark.parametrize('name, content', BAD_CONTENTS, ids=[b[0] for b in BAD_CONTENTS])
def test_seed_bad_content_fails_without_echo(tmp_path, capsys, name, content):
    home = tmp_path / '.codex'
    rc, result, out = run_module(codex_auth_seed, {'codex_home': str(home), 'content': content}, capsys)
    assert rc == 1 and result['failed'] is True
    assert 'Nothing was written' in result['msg']
    assert_secret_free(out, BAD_SECRETS)
    assert not home.exists()


def test_seed_refuses_symlinked_auth(tmp_path, capsys, seed, codex_home):
    content, _secrets = seed
    home = codex_home()
    target = tmp_path / 'target.json'
    target.write_text('{}')
    (home / 'auth.json').symlink_to(target)
    rc, result, _out = run_module(codex_auth_seed, {'codex_home': str(home), 'content': content,
                                                    'replace': 'always'}, capsys)
    assert rc == 1 and 'symlink' in result['msg']
    assert target.read_text() == '{}'


def test_seed_unknown_owner(tmp_path, capsys, seed):
    rc, result, _out = run_module(codex_auth_seed, {'codex_home': str(tmp_path / '.codex'), 'content': seed[0],
                                                    'owner': 'no-such-user-codexops'}, capsys)
    assert rc == 1 and 'does not exist' in result['msg']
    assert not (tmp_path / '.codex').exists()


# -- codex_auth_verify ----------------------------------------------------------------------------

def test_verify_healthy(codex_home, capsys, seed):
    content, secrets = seed
    home = codex_home(auth=content)
    rc, result, out = run_module(codex_auth_verify, {'codex_home': str(home), 'owner': 'root'}, capsys)
    assert rc == 0
    assert result['changed'] is False
    assert result['healthy'] is True, result['problems']
    assert 'warnings' not in result  # reserved by Ansible; health warnings have their own key
    for field in ('problems', 'health_warnings', 'auth_mode', 'last_refresh', 'age_days', 'stale', 'has_access_token',
                  'has_id_token', 'has_refresh_token', 'has_api_key', 'access_token_expires_at', 'account_id',
                  'plan_type', 'refresh_token_fingerprint', 'codex_home_mode', 'auth_file_mode', 'owner',
                  'credentials_store'):
        assert field in result
    assert_secret_free(out, secrets)


def test_verify_problem_is_reported_not_failed(codex_home, capsys, seed):
    home = codex_home(auth=seed[0], auth_mode=0o644, config='cli_auth_credentials_store = "keyring"\n')
    rc, result, _out = run_module(codex_auth_verify, {'codex_home': str(home)}, capsys)
    assert rc == 0
    assert result['healthy'] is False
    assert result.get('failed') is not True
    assert [p['code'] for p in result['problems']] == ['auth_mode_bits', 'store_not_file']
    assert mode_of(home / 'auth.json') == 0o644  # verify never repairs


def test_verify_fail_on_problems(tmp_path, codex_home, capsys, seed):
    home = codex_home(auth=seed[0], home_mode=0o755)
    rc, result, out = run_module(codex_auth_verify, {'codex_home': str(home), 'fail_on_problems': True}, capsys)
    assert rc == 1 and result['failed'] is True
    assert 'codex_home_mode' in result['msg']
    assert result['healthy'] is False and result['changed'] is False
    assert_secret_free(out, seed[1])
    rc, result, _out = run_module(codex_auth_verify, {'codex_home': str(tmp_path / 'absent'),
                                                      'fail_on_problems': True}, capsys)
    assert rc == 1 and 'codex_home_missing' in result['msg']


def test_verify_salt_and_allowed_modes(codex_home, capsys, seed):
    home = codex_home(auth=seed[0])
    _rc, plain, _out = run_module(codex_auth_verify, {'codex_home': str(home)}, capsys)
    _rc, salted, out = run_module(codex_auth_verify, {'codex_home': str(home), 'fingerprint_salt': 'fleet-salt',
                                                      'allowed_auth_modes': ['apikey']}, capsys)
    assert plain['refresh_token_fingerprint'] != salted['refresh_token_fingerprint']
    assert [p['code'] for p in salted['problems']] == ['auth_mode_unexpected']
    assert 'fleet-salt' not in out


def test_verify_unknown_owner(codex_home, capsys):
    rc, result, _out = run_module(codex_auth_verify, {'codex_home': str(codex_home()),
                                                      'owner': 'no-such-user-codexops'}, capsys)
    assert rc == 1 and 'does not exist' in result['msg']


PROBE_SCRIPT = """#!/bin/sh
# Stands in for the installed keepalive: records a run as the real script does, then exits.
now=$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)
printf '{"format": 1, "started": "%%s", "finished": "%%s", "exit_status": %(rc)d, "result": "%(result)s", ' "$now" "$now" \\
  > "$CODEX_HOME/codexops-keepalive.json"
printf '"reason": %(reason)s, "refreshed": false, "codex_version": "%(version)s", "interval_seconds": 604800}\\n' \\
  >> "$CODEX_HOME/codexops-keepalive.json"
echo "codex output that must not be returned: sk-FAKE-probe-output"
exit %(rc)d
"""


def probe_script(tmp_path, rc=1, result='failed', reason='"refresh_token_reused"', body=None):
    path = tmp_path / 'codex-keepalive-probe'
    path.write_text(body if body is not None else PROBE_SCRIPT % {'rc': rc, 'result': result, 'reason': reason,
                                                                  'version': CODEX_VERSION})
    path.chmod(0o755)
    return str(path)


@pytest.mark.usefixtures("codex_as_test_user")
def test_verify_probe_reports_the_fresh_run(tmp_path, codex_home, capsys, seed):
    home = codex_home(auth=seed[0])
    script = probe_script(tmp_path)
    rc, result, out = run_module(codex_auth_verify, {'codex_home': str(home), 'probe': True,
                                                     'probe_command': script}, capsys)
    assert rc == 0 and result['changed'] is True
    assert result['keepalive_probe'] == {'ran': True, 'command': script, 'rc': 1, 'timed_out': False}
    assert [p['code'] for p in result['problems']] == ['refresh_failed']
    assert (result['keepalive_result'], result['keepalive_reason']) == ('failed', 'refresh_token_reused')
    assert 'sk-FAKE-probe-output' not in out


def test_verify_probe_is_skipped_in_check_mode(tmp_path, codex_home, capsys, seed):
    home = codex_home(auth=seed[0])
    rc, result, _out = run_module(codex_auth_verify, {'codex_home': str(home), 'probe': True,
                                                      'probe_command': probe_script(tmp_path),
                                                      '_ansible_check_mode': True}, capsys)
    assert rc == 0 and result['changed'] is False
    assert result['keepalive_probe']['ran'] is False and 'check mode' in result['keepalive_probe']['msg']
    assert not (home / 'codexops-keepalive.json').exists() and result['healthy'] is True


@pytest.mark.usefixtures("codex_as_test_user")
def test_verify_probe_that_records_nothing_is_a_warning(tmp_path, codex_home, capsys, seed):
    home = codex_home(auth=seed[0])
    script = probe_script(tmp_path, body='#!/bin/sh\nexit 0\n')
    rc, result, _out = run_module(codex_auth_verify, {'codex_home': str(home), 'probe': True,
                                                      'probe_command': script}, capsys)
    assert rc == 0 and result['healthy'] is True
    assert [w['code'] for w in result['health_warnings']] == ['keepalive_probe_failed']
    assert script in result['health_warnings'][0]['message']
    rc, result, _out = run_module(codex_auth_verify, {'codex_home': str(home), 'probe': True,
                                                      'probe_command': str(tmp_path / 'absent')}, capsys)
    assert result['keepalive_probe']['ran'] is False and result['changed'] is False
    assert [w['code'] for w in result['health_warnings']] == ['keepalive_probe_failed']


@pytest.mark.usefixtures("codex_as_test_user")
def test_verify_probe_default_command_is_the_roles(codex_home, capsys, seed, monkeypatch):
    seen = []
    monkeypatch.setattr(codex_process, 'run_keepalive', lambda command, *a, **k: seen.append(command) or (0, False))
    home = codex_home(auth=seed[0])
    run_module(codex_auth_verify, {'codex_home': str(home), 'probe': True}, capsys)
    assert seen == [keepalive_status.DEFAULT_SCRIPT_DIR + '/' + keepalive_status.keepalive_name('root', str(home))]
    assert seen[0].startswith('/usr/local/libexec/codexops/codex-keepalive-root-')
    # The user's default CODEX_HOME given as a path: the role given that path names it by its hash, and
    # so does the module (the one rule, keepalive_status.keepalive_name), unless the role installed the
    # keepalive for ~root/.codex (codex-keepalive-root), which it then finds (not installed here).
    seen[:] = []
    default_home = os.path.expanduser('~root/.codex')
    run_module(codex_auth_verify, {'codex_home': default_home, 'probe': True}, capsys)
    assert seen == [keepalive_status.DEFAULT_SCRIPT_DIR + '/' + keepalive_status.keepalive_name('root', default_home)]
    assert seen[0] != keepalive_status.DEFAULT_SCRIPT_DIR + '/codex-keepalive-root'


def test_verify_probe_timeout_is_bounded(codex_home, capsys):
    rc, result, _out = run_module(codex_auth_verify, {'codex_home': str(codex_home()), 'probe': True,
                                                      'probe_timeout': 0}, capsys)
    assert rc == 1 and 'probe_timeout' in result['msg']


# -- codex_config ---------------------------------------------------------------------------------

CONFIG = '# mine\nmodel = "o3"\n\n[mcp_servers.docs]\nenv = { TOKEN = "mcp-FAKE-secret-42" }\n'


def test_config_adds_key(codex_home, capsys):
    home = codex_home(config=CONFIG)
    (home / 'config.toml').chmod(0o640)
    args = {'codex_home': str(home), 'settings': {'cli_auth_credentials_store': 'file'}, '_ansible_diff': True}
    rc, result, out = run_module(codex_config, dict(args, _ansible_check_mode=True), capsys)
    assert rc == 0 and result['changed'] is True
    assert (home / 'config.toml').read_text() == CONFIG
    rc, result, out = run_module(codex_config, args, capsys)
    assert rc == 0
    assert result['changed'] is True
    assert result['changed_keys'] == {'cli_auth_credentials_store': 'added'}
    text = (home / 'config.toml').read_text()
    assert text == '# mine\nmodel = "o3"\ncli_auth_credentials_store = "file"\n\n[mcp_servers.docs]\n' \
                   'env = { TOKEN = "mcp-FAKE-secret-42" }\n'
    assert mode_of(home / 'config.toml') == 0o640  # an existing file keeps its mode
    assert result['diff']['after'] == 'cli_auth_credentials_store: added\n'
    assert 'mcp-FAKE-secret-42' not in out
    rc, result, _out = run_module(codex_config, args, capsys)
    assert rc == 0 and result['changed'] is False and result['changed_keys'] == {}


def test_config_creates_home_and_file(tmp_path, capsys):
    home = tmp_path / '.codex'
    rc, result, _out = run_module(codex_config, {'codex_home': str(home),
                                                 'settings': {'cli_auth_credentials_store': 'file',
                                                              'forced_login_method': 'chatgpt'}}, capsys)
    assert rc == 0 and result['changed'] is True
    assert result['attributes_changed'] == ['codex_home_created']
    assert mode_of(home) == 0o700 and mode_of(home / 'config.toml') == 0o600
    assert (home / 'config.toml').read_text() == ('cli_auth_credentials_store = "file"\n'
                                                  'forced_login_method = "chatgpt"\n')


def test_config_invalid_toml_left_untouched(codex_home, capsys):
    broken = 'model = "o3\n[mcp_servers.x]\nenv = { TOKEN = "mcp-FAKE-secret-43" }\n'
    home = codex_home(config=broken)
    before = (home / 'config.toml').read_bytes()
    rc, result, out = run_module(codex_config, {'codex_home': str(home),
                                                'settings': {'cli_auth_credentials_store': 'file'}}, capsys)
    assert rc == 1 and result['failed'] is True
    assert 'not valid TOML' in result['msg'] and 'untouched' in result['msg']
    assert (home / 'config.toml').read_bytes() == before
    assert 'mcp-FAKE-secret-43' not in out
    assert sorted(os.listdir(str(home))) == ['config.toml']


@pytest.mark.parametrize('settings', [
    {'forced_login_method': 'bogus'},
    {'cli_auth_credentials_store': 'bogus'},
    {'forced_chatgpt_workspace_id': 5},
    {'a.b': 1},
    {'mcp_servers': {'x': 1}},
])
def test_config_refuses_bad_settings(codex_home, capsys, settings):
    home = codex_home(config=CONFIG)
    rc, result, _out = run_module(codex_config, {'codex_home': str(home), 'settings': settings}, capsys)
    assert rc == 1 and result['failed'] is True
    assert (home / 'config.toml').read_text() == CONFIG
    key = list(settings)[0]
    if key in ('forced_login_method', 'cli_auth_credentials_store'):
        assert key in result['msg'] and 'must be one of' in result['msg']


def test_config_remove_key(codex_home, capsys):
    home = codex_home(config='cli_auth_credentials_store = "keyring"\n' + CONFIG)
    rc, result, _out = run_module(codex_config, {'codex_home': str(home),
                                                 'settings': {'cli_auth_credentials_store': None}}, capsys)
    assert rc == 0 and result['changed_keys'] == {'cli_auth_credentials_store': 'removed'}
    assert (home / 'config.toml').read_text() == CONFIG


def test_config_warns_about_key_in_table(codex_home, capsys):
    home = codex_home(config='[profiles.ci]\ncli_auth_credentials_store = "keyring"\n')
    rc, result, _out = run_module(codex_config, {'codex_home': str(home),
                                                 'settings': {'cli_auth_credentials_store': 'file'}}, capsys)
    assert rc == 0 and result['changed'] is True
    assert 'also appears inside [profiles.ci]' in warning_text(result)


# -- codex_access_token_login ---------------------------------------------------------------------

# sh runs the second line (a shebang cannot name an interpreter whose path holds a space, as a venv in a
# checkout under "/tmp/x y/" does); Python reads it as a string.
FAKE_CODEX = '''\
#!/bin/sh
"""exec" "{python}" "$0" "$@"
" """
"""A stand-in for the pinned `codex`: login --with-access-token and logout, offline."""
import json, os, sys
LOG = {log!r}
FAIL = {fail!r}
args = sys.argv[1:]
with open(os.path.join(LOG, 'calls.jsonl'), 'a') as fh:
    fh.write(json.dumps({{'argv': sys.argv, 'env_names': sorted(os.environ), 'env': dict(os.environ),
                         'cwd': os.getcwd()}}) + '\\n')
home = os.environ.get('CODEX_HOME')
if not home or not os.path.isdir(home):
    print('Error loading configuration: CODEX_HOME points to "%s", but that path does not exist' % home)
    sys.exit(1)
print('WARNING: proceeding, even though we could not create PATH aliases')
path = os.path.join(home, 'auth.json')
if args[:2] == ['login', '--with-access-token']:
    token = sys.stdin.read().strip()
    if not token:
        print('No access token provided via stdin.')
        sys.exit(1)
    if FAIL is True or (FAIL and FAIL in token):  # every token, or only those holding the marker FAIL
        print('Error: personal access token metadata request failed with status 401 Unauthorized '
              '(token %s rejected)' % token)
        sys.exit(1)
    if token.startswith('at-'):
        doc = {{'OPENAI_API_KEY': None, 'personal_access_token': token}}
    else:
        doc = {{'auth_mode': 'agentIdentity', 'OPENAI_API_KEY': None, 'agent_identity': token}}
    tmp = os.path.join(home, '.auth-FAKE01')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, json.dumps(doc, indent=2).encode())
    os.close(fd)
    os.rename(tmp, path)
    print('Successfully logged in')
elif args == ['logout']:
    if os.path.exists(path):
        os.unlink(path)
        print('Successfully logged out')
    else:
        print('Not logged in')
else:
    print('unexpected arguments: %s' % args)
    sys.exit(2)
'''


class FakeCodex:
    def __init__(self, root, fail=False):
        self.log = root / ('log-fail' if fail else 'log')
        self.log.mkdir()
        self.path = root / ('codex-fail' if fail else 'codex')
        self.path.write_text(FAKE_CODEX.format(python=sys.executable, log=str(self.log), fail=fail))
        self.path.chmod(0o755)

    @property
    def calls(self):
        calls_file = self.log / 'calls.jsonl'
        if not calls_file.exists():
            return []
        return [json.loads(line) for line in calls_file.read_text().splitlines()]


@pytest.fixture
def fake_codex(tmp_path):
    return FakeCodex(tmp_path)


@pytest.fixture
def shadowing_env(monkeypatch):
    values = {'CODEX_ACCESS_TOKEN': 'at-FAKE-shadow-env-%s' % os.getpid(),
              'OPENAI_API_KEY': 'sk-FAKE-shadow-env', 'CODEX_API_KEY': 'sk-FAKE-shadow-codex'}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def login_args(home, codex, token, **extra):
    args = {'codex_home': str(home), 'codex_path': str(codex.path), 'access_token': token}
    args.update(extra)
    return args


@pytest.mark.usefixtures("codex_as_test_user")
def test_access_token_login_and_idempotence(tmp_path, capsys, fake_codex, shadowing_env):
    home = tmp_path / '.codex'
    token = fc.personal_access_token()
    rc, result, out = run_module(codex_access_token_login, login_args(home, fake_codex, token), capsys)
    assert rc == 0, result
    assert result['changed'] is True and result['logged_in'] is True
    assert result['token_kind'] == 'personal_access_token'
    assert result['auth_mode'] == 'personalAccessToken'
    assert result['auth']['has_access_token'] is True
    assert json.loads((home / 'auth.json').read_text())['personal_access_token'] == token
    assert mode_of(home) == 0o700 and mode_of(home / 'auth.json') == 0o600
    assert token not in out

    calls = fake_codex.calls
    assert len(calls) == 1
    call = calls[0]
    assert call['argv'][1:] == ['login', '--with-access-token']
    assert all(token not in arg for arg in call['argv'])
    assert call['env']['CODEX_HOME'] == str(home)
    for name in codex_process.SHADOWING_VARIABLES:
        assert name not in call['env_names']
    env_dump = json.dumps(call['env'])
    assert token not in env_dump
    for value in shadowing_env.values():
        assert value not in env_dump

    rc, result, _out = run_module(codex_access_token_login, login_args(home, fake_codex, token), capsys)
    assert rc == 0
    assert result['changed'] is False and result['logged_in'] is False
    assert len(fake_codex.calls) == 1  # same token stored: codex is not run

    rc, result, _out = run_module(codex_access_token_login, login_args(home, fake_codex, token, force=True), capsys)
    assert rc == 0 and result['logged_in'] is True
    assert len(fake_codex.calls) == 2


@pytest.mark.usefixtures("codex_as_test_user")
def test_access_token_agent_identity(tmp_path, capsys, fake_codex):
    home = tmp_path / '.codex'
    jwt = fc.make_jwt({'exp': int(fc.now().timestamp()) + 3600, 'canary': 'FAKE-AGENT'})
    rc, result, out = run_module(codex_access_token_login, login_args(home, fake_codex, jwt), capsys)
    assert rc == 0
    assert result['token_kind'] == 'agent_identity' and result['auth_mode'] == 'agentIdentity'
    assert_secret_free(out, [jwt])


@pytest.mark.usefixtures("codex_as_test_user")
def test_access_token_check_mode(tmp_path, capsys, fake_codex):
    home = tmp_path / '.codex'
    token = fc.personal_access_token()
    rc, result, out = run_module(codex_access_token_login,
                                 login_args(home, fake_codex, token, _ansible_check_mode=True), capsys)
    assert rc == 0
    assert result['changed'] is True and result['auth_mode'] == 'personalAccessToken'
    assert fake_codex.calls == []
    assert not home.exists()
    assert token not in out


@pytest.mark.usefixtures("codex_as_test_user")
def test_access_token_rotation_failure_masks_token(codex_home, capsys, tmp_path):
    old_token = fc.personal_access_token(tag='old')
    home = codex_home(auth={'OPENAI_API_KEY': None, 'personal_access_token': old_token})
    before = (home / 'auth.json').read_bytes()
    failing = FakeCodex(tmp_path, fail=True)
    new_token = fc.personal_access_token(tag='new')
    rc, result, out = run_module(codex_access_token_login, login_args(home, failing, new_token), capsys)
    assert rc == 1 and result['failed'] is True
    assert '401 Unauthorized' in result['msg']
    assert codex_process.MASK in result['msg']
    assert new_token not in out and old_token not in out
    assert 'PATH aliases' not in result['msg']
    assert (home / 'auth.json').read_bytes() == before
    assert len(failing.calls) == 1


@pytest.mark.usefixtures("codex_as_test_user")
def test_access_login_error_is_masked_by_the_module_utils(codex_home, tmp_path):
    """Not only Ansible's no_log masking: the LoginError itself carries no token."""
    home = codex_home(auth=None)
    failing = FakeCodex(tmp_path, fail=True)
    token = fc.personal_access_token()
    login = access_login.AccessTokenLogin(str(home), str(failing.path))
    with pytest.raises(access_login.LoginError) as info:
        login.present('  %s\n' % token)
    assert token not in str(info.value)
    assert codex_process.MASK in str(info.value)
    assert not (home / 'auth.json').exists()


@pytest.mark.usefixtures("codex_as_test_user")
def test_access_token_logout(tmp_path, capsys, fake_codex):
    home = tmp_path / '.codex'
    token = fc.personal_access_token()
    run_module(codex_access_token_login, login_args(home, fake_codex, token), capsys)
    args = {'codex_home': str(home), 'codex_path': str(fake_codex.path), 'state': 'absent'}
    rc, result, _out = run_module(codex_access_token_login, dict(args, _ansible_check_mode=True), capsys)
    assert rc == 0 and result['changed'] is True
    assert (home / 'auth.json').exists()
    rc, result, _out = run_module(codex_access_token_login, args, capsys)
    assert rc == 0 and result['changed'] is True
    assert fake_codex.calls[-1]['argv'][1:] == ['logout']
    assert not (home / 'auth.json').exists()
    calls = len(fake_codex.calls)
    rc, result, _out = run_module(codex_access_token_login, args, capsys)
    assert rc == 0 and result['changed'] is False
    assert len(fake_codex.calls) == calls


def test_access_token_required_when_present(tmp_path, capsys, fake_codex):
    rc, result, _out = run_module(codex_access_token_login, {'codex_home': str(tmp_path),
                                                             'codex_path': str(fake_codex.path)}, capsys)
    assert rc == 1 and 'access_token' in result['msg']
    assert fake_codex.calls == []


def test_access_token_blank_token(tmp_path, capsys, fake_codex):
    rc, result, _out = run_module(codex_access_token_login, login_args(tmp_path / '.codex', fake_codex, '  \n'),
                                  capsys)
    assert rc == 1 and 'empty' in result['msg']
    assert fake_codex.calls == []


def test_access_token_repairs_mode_without_login(codex_home, capsys, fake_codex):
    token = fc.personal_access_token()
    home = codex_home(auth={'OPENAI_API_KEY': None, 'personal_access_token': token}, auth_mode=0o644,
                      home_mode=0o755)
    rc, result, _out = run_module(codex_access_token_login, login_args(home, fake_codex, token), capsys)
    assert rc == 0
    assert result['changed'] is True and result['logged_in'] is False
    assert result['attributes_changed'] == ['codex_home_mode', 'auth_mode']
    assert mode_of(home) == 0o700 and mode_of(home / 'auth.json') == 0o600
    assert fake_codex.calls == []


def test_mask():
    text = 'WARNING: proceeding, even though we could not create PATH aliases\n\nbad at-SECRET here\n'
    assert codex_process.mask(text, ['at-SECRET', '']) == 'bad ******** here'


def test_fake_codex_script_is_valid_python():
    compiled = compile(textwrap.dedent(FAKE_CODEX.format(python=sys.executable, log='/x', fail=False)), 'codex',
                       'exec')
    assert compiled is not None


# -- one verdict: the summary a writing module returns is verify's, environment included -----------

@pytest.mark.usefixtures("codex_as_test_user")
def test_seed_login_and_verify_give_one_summary_with_the_environment(tmp_path, capsys, seed, fake_codex):
    """env_shadowing (here a workload-identity variable in the runner service's unit) is in the summary
    seed and access-token login return, as in verify's: provisioning records what verify would."""
    content, _secrets = seed
    unit = tmp_path / 'runner.service'
    unit.write_text('[Service]\nEnvironment="OPENAI_IDENTITY_TOKEN_SOURCE=spiffe"\n')
    common = {'require_file_store': False, 'environment_files': [str(unit)]}
    home = tmp_path / '.codex'
    for check_mode in (True, False):
        rc, seeded, _out = run_module(codex_auth_seed, dict(common, codex_home=str(home), content=content,
                                                            _ansible_check_mode=check_mode), capsys)
        assert rc == 0 and seeded['auth']['healthy'] is False
        assert [item['code'] for item in seeded['auth']['problems']] == ['env_shadowing']
    rc, verified, _out = run_module(codex_auth_verify, dict(common, codex_home=str(home)), capsys)
    assert rc == 0
    for key in ('healthy', 'problems', 'health_warnings', 'refresh_token_fingerprint', 'auth_mode'):
        assert seeded['auth'][key] == verified[key], key

    login_home = tmp_path / 'login' / '.codex'
    token = fc.personal_access_token()
    rc, logged, out = run_module(codex_access_token_login, login_args(login_home, fake_codex, token, **common),
                                 capsys)
    assert rc == 0 and token not in out
    assert [item['code'] for item in logged['auth']['problems']] == ['env_shadowing']
    rc, failed, _out = run_module(codex_access_token_login, login_args(login_home, fake_codex, token,
                                                                       fail_on_problems=True, **common), capsys)
    assert rc == 1 and 'env_shadowing' in failed['msg']
