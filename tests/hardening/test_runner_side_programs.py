"""The runner user against the programs our modules start for it (issue 18): Codex and the keepalive.

Each class of attack is played for real by a process running as the runner user, against module
processes running as root, in the attack suite's world (attack_support.World): decoys owned by root
outside the runner's home must keep bytes, owner and mode, and nothing may appear outside the home.

1. The home re-created between the walk and Codex's start: CODEX_HOME in a sticky world-writable
   directory (a /tmp of the world's own), verify with login_status and no owner; the runner deletes
   its home and makes it again in a loop, with Codex's `tmp/arg0-linux` and its credential files as
   symlinks into a directory root owns. Codex must never run as root (a wrapper records its uid).
2. A ptrace-seized runner-side program: the runner PTRACE_SEIZEs Codex (or the probe) and never
   lets it be reaped. The module must end within its bound with a code (`codex_unreaped`), for
   every module that starts one: verify login_status, verify probe, access-token login and its smoke
   test. The four run side by side, so the test takes the longest bound, not their sum.
3. The descriptor window: with fs.suid_dumpable=1 (set and restored), the runner stops every new
   process of its uid and reads its descriptors through /proc while root's module, holding a
   descriptor on a root-only decoy, has Codex started. It must never read the decoy.
4. A CODEX_HOME planted by a second local user where the runner's is missing: export and verify
   for that runner read nothing of it.

Counts and bounds go to tests/output/hardening-figures.json. CODEXOPS_RECREATE_ITERATIONS (default
200) sets the length of the re-creation loop.
"""

import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

# machine_as_found is an autouse fixture: imported, never called.
from attack_support import machine_as_found  # noqa: F401 pylint: disable=unused-import
from attack_support import (RUNNER, ModuleRun, Recreator, Sysctl, other_runner, outcome, problem_codes,
                            require_root, runner_ids)
from hardening_support import TRACEBACK, codex_binary, module_env, report_figures, run_module_forked
# After hardening_support, which puts the collection on sys.path.
from ansible_collections.codexops.runner.plugins.module_utils import access_login
from support import fake_credentials
from support.private_files import write_private

ITERATIONS = int(os.environ.get('CODEXOPS_RECREATE_ITERATIONS', '200'))
# What a module may take beyond the deadline of the program it started: _runner_process's grace
# (SIGTERM, then SIGKILL, then the reap) and Python's start-up.
SLACK = 15.0


def shared_dir(world):
    """A /tmp of the world's own: root's, 1777."""
    path = world.root / 'shared'
    path.mkdir()
    os.chmod(str(path), 0o1777)
    return path


def uid_recording(world, real, name='codex-recorded'):
    """A wrapper that appends the uid it runs as to a file, then execs `real` (Codex or a stand-in)."""
    record = world.root / ('%s.uids' % name)
    write_private(record, b'', 0o666)
    os.chmod(str(record), 0o666)
    wrapper = world.root / 'bin' / name
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text('#!/bin/sh\nid -u >> %s\nexec %s "$@"\n' % (record, real))
    os.chmod(str(wrapper), 0o755)
    return str(wrapper), record


def uids_of(record):
    return [int(line) for line in record.read_text().split()]


def root_owned_under(path):
    found = []
    for dirpath, dirnames, filenames in os.walk(str(path)):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            try:
                if os.lstat(full).st_uid == 0:
                    found.append(full)
            except FileNotFoundError:
                continue
    return found


# -- 1. the home re-created between the walk and Codex's start -------------------------------------

