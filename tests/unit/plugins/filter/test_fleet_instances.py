"""The fleet filters with runner instances: one report row per instance (host/instance), totals per runner and
per host, one refresh token across instances and hosts refused, and what reseed replaces."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.filter import fleet
from ansible_collections.codexops.runner.plugins.filter import runners as rf


def health(healthy=True, fingerprint=None, problems=(), name=None):
    summary = {'healthy': healthy, 'auth_mode': 'chatgpt', 'refresh_token_fingerprint': fingerprint,
               'problems': [{'code': code, 'message': 'm'} for code in problems], 'health_warnings': [],
               'stale': False}
    if name is not None:
        summary.update(name=name, codex_home='/srv/%s/.codex' % name)
    return summary


def hostvars():
    return {'r1': {'codex_auth_runners_health': [health(fingerprint='1', name='gh-1'),
                                                 health(False, '2', ['auth_not_json'], name='gh-2'),
                                                 health(fingerprint='3', name='gl-1')]},
            'r0': {'codex_auth_health': health(fingerprint='0')},
            'r2': {'codex_auth_runners_health': 'tampered'}}


def test_a_host_with_instances_gives_one_row_per_instance():
    collected = fleet.codex_fleet_health(hostvars(), ['r0', 'r1', 'r2'], instances='codex_auth_runners_health')
    assert sorted(collected) == ['r0', 'r1/gh-1', 'r1/gh-2', 'r1/gl-1', 'r2']
    assert collected['r2'] is None  # neither rows nor a summary: unknown, as a host is today
    # Without `instances`, the host-wide variable alone, as before.
    assert sorted(fleet.codex_fleet_health(hostvars(), ['r0', 'r1'])) == ['r0', 'r1']

    report = fleet.codex_fleet_report(collected)
    rows = dict((row['host'], row) for row in report['hosts'])
    assert (rows['r1/gh-2']['runner_host'], rows['r1/gh-2']['instance']) == ('r1', 'gh-2')
    assert (rows['r0']['runner_host'], rows['r0']['instance']) == ('r0', None)
    assert report['totals'] == {'hosts': 3, 'runners': 5, 'healthy': 3, 'broken': 1, 'sharing': 0, 'stale': 0,
                                'unknown': 1, 'unreachable': 0, 'shared_tokens': 0}
    assert report['by_host'] == {
        'r0': {'runners': 1, 'healthy': 1, 'broken': 0, 'sharing': 0, 'unknown': 0},
        'r1': {'runners': 3, 'healthy': 2, 'broken': 1, 'sharing': 0, 'unknown': 0},
        'r2': {'runners': 1, 'healthy': 0, 'broken': 0, 'sharing': 0, 'unknown': 1}}
    assert report['broken'] == report['needs_reseed'] == ['r1/gh-2']
    markdown = fleet.codex_fleet_markdown(report)
    assert '**5 runners on 3 hosts: 3 healthy, 1 broken' in markdown
    assert '| r1/gh-2 | chatgpt | **BROKEN** |' in markdown


def test_one_refresh_token_on_instances_of_two_hosts_is_shared_in_the_report():
    report = fleet.codex_fleet_report({'r1/a': health(fingerprint='x', name='a'),
                                       'r2/b': health(fingerprint='x', name='b'), 'r3': health(fingerprint='x')})
    assert report['shared_fingerprints'] == {'x': ['r1/a', 'r2/b', 'r3']}
    assert report['needs_reseed'] == ['r1/a', 'r2/b', 'r3']


def test_seed_conflicts_across_instances_and_hosts():
    plans = {
        'r1': {'changed': True, 'runners': [
            {'name': 'gh-1', 'action': 'created', 'auth': health(fingerprint='x')},
            {'name': 'gh-2', 'action': 'kept', 'auth': health(fingerprint='y')}]},
        'r2': {'changed': True, 'runners': [{'name': 'a', 'action': 'kept', 'auth': health(fingerprint='y')}]},
        'r0': {'action': 'created', 'auth': health(fingerprint='x')},
        'skipped': {'skipped': True}}
    assert fleet.codex_seed_conflicts(plans) == [{'fingerprint': 'x', 'hosts': ['r0', 'r1/gh-1'],
                                                  'written': ['r0', 'r1/gh-1']}]
    # An instance kept on two hosts is sharing that already exists: verify's to report, as for hosts.
    assert fleet.codex_seed_conflicts({'r2': plans['r2'], 'r1': plans['r1']}) == []


def test_reseed_targets():
    report = fleet.codex_fleet_report(fleet.codex_fleet_health(hostvars(), ['r0', 'r1', 'r2'],
                                                               instances='codex_auth_runners_health'))
    assert fleet.codex_reseed_targets(report) == {'r1': {'replace': 'invalid', 'instances': {'gh-2': 'invalid'}}}
    assert fleet.codex_reseed_targets(report, ['r1/gl-1', 'r0']) == {
        'r0': {'replace': 'always', 'instances': {}},
        'r1': {'replace': 'invalid', 'instances': {'gh-2': 'invalid', 'gl-1': 'always'}}}
    # A host with instances named alone: all of its instances.
    assert fleet.codex_reseed_targets(report, ['r1'])['r1']['instances'] == {
        'gh-1': 'always', 'gh-2': 'always', 'gl-1': 'always'}
    with pytest.raises(AnsibleFilterError, match='r1/nope names no runner instance of host r1'):
        fleet.codex_reseed_targets(report, ['r1/nope'])


def test_runner_health_keeps_the_rows_of_instances_a_run_did_not_touch():
    previous = [health(name='a'), health(False, name='b'), health(name='c')]
    result = {'runners': [{'name': 'b', 'codex_home': '/srv/b/.codex', 'auth': health()}]}
    merged = rf.codex_runner_health(result, previous)
    assert [(row['name'], row['healthy']) for row in merged] == [('a', True), ('b', True), ('c', True)]
    assert rf.codex_runner_health(result) == rf.codex_runner_health(result, [])
