# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet aggregation of codex_auth_verify results, on the controller.

Input is always {host: health summary}; summaries hold facts and salted fingerprints, never
secrets, so everything here can be printed and written to a report.

Every value comes from a host, and a host may hand back anything (a failed task, a result of
some other module, a tampered fact). A value that is not a verify summary makes that host
unknown; it never stops the aggregation of the others. Every text a host supplies is escaped
before it lands in the Markdown report, so it cannot end a table row or start another.
"""

import datetime
import re
import unicodedata

from ansible.errors import AnsibleFilterError

REPORT_COLUMNS = ('host', 'auth_mode', 'healthy', 'problems', 'last_refresh', 'age_days', 'credentials_store',
                  'refresh_token_fingerprint')
# Summary fields copied into a report row, with the types a verify summary gives them.
_TEXT_FIELDS = ('auth_mode', 'last_refresh', 'credentials_store', 'refresh_token_fingerprint', 'owner',
                'codex_home_mode', 'auth_file_mode', 'keepalive_last_run', 'keepalive_result', 'keepalive_reason')
UNKNOWN_CODE = 'unreachable_or_unverified'
# An unknown host whose result says Ansible could not reach it: never reseeded, never counted broken.
UNREACHABLE_CODE = 'unreachable'
# A dead refresh token (the keepalive or a probe saw the refresh fail): reseed replaces auth.json.
REFRESH_FAILED_CODE = 'refresh_failed'


def _codes(items):
    """Codes of a verify summary's problems or warnings, or None when they are not a list of
    {code: text} objects."""
    if items is None:
        return []
    if not isinstance(items, list):
        return None
    codes = [item.get('code') if isinstance(item, dict) else None for item in items]
    return codes if all(isinstance(code, str) for code in codes) else None


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _summary(value):
    """value if it has the shape of a codex_auth_verify summary, else None (the host is unknown)."""
    if not isinstance(value, dict) or not isinstance(value.get('healthy'), bool):
        return None  # unreachable, failed before verifying, or not a verify result at all
    if _codes(value.get('problems')) is None or _codes(value.get('health_warnings')) is None:
        return None
    if not all(value.get(field) is None or isinstance(value[field], str) for field in _TEXT_FIELDS):
        return None
    if value.get('stale') not in (None, True, False):
        return None
    if value.get('age_days') is not None and not _is_number(value['age_days']):
        return None
    return value


def _summaries(health_by_host):
    if not isinstance(health_by_host, dict):
        raise AnsibleFilterError('codex fleet filters take a dict of {host: codex_auth_verify result}')
    return dict((str(host), _summary(value)) for host, value in health_by_host.items())


def codex_fleet_health(hostvars, hosts, variable='codex_auth_health'):
    """{host: hostvars[host][variable]} for the given hosts, None where a host has no result
    (unreachable, or failed before verifying): the report counts those as unknown.

    `variable` may be a list of names, tried in order: the first that holds a result of a task that
    ran (a dict, not a skipped result) wins, e.g. a write that ran before the plan it followed."""
    names = [variable] if isinstance(variable, str) else list(variable or [])
    collected = {}
    for host in [hosts] if isinstance(hosts, str) else list(hosts or []):
        value = None
        for name in names:
            try:
                candidate = hostvars[host].get(name)
            except (KeyError, AttributeError, TypeError):
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
    left to verify; so is a host whose plan is not a codex_auth_seed result. Returns
    [{fingerprint, hosts, written}].
    """
    plans = {} if plans is None else plans
    if not isinstance(plans, dict):
        raise AnsibleFilterError('codex_seed_conflicts takes a dict of {host: codex_auth_seed result}')
    plans = dict((str(host), plan if isinstance(plan, dict) else {}) for host, plan in plans.items())
    conflicts = []
    predicted = dict((host, plan.get('auth')) for host, plan in plans.items())
    for fingerprint, hosts in sorted(codex_shared_fingerprints(predicted).items()):
        written = [host for host in hosts if plans[host].get('action') in ('created', 'replaced')]
        if written:
            conflicts.append({'fingerprint': fingerprint, 'hosts': hosts, 'written': written})
    return conflicts