def test_home_recreated_between_walk_and_codex_never_gets_codex_as_root(world, seed_worker):
    """verify login_status: true, no owner, CODEX_HOME in a sticky /tmp; the runner re-creates its
    home in a loop with tmp/arg0-linux -> a root directory. The real Codex runs as the runner or not
    at all (runner_unknown when the home is missing at that moment); the root directory is untouched."""
    codex, record = uid_recording(world, codex_binary())
    shared = shared_dir(world)
    home = shared / 'ci-codex'
    guard = world.guard()
    recreator = Recreator(home, world.open)
    outcomes, codes, slowest = {}, {}, 0.0
    try:
        time.sleep(0.2)
        for _n in range(ITERATIONS):
            args = {'codex_home': str(home), 'login_status': True, 'codex_path': codex}
            started = time.monotonic()
            _rc, result, out, err = run_module_forked(seed_worker, 'codex_auth_verify', args, timeout=120)
            slowest = max(slowest, time.monotonic() - started)
            assert not TRACEBACK.search(out + err), err[-3000:]
            key = outcome(result)
            outcomes[key] = outcomes.get(key, 0) + 1
            for code in problem_codes(result):
                codes[code] = codes.get(code, 0) + 1
    finally:
        counts = recreator.stop()
    uids = uids_of(record)
    figures = {'iterations': ITERATIONS, 'recreated': counts, 'outcomes': outcomes, 'problem_codes': codes,
               'codex_runs_by_uid': {str(uid): uids.count(uid) for uid in sorted(set(uids))},
               'slowest_seconds': round(slowest, 2)}
    report_figures('home_recreated_before_codex', figures)
    assert counts and counts['recreated'] > ITERATIONS / 10, 'the runner did not race: %s' % counts
    assert 0 not in uids, 'Codex ran as root %d times' % uids.count(0)
    assert uids, 'Codex never ran: the race proved nothing (%s)' % figures
    assert codes.get('runner_unknown', 0) + codes.get('codex_home_missing', 0) > 0, figures
    assert root_owned_under(shared) == []
    # The runner's own re-created home holds nothing of root's; everything else is as it was.
    guard.check(allow=[shared, record])


# -- 2. a ptrace-seized program ----------------------------------------------------------------------

SLOW_CODEX = r'''#!/bin/sh
# A stand-in that lives long enough to be seized, then answers like Codex.
sleep 1
case "$1 $2" in
"login --with-access-token")
    token=$(cat)
    umask 077
    printf '{"OPENAI_API_KEY": null, "personal_access_token": "%s"}' "$token" > "$CODEX_HOME/auth.json";;
"login status") echo "Logged in using personal access token" >&2;;
esac
exit 0
'''


@pytest.fixture
def ptrace_allowed():
    """Classic ptrace rules (same uid, dumpable): Yama's ptrace_scope, where the kernel has it, set to 0
    for the test and restored."""
    path = '/proc/sys/kernel/yama/ptrace_scope'
    if not os.path.exists(path):
        yield None
        return
    with Sysctl('kernel.yama.ptrace_scope', 0) as setting:
        yield setting


def _slow_program(world, name):
    path = world.root / 'bin' / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(SLOW_CODEX)
    os.chmod(str(path), 0o755)
    return str(path)


SEIZED_CASES = {
    # case: (module, args builder (world, program, home, token), the auth.json the home starts with
    #        (True: a ChatGPT one, None: none, 'token': the stored access token), the bound the module documents
    #        for its program, in seconds)
    'verify_login_status': ('codex_auth_verify',
                            lambda w, prog, home, _t: w.verify_args(home=home, login_status=True, codex_path=prog),
                            True, 60),
    'verify_probe': ('codex_auth_verify',
                     lambda w, prog, home, _t: w.verify_args(home=home, probe=True, probe_command=prog,
                                                             probe_timeout=5),
                     True, 5 + 30),
    'access_token_login': ('codex_access_token_login', lambda w, prog, home, _t: w.login_args(home=home, codex=prog),
                           None, 120),
    # The token is already stored: the smoke test's `codex login status` is the program seized.
    'access_token_smoke_test': ('codex_access_token_login',
                                lambda w, prog, home, token: w.login_args(home=home, codex=prog, token=token,
                                                                          force=False, smoke_test=True),
                                'token', 60),
}


