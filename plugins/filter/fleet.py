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

from ansible_collections.codexops.runner.plugins.module_utils.keepalive_status import INSTANCE_NAME

REPORT_COLUMNS = ('host', 'auth_mode', 'healthy', 'problems', 'last_refresh', 'age_days', 'credentials_store',
                  'refresh_token_fingerprint')
# Summary fields copied into a report row, with the types a verify summary gives them.
_TEXT_FIELDS = ('auth_mode', 'last_refresh', 'credentials_store', 'refresh_token_fingerprint', 'owner',
                'codex_home_mode', 'auth_file_mode', 'keepalive_last_run', 'keepalive_result', 'keepalive_reason')
UNKNOWN_CODE = 'unreachable_or_unverified'
# What the report counts for each host (by_host): its runners (1 without instances), and how many of them are
# healthy, broken, sharing a refresh token (and otherwise healthy) or unknown.
_HOST_COUNTS = ('runners', 'healthy', 'broken', 'sharing', 'unknown')
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


def _instance_rows(hostvars, host, instances):
    """The host's per-instance rows (hostvars[host][instances], as codex_runner_health records them), or None
    when it has none: a list of dicts, each named by a valid instance name."""
    if not instances:
        return None
    try:
        rows = hostvars[host].get(instances)
    except (KeyError, AttributeError, TypeError):
        return None
    if not isinstance(rows, list) or not rows:
        return None
    if not all(isinstance(row, dict) and _instance_name(row.get('name')) for row in rows):
        return None
    return rows


def _instance_name(name):
    return isinstance(name, str) and INSTANCE_NAME.fullmatch(name) is not None


def runner_of(key, value):
    """(host, instance) of a report key: `host/instance` for an instance row (its summary names the
    instance), (key, None) for a host without instances."""
    name = value.get('name') if isinstance(value, dict) else None
    if _instance_name(name) and key.endswith('/' + name) and len(key) > len(name) + 1:
        return key[:-len(name) - 1], name
    return key, None


def codex_fleet_health(hostvars, hosts, variable='codex_auth_health', instances=None):
    """{host: hostvars[host][variable]} for the given hosts, None where a host has no result
    (unreachable, or failed before verifying): the report counts those as unknown.

    `variable` may be a list of names, tried in order: the first that holds a result of a task that
    ran (a dict, not a skipped result) wins, e.g. a write that ran before the plan it followed.

    `instances` (e.g. codex_auth_runners_health): a host that holds a list of per-instance rows there
    gives one entry per runner instance, `host/instance`, instead (a runner is then an instance)."""
    names = [variable] if isinstance(variable, str) else list(variable or [])
    collected = {}
    for host in [hosts] if isinstance(hosts, str) else list(hosts or []):
        rows = _instance_rows(hostvars, host, instances)
        if rows is not None:
            for row in rows:
                collected['%s/%s' % (host, row['name'])] = row
            continue
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
    """Refresh tokens that seeding would put on more than one runner.

    `plans` maps host -> a codex_auth_seed check-mode result; a result with `runners` (runner instances)
    stands for each of its instances, `host/instance`, so one token on two instances of one host or of
    two hosts is found as one on two hosts is. Its `auth` summary is the state after
    seeding (exactly predicted), so a fingerprint on two hosts where at least one would be written is
    a seed about to be shared. Sharing that already exists and that this run does not touch is
    left to verify; so is a host whose plan is not a codex_auth_seed result. Returns
    [{fingerprint, hosts, written}] (hosts and written name runners: a host, or `host/instance`).
    """
    plans = {} if plans is None else plans
    if not isinstance(plans, dict):
        raise AnsibleFilterError('codex_seed_conflicts takes a dict of {host: codex_auth_seed result}')
    plans = _runner_plans(plans)
    conflicts = []
    predicted = dict((host, plan.get('auth')) for host, plan in plans.items())
    for fingerprint, hosts in sorted(codex_shared_fingerprints(predicted).items()):
        written = [host for host in hosts if plans[host].get('action') in ('created', 'replaced')]
        if written:
            conflicts.append({'fingerprint': fingerprint, 'hosts': hosts, 'written': written})
    return conflicts


def _runner_plans(plans):
    """{runner: plan}: a host's plan, or, for a codex_auth_seed result with `runners`, one plan per instance,
    `host/instance` (its action and auth, as the module returns them)."""
    expanded = {}
    for host, plan in plans.items():
        plan = plan if isinstance(plan, dict) else {}
        runners = plan.get('runners')
        if isinstance(runners, list) and runners and all(
                isinstance(item, dict) and _instance_name(item.get('name')) for item in runners):
            for item in runners:
                expanded['%s/%s' % (host, item['name'])] = item
        else:
            expanded[str(host)] = plan
    return expanded


def _unknown_code(value):
    return UNREACHABLE_CODE if isinstance(value, dict) and value.get('unreachable') is True else UNKNOWN_CODE


