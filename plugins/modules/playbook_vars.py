#!/usr/bin/python
# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# The documentation of the playbook_vars action plugin (plugins/action/playbook_vars.py), which does all
# the work on the controller; there is no module code.

DOCUMENTATION = r'''
module: playbook_vars
short_description: Check the codexops_* variables of the collection's playbooks, on the controller
version_added: 0.2.0
description:
  - Checks the playbook variables (C(codexops_hosts), C(codexops_become), C(codexops_install_cli),
    C(codexops_keepalive), C(codexops_reseed_hosts), C(codexops_reseed_serial),
    C(codexops_reseed_max_fail_percentage)) that the playbook named by O(playbook) reads, for every host of
    the play, and fails naming the variable, the hosts and what it must be when a value has the wrong type.
    The collection's playbooks run it once (C(run_once)) as the first task of their first play, so a bad
    value stops the run before anything is written.
  - Per-host values (C(codexops_become), C(codexops_install_cli), C(codexops_keepalive)) are read from each
    host's variables (C(hostvars)), so values set in C(host_vars) or for a group are checked per host.
  - The old names (C(codex_hosts), C(codex_become), C(codex_install_cli), C(codex_keepalive),
    C(codex_reseed_hosts), C(codex_reseed_serial), C(codex_reseed_max_fail_percentage)) still work until
    0.3.0 (the playbooks read C(codexops_X | default(codex_X))); each one in use gets an Ansible deprecation
    warning naming its new name. When both are set, the new name wins.
  - Runs on the controller only (an action plugin); it never contacts a host.
author:
  - codexops maintainers (@codexops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
options:
  playbook:
    description:
      - Which playbook's variables to check.
    type: str
    required: true
    choices: [provision, verify, reseed, rotate_access_token, writeback, job_hooks]
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
    details:
      - Run it with C(run_once=true); it reads every host of the play through C(hostvars).
  check_mode:
    support: full
    details:
      - It only reads variables.
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: codexops.runner.codex_auth_seed
'''

EXAMPLES = r'''
- name: Check the playbook variables of every runner (on the controller, no round trip)
  codexops.runner.playbook_vars:
    playbook: provision
  register: playbook_vars
  run_once: true

- name: Say which runners asked for the optional steps
  ansible.builtin.debug:
    msg: >-
      Codex CLI: {{ playbook_vars.hosts_with.codexops_install_cli | join(', ') or 'none' }};
      keepalive: {{ playbook_vars.hosts_with.codexops_keepalive | join(', ') or 'none' }}
  run_once: true
'''

RETURN = r'''
hosts_with:
  description: For each runner-selecting boolean the playbook reads (C(codexops_install_cli) and
    C(codexops_keepalive) for V(provision); empty for the other playbooks), the hosts of the play it is true for
    (the new name, else the old one, else false).
  returned: success
  type: dict
  sample: {"codexops_install_cli": ["runner-1"], "codexops_keepalive": []}
deprecated_names:
  description: The old variable names in use (each also got a deprecation warning).
  returned: success
  type: list
  elements: str
  sample: [codex_become]
'''