def test_seized_program_does_not_hold_the_run(world, ptrace_allowed):
    """The runner seizes the program a module started for it (it owns it once it exec'd) and never
    lets it go: root waits only on its own child, which gives up on the program and reports it.
    The four cases run side by side, each in its own CODEX_HOME with its own program (the attacker holds
    every program it seized): the run takes the longest bound, not their sum."""
    # A runner already logged in with this token, in the file Codex writes for it (the module's own rule of what
    # that file is): the smoke test's `codex login status` is then the one program the module starts.
    token = fake_credentials.personal_access_token(tag='stored')
    stored = access_login.expected_file(token)
    prepared = {}
    for case in sorted(SEIZED_CASES):
        module, build, auth, _bound = SEIZED_CASES[case]
        home = world.home / ('codex-%s' % case.replace('_', '-'))
        world.make_codex_home(path=home, auth=stored if auth == 'token' else auth)
        program = _slow_program(world, 'codex-seized-%s' % case.replace('_', '-'))
        prepared[case] = (module, build(world, program, str(home), token), os.path.basename(program))
    attacker = world.start_attacker()
    guard = world.guard()
    runs = {}
    try:
        for case in sorted(prepared):
            module, args, marker = prepared[case]
            runs[case] = ModuleRun(module, args)
            seized = attacker.call('seize_next', marker=marker, within=20)
            assert seized, 'the %s program never appeared as %s' % (case, RUNNER)
        # Each run is waited for in its own thread, so each one's time is taken when it ends.
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(runs)) as pool:
            waits = [pool.submit(runs[case].wait, SEIZED_CASES[case][3] + SLACK + 30) for case in sorted(runs)]
            for waited in waits:
                waited.result()
    finally:
        for run in runs.values():
            if run.rc is None:
                run.kill()
    for case in sorted(SEIZED_CASES):
        run, bound = runs[case], SEIZED_CASES[case][3]
        result = run.result
        report_figures('seized_%s' % case, {'seconds': round(run.elapsed, 1), 'bound': bound,
                                            'outcome': outcome(result), 'codes': problem_codes(result),
                                            'probe': (result or {}).get('keepalive_probe')})
        assert result is not None, '%s: %s' % (case, run.err[-2000:])
        assert run.elapsed < bound + SLACK, '%s: the run took %.1fs, its bound is %ss' % (case, run.elapsed, bound)
        said = '%s %s %s' % (result.get('error_code'), (result.get('codex_login_status') or {}).get('message'),
                             (result.get('keepalive_probe') or {}).get('timed_out'))
        if case == 'verify_probe':
            assert result['keepalive_probe']['ran'] and result['keepalive_probe']['timed_out'] is True, result
        elif case == 'verify_login_status':
            assert 'could not be reaped' in said and 'codex_status_failed' in problem_codes(result), result
        else:
            assert result.get('failed') and result.get('error_code') == 'codex_unreaped', (case, said)
            if case == 'access_token_smoke_test':
                assert 'login status' in result.get('msg', ''), result.get('msg')
        assert token not in (run.out or '') + (run.err or ''), '%s: the stored access token was printed' % case
    guard.check([run.out for run in runs.values()] + [run.err for run in runs.values()])


# -- 3. root's descriptors while it has Codex started ---------------------------------------------

PARENT_RECORDER = '''#!/bin/sh
p=$PPID
{
echo "parent_uid=$(awk '/^Uid:/ {print $2}' /proc/$p/status)"
if cat /proc/$p/environ >/dev/null 2>&1; then echo environ=read; else echo environ=denied; fi
if ls /proc/$p/fd >/dev/null 2>&1; then echo fds=read; else echo fds=denied; fi
} >> %s
echo "Logged in using ChatGPT" >&2
exit 0
'''

LAUNCHER = r'''
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.set_inheritable(fd, True)  # as any descriptor root's module may hold when it starts Codex
os.execv(sys.executable, [sys.executable, '-m', 'ansible_collections.codexops.runner.plugins.modules.' + sys.argv[2],
                          sys.argv[3]])
'''