def codex_fleet_report(health_by_host):
    """Aggregate {host: codex_auth_verify result} into the fleet report."""
    summaries = _summaries(health_by_host)
    shared = codex_shared_fingerprints(summaries)
    sharing_hosts = sorted(set(host for hosts in shared.values() for host in hosts))
    rows, problems_by_code, broken, stale, unknown, unreachable = [], {}, [], [], [], []
    by_host = {}
    for host, health in sorted(summaries.items()):
        machine, instance = runner_of(host, health)
        counts = by_host.setdefault(machine, dict((name, 0) for name in _HOST_COUNTS))
        counts['runners'] += 1
        if health is None:
            code = _unknown_code(health_by_host.get(host))
            unknown.append(host)
            counts['unknown'] += 1
            if code == UNREACHABLE_CODE:
                unreachable.append(host)
            rows.append({'host': host, 'runner_host': machine, 'instance': instance, 'healthy': None,
                         'problems': [code]})
            continue
        codes = _codes(health.get('problems'))
        for code in codes:
            problems_by_code.setdefault(code, []).append(host)
        if not health['healthy']:
            broken.append(host)
            counts['broken'] += 1
        elif host in sharing_hosts:
            counts['sharing'] += 1
        else:
            counts['healthy'] += 1
        if health.get('stale'):
            stale.append(host)
        row = dict((column, health.get(column)) for column in REPORT_COLUMNS if column != 'host')
        row.update(host=host, runner_host=machine, instance=instance, problems=codes,
                   warnings=_codes(health.get('health_warnings')),
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
        # Counted in runners (a host without instances is one runner, a host with instances one per
        # instance), but `hosts` counts hosts; by_host has the counts of each host's runners.
        'totals': {'hosts': len(by_host), 'runners': len(rows),
                   'healthy': len(rows) - len(broken) - len(unknown) - len(sharing_only),
                   'broken': len(broken), 'sharing': len(sharing_hosts), 'stale': len(stale),
                   'unknown': len(unknown), 'unreachable': len(unreachable), 'shared_tokens': len(shared)},
        'hosts': rows,
        'by_host': by_host,
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


def codex_reseed_targets(report, named=None):
    """What the reseed playbook replaces, from a fleet report: {host: {replace, instances}}.

    The report's needs_reseed, and the `named` runners (a host, `host/instance`, or a host with instances,
    which names all of them). A runner sharing a refresh token, with a dead one or named is replaced
    (`always`), another broken one only if invalid. `instances` is {instance: replace} for a host with runner
    instances (only those are reseeded), empty for a host without; `replace` is the host's mode then."""
    if not isinstance(report, dict):
        raise AnsibleFilterError('codex_reseed_targets takes the dict codex_fleet_report returns')
    named = [named] if isinstance(named, str) else list(named or [])
    if not all(isinstance(name, str) and name for name in named):
        raise AnsibleFilterError('codex_reseed_targets: the named runners must be names (host or host/instance)')
    rows = [row for row in report.get('hosts') or [] if isinstance(row, dict) and isinstance(row.get('host'), str)]
    runner = dict((row['host'], (row.get('runner_host') or row['host'], row.get('instance'))) for row in rows)
    by_host = {}
    for key, (host, instance) in runner.items():
        if instance is not None:
            by_host.setdefault(host, []).append(key)
    always = set(list(report.get('sharing') or []) + list(report.get('refresh_failed') or []))
    chosen = {}
    for name in list(report.get('needs_reseed') or []) + named:
        keys = [name] if name in runner else by_host.get(name, [name])
        for key in keys:
            mode = 'always' if key in always or name in named else 'invalid'
            chosen[key] = 'always' if chosen.get(key) == 'always' else mode
    targets = {}
    for key, mode in sorted(chosen.items()):
        if key in runner:
            host, instance = runner[key]
        elif '/' in key and key.rsplit('/', 1)[0] in by_host:
            raise AnsibleFilterError('codex_reseed_targets: %s names no runner instance of host %s (it has %s)'
                                     % (key, key.rsplit('/', 1)[0], ', '.join(sorted(by_host[key.rsplit('/', 1)[0]]))))
        else:
            host, instance = key, None  # a named host the report does not know: reseeded as a host, as before
        target = targets.setdefault(host, {'replace': 'invalid', 'instances': {}})
        if instance is None:
            target['replace'] = mode
        else:
            target['instances'][instance] = mode
    return targets


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
    """The fleet report as Markdown: a summary line, then one table row per runner (a host, or `host/instance`)."""
    if not isinstance(report, dict):
        raise AnsibleFilterError('codex_fleet_markdown takes the dict codex_fleet_report returns')
    totals = report.get('totals')
    rows = report.get('hosts') if isinstance(report.get('hosts'), list) else []
    # A fleet with runner instances counts runners (`host/instance` rows) on hosts; one without, hosts as before.
    runners, hosts = _count(totals, 'runners'), _count(totals, 'hosts')
    counted = '%d hosts' % hosts if runners in (0, hosts) else '%d runners on %d hosts' % (runners, hosts)
    lines = [
        '# Codex credentials: fleet report',
        '',
        'Generated %s. **%s: %d healthy, %d broken, %d sharing a refresh token, %d stale, %d unknown '
        '(%d unreachable).**'
        % ((_text(report.get('generated_at')), counted) + tuple(_count(totals, name) for name in (
            'healthy', 'broken', 'sharing', 'stale', 'unknown', 'unreachable'))),
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
            'codex_reseed_targets': codex_reseed_targets,
        }
