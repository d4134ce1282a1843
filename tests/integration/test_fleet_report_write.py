# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report written by codex_fleet_report_write, through ansible-playbook: byte for byte what the
role's former `file` + `copy` tasks wrote for the same fleet (hostile host-supplied text included), with no
module run anywhere (every interpreter counts its runs), and nothing written under --check."""

import json
import os
import stat
import sys

from support.fake_credentials import now

# The role's report tasks before codex_fleet_report_write (roles/codex_auth/tasks/report.yml, issue 20), kept
# here as the reference the plugin's bytes are compared with.
LEGACY_WRITE = '''
    - name: Write the fleet report (the former tasks)
      delegate_to: localhost
      run_once: true
      become: false
      block:
        - name: Create the report directory
          ansible.builtin.file:
            path: "{{ legacy_dir }}"
            state: directory
            mode: "0755"
          changed_when: false

        - name: Write the report as JSON and Markdown
          ansible.builtin.copy:
            content: "{{ item.content }}"
            dest: "{{ legacy_dir }}/{{ codex_auth_report_name }}.{{ item.ext }}"
            mode: "0644"
          loop:
            - {ext: json, content: "{{ codex_auth_fleet | to_nice_json }}\\n"}
            - {ext: md, content: "{{ codex_auth_fleet | codexops.runner.codex_fleet_markdown }}"}
          changed_when: false
'''

PLAYBOOK = '''
- name: A fleet whose health comes from the test
  hosts: codex_runners
  gather_facts: false
  tasks:
    - name: Record each runner's health
      ansible.builtin.set_fact:
        codex_auth_health: "{{ healths[inventory_hostname] }}"

    - name: Aggregate, as the role does
      ansible.builtin.set_fact:
        codex_auth_fleet: >-
          {{ hostvars | codexops.runner.codex_fleet_health(ansible_play_hosts_all,
               instances='codex_auth_runners_health') | codexops.runner.codex_fleet_report }}
      run_once: true
%s
    - name: Write it with the plugin
      codexops.runner.codex_fleet_report_write:
        fleet: "{{ codex_auth_fleet }}"
        dir: "{{ codex_auth_report_dir }}"
        name: "{{ codex_auth_report_name }}"
      run_once: true
      become: false
'''

ROLE_PLAYBOOK = '''
- name: A fleet whose health comes from the test
  hosts: codex_runners
  gather_facts: false
  tasks:
    - name: Record each runner's health
      ansible.builtin.set_fact:
        codex_auth_health: "{{ healths[inventory_hostname] }}"

    - name: The role's report
      ansible.builtin.include_role:
        name: codexops.runner.codex_auth
        tasks_from: report
      run_once: true
'''


def health(fingerprint, healthy=True, problems=(), **fields):
    summary = {'healthy': healthy, 'problems': [{'code': code, 'message': 'x'} for code in problems],
               'health_warnings': [{'code': 'stale', 'message': 'x'}], 'auth_mode': 'chatgpt',
               'last_refresh': now().strftime('%Y-%m-%dT%H:%M:%SZ'), 'age_days': 9.25, 'stale': True,
               'credentials_store': 'file', 'refresh_token_fingerprint': fingerprint, 'owner': 'ci'}
    summary.update(fields)
    return summary


HEALTHS = {
    'runner-1': health('aaaa1111'),
    'runner-2': health('bbbb2222', False, ['auth_missing', 'weird|code']),
    # Text a host supplies: escaped in the Markdown, \\u-escaped in the JSON, exactly as the filters do.
    'runner-3': health('cccc3333', auth_mode=u'chat|gpt `x` *y* \u202e\u00e9\u4e2d\n| injected | row |',
                       keepalive_result='refreshed', keepalive_reason=u'r\u00e9ason'),
    'runner-4': health('cccc3333'),
    'runner-5': 'not a verify result',
}


class CountingFleet:
    """Five local hosts and localhost, each with an interpreter that logs every module run."""

    def __init__(self, workspace):
        self.root = workspace.root
        self.counts = self.root / 'counts'
        self.counts.mkdir()
        self.report_dir = self.root / 'report' / 'new'
        self.legacy_dir = self.root / 'report' / 'legacy'
        hosts = {}
        for host in list(HEALTHS) + ['localhost']:
            wrapper = self.root / ('python-%s' % host)
            wrapper.write_text('#!/bin/sh\necho >> %s\nexec %s "$@"\n' % (self.counts / host, sys.executable))
            wrapper.chmod(0o755)
            hosts[host] = {'ansible_connection': 'local', 'ansible_python_interpreter': str(wrapper)}
        self.inventory = self.root / 'inventory.json'
        self.inventory.write_text(json.dumps({
            'codex_runners': {'hosts': dict((host, hosts[host]) for host in HEALTHS)},
            'ungrouped': {'hosts': {'localhost': hosts['localhost']}}}))
        self.variables = {'healths': HEALTHS, 'codex_auth_report_dir': str(self.report_dir),
                          'codex_auth_report_name': 'fleet-report', 'legacy_dir': str(self.legacy_dir)}

    def module_runs(self):
        runs = dict((path.name, len(path.read_text().splitlines())) for path in self.counts.iterdir())
        for path in self.counts.iterdir():
            path.unlink()
        return runs

    def run(self, workspace, text, **kwargs):
        playbook = self.root / 'report.yml'
        playbook.write_text(text)
        return workspace.playbook(str(playbook), str(self.inventory), self.variables, label='report', **kwargs)


def files(directory):
    return dict((name, (directory / name).read_bytes()) for name in sorted(os.listdir(str(directory))))


def test_the_plugin_writes_what_the_copy_tasks_wrote_without_a_module_run(workspace):
    fleet = CountingFleet(workspace)
    fleet.run(workspace, PLAYBOOK % LEGACY_WRITE)
    legacy, new = files(fleet.legacy_dir), files(fleet.report_dir)
    assert sorted(new) == ['fleet-report.json', 'fleet-report.md']
    assert new == legacy
    assert b'\\u202e' in new['fleet-report.json'] and b'chat\\|gpt' in new['fleet-report.md']
    for name in new:
        assert stat.S_IMODE(os.stat(str(fleet.report_dir / name)).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(str(fleet.report_dir)).st_mode) == 0o755
    # The former tasks ran modules on the controller (file, then stat + copy per file: five; more with --diff),
    # never on a runner; the plugin runs none.
    runs = fleet.module_runs()
    assert list(runs) == ['localhost'] and runs['localhost'] >= 5

    fleet.run(workspace, PLAYBOOK % '')
    assert fleet.module_runs() == {}
    assert files(fleet.report_dir).keys() == new.keys()


def test_the_role_report_writes_no_module_prints_one_line_and_writes_nothing_under_check(workspace):
    fleet = CountingFleet(workspace)
    checked = fleet.run(workspace, ROLE_PLAYBOOK, check=True, expect_failure=True)
    assert not fleet.report_dir.exists() and not fleet.report_dir.parent.exists(), 'check mode wrote a report'
    assert 'Report (check mode, not written): %s/fleet-report.md' % fleet.report_dir in checked
    assert fleet.module_runs() == {}

    output = fleet.run(workspace, ROLE_PLAYBOOK, expect_failure=True)
    assert fleet.module_runs() == {}
    assert ('"msg": "5 hosts: 1 healthy, 1 broken (runner-2), 2 sharing a refresh token (runner-3 + runner-4), '
            '4 stale, 1 unknown (runner-5). Report: %s/fleet-report.md"' % fleet.report_dir) in output
    assert 'Codex credentials need attention' in output
    report = json.loads((fleet.report_dir / 'fleet-report.json').read_text())
    assert report['broken'] == ['runner-2'] and report['unknown'] == ['runner-5'] and not report['ok']
    assert (fleet.report_dir / 'fleet-report.md').read_text().count('\n| ') == 5 + 1  # header + one row each
