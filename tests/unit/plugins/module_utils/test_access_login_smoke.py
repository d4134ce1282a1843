"""codex_access_token_login's smoke test: a login that Codex then refuses is rolled back."""

import json

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import access_login
from support import fake_credentials

# Logs in like Codex 0.169.0 and 0.171.0 (writes the personal access token); `login status` exits with the code
# in STATUS_RC, so a test can make the new login look broken after it was written.
FAKE = '''#!/bin/sh
path="$CODEX_HOME/auth.json"
case "$1 $2" in
  "login --with-access-token")
    token=$(cat)
    printf '{"OPENAI_API_KEY": null, "personal_access_token": "%s"}' "$token" > "$path.tmp" && mv "$path.tmp" "$path"
    echo "Successfully logged in";;
  "login status")
    if [ "$(cat {rc_file})" = 0 ]; then echo "Logged in using personal access token" >&2; exit 0; fi
    echo "Error checking login status: personal access token metadata request failed" >&2; exit 1;;
esac
'''


@pytest.fixture
def codex(tmp_path, codex_as_test_user):
    rc_file = tmp_path / 'status-rc'
    path = tmp_path / 'codex'
    path.write_text(FAKE.replace('{rc_file}', str(rc_file)))
    path.chmod(0o755)
    return path, rc_file


def _login(tmp_path, codex_path):
    return access_login.AccessTokenLogin(str(tmp_path / '.codex'), str(codex_path),
                                         verify_options={'require_file_store': False})


def test_good_token_passes_the_smoke_test(tmp_path, codex):
    path, rc_file = codex
    rc_file.write_text('0')
    token = fake_credentials.personal_access_token()
    result = _login(tmp_path, path).present(token, smoke_test=True)
    assert result['changed'] and result['smoke_test']['rc'] == 0
    assert result['auth']['auth_mode'] == 'personalAccessToken'


def test_failed_smoke_test_restores_the_previous_login(tmp_path, codex):
    path, rc_file = codex
    rc_file.write_text('0')
    old, new = fake_credentials.personal_access_token(), fake_credentials.personal_access_token()
    _login(tmp_path, path).present(old)
    before = (tmp_path / '.codex' / 'auth.json').read_bytes()
    rc_file.write_text('1')
    with pytest.raises(access_login.LoginError) as info:
        _login(tmp_path, path).present(new, smoke_test=True)
    assert 'previous auth.json was restored' in str(info.value)
    assert new not in str(info.value) and old not in str(info.value)
    assert (tmp_path / '.codex' / 'auth.json').read_bytes() == before
    assert json.loads(before)['personal_access_token'] == old


def test_failed_smoke_test_on_a_first_login_leaves_no_file(tmp_path, codex):
    path, rc_file = codex
    rc_file.write_text('1')
    with pytest.raises(access_login.LoginError):
        _login(tmp_path, path).present(fake_credentials.personal_access_token(), smoke_test=True)
    assert not (tmp_path / '.codex' / 'auth.json').exists()