def _unknown_code(value):
    return UNREACHABLE_CODE if isinstance(value, dict) and value.get('unreachable') is True else UNKNOWN_CODE


def codex_fleet_report(health_by_host):
    """Aggregate {host: codex_auth_verify result} into the fleet report."""
    summaries = _summaries(health_by_host)
    shared = codex_shared_fingerprints(summaries)
    sharing_hosts = sorted(set(host for hosts in shared.values() for host in hosts))
    rows, problems_by_code, broken, stale, unknown, unreachable = [], {}, [], [], [], []
    for host, health in sorted(summaries.items()):
        if health is None:
            code = _unknown_code(health_by_host.get(host))
            unknown.append(host)
            if code == UNREACHABLE_CODE:
                unreachable.append(host)
            rows.append({'host': host, 'healthy': None, 'problems': [code]})
            continue
        codes = _codes(health.get('problems'))
        for code in codes:
            problems_by_code.setdefault(code, []).append(host)
        if not health['healthy']:
            broken.append(host)
        if health.get('stale'):
            stale.append(host)
        row = dict((column, health.get(column)) for column in REPORT_COLUMNS if column != 'host')
        row.update(host=host, problems=codes, warnings=_codes(health.get('health_warnings')),
                   shared_token=host in sharing_hosts, stale=bool(health.get('stale')),
                   owner=health.get('owner'), codex_home_mode=health.get('codex_home_mode'),
                   auth_file_mode=health.get('auth_file_mode'),
                   keepalive_last_run=health.get('keepalive_last_run'),
                   keepalive_result=health.get('keepalive_result'), keepalive_reason=health.get('keepalive_reason'))
        rows.append(row)
    # A host with a valid file whose token another host also holds is not healthy: one of them is
    # about to fail with refresh_token_reused.
    sharing_only = [host for host in sharing_hosts if host not in broken]
    return {
        'generated_at': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'ok': not (broken or shared or unknown),
        'totals': {'hosts': len(rows), 'healthy': len(rows) - len(broken) - len(unknown) - len(sharing_only),
                   'broken': len(broken), 'sharing': len(sharing_hosts), 'stale': len(stale),
                   'unknown': len(unknown), 'unreachable': len(unreachable), 'shared_tokens': len(shared)},
        'hosts': rows,
        'broken': broken,
        'stale': stale,
        'unknown': unknown,
        'unreachable': unreachable,
        'sharing': sharing_hosts,
        'refresh_failed': sorted(problems_by_code.get(REFRESH_FAILED_CODE, [])),
        'problems_by_code': dict(sorted(problems_by_code.items())),
        'shared_fingerprints': dict(sorted(shared.items())),
        # What reseed replaces: broken runners (a dead refresh token is a problem, so broken) and every
        # runner of a shared refresh token; never an unknown (unreachable or unverified) one.
        'needs_reseed': sorted(set(broken) | set(sharing_hosts)),
    }


# -- Markdown -------------------------------------------------------------------------------------

# Backslash-escaped wherever they appear: each could split a cell ('|'), open a code span, an
# emphasis, a link or an HTML tag, or combine with an escape ('\\').
_MARKDOWN_PUNCTUATION = frozenset('\\`*_{}[]()<>#+!|~&')
# Shown as \\xNN / \\uNNNN: controls (a line break ends the row), format characters (a right-to-left
# override reorders what is shown), lone surrogates (no UTF-8 for them) and line separators.
_INVISIBLE = frozenset(('Cc', 'Cf', 'Cs', 'Co', 'Zl', 'Zp'))
# Matched with fullmatch: '$' would also match before a final line break.
_PLAIN = re.compile(r'[A-Za-z0-9 ,:./=@-]*')
_CODE = re.compile(r'[A-Za-z0-9_.:-]+')
# A cell shows this much of a value; the JSON report keeps all of it.
MAX_CELL_CHARS = 200