def test_root_descriptors_never_reach_the_runner_with_suid_dumpable_1(world):
    """The module holds a descriptor on a root-only decoy (0600, in a 0700 directory) while it has
    Codex (a stand-in) started as the runner. The runner stops each new process of its uid and reads
    every descriptor it can through /proc. With fs.suid_dumpable=1, a process whose uid just changed
    stays dumpable until exec: root's descriptors must be closed, or the process not the runner's,
    before anything of the runner's can look. Counts: processes stopped, descriptors tried.
    CODEX_HOME is missing (a runner never provisioned): the case where root used to start Codex itself."""
    home = world.root / 'never-provisioned' / '.codex'
    decoy = world.rootonly / 'auth.json'
    codex = world.root / 'bin' / 'codex-fd'
    codex.parent.mkdir(exist_ok=True)
    # The stand-in, as the runner, looks at the process that started it: root's module (the old way,
    # its descriptors one race away) or the module's dropped, non-dumpable child.
    parents = world.root / 'codex-fd.parents'
    write_private(parents, b'', 0o666)
    os.chmod(str(parents), 0o666)
    codex.write_text(PARENT_RECORDER % parents)
    os.chmod(str(codex), 0o755)
    runs = max(20, ITERATIONS // 4)
    attacker = world.start_attacker()
    with Sysctl('fs.suid_dumpable', 1):
        seconds = 0.0
        stolen = {'found': {}, 'fds_tried': 0, 'processes_stopped': 0}
        for _n in range(runs):
            fd, args_file = tempfile.mkstemp(prefix='codexops-attack-args-', suffix='.json')
            with os.fdopen(fd, 'w') as handle:
                json.dump({'ANSIBLE_MODULE_ARGS': {'codex_home': str(home), 'owner': RUNNER, 'login_status': True,
                                                   'codex_path': str(codex)}}, handle)
            attacker.send('steal_fds', needles=world.decoy_markers, seconds=1.5)
            started = time.monotonic()
            try:
                subprocess.run([sys.executable, '-c', LAUNCHER, str(decoy), 'codex_auth_verify', args_file],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=module_env(), cwd='/', timeout=120,
                               check=False)
            finally:
                os.unlink(args_file)
            seconds += time.monotonic() - started
            reply = attacker.receive(timeout=30)
            assert reply['ok'], reply
            for needle, count in reply['value']['found'].items():
                stolen['found'][needle] = stolen['found'].get(needle, 0) + count
            stolen['fds_tried'] += reply['value']['fds_tried']
            stolen['processes_stopped'] += reply['value']['processes_stopped']
    seen = parents.read_text().split()
    report_figures('descriptor_window_counts', dict(stolen, runs=runs, module_seconds=round(seconds, 1),
                                                    parents={item: seen.count(item) for item in set(seen)}))
    assert stolen['processes_stopped'] > 0, 'the attacker never saw a process of its uid: %s' % stolen
    assert stolen['found'] == {}, 'the runner read root\'s decoy through /proc: %s' % stolen
    # Structurally, not only by luck of timing: Codex was started by a process of the runner's uid that
    # the runner can neither read nor ptrace (not root's module, whose descriptors it would inherit).
    assert len(seen) == runs * 3, seen
    assert seen.count('parent_uid=%d' % runner_ids()[0]) == runs, seen
    assert seen.count('environ=denied') == runs and seen.count('fds=denied') == runs, seen


# -- 4. a CODEX_HOME planted by another local user ---------------------------------------------------

@pytest.mark.parametrize('module', ['codex_auth_export', 'codex_auth_verify'])
def test_home_planted_by_another_user_is_not_read_for_the_runner(world, module):
    """The runner's CODEX_HOME in a sticky /tmp is missing; a second local user makes one there with a
    valid auth.json of its own. Export (write-back reads through it) and verify, for the runner, read
    nothing of it: another account's credentials must never reach the runner's store."""
    shared = shared_dir(world)
    other = other_runner()
    home = shared / 'ci-codex'
    home.mkdir(mode=0o700)
    planted, secrets = fake_credentials.chatgpt_seed(tag='PLANTED', account_id='acct-PLANTED')
    write_private(home / 'auth.json', fake_credentials.dumps(planted).encode())
    for path in (home, home / 'auth.json'):
        os.chown(str(path), other.pw_uid, other.pw_gid)
    args = {'codex_home': str(home), 'owner': RUNNER}
    if module == 'codex_auth_export':
        args['return_content'] = True
    run = ModuleRun(module, args).wait(30)
    result = run.result
    text = run.out + run.err
    assert not any(secret in text for secret in secrets) and 'acct-PLANTED' not in text
    if module == 'codex_auth_export':
        assert result.get('failed') and result.get('error_code') == 'codex_home_owner', result
        assert 'content' not in result
    else:
        assert 'codex_home_owner' in problem_codes(result) and result['auth_mode'] is None, result
    report_figures('planted_home_%s' % module, {'outcome': outcome(result), 'codes': problem_codes(result)})


def test_runner_ids_are_not_root():
    require_root()
    assert runner_ids()[0] != 0
