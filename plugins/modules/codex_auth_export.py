#!/usr/bin/python
# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
module: codex_auth_export
short_description: Read a runner's auth.json for write-back, safely, as the user that owns it
version_added: 0.2.0
description:
  - Reads C(CODEX_HOME/auth.json) so the refreshed file of an ephemeral runner can go back into the seed
    store (the M(codexops.runner.codex_auth_verify) summary comes with it). This is what
    M(codexops.runner.codex_auth_writeback) (and so the C(codexops.runner.codex_writeback) role) uses instead
    of M(ansible.builtin.slurp).
  - Unlike C(slurp) run as root, it never follows a link, reads only a regular file with a single link, never
    blocks on a FIFO or device, stops at 1 MiB, and reads as the user that owns CODEX_HOME - so a runner user
    cannot make it read another user's credentials or a root-only file.
  - "The content is returned only with O(return_content=true). It is a credential - use C(no_log: true) on the
    task, as the role does."
author:
  - codexops maintainers (@codexops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - codexops.runner.codex_home
options:
  owner:
    description:
      - The runner user CODEX_HOME must belong to. A CODEX_HOME owned by anyone else is refused without being read
        (error code C(codex_home_owner)): where the runner's own home is missing, another local user could have
        planted one (in a shared sticky directory such as C(/tmp)) to have its file written back as the runner's.
      - Without it, the file is read as whoever owns CODEX_HOME. M(codexops.runner.codex_auth_writeback) always
        passes it.
    type: str
  return_content:
    description:
      - Return the file's bytes (base64) in RV(content). Without it only the facts are returned.
    type: bool
    default: false
  fingerprint_salt:
    description:
      - Salt for the refresh-token fingerprint in RV(auth), as in M(codexops.runner.codex_auth_verify).
    type: str
attributes:
  check_mode:
    support: full
    details:
      - The module never changes anything, so check mode runs it as usual.
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: codexops.runner.codex_auth_verify
  - module: codexops.runner.codex_auth_writeback
'''

EXAMPLES = r'''
- name: Read the refreshed auth.json of an ephemeral runner
  codexops.runner.codex_auth_export:
    codex_home: /home/ci/.codex
    owner: ci
    return_content: true
  register: runner_auth
  no_log: true
  become: true
'''

RETURN = r'''
exists:
  description: Whether C(auth.json) exists.
  returned: success
  type: bool
  sample: true
content:
  description: The file's bytes, base64-encoded (as C(slurp) returns them). A credential.
  returned: with O(return_content=true), when the file exists
  type: str
  sample: eyJ0b2tlbnMiOiB7fX0=
auth:
  description: The health summary of the file, as M(codexops.runner.codex_auth_verify) returns it.
  returned: success
  type: dict
  sample: {healthy: true, auth_mode: chatgpt, has_refresh_token: true, problems: []}
'''

import base64

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.codexops.runner.plugins.module_utils import codex_home
from ansible_collections.codexops.runner.plugins.module_utils import health
from ansible_collections.codexops.runner.plugins.module_utils import module_common


def main():
    argument_spec = module_common.base_argument_spec()
    argument_spec.update(owner=dict(type='str'),
                         return_content=dict(type='bool', default=False),
                         fingerprint_salt=dict(type='str', no_log=True))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    uid, _gid = module_common.guarded(module, module_common.resolve_ids, module)
    # With owner: a CODEX_HOME that belongs to anyone else is refused unread (codex_home_owner).
    result = module_common.guarded(module, codex_home.act, params['codex_home'], codex_home.reader(uid), _export,
                                   params)
    module.exit_json(changed=False, **result)


def _export(context, params):
    """As the user that owns CODEX_HOME: the file (refused if not a plain, single-link file) and its summary."""
    if not context.exists:
        raise codex_home.UnsafePathError('codex_home_missing', '%s does not exist.' % params['codex_home'])
    # One read: the content and its summary describe the same file, even if Codex refreshes meanwhile.
    snapshot = health.take_snapshot(context.home)
    auth = snapshot['auth']
    if auth['state'] == 'refused':
        raise codex_home.UnsafePathError(auth['code'], auth['message'])
    data = auth.get('data')
    summary = health.evaluate(snapshot, salt=params['fingerprint_salt'], require_file_store=False)
    result = {'exists': data is not None, 'auth': summary}
    if data is not None and params['return_content']:
        result['content'] = base64.b64encode(data).decode('ascii')
    return result


if __name__ == '__main__':
    main()
