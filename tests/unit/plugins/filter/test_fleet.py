"""The controller-side fleet filters: aggregation, shared tokens, seed conflicts, Markdown."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.filter import fleet


def health(healthy=True, fingerprint=None, problems=(), stale=False, warnings=()):
    return {'healthy': healthy, 'auth_mode': 'chatgpt', 'refresh_token_fingerprint': fingerprint,
            'problems': [{'code': code, 'message': 'm'} for code in problems], 'stale': stale,
            'health_warnings': [{'code': code, 'message': 'm'} for code in warnings],
            'last_refresh': '2026-11-21T10:00:00Z', 'age_days': 0.5, 'credentials_store': 'file'}


def test_report_counts_and_groups():
    report = fleet.codex_fleet_report({
        'a': health(fingerprint='f1'),
        'b': health(False, 'f2', ['auth_mode_bits', 'store_not_file']),
        'c': health(fingerprint='f3', stale=True, warnings=['stale']),
        'd': None,
    })
    assert report['totals'] == {'hosts': 4, 'runners': 4, 'healthy': 2, 'broken': 1, 'sharing': 0, 'stale': 1,
                                'unknown': 1, 'unreachable': 0, 'shared_tokens': 0}
    assert report['broken'] == ['b'] and report['unknown'] == ['d'] and report['stale'] == ['c']
    assert report['problems_by_code'] == {'auth_mode_bits': ['b'], 'store_not_file': ['b']}
    assert report['needs_reseed'] == ['b'] and not report['ok']
    assert [row['host'] for row in report['hosts']] == ['a', 'b', 'c', 'd']


def test_shared_fingerprint_makes_every_holder_need_a_reseed():
    report = fleet.codex_fleet_report({'a': health(fingerprint='same'), 'b': health(fingerprint='same'),
                                       'c': health(fingerprint='other')})
    assert report['shared_fingerprints'] == {'same': ['a', 'b']}
    assert report['needs_reseed'] == ['a', 'b'] and not report['ok']
    assert [row['shared_token'] for row in report['hosts']] == [True, True, False]


def test_healthy_fleet_is_ok():
    report = fleet.codex_fleet_report({'a': health(fingerprint='1'), 'b': health(fingerprint='2')})
    assert report['ok'] and report['needs_reseed'] == []


def test_hosts_without_a_refresh_token_never_share():
    assert fleet.codex_shared_fingerprints({'a': health(), 'b': health()}) == {}


def test_seed_conflicts_only_where_a_write_is_planned():
    plans = {
        'a': {'action': 'kept', 'auth': health(fingerprint='x')},
        'b': {'action': 'created', 'auth': health(fingerprint='x')},
        'c': {'action': 'kept', 'auth': health(fingerprint='y')},
        'd': {'action': 'kept', 'auth': health(fingerprint='y')},
    }
    assert fleet.codex_seed_conflicts(plans) == [{'fingerprint': 'x', 'hosts': ['a', 'b'], 'written': ['b']}]


def test_fleet_health_tolerates_missing_hosts_and_values():
    hostvars = {'a': {'codex_auth_health': health()}, 'b': {}}
    collected = fleet.codex_fleet_health(hostvars, ['a', 'b', 'gone'])
    assert collected['a']['healthy'] and collected['b'] is None and collected['gone'] is None


def test_fleet_health_takes_the_first_result_of_a_task_that_ran():
    skipped = {'changed': False, 'skipped': True, 'skip_reason': 'Conditional result was False'}
    failed_write = {'failed': True, 'msg': 'could not complete the operation'}
    hostvars = {
        'kept': {'write': skipped, 'plan': {'auth': health(fingerprint='k')}},
        'written': {'write': {'auth': health(fingerprint='w')}, 'plan': {'auth': health(fingerprint='p')}},
        # A write that failed without a summary must not fall back to the plan's prediction.
        'failed': {'write': failed_write, 'plan': {'auth': health(fingerprint='f')}},
        'other_method': {'write': skipped, 'login': {'auth': health(fingerprint='l')}},
        'nothing': {'write': skipped},
    }
    collected = fleet.codex_fleet_health(hostvars, sorted(hostvars), ['write', 'login', 'plan'])
    assert collected['kept']['auth']['refresh_token_fingerprint'] == 'k'
    assert collected['written']['auth']['refresh_token_fingerprint'] == 'w'
    assert collected['failed'] is failed_write
    assert collected['other_method']['auth']['refresh_token_fingerprint'] == 'l'
    assert collected['nothing'] is None
    assert fleet.codex_fleet_health(hostvars, ['nothing'], 'write') == {'nothing': None}


def test_markdown_has_one_row_per_host_and_flags():
    report = fleet.codex_fleet_report({'a': health(fingerprint='same'), 'b': health(False, 'same', ['auth_owner'])})
    markdown = fleet.codex_fleet_markdown(report)
    # A valid file whose token another host holds is not healthy: one of the two is about to fail.
    assert '| a | chatgpt | **SHARED** | - |' in markdown
    assert '| b | chatgpt | **BROKEN** | `auth_owner` |' in markdown
    assert markdown.count('**SHARED**') == 3  # a's health, and both fingerprints
    assert '**2 hosts: 0 healthy, 1 broken, 2 sharing a refresh token, 0 stale, 0 unknown (0 unreachable).**' \
        in markdown
    assert '## One refresh token on several hosts' in markdown and '- `auth_owner`: b' in markdown


def test_report_rejects_a_non_dict():
    with pytest.raises(AnsibleFilterError):
        fleet.codex_fleet_report(['a'])


def test_filters_are_registered():
    names = set(fleet.FilterModule().filters())
    assert names == {'codex_fleet_health', 'codex_fleet_report', 'codex_fleet_markdown', 'codex_shared_fingerprints',
                     'codex_seed_conflicts', 'codex_reseed_targets'}


def test_an_unreachable_host_is_unknown_with_its_own_code_and_never_reseeded():
    report = fleet.codex_fleet_report({
        'down': {'unreachable': True, 'changed': False, 'msg': 'Failed to connect to the host via ssh'},
        'odd': {'failed': True, 'msg': 'MODULE FAILURE'},
        'ok': health(),
    })
    rows = dict((row['host'], row) for row in report['hosts'])
    assert rows['down'] == {'host': 'down', 'runner_host': 'down', 'instance': None, 'healthy': None,
                            'problems': ['unreachable']}
    assert rows['odd']['problems'] == ['unreachable_or_unverified']
    assert report['unknown'] == ['down', 'odd'] and report['unreachable'] == ['down']
    assert report['broken'] == [] and report['needs_reseed'] == []
    assert report['totals']['healthy'] == 1 and report['totals']['unreachable'] == 1
    assert not report['ok']


def test_refresh_failed_hosts_are_broken_listed_and_queued():
    report = fleet.codex_fleet_report({'dead': health(False, 'fp-dead', ['refresh_failed']), 'ok': health()})
    assert report['refresh_failed'] == ['dead']
    assert report['broken'] == ['dead'] and report['needs_reseed'] == ['dead']
