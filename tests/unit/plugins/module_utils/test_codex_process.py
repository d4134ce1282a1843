# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Running the Codex CLI for a runner user: the allow-listed environment, masking, login status.

A fake `codex` shell script prints what it got (argv, working directory, ids, the whole
environment, stdin), so the tests see the real child, not a mock. Run as root; the runner user is
nobody (65534).
"""

import os
import shutil
import tempfile
import time

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import codex_process
from ansible_collections.codexops.runner.plugins.module_utils import privsep
from ansible_collections.codexops.runner.plugins.module_utils.codex_process import CodexProcessError

NOBODY = 65534
SECRET = 'sk-proj-FAKE-root-environment-secret-0123'
FAKE_CODEX = r'''#!/bin/sh
echo "ARGS:$*"
echo "CWD:$(pwd)"
echo "ID:$(id -u):$(id -g):$(id -G)"
env | sed 's/^/ENV:/'
sed 's/^/STDIN:/'
exit ${FAKE_EXIT:-0}
'''
# What the shell adds to the environment it was given.
SHELL_ADDED = {'PWD', 'OLDPWD', 'SHLVL', '_'}


@pytest.fixture
def shared_dir():
    """A directory nobody can traverse (pytest's tmp_path sits in a root-only directory)."""
    path = tempfile.mkdtemp(prefix='codexops-unit-', dir='/tmp')
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def make_codex(directory, text=FAKE_CODEX):
    path = os.path.join(directory, 'codex')
    with open(path, 'w') as handle:
        handle.write(text)
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def fake_codex(shared_dir):
    return make_codex(shared_dir)


def parse(output):
    seen = {'env': {}, 'stdin': [], 'other': []}
    for line in output.splitlines():
        kind, _sep, rest = line.partition(':')
        if kind == 'ENV':
            name, _eq, value = rest.partition('=')
            seen['env'][name] = value
        elif kind == 'STDIN':
            seen['stdin'].append(rest)
        elif kind in ('ARGS', 'CWD', 'ID'):
            seen[kind.lower()] = rest
        else:
            seen['other'].append(line)
    return seen


@pytest.fixture
def root_environment(monkeypatch):
    """What a play's `environment:` and root's login leave in the module's environment."""
    monkeypatch.setenv('PATH', '/usr/local/bin:/usr/bin:/bin')
    monkeypatch.setenv('LANG', 'C.UTF-8')
    monkeypatch.setenv('LC_ALL', 'C.UTF-8')
    monkeypatch.setenv('LC_TIME', 'C')
    monkeypatch.setenv('TMPDIR', '/tmp')
    monkeypatch.setenv('TZ', 'UTC')
    monkeypatch.setenv('HOME', '/root')
    monkeypatch.setenv('USER', 'root')
    monkeypatch.setenv('LOGNAME', 'root')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', SECRET)
    monkeypatch.setenv('HTTPS_PROXY', 'http://root:%s@proxy:3128' % SECRET)
    monkeypatch.setenv('OPENAI_API_KEY', SECRET)
    monkeypatch.setenv('CODEX_ACCESS_TOKEN', SECRET)
    monkeypatch.setenv('CODEX_HOME', '/root/.codex')
    monkeypatch.setenv('LD_PRELOAD', '/tmp/evil.so')
    monkeypatch.setenv('PYTHONPATH', '/tmp/evil')
    monkeypatch.setenv('ANSIBLE_MODULE_ARGS', '{"access_token": "%s"}' % SECRET)


def expected_environment(identity, home, extra=None):
    env = {name: value for name, value in os.environ.items()
           if name in ('PATH', 'LANG', 'TMPDIR', 'TZ') or name.startswith('LC_')}
    env.update(HOME=identity.home, USER=identity.name, LOGNAME=identity.name)
    env.update(extra or {})
    env['CODEX_HOME'] = home
    return env


# -- child_environment ----------------------------------------------------------------------------

def test_child_environment_is_the_allow_list(root_environment):
    nobody = privsep.Identity(NOBODY)
    extra = {'HTTPS_PROXY': 'http://proxy.internal:3128', 'NO_PROXY': 'localhost'}
    env = codex_process.child_environment('/srv/codex/runner-1', nobody, extra)
    assert env == expected_environment(nobody, '/srv/codex/runner-1', extra)
    assert env['HOME'] == '/nonexistent' and env['USER'] == env['LOGNAME'] == 'nobody'
    assert env['CODEX_HOME'] == '/srv/codex/runner-1'
    assert env['LC_ALL'] == 'C.UTF-8' and env['LC_TIME'] == 'C' and env['TZ'] == 'UTC'
    for name in ('AWS_SECRET_ACCESS_KEY', 'OPENAI_API_KEY', 'CODEX_ACCESS_TOKEN', 'LD_PRELOAD', 'PYTHONPATH',
                 'ANSIBLE_MODULE_ARGS'):
        assert name not in env
    assert all(SECRET not in value for value in env.values())


def test_child_environment_default_path(monkeypatch):
    monkeypatch.delenv('PATH', raising=False)
    env = codex_process.child_environment('/h', privsep.Identity(NOBODY))
    assert env['PATH'] == codex_process.DEFAULT_PATH
    # The operator may name a PATH for Codex explicitly.
    assert codex_process.child_environment('/h', privsep.Identity(NOBODY), {'PATH': '/opt/bin'})['PATH'] == '/opt/bin'


def test_child_environment_checks_the_extras():
    with pytest.raises(CodexProcessError):
        codex_process.child_environment('/h', privsep.Identity(NOBODY), {'OPENAI_API_KEY': SECRET})


# -- check_environment ----------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['CODEX_ACCESS_TOKEN', 'OPENAI_API_KEY', 'CODEX_API_KEY', 'CODEX_HOME'])
def test_check_environment_refuses_what_would_shadow_auth_json(name):
    with pytest.raises(CodexProcessError) as info:
        codex_process.check_environment({'HTTPS_PROXY': 'http://p:3128', name: SECRET})
    assert info.value.code == 'codex_failed'
    assert name in info.value.message
    assert SECRET not in info.value.message


@pytest.mark.parametrize('name', ['', '1ABC', 'A-B', 'A B', 'A=B', 'A\0B', 'ÄÖ', 5, None, b'PATH'])
def test_check_environment_refuses_bad_names(name):
    with pytest.raises(CodexProcessError) as info:
        codex_process.check_environment({name: 'x'})
    assert 'not a valid environment variable name' in info.value.message


@pytest.mark.parametrize('value', [5, None, True, b'bytes', ['x'], {'a': 'b'}, 'a\0b'])
def test_check_environment_refuses_non_string_values(value):
    with pytest.raises(CodexProcessError) as info:
        codex_process.check_environment({'HTTPS_PROXY': value})
    assert 'HTTPS_PROXY' in info.value.message and 'must be a string' in info.value.message


def test_check_environment_accepts_plain_strings():
    codex_process.check_environment(None)
    codex_process.check_environment({})
    codex_process.check_environment({'HTTPS_PROXY': 'http://user:pw@proxy:3128', '_X1': '', 'lower_case': 'ok'})


# -- run_codex: the real child --------------------------------------------------------------------

def test_run_codex_as_the_runner_gets_only_the_allow_list(fake_codex, root_environment):
    nobody = privsep.Identity(NOBODY)
    extra = {'HTTPS_PROXY': 'http://proxy.internal:3128'}
    rc, output = codex_process.run_codex(fake_codex, ['login', 'status'], '/srv/codex/r1', identity=nobody,
                                         extra_env=extra)
    assert rc == 0
    seen = parse(output)
    env = {name: value for name, value in seen['env'].items() if name not in SHELL_ADDED}
    assert env == expected_environment(nobody, '/srv/codex/r1', extra)
    assert SECRET not in output
    assert seen['args'] == 'login status'
    assert seen['cwd'] == '/'
    groups = ' '.join(str(gid) for gid in sorted(set(os.getgrouplist('nobody', NOBODY))))
    assert seen['id'] == '%d:%d:%s' % (NOBODY, NOBODY, groups)


def test_run_codex_gets_the_identitys_groups_and_no_others(fake_codex):
    member = privsep.Identity(NOBODY, gid=4242, groups=[4242, 4243])
    _rc, output = codex_process.run_codex(fake_codex, [], '/h', identity=member)
    uid, gid, groups = parse(output)['id'].split(':')
    assert (int(uid), int(gid)) == (NOBODY, 4242)
    assert sorted(int(group) for group in groups.split()) == [4242, 4243]


def test_run_codex_is_never_run_as_root(fake_codex, root_environment):
    """No runner-side program runs as root: the caller must name the runner."""
    for identity in (privsep.current(), privsep.Identity(0)):
        with pytest.raises(CodexProcessError) as info:
            codex_process.run_codex(fake_codex, ['--version'], '/root/.codex-managed', identity)
        assert info.value.code == 'runner_unknown'


def test_run_codex_is_started_by_the_dropped_child(fake_codex, root_environment):
    """Root forks a child that drops to the runner, and that child starts Codex: Codex's parent is a
    runner-uid process, never root, so root's only wait is on its own child."""
    codex = make_codex(os.path.dirname(fake_codex), FAKE_CODEX.replace('exit ${FAKE_EXIT:-0}',
                                                                       'echo "PPID:$PPID"\nexit 0'))
    rc, output = codex_process.run_codex(codex, ['--version'], '/h', privsep.Identity(NOBODY))
    assert rc == 0
    seen = parse(output)
    assert seen['id'].startswith('%d:' % NOBODY)
    parent = int([line for line in seen['other'] if line.startswith('PPID:')][0][5:])
    assert parent != os.getpid()
    env = {name: value for name, value in seen['env'].items() if name not in SHELL_ADDED}
    assert env == expected_environment(privsep.Identity(NOBODY), '/h')
    assert SECRET not in output


def test_run_codex_secret_goes_on_stdin_and_is_masked(fake_codex):
    token = 'at-FAKE-access-token-4567'
    rc, output = codex_process.run_codex(fake_codex, ['login', '--with-access-token'], '/h',
                                         identity=privsep.Identity(NOBODY), stdin=(token + '\n').encode(),
                                         secrets=[token])
    assert rc == 0
    seen = parse(output)
    assert seen['stdin'] == [codex_process.MASK]
    assert seen['args'] == 'login --with-access-token'
    assert token not in output


def test_run_codex_exit_status(shared_dir):
    codex = make_codex(shared_dir, '#!/bin/sh\necho "failed: bad token" >&2\nexit 3\n')
    assert codex_process.run_codex(codex, ['login'], '/h', identity=privsep.Identity(NOBODY)) == \
        (3, 'failed: bad token')


def test_run_codex_timeout(shared_dir):
    codex = make_codex(shared_dir, '#!/bin/sh\nexec sleep 30\n')
    started = time.monotonic()
    with pytest.raises(CodexProcessError) as info:
        codex_process.run_codex(codex, ['login', 'status'], '/h', identity=privsep.Identity(NOBODY), timeout=0.5)
    assert info.value.code == 'codex_timeout'
    assert 'login status' in info.value.message
    assert time.monotonic() - started < 10


def test_run_codex_missing_or_not_executable(tmp_path):
    with pytest.raises(CodexProcessError) as info:
        codex_process.run_codex('/nonexistent/no-codex', ['login'], '/h', privsep.Identity(NOBODY))
    assert info.value.code == 'codex_failed' and 'cannot run' in info.value.message
    # In a directory only root can enter: root could run it, the runner cannot.
    codex = make_codex(str(tmp_path))
    with pytest.raises(CodexProcessError) as info:
        codex_process.run_codex(codex, ['login'], '/h', identity=privsep.Identity(NOBODY))
    assert 'as nobody' in info.value.message and 'codex_path' in info.value.message
    with pytest.raises(CodexProcessError) as info:
        codex_process.run_codex('/usr/bin/co\0dex', ['login'], '/h', privsep.Identity(NOBODY))
    assert 'not a valid file name' in info.value.message


# -- login_status ---------------------------------------------------------------------------------

@pytest.mark.parametrize('exit_code, logged_in', [(0, True), (1, False), (2, False), (127, False)])
def test_login_status(shared_dir, exit_code, logged_in):
    codex = make_codex(shared_dir, '#!/bin/sh\necho "$*"\necho "API key configured - sk-proj-***ABCDE" >&2\n'
                                   'exit %d\n' % exit_code)
    status = codex_process.login_status(codex, '/h', identity=privsep.Identity(NOBODY))
    assert status == {'rc': exit_code, 'message': 'login status\nAPI key configured - sk-proj-***',
                      'logged_in': logged_in}


def test_login_status_masks_secrets_and_passes_extra_env(fake_codex):
    status = codex_process.login_status(fake_codex, '/h', identity=privsep.Identity(NOBODY),
                                        secrets=['/srv/proxy-secret'],
                                        extra_env={'FAKE_EXIT': '1', 'HTTPS_PROXY': '/srv/proxy-secret'})
    assert status['rc'] == 1 and status['logged_in'] is False
    assert 'ENV:HTTPS_PROXY=%s' % codex_process.MASK in status['message']
    assert '/srv/proxy-secret' not in status['message']


# -- mask -----------------------------------------------------------------------------------------

def test_mask_secrets():
    text = 'token at-SECRET here\nand at-SECRET again; rt-OTHER too\n'
    assert codex_process.mask(text, ['at-SECRET', '', None, 'rt-OTHER']) == \
        'token ******** here\nand ******** again; ******** too'


def test_mask_api_key_tails():
    text = 'API key configured - sk-proj-***ABCDE\nkey ***Xy_9-z end\nnot a tail: ** AB and *** alone\n'
    assert codex_process.mask(text, []) == \
        'API key configured - sk-proj-***\nkey *** end\nnot a tail: ** AB and *** alone'


def test_mask_drops_noise_and_blank_lines():
    text = ('WARNING: proceeding, even though we could not create PATH aliases: x\n\n   \n'
            'Logged in using ChatGPT\n')
    assert codex_process.mask(text, []) == 'Logged in using ChatGPT'
    assert codex_process.mask('', ['x']) == ''


# -- run_keepalive: the verify probe --------------------------------------------------------------

def keepalive_script(directory, body):
    """A stand-in keepalive script; its output is discarded, so it reports through a file."""
    path = os.path.join(directory, 'codex-keepalive-test')
    with open(path, 'w') as handle:
        handle.write('#!/bin/sh\n' + body)
    os.chmod(path, 0o755)
    return path


def test_run_keepalive_runs_as_the_runner_with_the_allow_list(shared_dir, root_environment):
    report = os.path.join(shared_dir, 'report')
    script = keepalive_script(shared_dir, 'exec >%s 2>&1\necho "CWD:$(pwd)"\necho "ID:$(id -u)"\n'
                                          'env | sed "s/^/ENV:/"\nsed "s/^/STDIN:/"\necho "ARGS:$*"\n'
                                          'exit 3\n' % report)
    os.chmod(shared_dir, 0o777)  # the runner writes its report here
    nobody = privsep.Identity(NOBODY)
    rc, timed_out = codex_process.run_keepalive(script, '/srv/codex/r1', identity=nobody, timeout=42,
                                                extra_env={'HTTPS_PROXY': 'http://proxy.internal:3128'})
    assert (rc, timed_out) == (3, False)
    with open(report) as handle:
        seen = parse(handle.read())
    env = {name: value for name, value in seen['env'].items() if name not in SHELL_ADDED}
    assert env == dict(expected_environment(nobody, '/srv/codex/r1', {'HTTPS_PROXY': 'http://proxy.internal:3128'}),
                       CODEXOPS_KEEPALIVE_TIMEOUT='42')
    assert seen['cwd'] == '/' and seen['id'] == str(NOBODY) and seen['args'] == '' and seen['stdin'] == []


def test_run_keepalive_output_never_reaches_the_module(shared_dir, capfd):
    script = keepalive_script(shared_dir, 'echo "%s"\necho "%s" >&2\n' % (SECRET, SECRET))
    assert codex_process.run_keepalive(script, '/h', privsep.Identity(NOBODY), timeout=5) == (0, False)
    out, err = capfd.readouterr()
    assert SECRET not in out and SECRET not in err


def test_run_keepalive_stops_a_script_past_its_deadline(shared_dir, monkeypatch):
    """The script's own timeout(1) should have stopped Codex; if the script still runs after the grace
    period, its whole process group is stopped (TERM, then KILL for what ignores TERM)."""
    monkeypatch.setattr(codex_process, 'KEEPALIVE_GRACE_SECONDS', 0)
    os.chmod(shared_dir, 0o777)  # the runner writes its pid file here
    pid_file = os.path.join(shared_dir, 'pid')
    script = keepalive_script(shared_dir, 'sleep 300 &\necho $! > %s\nwait\n' % pid_file)
    started = time.monotonic()
    rc, timed_out = codex_process.run_keepalive(script, '/h', privsep.Identity(NOBODY), timeout=1)
    assert timed_out is True and rc != 0 and time.monotonic() - started < 8
    with open(pid_file) as handle:
        child = int(handle.read())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail('the script left its child running')
    stubborn = keepalive_script(shared_dir, "trap '' TERM\nsleep 300\n")
    started = time.monotonic()
    assert codex_process.run_keepalive(stubborn, '/h', privsep.Identity(NOBODY), timeout=1)[1] is True
    assert time.monotonic() - started < 20


@pytest.mark.parametrize('command', ['/nonexistent/codex-keepalive', '/etc/hostname', 'bad\0name'])
def test_run_keepalive_that_cannot_run(command):
    with pytest.raises(CodexProcessError) as info:
        codex_process.run_keepalive(command, '/h', privsep.Identity(NOBODY), timeout=5)
    assert info.value.code == 'keepalive_probe_failed'
