# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Why the workload-identity variables are in codex_process.SHADOWING_VARIABLES: the real, pinned Codex CLI.

codex-facts: with Codex 0.171.0, when a workload-identity variable is set, Codex uses it instead of auth.json and
fails closed. Here a CODEX_HOME with a good auth.json (an API key, which `login status` reports offline) is asked
`codex login status` as a CI job would: without any such variable it is logged in; with each one set alone (a
leftover variable on a runner) the same auth.json no longer counts - except SPIFFE_ENDPOINT_SOCKET, which counts
only with the spiffe source (measured, see its test). If a later Codex stopped reading one of them, this
test says so, and the list (verify's env_shadowing, the keepalive's unset line) can be revisited.
"""

import json
import os
import subprocess
import sys

import pytest

from support.codex import codex_binary
from support.workspace import COLLECTIONS

sys.path.insert(0, str(COLLECTIONS))
from ansible_collections.codexops.runner.plugins.module_utils import codex_process  # noqa: E402

AUTH = {'OPENAI_API_KEY': 'sk-test-workload-123', 'auth_mode': 'apikey'}
WORKLOAD_IDENTITY = ('OPENAI_IDENTITY_TOKEN_SOURCE', 'OPENAI_FEDERATION_RULE_ID', 'OPENAI_IDENTITY_TOKEN_FILE',
                     'SPIFFE_ENDPOINT_SOCKET', 'OPENAI_SPIFFE_AUDIENCE', 'OPENAI_SPIFFE_ID')
# A value of the kind each variable takes (codex-facts): a leftover of a workload-identity set-up.
VALUES = {'OPENAI_IDENTITY_TOKEN_SOURCE': 'file', 'OPENAI_FEDERATION_RULE_ID': 'fedrule-123',
          'OPENAI_IDENTITY_TOKEN_FILE': '/run/codexops-test/identity-token', 'SPIFFE_ENDPOINT_SOCKET':
          'unix:///run/codexops-test/spire.sock', 'OPENAI_SPIFFE_AUDIENCE': 'https://api.openai.com',
          'OPENAI_SPIFFE_ID': 'spiffe://example.org/ci'}


def login_status(tmp_path, extra):
    home = tmp_path / 'codex-home'
    home.mkdir(mode=0o700, exist_ok=True)
    (home / 'auth.json').write_text(json.dumps(AUTH))
    (home / 'config.toml').write_text('cli_auth_credentials_store = "file"\n')
    env = dict({'CODEX_HOME': str(home), 'HOME': str(tmp_path), 'PATH': os.environ.get('PATH', '/usr/bin:/bin')},
               **extra)
    proc = subprocess.run([codex_binary(), 'login', 'status'], env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, check=False)
    return proc.returncode, proc.stdout.decode('utf-8', 'replace')


def test_the_list_holds_every_workload_identity_variable():
    assert set(WORKLOAD_IDENTITY) <= set(codex_process.SHADOWING_VARIABLES)


def test_without_a_workload_identity_variable_auth_json_counts(tmp_path):
    rc, output = login_status(tmp_path, {})
    assert rc == 0 and 'API key' in output, output


# Each of these alone makes Codex take the workload-identity path and fail closed (`login status` exits 1:
# "workload identity requires ..."), whatever auth.json holds.
ALONE = ('OPENAI_IDENTITY_TOKEN_SOURCE', 'OPENAI_FEDERATION_RULE_ID', 'OPENAI_IDENTITY_TOKEN_FILE',
         'OPENAI_SPIFFE_AUDIENCE', 'OPENAI_SPIFFE_ID')


@pytest.mark.parametrize('name', ALONE)
def test_a_leftover_workload_identity_variable_sidelines_auth_json(tmp_path, name):
    rc, output = login_status(tmp_path, {name: VALUES[name]})
    assert rc != 0 and 'workload identity requires' in output and 'API key' not in output, (name, output)


def test_the_spiffe_socket_counts_with_the_spiffe_source(tmp_path):
    """Measured on 0.171.0: SPIFFE_ENDPOINT_SOCKET alone leaves auth.json in use (`login status` still reports the API
    key); with OPENAI_IDENTITY_TOKEN_SOURCE=spiffe, the set-up it belongs to, auth.json is sidelined. It stays in
    SHADOWING_VARIABLES: a runner that has it is part-way into workload identity, and one more variable sidelines
    every credential provisioned here (verify says so before that happens)."""
    rc, output = login_status(tmp_path, {'SPIFFE_ENDPOINT_SOCKET': VALUES['SPIFFE_ENDPOINT_SOCKET']})
    assert rc == 0 and 'API key' in output, output
    rc, output = login_status(tmp_path, {'SPIFFE_ENDPOINT_SOCKET': VALUES['SPIFFE_ENDPOINT_SOCKET'],
                                         'OPENAI_IDENTITY_TOKEN_SOURCE': 'spiffe'})
    assert rc != 0 and 'workload identity requires' in output and 'API key' not in output, output
