"""What the keepalive records, and what verify makes of it, with the real pinned Codex.

For every classification the wrapper script knows, the loopback backend (or the network, or
config.toml) is made to fail the way the real thing fails, the installed script runs as the runner
user exactly as its schedule runs it, and then:
- the status file in CODEX_HOME says what happened (0600, the runner's, no secret, no Codex output);
- verify, through ansible-playbook (the codex_auth role's verify entry point), reports it: facts,
  and `refresh_failed` for a dead credential, `keepalive_failed` for a transient failure;
- verify with the probe (`codex_auth_probe=true`) runs the script again now and reports the fresh run:
  the second failure in a row, so a transient one is now the problem `keepalive_failing` (the default
  `keepalive_failure_threshold`, 2), while a dead credential stays `refresh_failed`.
Runs as root; the runner user is `nobody`, whose directories are 0755 up to its CODEX_HOME.
"""

import datetime
import json
import os
import pwd
import re
import socket
import stat
import subprocess
import sys

import pytest

from support.codex import CODEX_VERSION, codex_binary
from support.require import require, required
from support.runner_access import runner_owner
from test_keepalive import (KEEPALIVE_TIMEOUT, SYSTEMD_RUNNING, Layout, changed, keepalive_name, run_role,
                            scheduled_command, seed_codex_home)

_needs_root = required(os.geteuid() == 0, 'installs root-owned files and runs Codex as another user: run as root '
                       '(CI does)')

STATUS_KEYS = {'format', 'started', 'finished', 'exit_status', 'result', 'reason', 'refreshed', 'codex_version',
               'interval_seconds', 'consecutive_failures'}
VERIFY_PLAY = '''
- hosts: runner
  gather_facts: false
  tasks:
    - name: Verify
      ansible.builtin.import_role:
        name: codexops.runner.codex_auth
        tasks_from: verify
    - name: Keep the result for the test
      ansible.builtin.copy:
        content: "{{ codex_auth_health | to_json }}"
        dest: "{{ health_file }}"
        mode: "0600"
      check_mode: false
'''
# Codex prints these on every offline run; none may reach the status file.
CODEX_OUTPUT = ('OpenAI Codex', 'Reconnecting', 'error sending request', 'session id', 'Please log out')


