# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  codex_home:
    description:
      - The runner user's Codex home directory (what C(CODEX_HOME) points to), usually C(~runner/.codex).
      - Must be an absolute path. A symlinked CODEX_HOME is refused, so credentials cannot be redirected.
    type: path
    required: true
'''

    OWNERSHIP = r'''
options:
  owner:
    description:
      - The runner user that must own CODEX_HOME and the files in it.
      - Name or numeric ID. A user that does not exist is an error and nothing is written.
      - When omitted, ownership is left as it is (new files belong to the user the module runs as).
    type: str
  group:
    description:
      - Group for CODEX_HOME and the files in it. Defaults to the primary group of O(owner).
    type: str
'''

    VERIFY = r'''
options:
  allowed_auth_modes:
    description:
      - Auth modes that count as valid credentials here (resolved as Codex resolves them when
        C(auth_mode) is absent).
    type: list
    elements: str
    choices: [apikey, chatgpt, chatgptAuthTokens, callerProvided, agentIdentity, personalAccessToken,
              bedrockApiKey, bedrockAccessKeys]
  require_refresh_token:
    description:
      - ChatGPT credentials without a refresh token cannot be refreshed; count them as a problem.
    type: bool
    default: true
  max_age_days:
    description:
      - ChatGPT credentials whose C(last_refresh) is older than this are reported C(stale) (a warning).
      - Codex's own scheduled refresh interval is 8 days.
    type: float
    default: 8
  require_file_store:
    description:
      - Report C(store_not_file) unless C(cli_auth_credentials_store = "file") is a top-level key of
        config.toml. Keyring storage fails on headless runners.
    type: bool
    default: true
  fingerprint_salt:
    description:
      - Salt for the short SHA-256 fingerprint of the refresh token. Use one salt across a fleet so
        equal tokens on two hosts give equal fingerprints; keep it secret so fingerprints cannot be
        compared with anything outside the fleet.
    type: str
  environment_files:
    description:
      - Files on the runner whose environment the runner's jobs get (C(/etc/environment), the CI runner's
        C(.env) or C(.runner_env), the runner service's systemd unit or C(EnvironmentFile)). An assignment of a
        variable Codex uses instead of C(auth.json) in any of them is a V(env_shadowing) problem in the returned
        summary - C(CODEX_ACCESS_TOKEN), C(OPENAI_API_KEY), C(CODEX_API_KEY), and the workload-identity variables
        of Codex 0.171.0 (C(OPENAI_IDENTITY_TOKEN_SOURCE), C(OPENAI_FEDERATION_RULE_ID),
        C(OPENAI_IDENTITY_TOKEN_FILE), C(SPIFFE_ENDPOINT_SOCKET), C(OPENAI_SPIFFE_AUDIENCE), C(OPENAI_SPIFFE_ID)).
        Values are never read into the result.
      - The GitHub runner C(.env) that O(runner_environment) writes (C(github_runner_dir)) is always looked at as
        well, listed here or not.
      - The same check in M(codexops.runner.codex_auth_verify), M(codexops.runner.codex_auth_seed) and
        M(codexops.runner.codex_access_token_login), so the summary a writing module returns is the one verify
        would give.
    type: list
    elements: path
    default: []
  keepalive_failure_threshold:
    description:
      - How many keepalive runs in a row may fail before it is the problem C(keepalive_failing), whatever
        the reason (a network failure included). One failed run with a transient reason is the warning
        C(keepalive_failed); a reason that says the credential is dead is C(refresh_failed) at once.
    type: int
    default: 2
  fail_on_problems:
    description:
      - Fail the task when the verified state has any problem (warnings do not count). The result still
        carries every fact, and the message names the problem codes.
      - For a module that writes, the state checked is the one the task leaves (under check mode, the one it
        would leave; a plan that fails this way has written nothing).
    type: bool
    default: false
'''

    CODEX_PROCESS = r'''
options:
  codex_path:
    description:
      - Path of the C(codex) executable. Default is C(codex) found on the module's C(PATH).
      - It runs as the runner user, so it must be executable by that user.
    type: path
  codex_environment:
    description:
      - Extra environment variables for the Codex processes this module starts, by name - for example
        C(HTTPS_PROXY), C(NO_PROXY), C(SSL_CERT_FILE), or C(CODEX_REFRESH_TOKEN_URL_OVERRIDE) and
        C(CODEX_AUTHAPI_BASE_URL) for a test backend.
      - Codex runs as the runner user, whose jobs are untrusted, so it never inherits the module's environment.
        It gets only C(PATH), C(LANG), C(LC_*), C(TMPDIR) and C(TZ) from it, the runner's C(HOME), C(USER) and
        C(LOGNAME), C(CODEX_HOME), and what is named here.
      - C(CODEX_ACCESS_TOKEN), C(OPENAI_API_KEY), C(CODEX_API_KEY) and C(CODEX_HOME) are refused - Codex would
        prefer them over what is stored.
      - Values are treated as secrets (a proxy URL may hold a password) and masked in output.
    type: dict
    default: {}
'''

    LOCKS = r'''
options:
  lock_timeout:
    description:
      - Seconds to wait for Codex's own locks (C(auth.lock), then C(auth.json.lock)) before giving up with
        a C(lock_timeout) error. A Codex refresh holds them for well under a second; a job that holds them
        longer only delays the task, it can never redirect it.
    type: float
    default: 30
'''

    ATTRIBUTES = r'''
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows metadata only (presence, mode, owner, auth mode, last refresh, fingerprint), never content.
  platform:
    platforms: posix
'''
