# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""keepalive_status: the status file the runner user writes is parsed under bounds, every oddity is a
warning (never an exception, never quoted), and the outcome becomes facts, refresh_failed,
keepalive_failed and keepalive_overdue; health wires it into every verify summary."""

import datetime
import json
import os
import re
from pathlib import Path

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import codex_process
from ansible_collections.codexops.runner.plugins.module_utils import health
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status as ks
from support import fake_credentials as fc
from support import home_dir
from support.codex import CODEX_VERSION

REPO = Path(__file__).resolve().parents[4]
NOW = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
WEEK = 7 * 86400
CANARY = 'CANARY-do-not-echo'


def stamp(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')


def status(**changes):
    """A status document as the script writes it: a run one hour before NOW that refreshed."""
    doc = {'format': 1, 'started': stamp(NOW - datetime.timedelta(hours=1, seconds=20)),
           'finished': stamp(NOW - datetime.timedelta(hours=1)), 'exit_status': 0, 'result': 'ok', 'reason': None,
           'refreshed': True, 'codex_version': CODEX_VERSION, 'interval_seconds': WEEK}
    doc.update(changes)
    return doc


def failed(reason, exit_status=1, **changes):
    return status(result='failed', reason=reason, exit_status=exit_status, refreshed=False, **changes)


def record(doc, uid=0, auth_mtime=None):
    """What read() returns for a file holding `doc`."""
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    try:
        parsed = ks.parse(data)
    except ks.StatusError as exc:
        return {'state': 'invalid', 'message': str(exc)}
    return {'state': 'present', 'uid': uid, 'status': parsed, 'auth_mtime': auth_mtime}


def evaluate(doc, **kwargs):
    kwargs.setdefault('now', NOW)
    return ks.evaluate(record(doc), **kwargs)


def codes(items):
    return [item['code'] for item in items]


# -- parsing --------------------------------------------------------------------------------------

def test_the_scripts_own_output_parses():
    """Byte for byte what keepalive.sh.j2's printf writes."""
    line = ('{"format": 1, "started": "2026-11-30T03:12:09Z", "finished": "2026-11-30T03:12:31Z", "exit_status": 1, '
            '"result": "failed", "reason": "refresh_token_reused", "refreshed": false, "codex_version": "%s", '
            '"interval_seconds": 604800, "consecutive_failures": 3}\n' % CODEX_VERSION)
    parsed = ks.parse(line.encode())
    assert parsed == {'started': '2026-11-30T03:12:09Z', 'finished': '2026-11-30T03:12:31Z', 'exit_status': 1,
                      'result': 'failed', 'reason': 'refresh_token_reused', 'refreshed': False,
                      'codex_version': CODEX_VERSION, 'interval_seconds': 604800, 'consecutive_failures': 3}
    without = line.replace('"%s"' % CODEX_VERSION, 'null').replace('604800', 'null')
    assert ks.parse(without.encode())['interval_seconds'] is None
    # A file an older keepalive wrote has no count: unknown, not zero.
    older = line.replace(', "consecutive_failures": 3', '')
    assert ks.parse(older.encode())['consecutive_failures'] is None


def test_the_template_writes_what_parse_reads():
    """The printf format in keepalive.sh.j2 names exactly the keys parse() returns (plus `format`)."""
    template = (REPO / 'roles' / 'codex_keepalive' / 'templates' / 'keepalive.sh.j2').read_text()
    line = [text for text in template.splitlines() if text.strip().startswith("if printf '{\"format\"")][0]
    keys = set(re.findall(r'\\?"([a-z_]+)\\?": ', line))
    assert keys == set(ks.parse(json.dumps(status(consecutive_failures=0)).encode())) | {'format'}


def test_the_template_unsets_every_shadowing_variable():
    """The keepalive unsets the same variables the modules keep from Codex (codex_process)."""
    template = (REPO / 'roles' / 'codex_keepalive' / 'templates' / 'keepalive.sh.j2').read_text()
    unset = template[template.index('\nunset ') + 1:].split('\n\n')[0].replace('\\\n', ' ')
    assert set(unset.split()[1:]) == set(codex_process.SHADOWING_VARIABLES)