def closed_port():
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Runner:
    """One runner: CODEX_HOME seeded with a login whose access token is inside Codex's 5-minute
    refresh window, and the keepalive installed for it by the role."""

    def __init__(self, workspace, backend, request, token_url=None, **role_vars):
        self.workspace, self.backend = workspace, backend
        self.scheduler = 'cron' if SYSTEMD_RUNNING else 'systemd'
        if self.scheduler == 'cron':
            request.getfixturevalue('fake_crontab')
        self.layout = Layout(workspace)
        self.doc = seed_codex_home(self.layout, backend, workspace)
        self.refresh_token = self.doc['tokens']['refresh_token']
        self.status_file = self.layout.codex_home / 'codexops-keepalive.json'
        # Offline, Codex 0.171.0 retries the unreachable model for minutes: the script's timeout(1) stops it.
        role_vars.setdefault('timeout', '%ds' % KEEPALIVE_TIMEOUT)
        variables = self.layout.variables(scheduler=self.scheduler, codex_path=codex_binary(), environment={
            'CODEX_REFRESH_TOKEN_URL_OVERRIDE': token_url or backend.base_url + '/oauth/token'}, **role_vars)
        run_role(workspace, variables)

    def run_scheduled(self):
        """What the service (or cron job) runs, as its user, in cron's bare environment."""
        user, argv = scheduled_command(self.layout, self.scheduler)
        bare = {'PATH': '/usr/bin:/bin', 'LANG': 'C.UTF-8'}
        run = subprocess.run(['/usr/sbin/runuser', '-u', user, '--'] + argv, env=bare, cwd='/',
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
                             check=False)
        output = run.stdout.decode('utf-8', 'replace')
        self.workspace.outputs.append(output)  # the leak check covers whatever Codex printed
        self.remember_tokens()
        return run.returncode, output

    def remember_tokens(self):
        doc = json.loads((self.layout.codex_home / 'auth.json').read_text())
        self.workspace.remember([doc['tokens'][key] for key in ('id_token', 'access_token', 'refresh_token')])
        return doc

    def status(self):
        """The status file, checked: the runner's, 0600, exactly the documented keys, nothing else in it."""
        info = os.stat(str(self.status_file))
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert pwd.getpwuid(info.st_uid).pw_name == self.layout.owner
        text = self.status_file.read_text()
        assert text.count('\n') == 1 and len(text) < 400, text
        for leaked in CODEX_OUTPUT + tuple(self.workspace.secrets):
            assert leaked not in text
        doc = json.loads(text)
        assert set(doc) == STATUS_KEYS
        assert doc['codex_version'] == CODEX_VERSION
        assert doc['interval_seconds'] == 7 * 86400
        assert doc['started'] <= doc['finished']
        # no temp file of the atomic write is left behind
        assert [name for name in os.listdir(str(self.layout.codex_home)) if name.startswith('.codexops-')] == []
        return doc

    def verify(self, probe=False, check=False, **more):
        health_file = self.workspace.root / ('health-%d.json' % (self.workspace.runs + 1))
        playbook = self.workspace.root / 'verify-keepalive.yml'
        playbook.write_text(VERIFY_PLAY)
        inventory = self.workspace.root / 'verify-inventory.ini'
        inventory.write_text('runner ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
        variables = {'codex_auth_user': self.layout.owner, 'codex_auth_home': str(self.layout.codex_home),
                     'codex_auth_probe': probe, 'health_file': str(health_file),
                     # where the role put the script; the probe computes the same name from codex_auth_home
                     'codex_keepalive_script_dir': str(self.layout.script_dir)}
        variables.update(more)
        output = self.workspace.playbook(str(playbook), str(inventory), variables, check=check, label='verify')
        self.remember_tokens()
        return json.loads(health_file.read_text()), output


def problem_codes(health):
    return [item['code'] for item in health['problems']]


def warning_codes(health):
    return [item['code'] for item in health['health_warnings']]


def break_it(runner, failure):
    if failure == 'refresh_token_reused':
        # Another runner with a copy of this auth.json refreshed first.
        runner.workspace.remember(list(runner.backend.refresh_elsewhere(runner.refresh_token).values()))
    elif failure == 'refresh_token_invalidated':
        runner.backend.revoke_login(runner.refresh_token)
    elif failure in ('refresh_token_expired', 'unauthorized', 'slow'):
        runner.backend.fail_refresh(runner.refresh_token, failure)
    elif failure == 'bad_config':
        with open(str(runner.layout.codex_home / 'config.toml'), 'a') as handle:
            handle.write('model = 5\n')  # Codex: "Error loading config.toml: invalid type: integer `5`"


CASES = [
    # (failure, role variables, reason, verify's code, kind)
    ('refresh_token_reused', {}, 'refresh_token_reused', 'refresh_failed', 'problem'),
    ('refresh_token_expired', {}, 'refresh_token_expired', 'refresh_failed', 'problem'),
    ('refresh_token_invalidated', {}, 'refresh_token_invalidated', 'refresh_failed', 'problem'),
    ('unauthorized', {}, 'unauthorized', 'refresh_failed', 'problem'),
    # Codex 0.171.0 does not give up on an unreachable token endpoint: it retries the refresh with every
    # reconnect of the model stream, then "Reconnecting... waiting for network" until timeout(1) stops it.
    ('closed_port', {}, 'timeout', 'keepalive_failed', 'warning'),
    # The token endpoint does not answer; timeout(1) stops Codex first (exit 124).
    ('slow', {'timeout': '8s'}, 'timeout', 'keepalive_failed', 'warning'),
    ('bad_config', {}, 'config', 'keepalive_failed', 'warning'),
]


@pytest.mark.parametrize('failure, role_vars, reason, code, kind', CASES, ids=[case[0] for case in CASES])
def test_each_failure_is_recorded_and_reported(workspace, backend, request, failure, role_vars, reason, code, kind):
    token_url = 'http://127.0.0.1:%d/oauth/token' % closed_port() if failure == 'closed_port' else None
    runner = Runner(workspace, backend, request, token_url=token_url, **role_vars)
    auth_before = (runner.layout.codex_home / 'auth.json').read_bytes()
    break_it(runner, failure)

    rc, output = runner.run_scheduled()
    status = runner.status()
    assert rc != 0 and rc == status['exit_status'], output[-3000:]
    assert (status['result'], status['reason'], status['refreshed']) == ('failed', reason, False), output[-3000:]
    if reason == 'timeout':
        assert status['exit_status'] == 124
    assert (runner.layout.codex_home / 'auth.json').read_bytes() == auth_before  # Codex leaves it untouched
    assert 'codex-keepalive: result=failed reason="%s"' % reason in output
    assert status['consecutive_failures'] == 1

    health, _output = runner.verify()
    assert (health['keepalive_result'], health['keepalive_reason'], health['keepalive_refreshed']) == \
        ('failed', reason, False)
    assert health['keepalive_last_run'] == status['finished']
    assert health['keepalive_codex_version'] == CODEX_VERSION
    assert health['keepalive_consecutive_failures'] == 1
    assert 'keepalive_probe' not in health
    if kind == 'problem':
        assert code in problem_codes(health) and health['healthy'] is False
        message = [item['message'] for item in health['problems'] if item['code'] == code][0]
        assert reason in message and status['finished'] in message
    else:
        assert code in warning_codes(health) and 'refresh_failed' not in problem_codes(health)
        assert 'keepalive_failing' not in problem_codes(health)  # one failure is not yet a streak

    # The probe runs the same script now and reports that run (timeout: with its own, shorter deadline).
    first = status
    probe_vars = {'codex_auth_probe_timeout': 5} if reason == 'timeout' else {}
    probed, probe_output = runner.verify(probe=True, **probe_vars)
    status = runner.status()
    assert status['started'] >= first['started'] and status != first
    assert probed['keepalive_probe']['ran'] is True and probed['keepalive_probe']['rc'] == status['exit_status']
    assert probed['keepalive_probe']['command'] == str(runner.layout.script)
    assert (probed['keepalive_result'], probed['keepalive_reason']) == ('failed', reason)
    assert probed['keepalive_last_run'] == status['finished']
    assert 'keepalive_probe_failed' not in warning_codes(probed)
    # The probe's run is the second failure in a row.
    assert status['consecutive_failures'] == 2 and probed['keepalive_consecutive_failures'] == 2
    if kind == 'problem':
        # A dead credential is refresh_failed, however many runs failed.
        assert code in problem_codes(probed) and code not in warning_codes(probed)
        assert 'keepalive_failing' not in problem_codes(probed)
    else:
        # A transient failure, twice in a row: the streak is the problem keepalive_failing, the warning is gone.
        # (bad_config: config.toml's own problem may be reported beside it.)
        assert 'keepalive_failing' in problem_codes(probed) and probed['healthy'] is False, probed['problems']
        assert 'refresh_failed' not in problem_codes(probed) and code not in warning_codes(probed)
        message = [item['message'] for item in probed['problems'] if item['code'] == 'keepalive_failing'][0]
        assert '2 runs in a row' in message and reason in message and status['finished'] in message
    assert re.search(r'^runner\s+:\s+ok=\d+\s+changed=[1-9]', probe_output, re.M)  # a probe that ran is a change
    for leaked in CODEX_OUTPUT:
        assert leaked not in probe_output  # the probe discards Codex's output


def test_probe_refreshes_and_a_run_with_nothing_to_refresh_offline_is_a_transient_failure(workspace, backend, request):
    """The probe runs the installed script: Codex refreshes against the backend and then cannot reach
    the model (offline), which counts as ok (refreshed), so the script exits 0 and verify reports the
    facts and nothing else. The scheduled run after it finds a fresh access token (an hour), refreshes
    nothing, and cannot reach the model: a transient failure. Offline, Codex 0.171.0 waits for the
    network to reach the model until the script's timeout(1) stops it (exit 124): the reason is `timeout`."""
    runner = Runner(workspace, backend, request)
    rotations = backend.count('/oauth/token', 'rotated')
    probed, _output = runner.verify(probe=True)
    status = runner.status()
    assert backend.count('/oauth/token', 'rotated') == rotations + 1
    assert (status['result'], status['refreshed']) == ('ok', True)
    # the model call after the refresh, stopped at the probe's deadline
    assert (status['exit_status'], status['reason']) == (124, 'timeout')
    assert probed['keepalive_probe'] == {'ran': True, 'command': str(runner.layout.script), 'rc': 0,
                                         'timed_out': False}
    assert (probed['keepalive_result'], probed['keepalive_refreshed']) == ('ok', True)
    assert probed['healthy'] is True, probed['problems']
    assert not [code for code in warning_codes(probed) if code.startswith('keepalive_')]
    # verify read auth.json after the probe: it reports the credentials the probe's refresh wrote
    after = runner.remember_tokens()
    assert after['tokens']['refresh_token'] == backend.current_refresh_token(runner.refresh_token)
    assert probed['last_refresh'] > runner.doc['last_refresh'][:19] + 'Z'

    rc, output = runner.run_scheduled()
    status = runner.status()
    assert rc == status['exit_status'] != 0, output[-3000:]
    assert (status['result'], status['reason'], status['refreshed']) == ('failed', 'timeout', False)
    assert status['exit_status'] == 124 and status['consecutive_failures'] == 1
    assert backend.count('/oauth/token', 'rotated') == rotations + 1
    health, _output = runner.verify()
    assert health['healthy'] is True and warning_codes(health) == ['keepalive_failed']


def test_probe_is_skipped_in_check_mode(workspace, backend, request):
    runner = Runner(workspace, backend, request)
    requests = backend.count('/oauth/token')
    health, _output = runner.verify(probe=True, check=True)
    assert health['keepalive_probe']['ran'] is False and 'check mode' in health['keepalive_probe']['msg']
    assert backend.count('/oauth/token') == requests
    assert not runner.status_file.exists()
    assert health['keepalive_result'] is None and 'keepalive_probe_failed' not in warning_codes(health)


def test_probe_of_a_missing_script_is_a_warning(workspace, backend, request):
    runner = Runner(workspace, backend, request)
    health, _output = runner.verify(probe=True, codex_auth_probe_command=str(workspace.root / 'no-such-script'))
    assert health['keepalive_probe']['ran'] is False
    assert warning_codes(health) == ['keepalive_probe_failed'] and health['healthy'] is True


def test_overdue_keepalive_is_reported(workspace, backend, request):
    """The last run the file records finished longer ago than a week plus its slack."""
    runner = Runner(workspace, backend, request)
    owner = pwd.getpwnam(runner.layout.owner)
    long_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10)
    doc = {'format': 1, 'started': long_ago.strftime('%Y-%m-%dT%H:%M:%SZ'),
           'finished': long_ago.strftime('%Y-%m-%dT%H:%M:%SZ'), 'exit_status': 0, 'result': 'ok', 'reason': None,
           'refreshed': True, 'codex_version': CODEX_VERSION, 'interval_seconds': 7 * 86400}
    runner.status_file.write_text(json.dumps(doc) + '\n')
    os.chown(str(runner.status_file), owner.pw_uid, owner.pw_gid)
    runner.status_file.chmod(0o600)
    health, _output = runner.verify()
    assert warning_codes(health) == ['keepalive_overdue'] and health['healthy'] is True
    assert health['keepalive_last_run'] == doc['finished']


