# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The playbook the runner-instance integration tests run: the codex_auth role (provision, or with entry=verify,
verify) on every host, then each host's per-instance health rows (codex_auth_runners_health) kept on the controller
in `health_dir`/<host>.json for the test to read."""

PLAYBOOK = '''---
- name: Provision runner instances
  hosts: codex_runners
  gather_facts: false
  tasks:
    - name: Provision (or, with entry=verify, verify) every instance of the host
      ansible.builtin.include_role:
        name: codexops.runner.codex_auth
        tasks_from: "{{ entry | default('main') }}"

    - name: Keep every instance's health for the test (on the controller)
      ansible.builtin.copy:
        content: "{{ codex_auth_runners_health | to_json }}"
        dest: "{{ health_dir }}/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
      check_mode: false
      changed_when: false
      when: codex_auth_runners_health is defined
'''
