"""The keepalive's classification over every plan, access-token age and token-endpoint answer, with the
real pinned Codex as the runner user.

plan {plus (pro: the same paths), business, enterprise} x access token {fresh (an hour left), inside Codex's 5-minute
refresh window, expired for days} x what the token endpoint does {rotates (refreshed), refresh token
already used elsewhere (reused), login revoked, refresh token expired, 401 without a code, network down,
slow}. The loopback backend answers the ChatGPT backend as the real one does (the cloud config bundle
for business/enterprise, workspace routing, 401 to an access token that is expired or of a revoked
login), so Codex walks its real paths; `chatgpt_base_url` points there (config.toml), the token
endpoint through CODEX_REFRESH_TOKEN_URL_OVERRIDE.

The truth is what the token endpoint answered for the seeded refresh token (the backend's request log),
and the recorded reason must match it:
- rotated -> result ok, refreshed;
- 401 refresh_token_reused / _invalidated / _expired -> that reason; 401 without a code -> unauthorized;
- no answer in time -> timeout; the endpoint unreachable (network down) -> network;
- never asked (a fresh access token of a login that still works) -> no dead-credential reason: nothing
  is known about the refresh token yet.

The role is installed once (cron, the fake crontab); every case runs the installed script with its own
CODEX_HOME (the script's CODEX_HOME line, and for the network-down cases the token URL line, replaced:
everything else is the installed script byte for byte), as the runner user in cron's bare environment,
several at a time (each case has its own login and CODEX_HOME, so they cannot interfere).
"""

import concurrent.futures
import datetime
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from support import codex_backend
from support.codex import CODEX_VERSION, codex_binary
from support.private_files import write_private
from support.require import required
from support.runner_access import runner_owner
from support.workspace import COLLECTIONS, Workspace
from test_keepalive import Layout, run_role, scheduled_command

sys.path.insert(0, str(COLLECTIONS))
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status  # noqa: E402

_needs_root = required(os.geteuid() == 0, 'runs Codex as the runner user: run as root (CI does)')

# pro takes the same paths as plus (neither loads a cloud config bundle); CODEXOPS_MATRIX_PLANS adds it.
PLANS = tuple(os.environ.get('CODEXOPS_MATRIX_PLANS', 'plus business enterprise').split())
AGES = {
    'fresh': datetime.timedelta(hours=1),
    'window': datetime.timedelta(minutes=2),
    'expired_days': datetime.timedelta(days=-5),
}
OUTCOMES = ('refreshed', 'reused', 'revoked', 'expired', 'unauthorized', 'network_down', 'slow')
# timeout(1) around Codex in the installed script; the slow token endpoint holds its answer longer.
# Offline, Codex retries the unreachable model (workspace routing points it at https://chatgpt.com) with
# backoff before it prints the error that ends the run: ~50 s on a plus plan, more under load.
SCRIPT_TIMEOUT = 120
SLOW_SECONDS = 200
PARALLEL = int(os.environ.get('CODEXOPS_MATRIX_PARALLEL', '8'))
CASES = [(plan, age, outcome) for plan in PLANS for age in AGES for outcome in OUTCOMES]
EXPECTED_REASON = {
    'refresh_token_reused': 'refresh_token_reused',
    'refresh_token_invalidated': 'refresh_token_invalidated',
    'refresh_token_expired': 'refresh_token_expired',
    'unauthorized': 'unauthorized',
    'slow': 'timeout',
}


def closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Case:
    def __init__(self, root, backend, workspace, plan, age, outcome):
        self.plan, self.age, self.outcome = plan, age, outcome
        self.name = '%s-%s-%s' % (plan, age, outcome)
        self.home = root / 'homes' / self.name / '.codex'
        self.backend = backend
        doc, secrets = backend.login(account_id='acct-%s' % self.name, plan=plan, access_ttl=AGES[age],
                                     last_refresh=datetime.datetime.now(datetime.timezone.utc)
                                     - datetime.timedelta(days=6))
        workspace.remember(secrets)
        self.refresh_token = doc['tokens']['refresh_token']
        self.fingerprint = codex_backend.token_fingerprint(self.refresh_token)
        self.auth_before = json.dumps(doc, indent=2)
        self.down_port = closed_port() if outcome == 'network_down' else None
        base = ('http://127.0.0.1:%d/backend-api/' % self.down_port) if self.down_port else backend.chatgpt_base_url
        user = pwd.getpwnam(runner_owner())
        self.home.parent.mkdir(parents=True)
        os.chmod(str(self.home.parent), 0o755)
        self.home.mkdir(mode=0o700)
        for name, text in (('auth.json', self.auth_before),
                           ('config.toml', 'cli_auth_credentials_store = "file"\nchatgpt_base_url = "%s"\n' % base)):
            write_private(self.home / name, text)
            os.chown(str(self.home / name), user.pw_uid, user.pw_gid)
        os.chown(str(self.home), user.pw_uid, user.pw_gid)
        self.script = None
        self.status = self.output = self.rc = None

    def break_it(self, workspace):
        if self.outcome == 'reused':
            workspace.remember(list(self.backend.refresh_elsewhere(self.refresh_token).values()))
        elif self.outcome == 'revoked':
            self.backend.revoke_login(self.refresh_token)
        elif self.outcome in ('expired', 'unauthorized', 'slow'):
            failure = {'expired': 'refresh_token_expired'}.get(self.outcome, self.outcome)
            self.backend.fail_refresh(self.refresh_token, failure, seconds=SLOW_SECONDS)

    def token_answers(self):
        """What the token endpoint answered to the seeded refresh token (outcomes, in order)."""
        with self.backend._lock:  # pylint: disable=protected-access
            return [outcome for _m, path, _s, fp, outcome in self.backend.requests
                    if path.endswith(codex_backend.TOKEN_PATH) and fp == self.fingerprint]

    def run(self, user, argv):
        bare = {'PATH': '/usr/bin:/bin', 'LANG': 'C.UTF-8'}
        run = subprocess.run(['/usr/sbin/runuser', '-u', user, '--'] + argv, env=bare, cwd='/',
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True,  # as cron and systemd start it: no terminal
                             timeout=SCRIPT_TIMEOUT + 180, check=False)
        self.rc, self.output = run.returncode, run.stdout.decode('utf-8', 'replace')
        text = (self.home / 'codexops-keepalive.json').read_text()
        self.status = json.loads(text)
        return self


@pytest.fixture(scope='module')
def matrix(request):
    """Every case of the matrix, run once: {name: Case}."""
    codex_binary()
    root = tempfile.mkdtemp(prefix='codexops-matrix-')
    os.chmod(root, 0o755)
    backend = codex_backend.CodexBackend()
    backend.slow_seconds = SLOW_SECONDS
    backend.start()
    workspace = Workspace(root, 'keepalive-matrix', backend)
    try:
        # The fake crontab of conftest.py, by hand (module scope).
        stub_dir = workspace.root / 'bin'
        stub_dir.mkdir()
        (stub_dir / 'crontab').write_text('#!/bin/sh\nexit 1\n')
        (stub_dir / 'crontab').chmod(0o755)
        old_path = os.environ['PATH']
        os.environ['PATH'] = '%s:%s' % (stub_dir, old_path)
        try:
            layout = Layout(workspace)
            run_role(workspace, layout.variables(
                scheduler='cron', codex_path=codex_binary(), timeout='%ds' % SCRIPT_TIMEOUT,
                environment={'CODEX_REFRESH_TOKEN_URL_OVERRIDE': backend.base_url + '/oauth/token'}))
        finally:
            os.environ['PATH'] = old_path
        user, argv = scheduled_command(layout, 'cron')
        installed = layout.script.read_text()
        home_line = 'CODEX_HOME=%s\n' % layout.codex_home
        url_line = 'export CODEX_REFRESH_TOKEN_URL_OVERRIDE=%s/oauth/token\n' % backend.base_url
        assert installed.count(home_line) == 1 and installed.count(url_line) == 1, installed
        # Only the cases pytest selected (-k): the whole matrix takes minutes.
        selected = [tuple(item.callspec.params[key] for key in ('plan', 'age', 'outcome'))
                    for item in request.session.items
                    if getattr(item, 'originalname', None) == 'test_recorded_reason_matches_what_the_token_endpoint_answered']
        cases = [Case(workspace.root, backend, workspace, *case) for case in CASES if case in selected]
        for case in cases:
            text = installed.replace(home_line, 'CODEX_HOME=%s\n' % case.home)
            if case.down_port:
                text = text.replace(url_line, 'export CODEX_REFRESH_TOKEN_URL_OVERRIDE=http://127.0.0.1:%d/oauth/token\n'
                                    % case.down_port)
            case.script = layout.script_dir / case.name
            case.script.write_text(text)
            case.script.chmod(0o755)
            case.break_it(workspace)
        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
            done = list(pool.map(lambda case: case.run(user, [str(case.script)] + argv[1:]), cases))
        for case in done:
            workspace.outputs.append(case.output)
            auth = json.loads((case.home / 'auth.json').read_text())
            workspace.remember([auth['tokens'][key] for key in ('id_token', 'access_token', 'refresh_token')])
        table = ['| plan | access token | token endpoint | answered | recorded result | reason | refreshed | consecutive |',
                 '|---|---|---|---|---|---|---|---|']
        for case in done:
            table.append('| %s | %s | %s | %s | %s | %s | %s | %s |' % (
                case.plan, case.age, case.outcome, ', '.join(case.token_answers()) or '(not asked)',
                case.status['result'], case.status['reason'], case.status['refreshed'],
                case.status['consecutive_failures']))
        # The table for the report (pytest -s prints it; CODEXOPS_MATRIX_TABLE names a file to write it to).
        print('\n' + '\n'.join(table))
        if os.environ.get('CODEXOPS_MATRIX_TABLE'):
            with open(os.environ['CODEXOPS_MATRIX_TABLE'], 'w') as handle:
                handle.write('\n'.join(table) + '\n')
        yield {case.name: case for case in done}
    finally:
        backend.stop()
        leaks = workspace.leaks()
        shutil.rmtree(root, ignore_errors=True)
        assert not leaks, 'secrets leaked:\n' + '\n'.join(leaks)


