# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet aggregation of codex_auth_verify results, on the controller.

Input is always {host: health summary}; summaries hold facts and salted fingerprints, never
secrets, so everything here can be printed and written to a report.
"""

import datetime

from ansible.errors import AnsibleFilterError

REPORT_COLUMNS = ('host', 'auth_mode', 'healthy', 'problems', 'last_refresh', 'age_days', 'credentials_store',
                  'refresh_token_fingerprint')


def _codes(items):
    return [item.get('code') for item in items or [] if isinstance(item, dict)]


def _summaries(health_by_host):
    if not isinstance(health_by_host, dict):
        raise AnsibleFilterError('codex fleet filters take a dict of {host: codex_auth_verify result}')
    return dict((str(host), value if isinstance(value, dict) else None) for host, value in health_by_host.items())


def codex_fleet_health(hostvars, hosts, variable='codex_auth_health'):
    """{host: hostvars[host][variable]} for the given hosts, None where a host has no result
    (unreachable, or failed before verifying): the report counts those as unknown.

    `variable` may be a list of names, tried in order: the first that holds a result of a task that
    ran (a dict, not a skipped result) wins, e.g. a write that ran before the plan it followed."""
    names = [variable] if isinstance(variable, str) else list(variable or [])
    collected = {}
    for host in hosts or []:
        value = None
        for name in names:
            try:
                candidate = hostvars[host].get(name)
            except (KeyError, AttributeError):
                candidate = None
            if isinstance(candidate, dict) and not candidate.get('skipped'):
                value = candidate
                break
        collected[str(host)] = value
    return collected


def codex_shared_fingerprints(health_by_host):
    """{fingerprint: [hosts]} for every refresh-token fingerprint found on more than one host."""
    hosts_by_fp = {}
    for host, health in sorted(_summaries(health_by_host).items()):
        fingerprint = (health or {}).get('refresh_token_fingerprint')
        if fingerprint:
            hosts_by_fp.setdefault(fingerprint, []).append(host)
    return dict((fp, hosts) for fp, hosts in hosts_by_fp.items() if len(hosts) > 1)


def codex_seed_conflicts(plans):
    """Refresh tokens that seeding would put on more than one host.

    `plans` maps host -> a codex_auth_seed check-mode result. Its `auth` summary is the state after
    seeding (exactly predicted), so a fingerprint on two hosts where at least one would be written is
    a seed about to be shared. Sharing that already exists and that this run does not touch is
    left to verify. Returns [{fingerprint, hosts, written}].
    """
    conflicts = []
    predicted = dict((host, (plan or {}).get('auth')) for host, plan in (plans or {}).items())
    for fingerprint, hosts in sorted(codex_shared_fingerprints(predicted).items()):
        written = [host for host in hosts if (plans[host] or {}).get('action') in ('created', 'replaced')]
        if written:
            conflicts.append({'fingerprint': fingerprint, 'hosts': hosts, 'written': written})
    return conflicts


def codex_fleet_report(health_by_host):
    """Aggregate {host: codex_auth_verify result} into the fleet report."""
    summaries = _summaries(health_by_host)
    shared = codex_shared_fingerprints(summaries)
    sharing_hosts = sorted(set(host for hosts in shared.values() for host in hosts))
    rows, problems_by_code, broken, stale, unknown = [], {}, [], [], []
    for host, health in sorted(summaries.items()):
        if health is None:
            unknown.append(host)
            rows.append({'host': host, 'healthy': None, 'problems': ['unreachable_or_unverified']})
            continue
        codes = _codes(health.get('problems'))
        for code in codes:
            problems_by_code.setdefault(code, []).append(host)
        if not health.get('healthy', False):
            broken.append(host)
        if health.get('stale'):
            stale.append(host)
        row = dict((column, health.get(column)) for column in REPORT_COLUMNS if column != 'host')
        row.update(host=host, problems=codes, warnings=_codes(health.get('health_warnings')),
                   shared_token=host in sharing_hosts, stale=bool(health.get('stale')),
                   owner=health.get('owner'), codex_home_mode=health.get('codex_home_mode'),
                   auth_file_mode=health.get('auth_file_mode'))
        rows.append(row)
    return {
        'generated_at': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'ok': not (broken or shared or unknown),
        'totals': {'hosts': len(rows), 'healthy': len(rows) - len(broken) - len(unknown), 'broken': len(broken),
                   'stale': len(stale), 'unknown': len(unknown), 'shared_tokens': len(shared)},
        'hosts': rows,
        'broken': broken,
        'stale': stale,
        'unknown': unknown,
        'problems_by_code': dict(sorted(problems_by_code.items())),
        'shared_fingerprints': dict(sorted(shared.items())),
        # What reseed replaces: broken runners, and every runner of a shared refresh token.
        'needs_reseed': sorted(set(broken) | set(sharing_hosts)),
    }


def _cell(value):
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, list):
        return ', '.join('`%s`' % item for item in value) if value else '-'
    return str(value).replace('|', '\\|')


def codex_fleet_markdown(report):
    """The fleet report as Markdown: a summary line, then one table row per host."""
    totals = report['totals']
    lines = [
        '# Codex credentials: fleet report',
        '',
        'Generated %s. **%d hosts: %d healthy, %d broken, %d stale, %d unknown, %d shared refresh token(s).**'
        % (report['generated_at'], totals['hosts'], totals['healthy'], totals['broken'], totals['stale'],
           totals['unknown'], totals['shared_tokens']),
        '',
        '| host | mode | health | problems | last refresh | age (days) | store | fingerprint |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for row in report['hosts']:
        health = 'unknown' if row.get('healthy') is None else ('healthy' if row['healthy'] else '**BROKEN**')
        if row.get('healthy') and row.get('stale'):
            health = 'stale'
        fingerprint = _cell(row.get('refresh_token_fingerprint'))
        if row.get('shared_token'):
            fingerprint += ' **SHARED**'
        lines.append('| %s |' % ' | '.join([
            row['host'], _cell(row.get('auth_mode')), health, _cell(row.get('problems')),
            _cell(row.get('last_refresh')), _cell(row.get('age_days')), _cell(row.get('credentials_store')),
            fingerprint]))
    if report['shared_fingerprints']:
        lines += ['', '## One refresh token on several hosts', '',
                  'The first host to refresh rotates the token; the others then fail with `refresh_token_reused`. '
                  'Give each host its own seed and run the reseed playbook.', '']
        lines += ['- `%s`: %s' % (fp, ', '.join(hosts)) for fp, hosts in report['shared_fingerprints'].items()]
    if report['problems_by_code']:
        lines += ['', '## Problems by code', '']
        lines += ['- `%s`: %s' % (code, ', '.join(hosts)) for code, hosts in report['problems_by_code'].items()]
    return '\n'.join(lines) + '\n'


class FilterModule(object):

    def filters(self):
        return {
            'codex_fleet_health': codex_fleet_health,
            'codex_fleet_report': codex_fleet_report,
            'codex_fleet_markdown': codex_fleet_markdown,
            'codex_shared_fingerprints': codex_shared_fingerprints,
            'codex_seed_conflicts': codex_seed_conflicts,
        }
