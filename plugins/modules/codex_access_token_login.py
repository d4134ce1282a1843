#!/usr/bin/python
# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
module: codex_access_token_login
short_description: Log a runner's Codex CLI in with a ChatGPT Business/Enterprise access token
version_added: 0.1.0
description:
  - Runs C(codex login --with-access-token) for the runner user with the token on standard input, never on a
    command line, with C(CODEX_HOME) set and C(CODEX_ACCESS_TOKEN), C(OPENAI_API_KEY) and C(CODEX_API_KEY)
    removed from its environment so they cannot shadow what is stored.
  - Idempotent without a network call - when C(auth.json) already holds the same token, Codex is not run.
  - Codex checks the token online. A rejected token fails the task with Codex's message (the token masked),
    and Codex leaves the previous C(auth.json) as it was, so a failed rotation keeps the working login.
  - With O(state=absent), runs C(codex logout), which also revokes the stored credentials when online.
  - When the module runs as root and O(owner) is another user, Codex runs as that user, so every file it
    creates in CODEX_HOME belongs to the runner.
author:
  - codexops maintainers (@codexops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - codexops.runner.codex_home
  - codexops.runner.codex_home.OWNERSHIP
  - codexops.runner.codex_home.VERIFY
  - codexops.runner.codex_home.CODEX_PROCESS
  - codexops.runner.codex_home.LOCKS
options:
  access_token:
    description:
      - The access token. C(at-...) tokens are personal access tokens; anything else is an agent identity JWT.
      - Required with O(state=present).
    type: str
  state:
    description:
      - V(present) logs in with O(access_token); V(absent) logs out.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - Log in even when the same token is already stored (to re-check it online).
    type: bool
    default: false
  smoke_test:
    description:
      - Run C(codex login status) as the runner user after the login (or, when the token was already stored,
        against it). If it fails after a new login, the previous C(auth.json) is put back (atomically, under
        Codex's lock) and the task fails, so a rotation never leaves a runner without its working login.
        For personal access tokens Codex checks the token online.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The token is checked against OpenAI's servers by Codex itself. Point C(CODEX_AUTHAPI_BASE_URL) elsewhere
    only for tests.
seealso:
  - module: codexops.runner.codex_auth_verify
'''

EXAMPLES = r'''
- name: Log the runner in with its access token
  codexops.runner.codex_access_token_login:
    codex_home: /home/ci/.codex
    owner: ci
    access_token: "{{ vault_codex_access_token }}"
  become: true

- name: Log out (and revoke when online)
  codexops.runner.codex_access_token_login:
    codex_home: /home/ci/.codex
    owner: ci
    state: absent
  become: true
'''

RETURN = r'''
token_kind:
  description: V(personal_access_token) or V(agent_identity); null with O(state=absent).
  returned: success
  type: str
  sample: personal_access_token
logged_in:
  description: Whether C(codex login) ran (or would run, in check mode).
  returned: success
  type: bool
  sample: false
auth_mode:
  description: The auth mode of the resulting C(auth.json), as Codex resolves it.
  returned: success
  type: str
  sample: personalAccessToken
attributes_changed:
  description: Mode and ownership repairs made.
  returned: success
  type: list
  elements: str
  sample: []
smoke_test:
  description: With O(smoke_test=true), what C(codex login status) said.
  returned: with O(smoke_test=true), outside check mode
  type: dict
  sample: {rc: 0, message: Logged in using personal access token}
auth:
  description: Health summary of the resulting file, as M(codexops.runner.codex_auth_verify) returns it.
  returned: success
  type: dict
  sample: {healthy: true, auth_mode: personalAccessToken, has_access_token: true, problems: []}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.codexops.runner.plugins.module_utils import access_login
from ansible_collections.codexops.runner.plugins.module_utils import module_common


def main():
    argument_spec = module_common.base_argument_spec(ownership=True, verify=True, runs_codex=True, locks=True)
    argument_spec.update(
        access_token=dict(type='str', no_log=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        force=dict(type='bool', default=False),
        smoke_test=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, required_if=[('state', 'present', ('access_token',))],
                           supports_check_mode=True)
    params = module.params
    codex_path = params['codex_path'] or module.get_bin_path('codex')
    if not codex_path:
        module.fail_json(msg='the Codex CLI was not found on PATH; install it (codexops.runner.codex_cli role) or '
                             'set codex_path.')
    result = module_common.guarded(module, _login, module, params, codex_path)
    module_common.add_environment_checks(result['auth'], params)
    module_common.exit_checked(module, result, result['auth'], predicted=module.check_mode)


def _login(module, params, codex_path):
    uid, gid = module_common.resolve_ids(module)
    login = access_login.AccessTokenLogin(params['codex_home'], codex_path, uid=uid, gid=gid,
                                          check_mode=module.check_mode,
                                          verify_options=module_common.verify_options(params),
                                          codex_environment=params['codex_environment'],
                                          lock_timeout=params['lock_timeout'])
    if params['state'] == 'present':
        return login.present(params['access_token'], force=params['force'], smoke_test=params['smoke_test'])
    return login.absent()


if __name__ == '__main__':
    main()