@pytest.mark.parametrize('data', [
    b'', b'\n', b'{', b'[]', b'"ok"', b'null', b'\xff\xfe{}', b'{"format": 1}',
    b'[' * 5000 + b']' * 5000,                       # deeper than the json module recurses
    b'{"a": ' * 3000 + b'1' + b'}' * 3000,
    json.dumps(status(format=2)).encode(),
    json.dumps(status(format=True)).encode(),         # JSON true is not 1
    json.dumps(status(result='OK')).encode(),
    json.dumps(status(result='failed', reason=None)).encode(),
    json.dumps(status(reason=CANARY)).encode(),
    json.dumps(status(refreshed='yes')).encode(),
    json.dumps(status(refreshed=1)).encode(),
    json.dumps(status(exit_status=-1)).encode(),
    json.dumps(status(exit_status=256)).encode(),
    json.dumps(status(exit_status=1.0)).encode(),
    json.dumps(status(exit_status=False)).encode(),
    json.dumps(status(started='2026-11-30 03:12:09')).encode(),
    json.dumps(status(finished='2026-13-30T03:12:09Z')).encode(),
    json.dumps(status(finished='2026-11-30T03:12:09+01:00')).encode(),
    json.dumps(status(finished=1764472329)).encode(),
    json.dumps(status(started=stamp(NOW), finished=stamp(NOW - datetime.timedelta(seconds=1)))).encode(),
    json.dumps(status(codex_version=CODEX_VERSION + '; rm -rf /')).encode(),
    json.dumps(status(codex_version='x' * 65)).encode(),
    json.dumps(status(interval_seconds=0)).encode(),
    json.dumps(status(interval_seconds=10 ** 12)).encode(),
    json.dumps(status(interval_seconds='604800')).encode(),
    json.dumps(status(consecutive_failures=-1)).encode(),
    json.dumps(status(consecutive_failures=10000)).encode(),
    json.dumps(status(consecutive_failures='2')).encode(),
    json.dumps(status(consecutive_failures=True)).encode(),
    json.dumps(status(consecutive_failures=2.0)).encode(),
    json.dumps(status(consecutive_failures=1)).encode(),              # an ok run ends the streak
    json.dumps(failed('network', consecutive_failures=0)).encode(),   # a failed run is one of the streak
    json.dumps(failed('network', consecutive_failures=10 ** 400)).encode(),
    b'{"format": 1, "format": 1}',                   # duplicate keys: which one counts is ambiguous
    json.dumps(status()).replace('604800', 'NaN').encode(),
    json.dumps(status()).replace('604800', 'Infinity').encode(),
    json.dumps(status()).replace('604800', '1e999').encode(),
    json.dumps(status()).replace('604800', '9' * 5000).encode(),
])
def test_malformed_or_forged_files_are_refused_without_quoting_them(data):
    with pytest.raises(ks.StatusError) as caught:
        ks.parse(data)
    assert CANARY not in str(caught.value) and 'rm -rf' not in str(caught.value)
    facts, problems, warnings = ks.evaluate(record(data), now=NOW)
    assert problems == [] and codes(warnings) == ['keepalive_status_invalid']
    assert set(facts.values()) == {None}


def test_huge_file_is_refused_before_parsing():
    with pytest.raises(ks.StatusError):
        ks.parse(b' ' * (ks.MAX_STATUS_BYTES + 1))


def test_unknown_keys_are_ignored():
    assert ks.parse(json.dumps(status(extra={'a': [1, 2]})).encode())['result'] == 'ok'


# -- outcome --------------------------------------------------------------------------------------

def test_successful_refresh_gives_facts_and_nothing_else():
    facts, problems, warnings = evaluate(status())
    assert (problems, warnings) == ([], [])
    assert facts == {'keepalive_last_run': stamp(NOW - datetime.timedelta(hours=1)), 'keepalive_result': 'ok',
                     'keepalive_reason': None, 'keepalive_refreshed': True, 'keepalive_codex_version': CODEX_VERSION,
                     'keepalive_consecutive_failures': None}
    assert evaluate(status(consecutive_failures=0))[0]['keepalive_consecutive_failures'] == 0


@pytest.mark.parametrize('reason', ks.TRANSIENT_REASONS)
@pytest.mark.parametrize('count, threshold, problem', [
    (1, 2, False), (2, 2, True), (7, 2, True), (2, 3, False), (3, 3, True), (1, 1, True), (1, 0, True),
    (None, 2, False),
])
def test_failures_in_a_row_become_a_problem_whatever_the_reason(reason, count, threshold, problem):
    doc = failed(reason, exit_status=124 if reason == 'timeout' else 1)
    if count is not None:
        doc['consecutive_failures'] = count
    facts, problems, warnings = evaluate(doc, failure_threshold=threshold)
    assert facts['keepalive_consecutive_failures'] == count
    if problem:
        assert codes(problems) == ['keepalive_failing'] and warnings == []
        assert '%d runs in a row' % count in problems[0]['message'] and reason in problems[0]['message']
    else:
        assert problems == [] and codes(warnings) == ['keepalive_failed']


