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
  - With O(runners), every runner instance of the host is read in this one module run (one round trip per host);
    the result is then RV(runners), one export per instance.
author:
  - codexops maintainers (@codexops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - codexops.runner.codex_home
options:
  codex_home:
    description:
      - The runner user's Codex home directory (what C(CODEX_HOME) points to), usually C(~runner/.codex).
      - Must be an absolute path. A symlinked CODEX_HOME is refused, so credentials cannot be redirected.
      - Required unless O(runners) is given; mutually exclusive with it.
    required: false
  owner:
    description:
      - The runner user CODEX_HOME must belong to. A CODEX_HOME owned by anyone else is refused without being read
        (error code C(codex_home_owner)), because where the runner's own home is missing, another local user could
        have planted one (in a shared sticky directory such as C(/tmp)) to have its file written back as the runner's.
      - Without it, the file is read as whoever owns CODEX_HOME. M(codexops.runner.codex_auth_writeback) always
        passes it.
      - Mutually exclusive with O(runners) (each instance has its own).
    type: str
  runners:
    description:
      - Several runner instances on this host, each with its own CODEX_HOME, read in this one module run instead of
        O(codex_home). The result is then RV(runners), one export per instance in the order given; the
        single-runner return values are not returned.
      - Before anything is read, the list is refused, naming the instances, when two instances have one name or
        one CODEX_HOME, a CODEX_HOME lies inside another's, a name is not 1 to 32 characters V(a-z), V(0-9),
        V(_) and V(-) starting with a letter or digit, or an O(runners[].owner) does not exist on the host
        (the same rule as M(codexops.runner.codex_auth_seed) and M(codexops.runner.codex_auth_verify)).
      - An instance whose CODEX_HOME cannot be read (missing, refused) does not stop the others - its entry holds
        C(error_code) and C(msg) instead of the file's facts.
      - O(return_content) and O(fingerprint_salt) apply to every instance.
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      name:
        description:
          - The instance's name, unique on the host.
        type: str
        required: true
      codex_home:
        description:
          - The instance's CODEX_HOME, an absolute path; never a symlink.
        type: path
        required: true
      owner:
        description:
          - The runner user this CODEX_HOME must belong to, as O(owner).
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
  returned: success, when O(runners) is not given
  type: bool
  sample: true
content:
  description: The file's bytes, base64-encoded (as C(slurp) returns them). A credential.
  returned: with O(return_content=true), when the file exists and O(runners) is not given
  type: str
  sample: eyJ0b2tlbnMiOiB7fX0=
auth:
  description: The health summary of the file, as M(codexops.runner.codex_auth_verify) returns it.
  returned: success, when O(runners) is not given
  type: dict
  sample: {healthy: true, auth_mode: chatgpt, has_refresh_token: true, problems: []}
runners:
  description:
    - With O(runners), one export per instance, in the order given - its C(name) and C(codex_home), and RV(exists),
      RV(auth) and (with O(return_content=true)) RV(content) with the same meaning as for a single runner.
    - An instance that could not be read has C(error_code) and C(msg) (which never quote the file) instead.
  returned: when O(runners) is given
  type: list
  elements: dict
  version_added: 0.2.0
  sample:
    - name: gh-1
      codex_home: /srv/actions-runner-1/.codex
      exists: true
      auth: {healthy: true, auth_mode: chatgpt, has_refresh_token: true, problems: []}
    - name: gh-2
      codex_home: /srv/actions-runner-2/.codex
      error_code: codex_home_missing
      msg: /srv/actions-runner-2/.codex does not exist.
'''

import base64

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.codexops.runner.plugins.module_utils import codex_home
from ansible_collections.codexops.runner.plugins.module_utils import health
from ansible_collections.codexops.runner.plugins.module_utils import module_common
from ansible_collections.codexops.runner.plugins.module_utils import safe_files


def main():
    argument_spec = module_common.base_argument_spec()
    argument_spec['codex_home']['required'] = False
    argument_spec.update(owner=dict(type='str'),
                         return_content=dict(type='bool', default=False),
                         fingerprint_salt=dict(type='str', no_log=True),
                         runners=dict(type='list', elements='dict', options=dict(
                             name=dict(type='str', required=True),
                             codex_home=dict(type='path', required=True),
                             owner=dict(type='str'),
                         )))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_one_of=[('codex_home', 'runners')],
                           # Each instance has its own owner.
                           mutually_exclusive=[('codex_home', 'runners'), ('owner', 'runners')])
    params = module.params
    if params['runners'] is not None:
        _exit_instances(module, params)
    uid, _gid = module_common.guarded(module, module_common.resolve_ids, module)
    # With owner: a CODEX_HOME that belongs to anyone else is refused unread (codex_home_owner).
    result = module_common.guarded(module, codex_home.act, params['codex_home'], codex_home.reader(uid), _export,
                                   params)
    module.exit_json(changed=False, **result)


def _exit_instances(module, params):
    """Every instance in this one run: the list is refused as a whole before any CODEX_HOME is read; then one
    instance that cannot be read does not stop the others (its entry says why)."""
    if not params['runners']:
        module.fail_json(msg='runners is empty: give at least one instance, or codex_home.')
    found = module_common.instance_list_problems([dict(entry, user=entry['owner']) for entry in params['runners']])
    if found:
        module_common.refuse_instances(module, found)
    exports = []
    for entry in params['runners']:
        instance_params = dict(params, codex_home=entry['codex_home'], owner=entry['owner'])
        item = {'name': entry['name'], 'codex_home': entry['codex_home']}
        try:
            uid, _gid = safe_files.resolve_ids(entry['owner'])
            item.update(codex_home.act(entry['codex_home'], codex_home.reader(uid), _export, instance_params))
        except Exception as exc:  # pylint: disable=broad-except
            # As module_common.guarded words it (never the file's content), for this instance only.
            msg, code = module_common.refusal(exc)
            item.update(msg=msg, error_code=code or 'export_failed')
        exports.append(item)
    module.exit_json(changed=False, runners=exports)


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
