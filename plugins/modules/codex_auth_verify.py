#!/usr/bin/python
# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
module: codex_auth_verify
short_description: Report the health of a runner's Codex credentials, without ever showing one
version_added: 0.1.0
description:
  - Reads CODEX_HOME, C(auth.json) and C(config.toml) and reports facts - auth mode (resolved exactly as
    Codex resolves it), token presence, last refresh and age, access-token expiry, account and plan,
    a salted refresh-token fingerprint, file modes and owner, the credentials store - plus a list of
    problems with stable codes and a list of warnings.
  - Read-only. Never changes anything, never follows a symlink, never returns a credential.
  - Problem codes - V(codex_home_missing), V(codex_home_symlink), V(codex_home_not_dir), V(codex_home_mode),
    V(codex_home_owner), V(auth_missing), V(auth_symlink), V(auth_hardlink), V(auth_not_regular),
    V(auth_unreadable), V(auth_too_large), V(auth_mode_bits), V(auth_owner), V(auth_not_json),
    V(auth_invalid), V(auth_mode_invalid), V(auth_mode_unexpected), V(id_token_invalid),
    V(last_refresh_invalid), V(refresh_token_missing), V(credential_missing), V(store_not_file),
    V(config_invalid), V(config_unreadable), V(forced_login_conflict), V(env_shadowing),
    V(codex_status_failed). The README's troubleshooting section gives the fix for each.
  - Warning codes (in RV(health_warnings)) - V(stale), V(access_token_expired), V(store_key_in_table),
    V(temp_files_left), V(environment_file_unreadable).
author:
  - codexops maintainers (@codexops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - codexops.runner.codex_home
  - codexops.runner.codex_home.VERIFY
  - codexops.runner.codex_home.CODEX_PROCESS
options:
  owner:
    description:
      - The runner user expected to own CODEX_HOME and C(auth.json). When set, any other owner is a problem.
    type: str
  allowed_auth_modes:
    description:
      - Auth modes that count as healthy. Default is every mode Codex knows.
  environment_files:
    description:
      - Files on the runner whose environment the runner's jobs get (C(/etc/environment), the CI runner's
        C(.env) or C(.runner_env), a systemd unit). An assignment of C(CODEX_ACCESS_TOKEN), C(OPENAI_API_KEY) or
        C(CODEX_API_KEY) in any of them is a V(env_shadowing) problem, because Codex uses those variables instead
        of C(auth.json). Values are never read into the result.
    type: list
    elements: path
    default: []
  login_status:
    description:
      - Also run C(codex login status) as the runner user (O(owner)) with this CODEX_HOME, and return its verdict
        in RV(codex_login_status). A non-zero exit is a V(codex_status_failed) problem.
      - For personal access tokens Codex checks the token online.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details:
      - The module never changes anything, so check mode runs it as usual.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it as the runner user or with C(become) so it can read C(auth.json).
seealso:
  - module: codexops.runner.codex_auth_seed
'''

EXAMPLES = r'''
- name: Check a runner's Codex credentials
  codexops.runner.codex_auth_verify:
    codex_home: /home/ci/.codex
    owner: ci
    fingerprint_salt: "{{ vault_codex_fingerprint_salt }}"
  become: true
  register: codex_health

- name: Print facts, never tokens
  ansible.builtin.debug:
    msg: >-
      {{ inventory_hostname }}: healthy={{ codex_health.healthy }}
      mode={{ codex_health.auth_mode }} refresh_token={{ codex_health.has_refresh_token }}
      age={{ codex_health.age_days }}d problems={{ codex_health.problems | map(attribute='code') | list }}

- name: Fail the play on a broken runner
  codexops.runner.codex_auth_verify:
    codex_home: /home/ci/.codex
    allowed_auth_modes: [chatgpt]
    fail_on_problems: true
  become: true
'''

RETURN = r'''
healthy:
  description: True when there is no problem (warnings do not count).
  returned: always
  type: bool
  sample: true
problems:
  description: What stops Codex from working with these credentials, each with a stable C(code) and a message.
  returned: always
  type: list
  elements: dict
  sample: [{code: auth_mode_bits, message: auth.json is mode 0644; it must be 0600.}]
health_warnings:
  description:
    - What will soon stop it working (V(stale), V(access_token_expired), ...), same shape as RV(problems).
    - Named C(health_warnings) because C(warnings) is reserved in Ansible module results.
  returned: always
  type: list
  elements: dict
  sample: []
auth_mode:
  description: The auth mode Codex uses for this file (resolved when C(auth_mode) is absent); null without a usable file.
  returned: always
  type: str
  sample: chatgpt
last_refresh:
  description: When Codex last refreshed the tokens (UTC, RFC 3339).
  returned: always
  type: str
  sample: '2026-11-21T10:22:00Z'
age_days:
  description: Days since RV(last_refresh).
  returned: always
  type: float
  sample: 1.25