def test_a_dead_credential_stays_refresh_failed_however_often_it_failed():
    _facts, problems, _warnings = evaluate(failed('refresh_token_reused', consecutive_failures=5))
    assert codes(problems) == ['refresh_failed']


def test_failures_in_a_row_before_a_reseed_are_not_reported():
    finished = NOW - datetime.timedelta(hours=1)
    rec = record(failed('network', consecutive_failures=4), auth_mtime=finished.timestamp() + 600)
    _facts, problems, warnings = ks.evaluate(rec, now=NOW)
    assert (problems, warnings) == ([], [])


def test_refresh_then_model_unreachable_counts_as_ok():
    facts, problems, warnings = evaluate(status(exit_status=1, reason='network', refreshed=True))
    assert (problems, warnings) == ([], [])
    assert (facts['keepalive_result'], facts['keepalive_reason'], facts['keepalive_refreshed']) == ('ok', 'network', True)


@pytest.mark.parametrize('reason', ks.DEAD_CREDENTIAL_REASONS)
def test_dead_credential_reasons_are_refresh_failed(reason):
    facts, problems, warnings = evaluate(failed(reason))
    assert codes(problems) == ['refresh_failed'] and warnings == []
    message = problems[0]['message']
    assert reason in message and stamp(NOW - datetime.timedelta(hours=1)) in message
    assert facts['keepalive_result'] == 'failed' and facts['keepalive_reason'] == reason


@pytest.mark.parametrize('reason', ks.TRANSIENT_REASONS)
def test_transient_reasons_are_a_warning(reason):
    facts, problems, warnings = evaluate(failed(reason, exit_status=124 if reason == 'timeout' else 1))
    assert problems == [] and codes(warnings) == ['keepalive_failed']
    assert reason in warnings[0]['message']
    assert facts['keepalive_refreshed'] is False


def test_failure_older_than_auth_json_is_not_reported():
    """The runner was reseeded after the failed run: the failure was the old credential's."""
    finished = NOW - datetime.timedelta(hours=1)
    rec = record(failed('refresh_token_reused'), auth_mtime=finished.timestamp() + 600)
    facts, problems, warnings = ks.evaluate(rec, now=NOW)
    assert problems == [] and warnings == []
    assert facts['keepalive_result'] == 'failed'  # the fact stays what the file says
    rec = record(failed('refresh_token_reused'), auth_mtime=finished.timestamp() - 600)
    assert codes(ks.evaluate(rec, now=NOW)[1]) == ['refresh_failed']


def test_status_file_of_another_user_is_ignored():
    facts, problems, warnings = ks.evaluate(record(failed('refresh_token_reused'), uid=0), owner_uid=65534, now=NOW)
    assert problems == [] and codes(warnings) == ['keepalive_status_invalid']
    assert facts['keepalive_result'] is None


def test_finish_in_the_future_is_ignored():
    """A forged far-future time would otherwise hide an overdue keepalive forever."""
    future = status(started=stamp(NOW), finished=stamp(NOW + datetime.timedelta(days=3650)))
    facts, problems, warnings = evaluate(future)
    assert codes(warnings) == ['keepalive_status_invalid'] and facts['keepalive_last_run'] is None
    skewed = status(started=stamp(NOW), finished=stamp(NOW + datetime.timedelta(seconds=60)))
    assert evaluate(skewed)[2] == []


def test_missing_file_says_nothing():
    facts, problems, warnings = ks.evaluate({'state': 'missing'}, now=NOW)
    assert (problems, warnings) == ([], []) and set(facts.values()) == {None}
    assert ks.evaluate(None, now=NOW) == (facts, [], [])


# -- overdue --------------------------------------------------------------------------------------

