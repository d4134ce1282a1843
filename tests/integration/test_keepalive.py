"""The codex_keepalive role on the local host, with systemd units and with cron, and the installed
keepalive refreshing real Codex credentials against the loopback backend.

Every path the role writes (script, units, cron file, CODEX_HOME) is under the workspace, so the
real /etc is never touched. Where systemd is not running (CI's container) the role writes the units,
checks them with `systemd-analyze verify` (which works offline) and enables nothing; where it runs,
the tests that would enable a scratch unit are skipped. Runs as root; the runner user is `nobody`.
"""

import datetime
import json
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time

import pytest

from support.codex import CODEX_VERSION, codex_binary
from support.private_files import write_private
from support.require import require, required
from support.runner_access import runner_owner
from support.workspace import COLLECTIONS, OUTPUT

sys.path.insert(0, str(COLLECTIONS))
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status  # noqa: E402

_needs_root = required(os.geteuid() == 0, 'installs root-owned files and runs Codex as another user: run as root '
                       '(CI does)')

PLAY = '''
- hosts: localhost
  gather_facts: false
  roles:
    - role: codexops.runner.codex_keepalive
'''
UNSET_LINE = 'unset CODEX_ACCESS_TOKEN OPENAI_API_KEY CODEX_API_KEY'
# codex_keepalive_timeout (seconds) for the runs of the real Codex here: offline, Codex 0.171.0 retries the
# unreachable model for minutes; timeout(1) stops it (and KILLs it 15 s later).
KEEPALIVE_TIMEOUT = 120
# Where systemd runs, the role would enable the timer, and systemd does not load the workspace's units.
SYSTEMD_RUNNING = os.path.isdir('/run/systemd/system')
# A platform fact, not a missing tool: a CI host may run systemd, so this stays a skip there too (the
# cron variant covers the same role logic).
needs_offline_systemd = pytest.mark.skipif(SYSTEMD_RUNNING, reason='systemd is running here: the role would enable '
                                                                   'a timer whose unit is in a scratch directory')


class Layout:
    """Where the role writes, all under the workspace; the directories a real host already has exist."""

    def __init__(self, workspace):
        root = workspace.root
        self.owner = runner_owner()
        self.codex_home = root / 'home' / '.codex'
        # Not the user's default CODEX_HOME: the name carries a hash of it (two runners, one user).
        self.name = keepalive_name(self.owner, str(self.codex_home))
        self.script_dir = root / 'usr' / 'local' / 'libexec' / 'codexops'
        self.script = self.script_dir / self.name
        self.systemd_dir = root / 'etc' / 'systemd' / 'system'
        self.service = self.systemd_dir / (self.name + '.service')
        self.timer = self.systemd_dir / (self.name + '.timer')
        self.cron_file = root / 'etc' / 'cron.d' / self.name
        for directory in (self.systemd_dir, self.cron_file.parent, self.codex_home.parent):
            directory.mkdir(parents=True)

    def variables(self, **more):
        variables = {
            'codex_keepalive_user': self.owner,
            'codex_keepalive_home': str(self.codex_home),
            'codex_keepalive_script_dir': str(self.script_dir),
            'codex_keepalive_systemd_dir': str(self.systemd_dir),
            'codex_keepalive_cron_file': str(self.cron_file),
        }
        variables.update(('codex_keepalive_%s' % key, value) for key, value in more.items())
        return variables

    def installed(self):
        return [path for path in (self.script, self.service, self.timer, self.cron_file) if path.exists()]


def keepalive_name(user, home):
    """The one rule (module_utils/keepalive_status.py), which the roles use through the filter."""
    return keepalive_status.keepalive_name(user, home)


