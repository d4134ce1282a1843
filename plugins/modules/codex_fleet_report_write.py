#!/usr/bin/python
# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# The documentation of the codex_fleet_report_write action plugin (plugins/action/codex_fleet_report_write.py),
# which does all the work on the controller; there is no module code.

DOCUMENTATION = r'''
module: codex_fleet_report_write
short_description: Write the fleet report (JSON and Markdown) on the controller, with no module run
version_added: 0.2.0
description:
  - Writes the fleet report that the P(codexops.runner.codex_fleet_report#filter) filter returns as
    C(<dir>/<name>.json) (Ansible's C(to_nice_json) of it, plus a line break) and C(<dir>/<name>.md) (the
    P(codexops.runner.codex_fleet_markdown#filter) filter's text), and returns a one-line summary of the
    fleet in RV(msg), shown without C(-v).
  - The C(report) entry point of the C(codexops.runner.codex_auth) role runs it once per play
    (C(run_once)), so the verify, provision and reseed playbooks write their reports with it.
  - Runs on the controller only (an action plugin); no module runs, on the runners or on the controller,
    so the report costs no round trip and no module process.
  - Each file is written to a temporary file in the report directory, then renamed over the old one, mode
    C(0644); a reader never sees half a report, and a link at a report file's name is replaced, never
    followed. A missing report directory is created, mode C(0755) (its missing parents too); an existing
    one is used as it is (a link to a directory included, as the controller is trusted).
  - Never reports C(changed); the report is a controller artifact, not a change to a runner.
author:
  - codexops maintainers (@codexops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
options:
  fleet:
    description:
      - The fleet report, as the P(codexops.runner.codex_fleet_report#filter) filter returns it (the
        C(codex_auth_fleet) fact of the C(codexops.runner.codex_auth) role's C(report) entry point).
    type: dict
    required: true
  dir:
    description:
      - The report directory on the controller. A relative path is relative to the controller's working
        directory.
    type: path
    required: true
  name:
    description:
      - The file name of the report, without a directory or an extension.
    type: str
    default: fleet-report
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
    details:
      - Run it with C(run_once=true); the fleet report covers every host of the play already.
  check_mode:
    support: full
    details:
      - Writes nothing, creates no directory, and returns the paths it would write with RV(written=false).
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: codexops.runner.codex_auth_verify
'''

EXAMPLES = r'''
- name: Aggregate the play's runners
  ansible.builtin.set_fact:
    codex_auth_fleet: >-
      {{ hostvars | codexops.runner.codex_fleet_health(ansible_play_hosts_all,
           instances='codex_auth_runners_health') | codexops.runner.codex_fleet_report }}
  run_once: true

- name: Write the fleet report and print its summary (on the controller, no module run)
  codexops.runner.codex_fleet_report_write:
    fleet: "{{ codex_auth_fleet }}"
    dir: "{{ playbook_dir }}/codex-report"
    name: fleet-report
  run_once: true
  become: false
'''

RETURN = r'''
msg:
  description: One line on the fleet (runners, hosts, healthy, broken, sharing a refresh token, stale, unknown,
    naming the broken, sharing and unknown runners) and the Markdown report's path.
  returned: success
  type: str
  sample: '3 hosts: 2 healthy, 1 broken (runner-2), 0 sharing a refresh token, 0 stale, 0 unknown.
    Report: /srv/ci/codex-report/fleet-report.md'
ok:
  description: The fleet's verdict (the report's C(ok)), true when no runner is broken, unknown or sharing a
    refresh token.
  returned: success
  type: bool
  sample: false
written:
  description: Whether the files were written (false in check mode).
  returned: success
  type: bool
  sample: true
json:
  description: The JSON report's path.
  returned: success
  type: str
  sample: /srv/ci/codex-report/fleet-report.json
markdown:
  description: The Markdown report's path.
  returned: success
  type: str
  sample: /srv/ci/codex-report/fleet-report.md
'''