def test_verify_playbook_reports_a_dead_refresh_token_with_the_probe(workspace, backend, request):
    """`ansible-playbook codexops.runner.verify -e codex_auth_probe=true` on a runner whose refresh token
    another copy already used: the probe finds it, the report names it, the playbook fails."""
    runner = Runner(workspace, backend, request)
    break_it(runner, 'refresh_token_reused')
    inventory = workspace.root / 'fleet.json'
    inventory.write_text(json.dumps({'codex_runners': {'hosts': {'runner-1': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
        'codex_auth_user': runner.layout.owner, 'codex_auth_home': str(runner.layout.codex_home),
        'codex_keepalive_script_dir': str(runner.layout.script_dir),
        'codex_auth_report_dir': str(workspace.root / 'report')}}}}))
    output = workspace.playbook('codexops.runner.verify', str(inventory), {'codex_auth_probe': True},
                                expect_failure=True, label='verify')
    report = json.loads((workspace.root / 'report' / 'fleet-report.json').read_text())
    assert report['problems_by_code']['refresh_failed'] == ['runner-1'], output[-3000:]
    assert runner.status()['reason'] == 'refresh_token_reused'


# -- the role ---------------------------------------------------------------------------------------

# What this host runs, not a missing tool: a CI host may well have systemd or cron, so a skip there too.
@pytest.mark.skipif(SYSTEMD_RUNNING or subprocess.run(['/bin/sh', '-c', 'PATH="$PATH:/sbin:/usr/sbin:/usr/local/sbin" '
                                                       'command -v crontab'], stdout=subprocess.DEVNULL,
                                                      check=False).returncode == 0,
                    reason='this host has a running systemd or a crontab: auto would find a scheduler')