def run_role(workspace, variables, check=False, expect_failure=False):
    playbook = workspace.root / 'codex_keepalive.yml'
    playbook.write_text(PLAY)
    inventory = workspace.root / 'keepalive-inventory.ini'
    inventory.write_text('localhost ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
    return workspace.playbook(str(playbook), str(inventory), variables, check=check, expect_failure=expect_failure,
                              label='codex_keepalive')


def changed(output):
    match = re.search(r'^localhost\s+:\s+ok=\d+\s+changed=(\d+)\s', output, re.MULTILINE)
    assert match, 'no play recap in:\n' + output[-2000:]
    return int(match.group(1))


def unit_settings(path):
    """`Key=value` lines of a unit file (the units here set each key once)."""
    return dict(line.split('=', 1) for line in path.read_text().splitlines()
                if '=' in line and not line.startswith('#'))


def mode_and_owner(path):
    info = os.stat(str(path))
    return stat.S_IMODE(info.st_mode), pwd.getpwuid(info.st_uid).pw_name, info.st_gid


@pytest.mark.parametrize('scheduler', [pytest.param('systemd', marks=needs_offline_systemd), 'cron'])
def test_role_check_apply_idempotent_check_remove(workspace, scheduler, request):
    if scheduler == 'cron':
        request.getfixturevalue('fake_crontab')
    layout = Layout(workspace)
    variables = layout.variables(scheduler=scheduler)

    predicted = run_role(workspace, variables, check=True)
    assert changed(predicted) > 0
    assert not layout.script_dir.exists() and layout.installed() == [], 'check mode wrote something'

    first = run_role(workspace, variables)
    # directory + script, then the service and the timer, or the cron job.
    assert changed(first) == (4 if scheduler == 'systemd' else 3)
    assert changed(first) == changed(predicted)
    assert mode_and_owner(layout.script_dir) == (0o755, 'root', 0)
    assert mode_and_owner(layout.script) == (0o755, 'root', 0)
    script = layout.script.read_text()
    assert 'CODEX_HOME=%s\n' % layout.codex_home in script and UNSET_LINE in script
    assert "\nCODEX=/usr/local/bin/codex\n" in script and "\nTIMEOUT=30m\n" in script
    assert ("\nrun_codex exec --skip-git-repo-check --sandbox read-only --ephemeral -- "
            "'Reply with the single word OK.' </dev/null >\"$output_file\" 2>&1 || rc=$?\n") in script
    # weekly, for verify's keepalive_overdue
    assert '\nINTERVAL_SECONDS=604800\n' in script

    if scheduler == 'systemd':
        assert layout.installed() == [layout.script, layout.service, layout.timer]
        for unit in (layout.service, layout.timer):
            assert mode_and_owner(unit) == (0o644, 'root', 0)
        service, timer = unit_settings(layout.service), unit_settings(layout.timer)
        assert (service['Type'], service['User'], service['ExecStart']) == ('oneshot', layout.owner, str(layout.script))
        assert (timer['OnCalendar'], timer['RandomizedDelaySec'], timer['Persistent']) == ('weekly', '1h', 'true')
        assert timer['WantedBy'] == 'timers.target'
        analyze = shutil.which('systemd-analyze')
        if analyze:
            verified = subprocess.run([analyze, 'verify', '--man=no', str(layout.service), str(layout.timer)],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
            assert verified.returncode == 0, verified.stdout.decode()
            assert b'ignoring' not in verified.stdout, verified.stdout.decode()
    else:
        assert layout.installed() == [layout.script, layout.cron_file]
        assert mode_and_owner(layout.cron_file) == (0o644, 'root', 0)
        jobs = [line for line in layout.cron_file.read_text().splitlines() if line and not line.startswith('#')]
        assert jobs == ['@weekly %s %s' % (layout.owner, layout.script)]

    assert changed(run_role(workspace, variables)) == 0
    assert changed(run_role(workspace, variables, check=True)) == 0

    removal = layout.variables(scheduler=scheduler, state='absent')
    assert changed(run_role(workspace, removal, check=True)) == 1
    assert len(layout.installed()) > 1, 'check mode removed something'
    assert changed(run_role(workspace, removal)) == 1
    assert layout.installed() == []
    assert changed(run_role(workspace, removal)) == 0


@needs_offline_systemd
@pytest.mark.parametrize('setting', [('on_calendar', 'weakly'), ('randomized_delay', '1 x')])
def test_unit_setting_systemd_would_ignore_is_refused(workspace, setting):
    require(shutil.which('systemd-analyze'), 'needs systemd-analyze (package systemd)')
    """A calendar spec systemd cannot parse fails `verify`; a delay it cannot parse only makes it print
    "ignoring" and exit 0, so the role treats that as a failure too. Nothing broken is installed."""
    layout = Layout(workspace)
    output = run_role(workspace, layout.variables(scheduler='systemd', **dict([setting])), expect_failure=True)
    assert 'failed to validate' in output and 'Failed to parse' in output
    assert layout.service.exists() and not layout.timer.exists()


def test_script_expands_tilde_home_and_quotes_environment(workspace, fake_crontab):
    """`~user` stays unquoted so the shell expands it, everything after it is quoted, and environment
    values reach Codex byte for byte; shadowing variables are dropped."""
    layout = Layout(workspace)
    weird = "it's $HOME `id` \"quoted\" \\ ;"
    home = '~%s/dir with space/.codex' % layout.owner
    variables = layout.variables(scheduler='cron', home=home,
                                 environment={'HTTPS_PROXY': 'http://proxy.invalid:3128', 'CODEXOPS_WEIRD': weird})
    run_role(workspace, variables)
    # The name hashes codex_keepalive_home as given, tilde and all.
    script = (layout.script_dir / keepalive_name(layout.owner, home)).read_text()
    # Everything up to the unset line: the environment the run gets.
    prelude = script[:script.index(UNSET_LINE) + len(UNSET_LINE)]
    probe = prelude + '\nprintf "%s\\n%s\\n%s\\n%s" "$CODEX_HOME" "$HTTPS_PROXY" "$CODEXOPS_WEIRD" "${CODEX_ACCESS_TOKEN-unset}"\n'
    result = subprocess.run(['/bin/sh', '-c', probe], env={'PATH': '/usr/bin:/bin', 'CODEX_ACCESS_TOKEN': 'x'},
                            stdout=subprocess.PIPE, check=True)
    expected = [os.path.expanduser('~%s' % layout.owner) + '/dir with space/.codex', 'http://proxy.invalid:3128',
                weird, 'unset']
    assert result.stdout.decode().split('\n') == expected


def rfc3339(text):
    """Codex writes nanoseconds; datetime takes microseconds."""
    seconds, dummy, fraction = text.rstrip('Z').partition('.')
    return datetime.datetime.strptime('%s.%s' % (seconds, (fraction + '000000')[:6]), '%Y-%m-%dT%H:%M:%S.%f')


def seed_codex_home(layout, backend, workspace):
    """A runner's CODEX_HOME as codex_auth leaves it: 0700 dir, 0600 auth.json, file store, all the user's."""
    user = pwd.getpwnam(layout.owner)
    layout.codex_home.parent.chmod(0o755)
    layout.codex_home.mkdir(mode=0o700)
    doc, secrets = backend.login(access_ttl=datetime.timedelta(minutes=1))
    workspace.remember(secrets)
    # chatgpt_base_url: the loopback backend answers the ChatGPT backend too (cloud config bundle,
    # workspace routing, 401 for a dead access token), so Codex walks its real paths.
    for name, text in (('auth.json', json.dumps(doc, indent=2)),
                       ('config.toml', 'cli_auth_credentials_store = "file"\n%s\n' % backend.chatgpt_config())):
        write_private(layout.codex_home / name, text)
        os.chown(str(layout.codex_home / name), user.pw_uid, user.pw_gid)
    os.chown(str(layout.codex_home), user.pw_uid, user.pw_gid)
    return doc


def scheduled_command(layout, scheduler):
    """(user, argv) of what the installed service, or else the cron job, runs."""
    if scheduler == 'systemd':
        service = unit_settings(layout.service)
        return service['User'], shlex.split(service['ExecStart'])
    job = [line for line in layout.cron_file.read_text().splitlines() if line.startswith('@')]
    dummy, user, command = job[0].split(None, 2)
    return user, shlex.split(command)


def test_installed_unit_refreshes_real_codex_credentials(workspace, backend, request):
    """Run exactly what the service runs, as its User=, in cron's bare environment (plus variables that
    would shadow auth.json): Codex, whose access token expires within its 5-minute window, refreshes
    against the backend and rotates auth.json in place. The model call after that fails offline."""
    # Where systemd runs it must not get the scratch units: the cron job runs the same script.
    scheduler = 'cron' if SYSTEMD_RUNNING else 'systemd'
    if scheduler == 'cron':
        request.getfixturevalue('fake_crontab')
    layout = Layout(workspace)
    before = seed_codex_home(layout, backend, workspace)
    rotations = backend.count('/oauth/token', 'rotated')
    # Offline, Codex 0.171.0 retries the unreachable model for minutes after the refresh: the script's
    # timeout(1) stops it (the refresh is done by then; the run still counts as ok).
    run_role(workspace, layout.variables(
        scheduler=scheduler, codex_path=codex_binary(), timeout='%ds' % KEEPALIVE_TIMEOUT,
        environment={'CODEX_REFRESH_TOKEN_URL_OVERRIDE': backend.base_url + '/oauth/token'}))

    user, argv = scheduled_command(layout, scheduler)
    assert (user, argv) == (layout.owner, [str(layout.script)])
    command = ['/usr/sbin/runuser', '-u', user, '--'] + argv
    bare = {'PATH': '/usr/bin:/bin', 'LANG': 'C.UTF-8',
            'CODEX_ACCESS_TOKEN': 'not-a-token', 'OPENAI_API_KEY': 'sk-not-a-key'}
    started = time.monotonic()
    run = subprocess.run(command, env=bare, cwd=str(workspace.root), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=KEEPALIVE_TIMEOUT + 120,
                         check=False)
    elapsed = time.monotonic() - started
    output = run.stdout.decode('utf-8', 'replace')
    workspace.outputs.append(output)  # the leak check covers whatever Codex printed
    log_dir = OUTPUT / 'logs'
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / ('%s-codex-run.log' % workspace.name)).write_text(
        'exit %d after %.1f s\n%s\n--- backend\n%s\n' % (run.returncode, elapsed, output, '\n'.join(backend.log_lines())))

    auth = layout.codex_home / 'auth.json'
    after = json.loads(auth.read_text())
    workspace.remember([after['tokens'][key] for key in ('id_token', 'access_token', 'refresh_token')])
    assert backend.count('/oauth/token', 'rotated') == rotations + 1, output[-3000:]
    assert after['tokens']['refresh_token'] != before['tokens']['refresh_token']
    assert after['tokens']['refresh_token'] == backend.current_refresh_token(before['tokens']['refresh_token'])
    assert rfc3339(after['last_refresh']) > rfc3339(before['last_refresh'])
    assert after['auth_mode'] == 'chatgpt'
    assert mode_and_owner(auth)[:2] == (0o600, layout.owner)
    assert mode_and_owner(layout.codex_home)[:2] == (0o700, layout.owner)
    script = layout.script.read_text()
    assert not [secret for secret in workspace.secrets if secret in script]
    # The run did its job (refreshed; the model call after it failed offline): recorded, and exit 0.
    status = json.loads((layout.codex_home / 'codexops-keepalive.json').read_text())
    assert (status['result'], status['refreshed'], status['codex_version']) == ('ok', True, CODEX_VERSION), output[-3000:]
    assert run.returncode == 0 and status['exit_status'] != 0
    assert mode_and_owner(layout.codex_home / 'codexops-keepalive.json')[:2] == (0o600, layout.owner)