@pytest.mark.parametrize('interval, slack', [
    (3600, 2 * 3600),             # hourly: the two-hour minimum
    (86400, 6 * 3600),            # daily: a quarter
    (WEEK, WEEK // 4),
    (2678400, 2678400 // 4),      # monthly (31 days)
])
def test_overdue_after_interval_plus_slack(interval, slack):
    assert ks.slack_seconds(interval) == slack
    due = NOW - datetime.timedelta(seconds=interval + slack)
    on_time = status(started=stamp(due + datetime.timedelta(seconds=5)), finished=stamp(due + datetime.timedelta(seconds=10)),
                     interval_seconds=interval)
    assert evaluate(on_time)[2] == []
    late = status(started=stamp(due - datetime.timedelta(seconds=20)), finished=stamp(due - datetime.timedelta(seconds=10)),
                  interval_seconds=interval)
    facts, problems, warnings = evaluate(late)
    assert codes(warnings) == ['keepalive_overdue'] and problems == []
    assert late['finished'] in warnings[0]['message']


def test_no_interval_is_never_overdue():
    old = status(started='2020-01-01T00:00:00Z', finished='2020-01-01T00:00:10Z', interval_seconds=None)
    assert evaluate(old)[2] == []


def test_overdue_and_failed_together():
    old = failed('network', started='2026-10-01T00:00:00Z', finished='2026-10-01T00:00:10Z')
    assert codes(evaluate(old)[2]) == ['keepalive_failed', 'keepalive_overdue']


# -- on disk, through health ----------------------------------------------------------------------

def write_status(home, data, mode=0o600):
    path = home / ks.STATUS_FILE
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    path.chmod(mode)
    return path


def verify(home, **kwargs):
    kwargs.setdefault('now', NOW)
    return health.evaluate(health.snapshot_path(str(home)), **kwargs)


@pytest.fixture
def runner_home(codex_home):
    doc, _secrets = fc.chatgpt_seed()
    home = codex_home(auth=doc)
    # auth.json older than the runs in these tests
    os.utime(str(home / 'auth.json'), (NOW.timestamp() - 86400, NOW.timestamp() - 86400))
    return home


def test_health_reports_refresh_failed_from_the_file(runner_home):
    write_status(runner_home, failed('refresh_token_reused'))
    result = verify(runner_home, owner_uid=os.geteuid())
    assert result['healthy'] is False and codes(result['problems']) == ['refresh_failed']
    assert result['keepalive_result'] == 'failed' and result['keepalive_reason'] == 'refresh_token_reused'
    assert result['keepalive_refreshed'] is False and result['keepalive_codex_version'] == CODEX_VERSION


def test_health_escalates_failures_in_a_row_with_its_threshold(runner_home):
    write_status(runner_home, failed('network', consecutive_failures=2))
    result = verify(runner_home, owner_uid=os.geteuid())
    assert result['healthy'] is False and codes(result['problems']) == ['keepalive_failing']
    assert result['keepalive_consecutive_failures'] == 2
    relaxed = verify(runner_home, owner_uid=os.geteuid(), keepalive_failure_threshold=3)
    assert relaxed['healthy'] is True and codes(relaxed['health_warnings']) == ['keepalive_failed']


def test_health_without_a_status_file_has_null_facts(runner_home):
    result = verify(runner_home)
    assert result['healthy'] is True
    assert all(result[key] is None for key in ks.EMPTY_FACTS)


def test_health_missing_home_has_null_facts(tmp_path):
    result = verify(tmp_path / 'absent')
    assert all(result[key] is None for key in ks.EMPTY_FACTS)


@pytest.mark.parametrize('kind', ['symlink', 'fifo', 'hardlink', 'huge', 'directory'])
def test_hostile_status_files_are_warnings(runner_home, tmp_path, kind):
    target = runner_home / ks.STATUS_FILE
    if kind == 'symlink':
        secret = tmp_path / 'elsewhere.json'
        secret.write_text(json.dumps(failed('refresh_token_reused')))
        target.symlink_to(secret)
    elif kind == 'fifo':
        os.mkfifo(str(target))
    elif kind == 'hardlink':
        write_status(runner_home, status())
        os.link(str(target), str(runner_home / 'other-link'))
    elif kind == 'huge':
        write_status(runner_home, b'{"format": 1, "pad": "' + b'x' * (ks.MAX_STATUS_BYTES + 10) + b'"}')
    else:
        target.mkdir()
    result = verify(runner_home)  # never hangs on the FIFO, never follows the link
    assert result['healthy'] is True
    assert codes(result['health_warnings']) == ['keepalive_status_invalid']
    assert result['keepalive_result'] is None


def test_read_on_an_open_home(runner_home):
    write_status(runner_home, status())
    with home_dir.opened(runner_home) as home:
        rec = ks.read(home)
    assert rec['state'] == 'present' and rec['status']['result'] == 'ok'
    assert rec['auth_mtime'] == pytest.approx(NOW.timestamp() - 86400)
    json.dumps(rec)  # crosses the privilege boundary as JSON


def test_recorded_since():
    rec = record(status(started='2026-12-01T11:00:00Z', finished='2026-12-01T11:00:30Z'))
    assert ks.recorded_since(rec, datetime.datetime(2026, 12, 1, 11, 0, 0, 600000, tzinfo=datetime.timezone.utc))
    assert not ks.recorded_since(rec, datetime.datetime(2026, 12, 1, 11, 0, 1, tzinfo=datetime.timezone.utc))
    assert not ks.recorded_since({'state': 'missing'}, NOW)