stale:
  description: ChatGPT credentials not refreshed within O(max_age_days), or whose access token has expired.
  returned: always
  type: bool
  sample: false
has_access_token:
  description: An access token (ChatGPT, personal access token or agent identity) is present.
  returned: always
  type: bool
  sample: true
has_id_token:
  description: A ChatGPT id token is present.
  returned: always
  type: bool
  sample: true
has_refresh_token:
  description: A non-empty ChatGPT refresh token is present.
  returned: always
  type: bool
  sample: true
has_api_key:
  description: An API key is present.
  returned: always
  type: bool
  sample: false
access_token_expires_at:
  description: The access token's C(exp) claim (UTC), when the token is a JWT.
  returned: always
  type: str
  sample: '2026-11-30T10:22:00Z'
account_id:
  description: The ChatGPT account (workspace) ID, not a secret.
  returned: always
  type: str
  sample: acct-1234
plan_type:
  description: The ChatGPT plan from the id token.
  returned: always
  type: str
  sample: enterprise
refresh_token_fingerprint:
  description:
    - Short salted SHA-256 of the refresh token; null without one. Equal on two hosts means one refresh token
      on two runners, which breaks one of them at the next refresh.
  returned: always
  type: str
  sample: 3f9a1c0e5b7d2a64
codex_home_mode:
  description: Mode of CODEX_HOME, octal.
  returned: always
  type: str
  sample: '0700'
auth_file_mode:
  description: Mode of C(auth.json), octal.
  returned: always
  type: str
  sample: '0600'
owner:
  description: Owner of C(auth.json) (of CODEX_HOME when there is no file).
  returned: always
  type: str
  sample: ci
credentials_store:
  description: The top-level C(cli_auth_credentials_store) of config.toml; null when unset.
  returned: always
  type: str
  sample: file
forced_login_method:
  description: The top-level C(forced_login_method) of config.toml; null when unset.
  returned: always
  type: str
  sample: null
codex_login_status:
  description: With O(login_status=true), the exit code and message of C(codex login status) (API key tails masked).
  returned: when O(login_status=true)
  type: dict
  sample: {rc: 0, message: Logged in using ChatGPT}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.codexops.runner.plugins.module_utils import codex_home
from ansible_collections.codexops.runner.plugins.module_utils import codex_process
from ansible_collections.codexops.runner.plugins.module_utils import health
from ansible_collections.codexops.runner.plugins.module_utils import module_common
from ansible_collections.codexops.runner.plugins.module_utils import privsep
from ansible_collections.codexops.runner.plugins.module_utils import runner_env


def main():
    argument_spec = module_common.base_argument_spec(verify=True, runs_codex=True)
    argument_spec.update(
        owner=dict(type='str'),
        environment_files=dict(type='list', elements='path', default=[]),
        login_status=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    codex_path = None
    if params['login_status']:
        codex_path = params['codex_path'] or module.get_bin_path('codex')
        if not codex_path:
            module.fail_json(msg='login_status needs the Codex CLI: not found on PATH; set codex_path.')
    uid, _gid = module_common.guarded(module, module_common.resolve_ids, module)
    module_common.guarded(module, codex_process.check_environment, params['codex_environment'])
    try:
        # Read as whoever owns CODEX_HOME now (Target(None)): reading never takes anything over, and
        # an owner other than `owner` is a problem to report, not a refusal.
        result = codex_home.act(params['codex_home'], codex_home.Target(None), _verify, params, uid, codex_path)
    except codex_home.UnsafePathError as exc:
        result = _evaluate(health.refused_snapshot(exc), params, uid)
    problems, warnings = runner_env.shadowing_problems(params['environment_files'])
    result['problems'].extend(problems)
    result['health_warnings'].extend(warnings)
    if result.get('codex_login_status', {}).get('rc', 0) != 0:
        result['problems'].append({'code': 'codex_status_failed',
                                   'message': 'codex login status failed: %s' % result['codex_login_status']['message']})
    result['healthy'] = not result['problems']
    result['changed'] = False
    module_common.exit_checked(module, result, result)


def _evaluate(snapshot, params, uid):
    return health.evaluate(snapshot, owner_uid=uid, **module_common.verify_options(params))


def _verify(context, params, uid, codex_path):
    """As whoever controls CODEX_HOME: read, evaluate, and ask Codex (as the runner) when asked."""
    result = _evaluate(health.take_snapshot(context.home), params, uid)
    if codex_path:
        # As the user that owns CODEX_HOME (or is meant to): Codex's verdict is the runner's.
        runner = privsep.Identity(uid if uid is not None else context.owner_after())
        try:
            status = codex_process.login_status(codex_path, params['codex_home'], identity=runner,
                                                extra_env=params['codex_environment'])
            result['codex_login_status'] = {'rc': status['rc'], 'message': status['message']}
        except codex_process.CodexProcessError as exc:
            result['codex_login_status'] = {'rc': None, 'message': exc.message}
    return result


if __name__ == '__main__':
    main()
