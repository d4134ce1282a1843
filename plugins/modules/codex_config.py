#!/usr/bin/python
# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
module: codex_config
short_description: Set top-level keys of a runner's Codex config.toml, keeping everything else
version_added: 0.1.0
description:
  - Sets or removes top-level keys of C(CODEX_HOME/config.toml), such as
    C(cli_auth_credentials_store = "file") (keyring storage fails on headless runners),
    C(forced_login_method) and C(forced_chatgpt_workspace_id).
  - A key appended after a C([table]) header belongs to that table and Codex ignores it as a top-level
    setting. This module edits the top-level key where it is, or inserts it before the first table, and keeps
    comments, order, formatting, tables and all other keys byte for byte.
  - An invalid config.toml gets a clear error and is not touched. The edited document is validated
    (with C(tomllib) where the runner's Python has it) before it atomically replaces the file.
  - A value Codex would refuse to load for a key it knows (C(model = 5), C(sandbox_mode = "bogus")) is
    refused before anything is written, by the same type table M(codexops.runner.codex_auth_verify) uses
    for its C(config_invalid) problem, on any Python the runner has.
  - Creates CODEX_HOME (C(0700)) when missing. A new config.toml is C(0600); an existing one keeps its mode
    and owner.
  - Results and diffs name the changed keys, never values - config.toml can hold MCP server secrets.
author:
  - codexops maintainers (@codexops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - codexops.runner.codex_home
  - codexops.runner.codex_home.OWNERSHIP
options:
  settings:
    description:
      - Top-level keys and their values (string, number, boolean or list). A null value removes the key.
    type: dict
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff lists changed key names, never values.
  platform:
    platforms: posix
seealso:
  - module: codexops.runner.codex_auth_seed
'''

EXAMPLES = r'''
- name: File-based credential storage (keyring fails on headless runners)
  codexops.runner.codex_config:
    codex_home: /home/ci/.codex
    owner: ci
    settings:
      cli_auth_credentials_store: file
  become: true

- name: Pin the login method and workspace; remove a leftover key
  codexops.runner.codex_config:
    codex_home: /home/ci/.codex
    owner: ci
    settings:
      cli_auth_credentials_store: file
      forced_login_method: chatgpt
      forced_chatgpt_workspace_id: "{{ codex_workspace_id }}"
      preferred_auth_method: null
  become: true
'''

RETURN = r'''
changed_keys:
  description: Each changed key with what happened to it (V(added), V(updated) or V(removed)).
  returned: success
  type: dict
  sample: {cli_auth_credentials_store: updated}
attributes_changed:
  description: CODEX_HOME changes made (V(codex_home_created), V(codex_home_mode), V(codex_home_owner)).
  returned: success
  type: list
  elements: str
  sample: []
config_path:
  description: The config.toml path.
  returned: success
  type: str
  sample: /home/ci/.codex/config.toml
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.codexops.runner.plugins.module_utils import codex_home
from ansible_collections.codexops.runner.plugins.module_utils import config_file
from ansible_collections.codexops.runner.plugins.module_utils import constants
from ansible_collections.codexops.runner.plugins.module_utils import module_common


def main():
    argument_spec = module_common.base_argument_spec(ownership=True)
    argument_spec['settings'] = dict(type='dict', required=True)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    path = os.path.join(params['codex_home'], constants.CONFIG_FILE)
    changes, dir_changes, warnings, _text = module_common.guarded(module, _apply, module, params)
    for warning in warnings:
        module.warn(warning)
    result = {
        'changed': bool(changes or dir_changes),
        'changed_keys': changes,
        'attributes_changed': ['codex_home_%s' % item for item in dir_changes],
        'config_path': path,
    }
    if module._diff and changes:
        result['diff'] = {
            'before_header': path, 'after_header': path,
            'before': ''.join('%s: (previous value)\n' % key for key, what in sorted(changes.items()) if what != 'added'),
            'after': ''.join('%s: %s\n' % (key, what) for key, what in sorted(changes.items())),
        }
    module.exit_json(**result)


def _apply(module, params):
    uid, gid = module_common.resolve_ids(module)
    config_file.check_settings(params['settings'])
    return codex_home.act(params['codex_home'], codex_home.Target(uid, gid), config_file.apply_settings,
                          params['settings'], module.check_mode)


if __name__ == '__main__':
    main()