def test_auto_without_systemd_or_cron_fails_before_writing(workspace):
    layout = Layout(workspace)
    output = run_role(workspace, layout.variables(), expect_failure=True)
    assert 'neither a running systemd' in output and 'Install cron' in output
    assert 'codex_keepalive_scheduler: systemd' in output
    assert not layout.script_dir.exists() and layout.installed() == []


@pytest.mark.parametrize('variables, interval', [
    ({'cron_special_time': 'daily'}, '86400'),
    ({'cron_special_time': 'monthly'}, '2678400'),
    ({'cron_special_time': 'reboot'}, 'null'),
    ({'cron_special_time': 'weekly', 'interval_days': '0.5'}, '43200'),
])
def test_script_records_the_schedule_interval(workspace, fake_crontab, variables, interval):
    layout = Layout(workspace)
    run_role(workspace, layout.variables(scheduler='cron', **variables))
    assert '\nINTERVAL_SECONDS=%s\n' % interval in layout.script.read_text()


def test_keepalive_under_the_old_name_is_replaced_for_its_codex_home_only(workspace, fake_crontab):
    """Before names were unique per CODEX_HOME, every keepalive of a user was codex-keepalive-USER:
    the role replaces the one installed for this CODEX_HOME, and leaves one for another alone."""
    layout = Layout(workspace)
    legacy = 'codex-keepalive-%s' % layout.owner
    old = dict(scheduler='cron', name=legacy)
    run_role(workspace, layout.variables(**old))
    assert (layout.script_dir / legacy).exists() and '#Ansible: %s\n' % legacy in layout.cron_file.read_text()

    check = run_role(workspace, layout.variables(scheduler='cron'), check=True)
    assert (layout.script_dir / legacy).exists(), 'check mode removed something'
    assert changed(check) > 0
    run_role(workspace, layout.variables(scheduler='cron'))
    assert layout.name != legacy and layout.script.exists()
    assert not (layout.script_dir / legacy).exists()
    cron = layout.cron_file.read_text()
    assert '#Ansible: %s\n' % legacy not in cron and '#Ansible: %s\n' % layout.name in cron
    assert [line for line in cron.splitlines() if line.startswith('@')] == ['@weekly %s %s' % (layout.owner, layout.script)]
    assert changed(run_role(workspace, layout.variables(scheduler='cron'))) == 0

    # The old name now belongs to another CODEX_HOME of the same user: not this runner's to remove.
    other_home = workspace.root / 'other' / '.codex'
    run_role(workspace, layout.variables(home=str(other_home), **old))
    assert changed(run_role(workspace, layout.variables(scheduler='cron'))) == 0
    assert 'CODEX_HOME=%s\n' % other_home in (layout.script_dir / legacy).read_text()
    assert layout.name == keepalive_name(layout.owner, str(layout.codex_home))


