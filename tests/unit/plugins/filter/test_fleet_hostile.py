# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet filters on what hosts may really hand back: malformed results make that host unknown
and never stop the aggregation; no host-provided text can forge or break a Markdown table row."""

import base64
import json
import unicodedata

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given, settings, strategies as st

from ansible_collections.codexops.runner.plugins.filter import fleet
from ansible_collections.codexops.runner.plugins.filter.writeback import codex_writeback_decision
from support import fake_credentials

COLUMNS = 10


def health(healthy=True, fingerprint=None, problems=(), **extra):
    summary = {'healthy': healthy, 'auth_mode': 'chatgpt', 'refresh_token_fingerprint': fingerprint,
               'problems': [{'code': code, 'message': 'm'} for code in problems], 'stale': False,
               'health_warnings': [], 'last_refresh': '2026-11-21T10:00:00Z', 'age_days': 0.5,
               'credentials_store': 'file'}
    summary.update(extra)
    return summary


MALFORMED = {
    'a string': 'healthy',
    'a number': 42,
    'a float': 1.5,
    'a boolean': True,
    'a list': [health()],
    'an empty dict': {},
    'a failed task': {'failed': True, 'msg': 'MODULE FAILURE'},
    'healthy as text': health(healthy='yes'),
    'healthy missing': dict((k, v) for k, v in health().items() if k != 'healthy'),
    'problems as text': health(problems=()) | {'problems': 'auth_owner'},
    'problems of strings': health(False) | {'problems': ['auth_owner']},
    'problems of None': health(False) | {'problems': [None]},
    'problem code a number': health(False) | {'problems': [{'code': 5}]},
    'problem without a code': health(False) | {'problems': [{'message': 'm'}]},
    'warnings of lists': health() | {'health_warnings': [['stale']]},
    'fingerprint a list': health(fingerprint=['f']),
    'fingerprint a dict': health(fingerprint={'f': 1}),
    'fingerprint a number': health(fingerprint=7),
    'stale as text': health(stale='no'),
    'age as text': health(age_days='0.5'),
    'age a boolean': health(age_days=True),
    'mode a dict': health(auth_mode={'a': 1}),
    'store a list': health(credentials_store=['file']),
}


@pytest.mark.parametrize('name', sorted(MALFORMED))
def test_a_malformed_result_makes_that_host_unknown(name):
    report = fleet.codex_fleet_report({'bad': MALFORMED[name], 'good': health(fingerprint='g'),
                                       'broken': health(False, 'b', ['auth_owner'])})
    assert report['unknown'] == ['bad']
    assert report['broken'] == ['broken'] and report['needs_reseed'] == ['broken']
    assert report['totals'] == {'hosts': 3, 'runners': 3, 'healthy': 1, 'broken': 1, 'sharing': 0, 'stale': 0,
                                'unknown': 1, 'unreachable': 0, 'shared_tokens': 0}
    assert report['hosts'][0] == {'host': 'bad', 'runner_host': 'bad', 'instance': None, 'healthy': None,
                                  'problems': ['unreachable_or_unverified']}
    assert report['problems_by_code'] == {'auth_owner': ['broken']}
    json.dumps(report)
    markdown = fleet.codex_fleet_markdown(report)
    assert '| bad | - | unknown | `unreachable_or_unverified` |' in markdown
    assert_table_intact(markdown, 3)


@pytest.mark.parametrize('name', sorted(MALFORMED))
def test_a_malformed_result_never_shares_a_fingerprint(name):
    value = MALFORMED[name]
    assert fleet.codex_shared_fingerprints({'bad': value, 'a': health(fingerprint='f'), 'b': health(fingerprint='f')}) \
        == {'f': ['a', 'b']}
    plans = {'bad': {'action': 'created', 'auth': value}, 'other': value, 'a': {'action': 'created', 'auth': health(fingerprint='x')},
             'b': {'action': 'kept', 'auth': health(fingerprint='x')}}
    assert fleet.codex_seed_conflicts(plans) == [{'fingerprint': 'x', 'hosts': ['a', 'b'], 'written': ['a']}]


def test_host_names_of_any_type_are_text():
    report = fleet.codex_fleet_report({1: health(fingerprint='x'), None: health(fingerprint='x'), 'c': None})
    assert [row['host'] for row in report['hosts']] == ['1', 'None', 'c']
    assert report['shared_fingerprints'] == {'x': ['1', 'None']}
    assert fleet.codex_seed_conflicts({1: {'action': 'created', 'auth': health(fingerprint='x')},
                                       2: {'action': 'kept', 'auth': health(fingerprint='x')}}) \
        == [{'fingerprint': 'x', 'hosts': ['1', '2'], 'written': ['1']}]


@pytest.mark.parametrize('value', [None, {}])
def test_seed_conflicts_of_nothing(value):
    assert fleet.codex_seed_conflicts(value) == []


@pytest.mark.parametrize('value', ['plans', 5, ['a']])
def test_filters_refuse_what_is_not_a_dict_of_hosts(value):
    for call in (fleet.codex_fleet_report, fleet.codex_shared_fingerprints, fleet.codex_seed_conflicts,
                 fleet.codex_fleet_markdown):
        with pytest.raises(AnsibleFilterError):
            call(value)


def test_fleet_health_tolerates_any_hostvars_and_hosts():
    assert fleet.codex_fleet_health({'a': {'h': health()}}, 'a', 'h')['a']['healthy'] is True  # one host, not 'a'
    assert fleet.codex_fleet_health(['not', 'hostvars'], ['a'], 'h') == {'a': None}
    assert fleet.codex_fleet_health({'a': 'not vars', 'b': None, 'c': 5}, ['a', 'b', 'c'], 'h') \
        == {'a': None, 'b': None, 'c': None}
    assert fleet.codex_fleet_health({'a': {'h': 'text'}}, ['a'], ['h', 5, None]) == {'a': None}
    assert fleet.codex_fleet_health({'a': {}}, None) == {}


# -- Markdown cells -------------------------------------------------------------------------------

def unescaped_pipes(line):
    count, index = 0, 0
    while index < len(line):
        if line[index] == '\\':
            index += 2
            continue
        count += line[index] == '|'
        index += 1
    return count


def assert_table_intact(markdown, hosts):
    lines = markdown.split('\n')
    start = lines.index('| host | mode | health | problems | last refresh | age (days) | store | fingerprint | '
                        'last keepalive | keepalive result |')
    table = lines[start:start + hosts + 2]
    assert lines[start + hosts + 2] == '', 'the table has more rows than hosts'
    assert table[1] == '|---' * COLUMNS + '|'
    for line in table[:1] + table[2:]:
        assert line.startswith('| ') and line.endswith(' |'), line
        assert unescaped_pipes(line) == COLUMNS + 1, line
    for char in markdown:
        assert char == '\n' or unicodedata.category(char) not in ('Cc', 'Cf', 'Cs', 'Co', 'Zl', 'Zp'), repr(char)
    # Inline code spans close on their line, and nothing else opens one.
    for line in lines:
        assert line.replace('\\`', '').count('`') % 2 == 0, line


HOSTILE_TEXT = [
    'runner\n| forged | chatgpt | healthy | - | - | - | file | f |',
    'runner\r\n| forged |',
    'a|b', 'a\\|b', 'a\\', '`code`', '``', 'a`b', '<script>alert(1)</script>', '<img src=x onerror=alert(1)>',
    '[link](http://example.invalid)', '**bold** _em_ ~~strike~~', '&#124; &vert;', '\x00\x07\x1b[31m',
    '\u2028\u2029\x85', '\u202eevil', '\ufeffbom', '\ud800', 'x' * 5000, '# heading', '- item', '|', '',
]


@pytest.mark.parametrize('text', HOSTILE_TEXT)
def test_host_provided_text_cannot_forge_a_row(text):
    report = fleet.codex_fleet_report({
        text: health(False, text, [text, 'auth_owner'], auth_mode=text, credentials_store=text, last_refresh=text,
                     keepalive_last_run=text, keepalive_result=text, keepalive_reason=text),
        'other': health(fingerprint=text),
        'ok': health(fingerprint='fp'),
    })
    markdown = fleet.codex_fleet_markdown(report)
    assert_table_intact(markdown, 3)
    assert markdown.count('\n|') == 5  # header, separator, three hosts: no forged row
    markdown.encode('utf-8')  # writable: a lone surrogate is shown escaped, not written


def test_escaped_text_reads_as_what_it_was():
    cell = fleet._cell('a|b`c\nd<e>\\f')
    assert cell == 'a\\|b\\`c\\x0ad\\<e\\>\\\\f'
    assert fleet._cell(['auth_owner', 'x|y']) == '`auth_owner`, x\\|y'
    assert fleet._cell('2026-11-21T10:00:00Z') == '2026-11-21T10:00:00Z'  # the common case is untouched
    assert fleet._cell('x' * 500) == 'x' * fleet.MAX_CELL_CHARS + '...'


def test_markdown_sections_are_escaped_too():
    report = fleet.codex_fleet_report({'a|1': health(False, 'f|`', ['x\n- forged']), 'b\nc': health(False, 'f|`')})
    markdown = fleet.codex_fleet_markdown(report)
    assert '- f\\|\\`: a\\|1, b\\x0ac' in markdown
    assert '- x\\x0a- forged: a\\|1' in markdown
    assert '\n- forged' not in markdown


@pytest.mark.parametrize('report', [
    {}, {'hosts': 'x'}, {'hosts': [None, 'host', 5, {'host': 'h', 'healthy': 'yes'}, {'healthy': True}]},
    {'totals': {'hosts': 'many'}, 'hosts': [], 'shared_fingerprints': ['x'], 'problems_by_code': {'c': 'h'}},
    {'generated_at': '\nforged', 'hosts': [{'host': 'h', 'healthy': True, 'problems': 'auth_owner'}]},
])
def test_markdown_of_a_malformed_report_never_raises(report):
    markdown = fleet.codex_fleet_markdown(report)
    rows = report.get('hosts') if isinstance(report.get('hosts'), list) else []
    assert_table_intact(markdown, len(rows))


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=20), children, max_size=4)),
    max_leaves=20)
SUMMARY_LIKE = st.fixed_dictionaries({}, optional={
    'healthy': st.one_of(st.booleans(), JSON_VALUES), 'problems': st.one_of(JSON_VALUES, st.lists(
        st.fixed_dictionaries({'code': st.one_of(st.text(max_size=20), JSON_VALUES)}), max_size=3)),
    'health_warnings': JSON_VALUES, 'refresh_token_fingerprint': st.one_of(st.sampled_from(['f1', 'f2']), JSON_VALUES),
    'auth_mode': st.one_of(st.text(), JSON_VALUES), 'credentials_store': st.one_of(st.text(), JSON_VALUES),
    'last_refresh': st.one_of(st.text(), JSON_VALUES), 'stale': JSON_VALUES, 'age_days': JSON_VALUES,
})


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=20), st.one_of(SUMMARY_LIKE, JSON_VALUES), max_size=6))
def test_any_host_results_make_a_report_and_an_intact_table(results):
    report = fleet.codex_fleet_report(results)
    assert sorted(row['host'] for row in report['hosts']) == sorted(results)
    assert report['totals']['hosts'] == len(results)
    assert sum(report['totals'][name] for name in ('healthy', 'broken', 'unknown')) == len(results)
    json.dumps(report)
    assert_table_intact(fleet.codex_fleet_markdown(report), len(results))
    fleet.codex_seed_conflicts(dict((host, {'action': 'created', 'auth': value}) for host, value in results.items()))


# -- the write-back decision -----------------------------------------------------------------------

def b64(data):
    return base64.b64encode(data).decode()


def test_writeback_refuses_a_runner_file_of_any_hostile_shape():
    doc, _secrets = fake_credentials.chatgpt_seed(tag='store')
    store = json.dumps(doc)
    for runner in (b'[' * 5000 + b']' * 5000, b'{"last_refresh": ' + b'[' * 500 + b']' * 500 + b'}',
                   b'{"x": ' + b'9' * 10000 + b'}', b'\xff', b''):
        decision = codex_writeback_decision(b64(runner), store)
        assert decision['action'] == 'refuse' and decision['runner']['valid'] is False
    # Far too large to be an auth.json: refused without being decoded.
    huge = 'A' * (8 * 1024 * 1024)
    decision = codex_writeback_decision(huge, store)
    assert decision['action'] == 'refuse' and decision['runner']['problems'] == ['auth_too_large']


def test_writeback_refuses_a_hostile_store_copy_in_bounded_time():
    doc, _secrets = fake_credentials.chatgpt_seed(tag='runner')
    for store in ('[' * 5000 + ']' * 5000, '\ud800', '{"tokens": %s}' % ('[' * 500 + ']' * 500)):
        decision = codex_writeback_decision(b64(json.dumps(doc).encode()), store)
        assert decision['action'] == 'refuse' and decision['code'] == 'store_copy_invalid'
        assert decision['store']['valid'] is False


@pytest.mark.parametrize('kwargs', [
    {'store_content': 5}, {'store_content': ['x']}, {'salt': 5}, {'allowed_auth_modes': 5},
    {'allowed_auth_modes': [1]}, {'runner_content_b64': 5}, {'runner_content_b64': '!!'},
])
def test_writeback_refuses_bad_arguments_with_a_filter_error(kwargs):
    doc, _secrets = fake_credentials.chatgpt_seed(tag='args')
    arguments = {'runner_content_b64': b64(json.dumps(doc).encode()), 'store_content': ''}
    arguments.update(kwargs)
    with pytest.raises(AnsibleFilterError):
        codex_writeback_decision(**arguments)


def test_writeback_takes_one_auth_mode_as_a_list_of_one():
    doc, _secrets = fake_credentials.apikey_seed()
    decision = codex_writeback_decision(b64(json.dumps(doc).encode()), '', 'apikey')
    assert decision['runner']['auth_mode'] == 'apikey' and decision['runner']['valid'] is True  # not ['a', 'p', ...]
