"""codex_fleet_merge: the fleet reports of the slices of one run (AWX job slicing) merged into the report one
unsliced run gives - a refresh token on two runners of different slices included - by codex_fleet_report itself."""

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.filter import fleet
from ansible_collections.codexops.runner.plugins.filter.fleet_slices import codex_fleet_merge


def health(healthy=True, fingerprint=None, problems=(), warnings=(), name=None, **facts):
    summary = {'healthy': healthy, 'auth_mode': 'chatgpt', 'refresh_token_fingerprint': fingerprint,
               'problems': [{'code': code, 'message': 'm'} for code in problems],
               'health_warnings': [{'code': code, 'message': 'w'} for code in warnings],
               'stale': 'stale' in warnings, 'last_refresh': '2026-11-21T10:22:00Z', 'age_days': 2.5,
               'credentials_store': 'file', 'owner': 'ci', 'codex_home_mode': '0700', 'auth_file_mode': '0600',
               'keepalive_last_run': None, 'keepalive_result': 'refreshed', 'keepalive_reason': None}
    summary.update(facts)
    if name is not None:
        summary['name'] = name
    return summary


# Every kind of row: healthy, broken, stale, sharing (across slices and within one), instances, unknown,
# unreachable, a runner without a refresh token.
FLEET = {
    'r1': health(fingerprint='aa'),
    'r2': health(fingerprint='aa'),              # shares with r1, in the other slice
    'r3': health(False, 'cc', ['auth_mode_bits']),
    'r4': health(fingerprint='dd', warnings=['stale']),
    'r5/gh-1': health(fingerprint='ee', name='gh-1'),
    'r5/gh-2': health(fingerprint='ff', name='gh-2'),
    'r6/gl-1': health(fingerprint='ee', name='gl-1'),  # shares with r5/gh-1
    'r7': None,
    'r8': {'unreachable': True, 'msg': 'ssh: connect refused'},
    'r9': health(fingerprint=None, auth_mode='apikey'),
}


def sliced(count):
    """The reports of `count` slices, cut as AWX cuts an inventory: host i of the sorted hosts in slice i % count."""
    hosts = sorted(set(fleet.runner_of(key, value)[0] for key, value in FLEET.items()))
    reports = []
    for number in range(count):
        mine = hosts[number::count]
        part = dict((key, value) for key, value in FLEET.items() if fleet.runner_of(key, value)[0] in mine)
        # Through JSON, as a slice's fleet-report.json reaches the aggregation job.
        reports.append(json.loads(json.dumps(fleet.codex_fleet_report(part))))
    return hosts, reports


def verdict(report):
    return dict((key, value) for key, value in report.items() if key not in ('generated_at', 'merged_reports'))


@pytest.mark.parametrize('count', [1, 2, 3, 9])
def test_the_merged_slices_give_the_unsliced_report(count):
    hosts, reports = sliced(count)
    merged = codex_fleet_merge(reports, hosts)
    assert verdict(merged) == verdict(json.loads(json.dumps(fleet.codex_fleet_report(FLEET))))
    assert merged['merged_reports'] == count
    assert merged['shared_fingerprints'] == {'aa': ['r1', 'r2'], 'ee': ['r5/gh-1', 'r6/gl-1']}
    assert merged['unreachable'] == ['r8'] and merged['unknown'] == ['r7', 'r8']
    assert fleet.codex_fleet_markdown(merged) == fleet.codex_fleet_markdown(
        dict(fleet.codex_fleet_report(FLEET), generated_at=merged['generated_at']))


def test_a_slice_alone_misses_the_pair_split_across_slices():
    _hosts, (first, second) = sliced(2)
    assert 'aa' not in first['shared_fingerprints'] and 'aa' not in second['shared_fingerprints']
    assert codex_fleet_merge([first, second])['sharing'] == ['r1', 'r2', 'r5/gh-1', 'r6/gl-1']


def test_a_host_in_no_slice_report_is_unknown():
    hosts, (first, _second) = sliced(2)
    merged = codex_fleet_merge([first], hosts)
    missing = sorted(set(hosts) - set(row['runner_host'] for row in first['hosts']))
    assert missing and set(missing) <= set(merged['unknown'])
    assert not merged['ok']
    # Without the inventory's hosts, only what the reports hold.
    assert codex_fleet_merge([first])['totals']['runners'] == len(first['hosts'])


def test_a_runner_in_two_reports_is_refused():
    _hosts, (first, second) = sliced(2)
    with pytest.raises(AnsibleFilterError, match=r'runner r1 is in report 1 and in report 3'):
        codex_fleet_merge([first, second, first])


@pytest.mark.parametrize('reports, message', [
    ('fleet-report.json', 'takes a list'),
    ([{'ok': True}], 'report 1 is not a fleet report'),
    ([{'hosts': [{'healthy': True}]}], 'report 1 has a row without a runner name'),
    ([{'hosts': ['r1']}], 'report 1 has a row without a runner name'),
])
def test_what_is_not_a_list_of_reports_is_refused(reports, message):
    with pytest.raises(AnsibleFilterError, match=message):
        codex_fleet_merge(reports)


def test_a_tampered_row_makes_its_runner_unknown_never_healthy():
    report = {'hosts': [{'host': 'r1', 'healthy': True, 'problems': 'none', 'refresh_token_fingerprint': 'aa'},
                        {'host': 'r2', 'healthy': 'yes', 'refresh_token_fingerprint': 'aa'},
                        {'host': 'r3', 'healthy': True, 'problems': [], 'refresh_token_fingerprint': 'aa'}]}
    merged = codex_fleet_merge([report])
    assert merged['unknown'] == ['r1', 'r2'] and merged['totals']['healthy'] == 1
    assert merged['shared_fingerprints'] == {}


def test_hosts_must_be_names():
    with pytest.raises(AnsibleFilterError, match='inventory host names'):
        codex_fleet_merge([], [None])