@pytest.mark.parametrize('plan, age, outcome', CASES, ids=['-'.join(case) for case in CASES])
def test_recorded_reason_matches_what_the_token_endpoint_answered(matrix, plan, age, outcome):
    case = matrix['%s-%s-%s' % (plan, age, outcome)]
    status, answers = case.status, case.token_answers()
    detail = '%s: answers %s, status %s, output:\n%s' % (case.name, answers, status, case.output[-2500:])
    assert keepalive_status.parse((json.dumps(status) + '\n').encode()) is not None
    assert status['codex_version'] == CODEX_VERSION
    assert 'codex-keepalive: result=%s' % status['result'] in case.output
    dead = set(keepalive_status.DEAD_CREDENTIAL_REASONS)
    if outcome == 'network_down':
        assert answers == []
        assert (status['result'], status['reason'], status['refreshed']) == ('failed', 'network', False), detail
    elif 'rotated' in answers:
        assert answers[0] == 'rotated', detail
        assert (status['result'], status['refreshed']) == ('ok', True), detail
        assert status['consecutive_failures'] == 0 and status['reason'] not in dead, detail
        assert (case.home / 'auth.json').read_text() != case.auth_before
    elif answers:
        # Codex may ask again with the same token; every answer is the same refusal.
        assert len(set(answers)) == 1, detail
        assert (status['result'], status['reason'], status['refreshed']) == \
            ('failed', EXPECTED_REASON[answers[0]], False), detail
        assert status['consecutive_failures'] == 1
        assert (case.home / 'auth.json').read_text() == case.auth_before  # Codex leaves it untouched
    else:
        # Nothing was asked of the token endpoint: nothing may be claimed about the refresh token.
        assert age == 'fresh', detail
        assert status['reason'] not in dead and status['refreshed'] is False, detail
    # What each cell must have asked: a token inside the window or expired is always refreshed; so is a fresh one of a
    # revoked login on every plan (the backend answers its access token 401, as the real one does, and Codex then
    # refreshes), so a revoked login is found whatever the token's age.
    if (age != 'fresh' or outcome == 'revoked') and outcome != 'network_down':
        assert answers, detail
    if outcome == 'refreshed' and age != 'fresh':
        assert answers[0] == 'rotated', detail
    if outcome in ('reused', 'revoked', 'expired', 'unauthorized', 'slow') and answers:
        expected = {'reused': 'refresh_token_reused', 'revoked': 'refresh_token_invalidated',
                    'expired': 'refresh_token_expired', 'unauthorized': 'unauthorized', 'slow': 'slow'}[outcome]
        assert answers[0] == expected, detail
