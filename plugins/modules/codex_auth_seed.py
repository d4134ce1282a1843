#!/usr/bin/python
# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
module: codex_auth_seed
short_description: Seed a Codex auth.json onto a runner, once, safely
version_added: 0.1.0
description:
  - Writes a Codex C(auth.json) into CODEX_HOME from a seed made on a trusted machine, and makes
    CODEX_HOME C(0700) and C(auth.json) C(0600), owned by the runner user.
  - Codex refreshes ChatGPT credentials by itself and rotates the refresh token each time, so the file
    on a runner is usually newer than any seed. By default (O(replace=never)) the seed is written only
    when C(auth.json) is absent; rewriting it from the original seed would throw the refreshed tokens away.
  - The seed is validated before anything is written. A bad seed fails the task and changes nothing.
  - Writes the way Codex does, under Codex's own locks (C(auth.lock), then C(auth.json.lock)), through an
    C(O_EXCL) temp file at C(0600) in CODEX_HOME, fsync, and an atomic rename. A symlinked or hard-linked
    C(auth.json) and a symlinked CODEX_HOME are refused.
  - Returns the same health summary as M(codexops.runner.codex_auth_verify) for the resulting file,
    so provisioning needs no separate verify task.
  - Never returns, logs or diffs a credential.
author:
  - codexops maintainers (@codexops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - codexops.runner.codex_home
  - codexops.runner.codex_home.OWNERSHIP
  - codexops.runner.codex_home.VERIFY
  - codexops.runner.codex_home.LOCKS
  - codexops.runner.codex_home.ATTRIBUTES
options:
  content:
    description:
      - The seed C(auth.json) content, typically from a vault-encrypted per-host file
        (C(lookup('ansible.builtin.file', 'codex_seeds/' ~ inventory_hostname ~ '.json'))).
      - A dict is accepted too and serialized as JSON (Ansible may turn a JSON string into a dict when
        templating).
      - Mutually exclusive with O(src).
      - One seed per runner. A ChatGPT refresh token copied onto two runners breaks the second one
        with C(refresh_token_reused) as soon as the first refreshes.
    type: raw
  src:
    description:
      - Path of the seed file on the managed host. Mutually exclusive with O(content).
      - Read without following symlinks.
    type: path
  replace:
    description:
      - When an existing C(auth.json) is replaced. Each policy includes the ones before it.
      - V(never) writes only when C(auth.json) is absent.
      - V(invalid) also replaces a file Codex cannot load or that fails O(allowed_auth_modes) /
        O(require_refresh_token).
      - V(older) also replaces a valid file whose C(last_refresh) is older than the seed's.
      - V(different) also replaces a valid file holding other credentials (another API key or access
        token, another ChatGPT account or user). A refreshed copy of the same ChatGPT login is the same
        credentials, so this never undoes a refresh.
      - V(always) replaces whenever the content differs.
      - A file that already holds exactly the seed is never rewritten.
    type: str
    choices: [never, invalid, older, different, always]
    default: never
  allowed_auth_modes:
    description:
      - Auth modes a seed may have (resolved as Codex resolves them when C(auth_mode) is absent). A seed
        of another mode fails the task.
    default: [chatgpt]
  config_settings:
    description:
      - Top-level C(config.toml) keys to set in the same run, exactly as M(codexops.runner.codex_config) sets
        them, for example C(cli_auth_credentials_store=file). A null value removes a key.
      - Provisions a runner in one module round trip instead of two; the returned RV(auth) summary then
        reflects the new configuration.
    type: dict
  backup:
    description:
      - Keep a replaced C(auth.json) beside it as a C(0600) timestamped copy (C(auth.json.<UTC time>.bak)).
    type: bool
    default: false
  backup_keep:
    description:
      - How many backups of C(auth.json) to keep when a new one is made; older ones are deleted, so an old
        credential does not live on in CODEX_HOME. V(0) keeps every backup.
    type: int
    default: 3
notes:
  - Run it with C(become) when O(owner) is another user, like M(ansible.posix.authorized_key).
  - The runner user is treated as untrusted. Inside a CODEX_HOME the runner controls, everything is done by a
    process that dropped to the runner's user and groups; root only creates or hands over a CODEX_HOME that
    sits in a directory only root controls. Links the runner planted on the path are refused, never followed.
  - A check-mode run reports exactly what a real run would do, including the resulting health summary.
seealso:
  - module: codexops.runner.codex_auth_verify
  - module: codexops.runner.codex_config
'''

EXAMPLES = r'''
- name: Seed auth.json only if the runner has none (the safe default), with the file store, in one round trip
  codexops.runner.codex_auth_seed:
    codex_home: /home/ci/.codex
    owner: ci
    content: "{{ lookup('ansible.builtin.file', 'codex_seeds/' ~ inventory_hostname ~ '.json') }}"
    config_settings:
      cli_auth_credentials_store: file
  become: true
  register: seeded

- name: Show the summary (never a token)
  ansible.builtin.debug:
    msg: "{{ seeded.action }}: healthy={{ seeded.auth.healthy }} mode={{ seeded.auth.auth_mode }}"

- name: Reseed a broken runner, keeping a backup of what was there
  codexops.runner.codex_auth_seed:
    codex_home: /home/ci/.codex
    owner: ci
    content: "{{ lookup('ansible.builtin.file', 'codex_seeds/' ~ inventory_hostname ~ '.json') }}"
    replace: invalid
    backup: true
  become: true

- name: Rotate an API key on runners that use one
  codexops.runner.codex_auth_seed:
    codex_home: /home/ci/.codex
    owner: ci
    content:
      auth_mode: apikey
      OPENAI_API_KEY: "{{ vault_openai_api_key }}"
    allowed_auth_modes: [apikey]
    replace: different
  become: true
'''

RETURN = r'''
pending:
  description:
    - Whether the run has (or, in check mode, would have) anything to do - the module's own C(changed).
    - Roles that run the module in check mode as a plan and override C(changed) with C(changed_when) read this
      key instead of rebuilding the rule.
  returned: success
  type: bool
  sample: false
action:
  description: What happened to C(auth.json).
  returned: success
  type: str
  choices: [created, replaced, kept]
  sample: kept
reason:
  description: Why, in words (never content).
  returned: success
  type: str
  sample: auth.json exists and replace is never (Codex may have refreshed it since)
backup_file:
  description: Path of the C(0600) backup of the replaced file, when O(backup=true) and a file was replaced.
  returned: success
  type: str
  sample: /home/ci/.codex/auth.json.20261121T102200.123456Z.bak
attributes_changed:
  description: Mode and ownership repairs made, such as V(codex_home_mode) or V(auth_owner).
  returned: success
  type: list
  elements: str
  sample: [auth_mode]
config_changed_keys:
  description: With O(config_settings), each changed config.toml key and what happened to it.
  returned: success
  type: dict
  sample: {cli_auth_credentials_store: added}
config_warnings:
  description: With O(config_settings), keys also found inside a table, where Codex ignores them.
  returned: success
  type: list
  elements: str
  sample: []
removed_temp_files:
  description: How many temp files left by an interrupted earlier run were removed.
  returned: success
  type: int
  sample: 0
auth:
  description:
    - Health summary of the resulting C(auth.json), exactly as M(codexops.runner.codex_auth_verify) returns it
      (in check mode, of the file a real run would leave).
  returned: success
  type: dict
  sample:
    healthy: true
    problems: []
    health_warnings: []
    auth_mode: chatgpt
    last_refresh: '2026-11-21T10:22:00Z'
    has_refresh_token: true
    refresh_token_fingerprint: 3f9a1c0e5b7d2a64
'''

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import module_common
from ansible_collections.codexops.runner.plugins.module_utils import safe_files
from ansible_collections.codexops.runner.plugins.module_utils import seeding


def main():
    argument_spec = module_common.base_argument_spec(ownership=True, verify=True, locks=True)
    argument_spec.update(
        content=dict(type='raw', no_log=True),
        src=dict(type='path'),
        replace=dict(type='str', default='never', choices=list(seeding.REPLACE_POLICIES)),
        backup=dict(type='bool', default=False),
        backup_keep=dict(type='int', default=safe_files.DEFAULT_BACKUP_KEEP),
        config_settings=dict(type='dict'),
    )
    argument_spec['allowed_auth_modes']['default'] = ['chatgpt']
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[('content', 'src')],
        required_one_of=[('content', 'src')],
        supports_check_mode=True,
    )
    params = module.params
    if isinstance(params['content'], dict):
        # Every value of a no_log dict becomes a string Ansible masks wherever it appears: a dict
        # seed holding auth_mode "apikey" would return auth_mode VALUE_SPECIFIED_IN_NO_LOG_PARAMETER.
        # Auth mode names are not secrets.
        module.no_log_values.difference_update(auth_model.KNOWN_AUTH_MODES)
    if params['backup_keep'] < 0:
        module.fail_json(msg='backup_keep must be 0 (keep every backup) or more.')
    result = module_common.guarded(module, _seed, module, params)
    for warning in result['config_warnings']:
        module.warn(warning)
    diff = result.pop('diff')
    if module._diff:
        result['diff'] = diff
    module_common.add_environment_checks(result['auth'], params)
    module_common.exit_checked(module, result, result['auth'], predicted=module.check_mode)


def _seed(module, params):
    uid, gid = module_common.resolve_ids(module)
    if isinstance(params['content'], dict):
        seed_data = json.dumps(params['content'], indent=2).encode('utf-8')
    elif params['content'] is not None:
        # surrogatepass: content with a lone surrogate becomes bytes that fail validation as
        # "not UTF-8", instead of an exception.
        seed_data = str(params['content']).encode('utf-8', 'surrogatepass')
    else:
        seed_data = module_common.read_seed_file(module, params['src'])
    seed = seeding.load_seed(seed_data, params['allowed_auth_modes'], params['require_refresh_token'])
    return seeding.SeedRun(
        params['codex_home'], seed_data, seed, policy=params['replace'], uid=uid, gid=gid,
        backup=params['backup'], check_mode=module.check_mode,
        verify_options=module_common.verify_options(params), config_settings=params['config_settings'],
        lock_timeout=params['lock_timeout'], backup_keep=params['backup_keep'],
    ).run()


if __name__ == '__main__':
    main()