def test_script_refuses_to_run_as_another_user(workspace, fake_crontab):
    require(os.geteuid() == 0, 'needs root to be another user than the runner')
    layout = Layout(workspace)
    run_role(workspace, layout.variables(scheduler='cron'))
    run = subprocess.run([str(layout.script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert run.returncode == 2 and b'run this as %s' % layout.owner.encode() in run.stdout
    assert not (layout.codex_home / 'codexops-keepalive.json').exists()


def test_reseed_replaces_a_runner_whose_keepalive_found_a_dead_refresh_token(workspace):
    """auth.json looks valid, so `replace: invalid` would keep it: refresh_failed makes reseed replace
    it, and the failure recorded before the new seed no longer counts."""
    from support.local_fleet import LocalFleet, file_identity
    fleet = LocalFleet(workspace, 2)
    for host in fleet.hosts:
        fleet.seed(host)
    fleet.run('provision')
    dead = 'runner-2'
    owner = pwd.getpwnam(runner_owner())
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    os.utime(str(fleet.auth(dead)), (past.timestamp(), past.timestamp()))  # provisioned before the failed run
    finished = (past + datetime.timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')
    status_file = fleet.home(dead) / 'codexops-keepalive.json'
    status_file.write_text(json.dumps({'format': 1, 'started': finished, 'finished': finished, 'exit_status': 1,
                                       'result': 'failed', 'reason': 'refresh_token_reused', 'refreshed': False,
                                       'codex_version': CODEX_VERSION, 'interval_seconds': 604800}) + '\n')
    os.chown(str(status_file), owner.pw_uid, owner.pw_gid)
    status_file.chmod(0o600)
    untouched = file_identity(fleet.auth('runner-1'))

    fleet.run('verify', expect_failure=True)
    assert fleet.report()['problems_by_code'] == {'refresh_failed': [dead]}
    new_seed = fleet.seed(dead)  # a fresh login from a trusted machine
    fleet.run('reseed')
    assert fleet.auth_doc(dead)['tokens']['refresh_token'] == new_seed['tokens']['refresh_token']
    assert file_identity(fleet.auth('runner-1')) == untouched
    assert fleet.report('after-reseed')['ok']
    fleet.run('verify')
    assert fleet.report()['ok']