def _escape_char(char):
    if char in _MARKDOWN_PUNCTUATION:
        return '\\' + char
    if unicodedata.category(char) in _INVISIBLE:
        point = ord(char)
        return '\\x%02x' % point if point < 0x100 else ('\\u%04x' % point if point < 0x10000 else '\\U%08x' % point)
    return char


def _text(value):
    """Any value as Markdown text that renders as itself within one table cell."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_CELL_CHARS:
        text = text[:MAX_CELL_CHARS] + '...'
    if _PLAIN.fullmatch(text):
        return text  # the common case: nothing to escape
    return ''.join(_escape_char(char) for char in text)


def _code(value):
    """A code in a code span when it is made of the characters codes have; escaped text otherwise
    (in a code span a backslash escapes nothing, so nothing else may go in one)."""
    text = value if isinstance(value, str) else str(value)
    return '`%s`' % text if _CODE.fullmatch(text) and len(text) <= MAX_CELL_CHARS else _text(text)


def _cell(value):
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, list):
        return ', '.join(_code(item) for item in value) if value else '-'
    return _text(value)


def _count(totals, name):
    value = totals.get(name) if isinstance(totals, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _row(row):
    """One table row; a row that is not a report row is shown as an unknown host."""
    if not isinstance(row, dict):
        row = {'host': row, 'healthy': None, 'problems': [UNKNOWN_CODE]}
    healthy = row.get('healthy')
    health = 'unknown' if not isinstance(healthy, bool) else ('healthy' if healthy else '**BROKEN**')
    if healthy is True and row.get('shared_token') is True:
        health = '**SHARED**'
    elif healthy is True and row.get('stale') is True:
        health = 'stale'
    fingerprint = _cell(row.get('refresh_token_fingerprint'))
    if row.get('shared_token') is True:
        fingerprint += ' **SHARED**'
    problems = row.get('problems')
    keepalive = _cell(row.get('keepalive_result'))
    if row.get('keepalive_reason'):
        keepalive += ' (%s)' % _code(row.get('keepalive_reason'))
    return '| %s |' % ' | '.join([
        _cell(row.get('host')), _cell(row.get('auth_mode')), health,
        _cell(problems if isinstance(problems, list) else [problems]),
        _cell(row.get('last_refresh')), _cell(row.get('age_days')), _cell(row.get('credentials_store')),
        fingerprint, _cell(row.get('keepalive_last_run')), keepalive])


def _hosts_by(mapping):
    """`- key: host, host` lines of a {key: [hosts]} section."""
    lines = []
    for key, hosts in (mapping.items() if isinstance(mapping, dict) else []):
        hosts = hosts if isinstance(hosts, list) else [hosts]
        lines.append('- %s: %s' % (_code(key), ', '.join(_text(host) for host in hosts)))
    return lines


def codex_fleet_markdown(report):
    """The fleet report as Markdown: a summary line, then one table row per host."""
    if not isinstance(report, dict):
        raise AnsibleFilterError('codex_fleet_markdown takes the dict codex_fleet_report returns')
    totals = report.get('totals')
    rows = report.get('hosts') if isinstance(report.get('hosts'), list) else []
    lines = [
        '# Codex credentials: fleet report',
        '',
        'Generated %s. **%d hosts: %d healthy, %d broken, %d sharing a refresh token, %d stale, %d unknown '
        '(%d unreachable).**'
        % ((_text(report.get('generated_at')),) + tuple(_count(totals, name) for name in (
            'hosts', 'healthy', 'broken', 'sharing', 'stale', 'unknown', 'unreachable'))),
        '',
        '| host | mode | health | problems | last refresh | age (days) | store | fingerprint | last keepalive | '
        'keepalive result |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    lines += [_row(row) for row in rows]
    shared = _hosts_by(report.get('shared_fingerprints'))
    if shared:
        lines += ['', '## One refresh token on several hosts', '',
                  'The first host to refresh rotates the token; the others then fail with `refresh_token_reused`. '
                  'Give each host its own seed and run the reseed playbook.', '']
        lines += shared
    by_code = _hosts_by(report.get('problems_by_code'))
    if by_code:
        lines += ['', '## Problems by code', '']
        lines += by_code
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
