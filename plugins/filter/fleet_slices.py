# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report of a sliced run, on the controller (AWX / Automation Controller job slicing, or several
`--limit` runs): the reports of the slices merged into the report one unsliced run gives.

Each slice's report holds one row per runner of that slice. A row is made from its runner's verify summary
(codex_fleet_report copies the summary's facts into it, and derives the rest from the whole fleet), so the
summary is read back from the row and the fleet's verdict recomputed over every slice's runners at once by
codex_fleet_report itself - the same function, so one refresh token on two runners of different slices is
`sharing` by the same rule (codex_shared_fingerprints) as in an unsliced run. Nothing here decides anything
about a runner.
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six import string_types

from ansible_collections.codexops.runner.plugins.filter.fleet import UNREACHABLE_CODE, codex_fleet_report

# Row fields that codex_fleet_report derives from the fleet or names itself: never read back into a summary.
_DERIVED = ('host', 'runner_host', 'instance', 'shared_token', 'problems', 'warnings')


def _coded(codes):
    """A row's list of codes back as the summary's [{code}], or None when it is not a list of texts."""
    if codes is None:
        return []
    if not isinstance(codes, list) or not all(isinstance(code, string_types) for code in codes):
        return None
    return [{'code': code} for code in codes]


def _summary_of(row):
    """The summary a report row was made from, as far as codex_fleet_report reads it: None for an unknown
    runner (its row has no health), {unreachable: true} for one Ansible could not reach."""
    if not isinstance(row.get('healthy'), bool):
        return {'unreachable': True} if row.get('problems') == [UNREACHABLE_CODE] else None
    problems, warnings = _coded(row.get('problems')), _coded(row.get('warnings'))
    if problems is None or warnings is None:
        return None  # not a row codex_fleet_report wrote: the runner is unknown, as a malformed summary is
    summary = dict((key, value) for key, value in row.items() if key not in _DERIVED)
    summary.update(problems=problems, health_warnings=warnings)
    if row.get('instance') is not None:
        summary['name'] = row['instance']  # runner_of: a `host/instance` row names its instance
    return summary


def _rows(report, number):
    if not isinstance(report, dict) or not isinstance(report.get('hosts'), list):
        raise AnsibleFilterError('codex_fleet_merge: report %d is not a fleet report (a dict with a list of rows in '
                                 '`hosts`, as fleet-report.json holds it)' % number)
    rows = report['hosts']
    if not all(isinstance(row, dict) and isinstance(row.get('host'), string_types) and row['host'] for row in rows):
        raise AnsibleFilterError('codex_fleet_merge: report %d has a row without a runner name (`host`)' % number)
    return rows


def codex_fleet_merge(reports, hosts=None):
    """One fleet report over the runners of several reports (the slices of one run), computed by
    codex_fleet_report; `hosts` (the inventory hosts the slices were cut from) adds each host that no report
    has as unknown, so a slice that never reported leaves the fleet not ok. A runner in two reports is refused:
    slices never overlap, so the reports are not of one run."""
    if not isinstance(reports, list):
        raise AnsibleFilterError('codex_fleet_merge takes a list of fleet reports (the slices\' fleet-report.json)')
    hosts = [hosts] if isinstance(hosts, string_types) else list(hosts or [])
    if not all(isinstance(host, string_types) and host for host in hosts):
        raise AnsibleFilterError('codex_fleet_merge: the hosts must be inventory host names')
    health, seen_in, covered = {}, {}, set()
    for number, report in enumerate(reports, 1):
        for row in _rows(report, number):
            name = row['host']
            if name in seen_in:
                raise AnsibleFilterError('codex_fleet_merge: runner %s is in report %d and in report %d; the slices of '
                                         'one run never share a runner, so these reports are not of one run'
                                         % (name, seen_in[name], number))
            seen_in[name] = number
            health[name] = _summary_of(row)
            runner_host = row.get('runner_host')
            covered.add(runner_host if isinstance(runner_host, string_types) and runner_host else name)
    for host in hosts:
        if host not in covered:
            health[host] = None  # in the inventory, in no slice's report: unverified
    report = codex_fleet_report(health)
    report['merged_reports'] = len(reports)
    return report


class FilterModule(object):

    def filters(self):
        return {
            'codex_fleet_merge': codex_fleet_merge,
        }
