# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""config_invalid means what Codex means: the type table against the real, pinned Codex CLI.

Every INVALID config below must be reported by config_schema.config_type_problems under the key
it breaks AND be refused by `codex login status` (exit 1, `Error loading configuration`); every
VALID one must pass the checker AND load in Codex (exit 0). Codex runs offline with an API-key
auth.json, which `login status` reports without a network call.

tools/config_schema_table.py --probe does the same for every key of the table (thousands of
cases, minutes); this suite is the fast, representative part that runs with every test run.
"""

import json
import os
import subprocess
import sys
import tomllib

import pytest

from support.codex import codex_binary
from support.workspace import COLLECTIONS

sys.path.insert(0, str(COLLECTIONS))
from ansible_collections.codexops.runner.plugins.module_utils import config_schema  # noqa: E402

AUTH = {'OPENAI_API_KEY': 'sk-test-123', 'auth_mode': 'apikey'}

# (id, config.toml, the key path the checker must name)
INVALID = [
    ('profile-table', '[profile.x]\nmodel = "o3"\n', 'profile'),
    ('profile-legacy-string', 'profile = "ci"\n[profiles.ci]\nmodel = "o3"\n', 'profile'),
    ('model-integer', 'model = 5\n', 'model'),
    ('sandbox-mode-enum', 'sandbox_mode = "bogus"\n', 'sandbox_mode'),
    ('workspace-id-integer', 'forced_chatgpt_workspace_id = 5\n', 'forced_chatgpt_workspace_id'),
    ('workspace-id-list-item', 'forced_chatgpt_workspace_id = ["ws-1", 5]\n', 'forced_chatgpt_workspace_id[1]'),
    ('store-enum', 'cli_auth_credentials_store = "vault"\n', 'cli_auth_credentials_store'),
    ('login-method-enum', 'forced_login_method = "password"\n', 'forced_login_method'),
    ('approval-enum', 'approval_policy = "always"\n', 'approval_policy'),
    ('approval-untrusted-removed', 'approval_policy = "untrusted"\n', 'approval_policy'),
    ('approval-granular-missing', '[approval_policy.granular]\nsandbox_approval = true\n',
     'approval_policy.granular.mcp_elicitations'),
    ('approval-granular-type', '[approval_policy.granular]\nsandbox_approval = "yes"\nrules = true\n'
     'mcp_elicitations = true\n', 'approval_policy.granular.sandbox_approval'),
    ('profiles-model', '[profiles.ci]\nmodel = 5\n', 'profiles.ci.model'),
    ('profiles-sandbox-enum', '[profiles.ci]\nsandbox_mode = "yolo"\n', 'profiles.ci.sandbox_mode'),
    ('profiles-array', 'profiles = ["ci"]\n', 'profiles'),
    ('profiles-features', '[profiles.ci.features]\nweb_search_request = "on"\n',
     'profiles.ci.features.web_search_request'),
    ('mcp-command-array', '[mcp_servers.github]\ncommand = ["npx"]\n', 'mcp_servers.github.command'),
    ('mcp-args-string', '[mcp_servers.github]\ncommand = "npx"\nargs = "-y"\n', 'mcp_servers.github.args'),
    ('mcp-env-integer', '[mcp_servers.github]\ncommand = "npx"\nenv = { TOKEN = 5 }\n', 'mcp_servers.github.env.TOKEN'),
    ('mcp-no-transport', '[mcp_servers.github]\nargs = ["-y"]\n', 'mcp_servers.github'),
    ('mcp-env-var-source', '[mcp_servers.github]\ncommand = "npx"\nenv_vars = [{ name = "T", source = "vault" }]\n',
     'mcp_servers.github.env_vars[0].source'),
    ('mcp-servers-string', 'mcp_servers = "github"\n', 'mcp_servers'),
    ('tui-notifications', '[tui]\nnotifications = "yes"\n', 'tui.notifications'),
    ('tui-alternate-screen', '[tui]\nalternate_screen = "sometimes"\n', 'tui.alternate_screen'),
    ('tui-boolean', 'tui = true\n', 'tui'),
    ('workspace-write-network', '[sandbox_workspace_write]\nnetwork_access = "yes"\n',
     'sandbox_workspace_write.network_access'),
    ('workspace-write-roots', '[sandbox_workspace_write]\nwritable_roots = "/tmp"\n',
     'sandbox_workspace_write.writable_roots'),
    ('history-persistence', '[history]\npersistence = "forever"\n', 'history.persistence'),
    ('history-negative', '[history]\nmax_bytes = -1\n', 'history.max_bytes'),
    ('shell-env-inherit', '[shell_environment_policy]\ninherit = "some"\n', 'shell_environment_policy.inherit'),
    ('shell-env-set', '[shell_environment_policy]\nset = { PATH = 1 }\n', 'shell_environment_policy.set.PATH'),
    ('shell-env-exclude', '[shell_environment_policy]\nexclude = "AWS_*"\n', 'shell_environment_policy.exclude'),
    ('feature-string', '[features]\nweb_search_request = "on"\n', 'features.web_search_request'),
    ('unknown-feature-string', '[features]\nsome_future_feature = "on"\n', 'features.some_future_feature'),
    ('feature-table-unknown-key', '[features.code_mode]\nenabled = true\nbogus = 1\n', 'features.code_mode.bogus'),
    ('provider-base-url', '[model_providers.local]\nname = "Local"\nbase_url = 5\n', 'model_providers.local.base_url'),
    ('provider-wire-api', '[model_providers.local]\nname = "Local"\nwire_api = "chat"\n',
     'model_providers.local.wire_api'),
    ('otel-exporter', '[otel]\nexporter = "jaeger"\n', 'otel.exporter'),
    ('project-doc-string', 'project_doc_max_bytes = "big"\n', 'project_doc_max_bytes'),
    ('notify-string', 'notify = "say done"\n', 'notify'),
    ('projects-trust', '[projects."/srv/app"]\ntrust_level = "maybe"\n', 'projects."/srv/app".trust_level'),
    ('reasoning-bool', 'hide_agent_reasoning = "no"\n', 'hide_agent_reasoning'),
    ('removed-key', 'experimental_thread_store_endpoint = "http://127.0.0.1:1"\n', 'experimental_thread_store_endpoint'),
    ('hook-missing-command', '[[hooks.PreToolUse]]\nmatcher = "shell"\nhooks = [{ type = "command" }]\n',
     'hooks.PreToolUse[0].hooks[0].command'),
    ('port-range', 'mcp_oauth_callback_port = 70000\n', 'mcp_oauth_callback_port'),
    ('integer-float', 'model_context_window = 1.5\n', 'model_context_window'),
    ('verbosity-enum', 'model_verbosity = "chatty"\n', 'model_verbosity'),
]

VALID = [
    ('empty', ''),
    ('file-store', 'cli_auth_credentials_store = "file"\n'),
    ('unknown-top-level-table', 'unknown_key = { a = 1 }\n'),
    ('unknown-section', '[profile_x]\nmodel = 5\n'),
    ('key-after-table-belongs-to-table', '[tui]\ncli_auth_credentials_store = 5\n'),
    ('model-provider', 'model = "o3"\nmodel_provider = "openai"\n'),
    ('sandbox', 'sandbox_mode = "workspace-write"\n[sandbox_workspace_write]\nnetwork_access = true\n'
     'writable_roots = ["/tmp"]\n'),
    ('approval-on-request', 'approval_policy = "on-request"\n'),
    ('approval-on-failure', 'approval_policy = "on-failure"\n'),
    ('approval-granular', '[approval_policy.granular]\nsandbox_approval = true\nrules = false\nmcp_elicitations = true\n'),
    # (forced_login_method = "chatgpt" would log this API-key auth.json out: a valid config, another problem)
    ('forced-workspace', 'forced_login_method = "api"\nforced_chatgpt_workspace_id = "ws-1"\n'),
    ('forced-workspace-list', 'forced_chatgpt_workspace_id = ["ws-1", "ws-2"]\n'),
    ('forced-api', 'forced_login_method = "api"\n'),
    ('profiles', '[profiles.ci]\nmodel = "o3"\nsandbox_mode = "read-only"\napproval_policy = "never"\n'),
    ('mcp-stdio', '[mcp_servers.github]\ncommand = "npx"\nargs = ["-y", "server"]\nenv = { TOKEN = "x" }\n'
     'startup_timeout_sec = 20\n'),
    ('mcp-http', '[mcp_servers.remote]\nurl = "https://example.invalid/mcp"\nbearer_token_env_var = "TOKEN"\n'),
    ('mcp-unknown-key', '[mcp_servers.github]\ncommand = "npx"\nfuture_option = { a = 1 }\n'),
    ('tui-notifications-bool', '[tui]\nnotifications = true\nalternate_screen = "never"\n'),
    ('tui-notifications-list', '[tui]\nnotifications = ["agent-turn-complete"]\n'),
    ('history', '[history]\npersistence = "none"\nmax_bytes = 1048576\n'),
    ('shell-env', '[shell_environment_policy]\ninherit = "core"\nset = { CI = "1" }\nexclude = ["AWS_*"]\n'),
    ('features', '[features]\nweb_search_request = true\nsome_future_feature = false\n'),
    ('feature-table', '[features.code_mode]\nenabled = true\n'),
    ('reasoning', 'model_reasoning_effort = "high"\nmodel_reasoning_summary = "concise"\nmodel_verbosity = "low"\n'),
    ('provider', '[model_providers.local]\nname = "Local"\nbase_url = "http://127.0.0.1:11434/v1"\n'
     'wire_api = "responses"\n'),
    ('notify', 'notify = ["notify-send", "done"]\n'),
    ('projects', '[projects."/srv/app"]\ntrust_level = "trusted"\n'),
    ('otel', '[otel]\nexporter = "none"\nlog_user_prompt = false\n'),
    ('reasoning-display', 'hide_agent_reasoning = true\nshow_raw_agent_reasoning = false\n'),
    ('project-doc', 'project_doc_max_bytes = 65536\nproject_doc_fallback_filenames = ["AGENTS.md"]\n'),
    ('hook', '[[hooks.PreToolUse]]\nmatcher = "shell"\nhooks = [{ type = "command", command = "true", timeout = 5 }]\n'),
    ('port', 'mcp_oauth_callback_port = 8765\n'),
    ('integers', 'model_context_window = 200000\nmodel_auto_compact_token_limit = 150000\n'),
]


def codex_login_status(tmp_path, text):
    home = tmp_path / 'codex-home'
    home.mkdir()
    (home / 'auth.json').write_text(json.dumps(AUTH))
    (home / 'config.toml').write_text(text)
    env = {'CODEX_HOME': str(home), 'HOME': str(tmp_path), 'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
           'LANG': 'C.UTF-8'}
    proc = subprocess.run([codex_binary(), 'login', 'status'], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stderr


def test_enough_cases():
    assert len(INVALID) >= 25 and len(VALID) >= 25
    assert len(set(case[0] for case in INVALID + VALID)) == len(INVALID) + len(VALID)


@pytest.mark.parametrize('text,key', [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_config_reported_and_refused_by_codex(tmp_path, text, key):
    problems = config_schema.config_type_problems(tomllib.loads(text))
    assert key in [path for path, _message in problems], problems
    for _path, message in problems:
        assert message and '\n' not in message
    rc, stderr = codex_login_status(tmp_path, text)
    assert rc == 1 and 'Error loading configuration' in stderr, (rc, stderr)


@pytest.mark.parametrize('text', [case[1] for case in VALID], ids=[case[0] for case in VALID])
def test_valid_config_passes_and_loads_in_codex(tmp_path, text):
    assert config_schema.config_type_problems(tomllib.loads(text)) == []
    rc, stderr = codex_login_status(tmp_path, text)
    assert rc == 0 and 'Error loading configuration' not in stderr, (rc, stderr)
