"""The runner user is hostile (issue 11): an attack suite that plays it for real.

Every CI job runs arbitrary code as the runner user, and our modules run as root inside its home.
Here the attacker is a real process running as that user (`nobody`, through setpriv), acting
while real module processes run as root: it holds Codex's lock so a module parks after its
checks and swaps ~/.codex for a symlink meanwhile; it hard-links root's files into CODEX_HOME with
fs.protected_hardlinks=0; it links path components, environment files and seed files to root-only
files; it puts FIFOs, /dev/zero and huge files where auth.json and config.toml belong; it swaps
~/.codex in a tight rename loop while modules run hundreds of times; it tries to read the
environment and memory of the child a module drops to its uid, and root's secrets are placed in
the module's environment to see whether a Codex child gets them.

The world (attack_support.World): a root-owned 0755 temp dir with the runner's home (owned by
the runner) and CODEX_HOME = <home>/.codex; decoys owned by root outside it: a root-only
directory (0700) with auth.json, config.toml, auth.lock, auth.json.lock and an environment file
(0600, known bytes), the same files in a directory the runner can traverse (to hard-link them),
and another runner's root-owned CODEX_HOME. Every test asserts that every decoy keeps bytes,
owner, mode and inode, that nothing appears or vanishes outside the runner's home, that nothing
root-owned appears inside it, and that no module output holds a decoy's bytes.

The modules under attack: codex_auth_seed, codex_config, codex_access_token_login (with a fake
`codex` script as codex_path), codex_auth_verify and codex_auth_export. Five of the cases found real
bugs of the first privilege-separation design (a root directory moved to ~/.codex read by verify, a
dumpable child under fs.suid_dumpable=1, a SIGSTOPped child stalling the run, a world-writable root
CODEX_HOME handed over, a directory made between the walk and mkdir adopted); they stay as
regression tests. The forged-result / fleet-filter part of the threat model is covered elsewhere.

Figures (outcome counts, timings) go to tests/output/hardening-figures.json (report_figures).
Under CI (CI=true) a missing tool (setpriv, sysctl) or privilege fails the test.
CODEXOPS_ATTACK_ITERATIONS (default 500) sets the length of the swap-loop races.
"""

import base64
import os
import signal
import stat
import time

import pytest

from attack_support import machine_as_found  # noqa: F401 pylint: disable=unused-import (an autouse fixture)
from attack_support import (LOCKS, RUNNER, STORE, ModuleRun, Swapper, Sysctl, World, b64, descendants, is_denied,
                            mode_of, other_runner, outcome, problem_codes, require_root, require_tool, run_module,
                            runner_ids, uid_of)
from hardening_support import SeedWorker, TRACEBACK, module_env, report_figures, run_module_forked
from support.private_files import write_private

ITERATIONS = int(os.environ.get('CODEXOPS_ATTACK_ITERATIONS', '500'))
BOUND = 10.0  # seconds: no module may take longer, whatever the runner put in CODEX_HOME
MODULE = {'seed': 'codex_auth_seed', 'config': 'codex_config', 'login': 'codex_access_token_login',
          'verify': 'codex_auth_verify', 'export': 'codex_auth_export'}


@pytest.fixture
def world():
    space = World()
    try:
        yield space
    finally:
        space.close()


@pytest.fixture(scope='module')
def forker():
    """A pre-imported interpreter that forks one module run per call (tens of ms instead of a
    Python start-up): for the cases that run modules many times."""
    worker = SeedWorker()
    yield worker
    worker.close()


@pytest.fixture
def hardlinks_allowed():
    """fs.protected_hardlinks=0: the runner may hard-link files it does not own (the protection a
    hardened host has, switched off, as on many older or container hosts). Always restored."""
    with Sysctl('fs.protected_hardlinks', 0) as setting:
        yield setting


def fast(worker, module, args, timeout=30):
    """(result, stdout+stderr, seconds) of one forked module run."""
    started = time.monotonic()
    _rc, result, out, err = run_module_forked(worker, module, args, timeout=timeout)
    elapsed = time.monotonic() - started
    assert not TRACEBACK.search(out + err), '%s crashed:\n%s' % (module, err[-3000:])
    assert result is not None, '%s gave no JSON result:\n%s\n%s' % (module, out[-2000:], err[-2000:])
    return result, out + err, elapsed


def every_module(space, home=None, codex=None):
    """(label, module, args) for one run of each module against `home`."""
    home = home or space.codex_home
    return [
        ('verify', 'codex_auth_verify', space.verify_args(home=home)),
        ('seed_always_backup', 'codex_auth_seed', space.seed_args(n=1, home=home, backup=True)),
        ('seed_never_backup', 'codex_auth_seed', space.seed_args(n=1, home=home, replace='never', backup=True)),
        ('config', 'codex_config', space.config_args(home=home)),
        ('login', 'codex_access_token_login', space.login_args(home=home, codex=codex)),
        ('export', 'codex_auth_export', space.export_args(home=home)),
    ]


# -- 1. a held lock parks the module after its checks; the attacker swaps ~/.codex meanwhile --------

PARKED = [
    ('seed_always', 'auth.lock', 'rootonly'),
    ('seed_always', 'auth.json.lock', 'victim'),
    ('seed_never', 'auth.lock', 'victim'),
    ('seed_never', 'auth.json.lock', 'rootonly'),
    ('login', 'auth.lock', 'rootonly'),
    ('login', 'auth.json.lock', 'victim'),
    # codex_config takes no Codex lock (Codex never writes config.toml): the attacker parks it
    # by SIGSTOPping the child that dropped to its uid, which it is allowed to signal.
    ('config', 'sigstop', 'rootonly'),
    ('config', 'sigstop', 'victim'),
    # codex_auth_export (write-back reads auth.json through it) never blocks: stopped the same way.
    ('export', 'sigstop', 'victim'),
]


def _park_args(space, case):
    if case == 'seed_always':
        return 'codex_auth_seed', space.seed_args(n=1, backup=True)
    if case == 'seed_never':
        return 'codex_auth_seed', space.seed_args(n=1, replace='never', backup=True)
    if case == 'login':
        return 'codex_access_token_login', space.login_args()
    if case == 'export':
        return 'codex_auth_export', space.export_args()
    return 'codex_config', space.config_args(value='after-the-swap')


@pytest.mark.parametrize('case,park,target', PARKED, ids=['%s-%s-%s' % case for case in PARKED])
def test_parked_module_then_codex_home_swapped(world, case, park, target):
    """The module passed its checks and waits (for the lock the runner holds, or stopped by the
    runner); ~/.codex is renamed away and replaced with a symlink to a decoy directory; then the
    runner lets it go. Root's work must land in the real (moved) CODEX_HOME or nowhere."""
    # A big config.toml keeps codex_config's runner child busy long enough to be caught.
    config = STORE + (b'# padding the runner left here\n' * 20000 if park == 'sigstop' else b'')
    home = world.make_codex_home(config=config)
    if case == 'seed_never':
        os.chmod(str(home / 'auth.json'), 0o644)  # a repair the module wants to make
    attacker = world.start_attacker()
    guard = world.guard()
    moved = world.home / '.codex-moved'
    decoy = world.rootonly if target == 'rootonly' else world.victim
    module, args = _park_args(world, case)
    started = time.monotonic()
    run = None
    try:
        if park == 'sigstop':
            attacker.send('stop_next', marker=module, timeout=20)
            run = ModuleRun(module, args)
            stopped = attacker.receive(timeout=30)['value']
            assert stopped, ('no process of %s ran for %s: the module never dropped to the runner user'
                             % (RUNNER, module))
            parked = [stopped]
        else:
            attacker.call('flock', path=str(home / park))
            run = ModuleRun(module, args)
            parked = run.wait_parked(str(home / park))
            assert parked, '%s never waited for %s (finished: rc %s)' % (module, park, run.proc.poll())
        attacker.call('rename', src=str(home), dst=str(moved))
        attacker.call('symlink', src=str(decoy), dst=str(home))
        if park == 'sigstop':
            attacker.call('kill', pid=parked[0], sig=signal.SIGCONT)
        else:
            attacker.call('unlock', path=str(home / park))
        run.wait(60)
    finally:
        if run is not None and run.rc is None:
            run.kill()
    elapsed = time.monotonic() - started
    guard.check([run.out, run.err])
    result = run.result
    what = outcome(result)
    report_figures('parked_swap_%s_%s_%s' % (case, park, target), {'outcome': what, 'seconds': round(elapsed, 2),
                                                                   'parked_pids': len(parked)})
    assert what == 'ok', 'the module failed after the swap: %s' % result
    # It worked on the directory it had opened, now at the moved name.
    if case == 'seed_always':
        assert (moved / 'auth.json').read_bytes() == world.seed_bytes(1)
        assert result['backup_file'] and result['auth']['account_id'] == 'acct-runner-1'
        backups = [name for name in os.listdir(str(moved)) if name.startswith('auth.json.') and name.endswith('.bak')]
        assert len(backups) == 1, backups
    elif case == 'seed_never':
        assert (moved / 'auth.json').read_bytes() == world.seed_bytes(0)
        assert mode_of(moved / 'auth.json') == (0o600, world.uid)
    elif case == 'login':
        assert b'personal_access_token' in (moved / 'auth.json').read_bytes()
    elif case == 'export':
        # What it exported is the file of the directory it opened, never the decoy it was pointed at.
        assert base64.b64decode(result['content']) == world.seed_bytes(0)
    else:
        assert b'after-the-swap' in (moved / 'config.toml').read_bytes()
    for path in moved.iterdir():
        assert mode_of(path)[1] == world.uid, '%s is not the runner\'s' % path


@pytest.mark.parametrize('module', ['seed', 'login'])
@pytest.mark.parametrize('lock', LOCKS)
def test_lock_held_past_lock_timeout(world, module, lock):
    """A runner that never lets go of Codex's lock delays the module by lock_timeout, no more, and
    the failure says so (error_code lock_timeout)."""
    home = world.make_codex_home()
    attacker = world.start_attacker()
    attacker.call('flock', path=str(home / lock))
    guard = world.guard()
    if module == 'seed':
        args = world.seed_args(n=1, lock_timeout=1.5)
    else:
        args = world.login_args(lock_timeout=1.5)
    run = run_module(MODULE[module], args, timeout=30)
    guard.check([run.out, run.err])
    report_figures('lock_timeout_%s_%s' % (module, lock), {'outcome': outcome(run.result),
                                                           'seconds': round(run.elapsed, 2)})
    assert run.result and run.result.get('failed'), run.result
    assert run.result.get('error_code') == 'lock_timeout', run.result
    assert 'lock_timeout' in run.result['msg'] and lock in run.result['msg'], run.result['msg']
    assert run.elapsed < 1.5 + 5, 'took %.1fs with lock_timeout 1.5' % run.elapsed
    if module == 'seed':
        assert (home / 'auth.json').read_bytes() == world.seed_bytes(0), 'written without the lock'


# -- 2. hard links to root's files, with fs.protected_hardlinks=0 --------------------------------------

HARDLINKED = {
    'auth.json': ['auth.json'],
    'config.toml': ['config.toml'],
    'auth.lock': ['auth.lock'],
    'auth.json.lock': ['auth.json.lock'],
    'all': ['auth.json', 'config.toml', 'auth.lock', 'auth.json.lock'],
}


@pytest.mark.parametrize('linked', sorted(HARDLINKED))
def test_hardlinked_root_files(world, forker, hardlinks_allowed, linked):
    """The runner hard-links root-only files (0600, root) into its CODEX_HOME. No module may read
    them into a result, change them, or chown them; the refusals name the hard link."""
    home = world.make_codex_home()
    attacker = world.start_attacker()
    for name in HARDLINKED[linked]:
        os.unlink(str(home / name))
        attacker.call('link', src=str(world.open / name), dst=str(home / name))
        assert os.stat(str(home / name)).st_nlink == 2
    guard = world.guard()
    outcomes = {}
    for label, module, args in every_module(world):
        result, text, _seconds = fast(forker, module, args)
        guard.check([text])
        outcomes[label] = outcome(result) if module != 'codex_auth_verify' else sorted(set(problem_codes(result)))
        if 'auth.json' in HARDLINKED[linked]:
            if module == 'codex_auth_verify':
                assert set(problem_codes(result)) & {'auth_hardlink', 'auth_unreadable', 'auth_owner'}, result
            elif module in ('codex_auth_seed', 'codex_auth_export'):
                assert result.get('failed') and 'hard link' in result['msg'], result
        if set(HARDLINKED[linked]) & set(LOCKS) and module == 'codex_auth_verify':
            assert 'lock_unusable' in problem_codes(result), result
        if 'config.toml' in HARDLINKED[linked] and module == 'codex_config':
            assert result.get('failed') and 'hard link' in result['msg'], result
    for name in HARDLINKED[linked]:
        st = os.stat(str(world.open / name))
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
        assert (world.open / name).read_bytes() == world.decoy_files[name]
    report_figures('hardlinked_%s' % linked, outcomes)


# -- 3. a symlinked component on the way to CODEX_HOME -----------------------------------------------

@pytest.mark.parametrize('target', ['rootonly', 'victim'])
def test_symlinked_intermediate_component(world, forker, target):
    """<home>/.config -> a root directory, codex_home = <home>/.config/<name>: every module refuses
    (codex_home_path_symlink) and creates nothing, neither in the root directory nor in the home."""
    attacker = world.start_attacker()
    if target == 'rootonly':
        attacker.call('symlink', src=str(world.rootonly), dst=str(world.home / '.config'))
        home = world.home / '.config' / 'codex'  # missing: root would create it in the root-only dir
    else:
        attacker.call('symlink', src=str(world.victim.parent), dst=str(world.home / '.config'))
        home = world.home / '.config' / '.codex'  # the victim's CODEX_HOME
    guard = world.guard()
    outcomes = {}
    for label, module, args in every_module(world, home=home):
        result, text, _seconds = fast(forker, module, args)
        guard.check([text])
        if module == 'codex_auth_verify':
            codes = problem_codes(result)
            assert 'codex_home_path_symlink' in codes, result
            outcomes[label] = codes
        else:
            outcomes[label] = outcome(result)
            assert outcome(result) == 'refused:codex_home_path_symlink', result
    assert sorted(os.listdir(str(world.home))) == ['.config']
    report_figures('path_symlink_%s' % target, outcomes)


@pytest.mark.parametrize('module', ['seed', 'config', 'login'])
def test_missing_parents_in_runner_home_belong_to_runner(world, module):
    """codex_home = <home>/.config/deep/codex, nothing of it there yet: every directory the module
    creates in the runner's home is the runner's, not root's."""
    home = world.home / '.config' / 'deep' / 'codex'
    args = {'seed': world.seed_args(n=0, home=home), 'config': world.config_args(home=home),
            'login': world.login_args(home=home)}[module]
    guard = world.guard()
    run = run_module(MODULE[module], args)
    guard.check([run.out, run.err])
    assert outcome(run.result) == 'ok', run.result
    for path, mode in ((world.home / '.config', 0o755), (world.home / '.config' / 'deep', 0o755), (home, 0o700)):
        assert mode_of(path) == (mode, world.uid), '%s is %04o uid %s' % ((path,) + mode_of(path))
    for path in home.iterdir():
        assert mode_of(path)[1] == world.uid, path


@pytest.mark.parametrize('module', ['seed', 'config', 'login', 'verify', 'export'])
def test_root_owned_directory_moved_to_codex_home(world, module):
    """A root-owned directory (0700, a root-only auth.json in it) that some root tool left in the
    runner's home, or anywhere the runner can rename from, is renamed to ~/.codex by the runner.
    Root must not work in it: the writers refuse (codex_home_owner), and no module may report or
    return what is in it."""
    leftover = world.home / '.cache-made-by-root'
    leftover.mkdir(mode=0o700)
    for name in ('auth.json', 'config.toml'):
        write_private(leftover / name, world.decoy_files[name])
    attacker = world.start_attacker()
    attacker.call('rename', src=str(leftover), dst=str(world.codex_home))
    before = {name: (world.codex_home / name).read_bytes() for name in ('auth.json', 'config.toml')}
    args = {'seed': world.seed_args(), 'config': world.config_args(), 'login': world.login_args(),
            'verify': world.verify_args(), 'export': world.export_args()}[module]
    guard = world.guard()
    run = run_module(MODULE[module], args)
    report_figures('root_dir_moved_in_%s' % module, {'outcome': outcome(run.result),
                                                     'problems': problem_codes(run.result)})
    assert {name: (world.codex_home / name).read_bytes() for name in before} == before
    assert mode_of(world.codex_home) == (0o700, 0)
    guard.check([run.out, run.err])
    if module in ('seed', 'config', 'login'):
        assert outcome(run.result) == 'refused:codex_home_owner', run.result


# -- 4. files root reads for the operator: environment_files, src ------------------------------------

ENV_CASES = ['runner_file', 'symlink_rootonly', 'symlink_open', 'hardlink', 'dir_symlink']


def runner_link(world, attacker, request, case, path, name, link_dir):
    """Have the runner make `path` (in its home) reach root's file `name`: `symlink_rootonly` a
    symlink to the root-only copy, `symlink_open` one to the copy in the open directory, `hardlink`
    a hard link to that copy, `dir_symlink` a link `link_dir` to the root-only directory. Returns
    the path to hand the module."""
    if case == 'symlink_rootonly':
        attacker.call('symlink', src=str(world.rootonly / name), dst=str(path))
    elif case == 'symlink_open':
        attacker.call('symlink', src=str(world.open / name), dst=str(path))
    elif case == 'hardlink':
        request.getfixturevalue('hardlinks_allowed')
        attacker.call('link', src=str(world.open / name), dst=str(path))
    else:
        attacker.call('symlink', src=str(world.rootonly), dst=str(world.home / link_dir))
        path = world.home / link_dir / name
    return path


@pytest.mark.parametrize('case', ENV_CASES)
def test_environment_files_through_runner_links(world, forker, case, request):
    """verify reads environment_files as root. A runner-made link (file or directory) or hard link
    to a root-only file that sets OPENAI_API_KEY must not make verify report that file's
    variables; it warns (environment_file_unreadable). The runner's own file is still scanned."""
    world.make_codex_home()
    attacker = world.start_attacker()
    path = world.home / '.env'
    if case == 'runner_file':
        attacker.call('write', path=str(path), b64=b64(b'export OPENAI_API_KEY=sk-runner-own\n'))
    else:
        path = runner_link(world, attacker, request, case, path, 'secret.env', 'envdir')
    guard = world.guard()
    result, text, _seconds = fast(forker, 'codex_auth_verify', world.verify_args(environment_files=[str(path)]))
    guard.check([text])
    shadowing = [item for item in result['problems'] if item['code'] == 'env_shadowing']
    warnings = [item['code'] for item in result.get('health_warnings', [])]
    report_figures('environment_files_%s' % case, {'env_shadowing': len(shadowing), 'warnings': warnings})
    if case == 'runner_file':
        assert shadowing and 'OPENAI_API_KEY' in shadowing[0]['message'], result  # the scan works
        return
    assert not shadowing, 'verify reported the variables of a root-only file: %s' % shadowing
    assert 'environment_file_unreadable' in warnings, result


@pytest.mark.parametrize('case', ['symlink_rootonly', 'hardlink', 'dir_symlink'])
def test_seed_src_through_runner_links(world, forker, case, request):
    """codex_auth_seed src = a path in the runner's home that the runner linked to a root-only
    auth.json (a valid seed): refused, nothing written, the root file's content nowhere."""
    home = world.make_codex_home()
    attacker = world.start_attacker()
    src = runner_link(world, attacker, request, case, world.home / 'seed.json', 'auth.json', 'seeds')
    guard = world.guard()
    args = world.seed_args(replace='always')
    del args['content']
    args['src'] = str(src)
    result, text, _seconds = fast(forker, 'codex_auth_seed', args)
    guard.check([text, (home / 'auth.json').read_text()])
    report_figures('seed_src_%s' % case, {'outcome': outcome(result)})
    assert result.get('failed'), 'a seed read through a runner link was accepted: %s' % result
    assert (home / 'auth.json').read_bytes() == world.seed_bytes(0)


# -- 5. FIFOs, /dev/zero and huge files where Codex's files belong -----------------------------------

KINDS = ['fifo', 'devzero_symlink', 'devzero_node', 'huge']
HOSTILE_NAMES = ['auth.json', 'config.toml', 'auth.lock']


@pytest.mark.parametrize('name', HOSTILE_NAMES)
@pytest.mark.parametrize('kind', KINDS)
def test_special_files_end_in_bounded_time(world, forker, kind, name):
    """A FIFO (the runner keeps no writer on it), a link to /dev/zero, a character device like
    /dev/zero (only root can make one, but a module must refuse it anyway) or a 64 MiB sparse file
    at `name`: every module ends within BOUND seconds, with a problem code or a clear error."""
    home = world.make_codex_home()
    attacker = world.start_attacker()
    target = home / name
    os.unlink(str(target))
    if kind == 'fifo':
        attacker.call('mkfifo', path=str(target), mode=0o600)
    elif kind == 'devzero_symlink':
        attacker.call('symlink', src='/dev/zero', dst=str(target))
    elif kind == 'devzero_node':
        os.mknod(str(target), 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    else:
        attacker.call('sparse', path=str(target), size=64 * 1024 * 1024)
    guard = world.guard()
    figures = {}
    for label, module, args in every_module(world):
        result, text, seconds = fast(forker, module, args, timeout=BOUND + 5)
        guard.check([text])
        assert seconds < BOUND, '%s took %.1fs with a %s at %s' % (label, seconds, kind, name)
        if module == 'codex_auth_verify':
            codes = problem_codes(result)
            figures[label] = {'problems': codes, 'seconds': round(seconds, 3)}
            if name != 'auth.lock':
                prefix = 'auth' if name == 'auth.json' else 'config'
                assert [code for code in codes if code.startswith(prefix)], result
            elif kind != 'huge':  # a large regular lock file is still a lock file Codex can take
                assert 'lock_unusable' in codes, result
        else:
            figures[label] = {'outcome': outcome(result), 'seconds': round(seconds, 3)}
            if result.get('failed'):
                assert result.get('msg') and result.get('error_code'), result
    report_figures('special_%s_%s' % (kind, name.replace('.', '_')), figures)


# -- 6. a tight swap loop against hundreds of module runs --------------------------------------------

@pytest.mark.parametrize('mode', ['exchange', 'rename'])
@pytest.mark.parametrize('module', ['codex_config', 'codex_auth_seed'])
def test_swap_loop_race(world, forker, module, mode):
    """An unassisted runner process swaps ~/.codex between the real directory and symlinks to the
    root-only decoy directory and the victim's CODEX_HOME as fast as it can (`exchange`:
    renameat2(RENAME_EXCHANGE), ~/.codex always there; `rename`: plain rename(2), with moments when
    it is missing) while the module runs ITERATIONS times. Zero decoy changes, zero writes outside
    the runner's home."""
    world.make_codex_home()
    attacker = world.start_attacker()
    attacker.call('symlink', src=str(world.rootonly), dst=str(world.home / '.lnk-rootonly'))
    attacker.call('symlink', src=str(world.victim), dst=str(world.home / '.lnk-victim'))
    guard = world.guard()
    counts, breaches = {}, []
    swapper = Swapper(world.home, '.codex', ['.lnk-rootonly', '.lnk-victim'], mode)
    started = time.monotonic()
    try:
        time.sleep(0.05)
        for iteration in range(ITERATIONS):
            if module == 'codex_config':
                args = world.config_args(value='race-%d' % iteration)
            else:
                args = world.seed_args(n=iteration, backup=True)
            result, text, _seconds = fast(forker, module, args)
            what = outcome(result)
            if what == 'ok':
                what = 'ok:%s' % (result.get('action') or ('changed' if result.get('changed') else 'unchanged'))
            counts[what] = counts.get(what, 0) + 1
            if any(marker in text for marker in world.decoy_markers):
                breaches.append('run %d: output holds decoy bytes' % iteration)
            if iteration % 100 == 99:
                swapper.pause()
                try:
                    breaches.extend('after run %d: %s' % (iteration, line) for line in guard.problems())
                finally:
                    swapper.resume()
            if breaches:
                break
    finally:
        swaps = swapper.stop()
    elapsed = time.monotonic() - started
    breaches.extend(guard.problems())
    figures = {'iterations': sum(counts.values()), 'outcomes': counts, 'attacker': swaps,
               'seconds': round(elapsed, 1), 'ms_per_run': round(elapsed * 1000 / max(1, sum(counts.values())), 1),
               'decoy_changes_or_outside_writes': len(breaches)}
    report_figures('swap_loop_%s_%s' % (module, mode), figures)
    assert not breaches, '\n'.join(breaches[:20])
    assert swaps and swaps['swaps'] > ITERATIONS, 'the attacker barely ran: %s' % swaps
    refused = sum(n for what, n in counts.items() if what.startswith('refused:'))
    succeeded = sum(n for what, n in counts.items() if what.startswith('ok'))
    assert refused and succeeded, 'the runs and the swaps never interleaved: %s' % counts
    # What the runner can cause: a refusal of the link it showed, or (rename mode) a failure because
    # it replaced the directory the module had just created (rename over an empty directory).
    allowed = {'refused:codex_home_symlink', 'refused:codex_home_not_dir', 'refused:codex_home_uncreatable',
               'refused:lock_unavailable', 'failed:os_error(No such file or directory)'}
    assert set(what for what in counts if not what.startswith('ok')) <= allowed, counts


# -- 7. root's environment never reaches a Codex child --------------------------------------------------

SECRETS = {
    'AWS_SECRET_ACCESS_KEY': 'aws-ROOT-SECRET-6f1e0c',
    'HTTPS_PROXY': 'http://proxyuser:proxy-ROOT-SECRET-9a7d@127.0.0.1:9',
    'GITHUB_TOKEN': 'ghp_ROOT-SECRET-3b2c',
    'OPENAI_API_KEY': 'sk-ROOT-SECRET-shadow',
    'CODEX_ACCESS_TOKEN': 'at-ROOT-SECRET-shadow',
    'VAULT_TOKEN': 'hvs.ROOT-SECRET-55aa',
}
ALLOWED_NAMES = {'PATH', 'LANG', 'TMPDIR', 'TZ', 'HOME', 'USER', 'LOGNAME', 'CODEX_HOME', 'PWD', 'SHLVL', '_'}


@pytest.mark.parametrize('named', [False, True], ids=['allow_list_only', 'with_codex_environment'])
@pytest.mark.parametrize('case', ['verify_runner_home', 'verify_root_tree', 'login'])
def test_root_environment_never_reaches_codex(world, case, named):
    """Secrets in root's environment (cloud keys, a proxy password, shadowing variables) while
    codex_auth_verify login_status=true and codex_access_token_login run Codex: the Codex child
    (a fake codex that keeps a copy of its environment) gets the allow-list, the runner's HOME/USER,
    CODEX_HOME, and exactly what codex_environment names; nothing else."""
    codex, dumps = world.dumping_codex()
    if case == 'verify_root_tree':
        # A root-owned CODEX_HOME in a root-only tree: root acts, and runs Codex as the runner.
        home = world.root / 'srv' / 'codex'
        home.parent.mkdir()
        home.mkdir(mode=0o700)
        (home / 'config.toml').write_bytes(STORE)
    else:
        home = world.make_codex_home()
    env = dict(module_env(), **SECRETS)
    env['LC_ALL'] = 'C.UTF-8'
    named_env = {'CODEXOPS_NAMED': 'named-value-1f2e', 'HTTPS_PROXY': 'http://127.0.0.1:3128'} if named else {}
    if case == 'login':
        args = world.login_args(home=home, codex=codex)
    else:
        args = world.verify_args(home=home, login_status=True, codex_path=codex)
    if named:
        args['codex_environment'] = named_env
    guard = world.guard()
    run = run_module(MODULE['login' if case == 'login' else 'verify'], args, env=env)
    guard_outputs = [run.out, run.err]
    dumped = sorted(dumps.glob('env-*'))
    assert dumped, 'the fake codex never ran: %s %s' % (run.result, run.err[-2000:])
    seen = set()
    for path in dumped:
        raw = path.read_bytes()
        for name, value in SECRETS.items():
            assert value.encode() not in raw, '%s from root\'s environment reached Codex (%s)' % (name, path.name)
        child = dict(item.split('=', 1) for item in raw.decode().split('\0') if '=' in item)
        seen.update(child)
        extra = set(child) - ALLOWED_NAMES - set(named_env) - set(name for name in child if name.startswith('LC_'))
        assert not extra, 'Codex got variables outside the allow-list: %s' % sorted(extra)
        assert child.get('CODEX_HOME') == str(home)
        assert child.get('USER') == RUNNER and child.get('LOGNAME') == RUNNER
        for name, value in named_env.items():
            assert child.get(name) == value, '%s named in codex_environment is missing or wrong' % name
        assert child.get('LC_ALL') == 'C.UTF-8'
    for path in dumps.glob('uid-*'):
        assert path.read_text().strip() == str(world.uid), 'Codex ran as uid %s' % path.read_text().strip()
    for path in dumped + list(dumps.glob('uid-*')):
        path.unlink()  # the runner's own files; not part of what the guard compares
    guard.check(guard_outputs)
    report_figures('environment_%s_%s' % (case, 'named' if named else 'plain'),
                   {'codex_runs': len(dumped), 'variables_seen': sorted(seen), 'outcome': outcome(run.result)})


# -- 9. the child that dropped to the runner user is not readable by it --------------------------------

def _probe_module_processes(world, attacker, run):
    """Probe every process of the run from the attacker; returns {pid: (uid, probe)}."""
    probes = {}
    for pid in run.tree():
        probes[pid] = (uid_of(pid), attacker.call('probe', pid=pid))
    return probes


def _probe_parked_module(world):
    """Park codex_auth_seed on a lock the attacker holds, with a secret in root's environment, and
    probe every process of the run from the attacker. Returns (readable, figures)."""
    home = world.make_codex_home()
    attacker = world.start_attacker()
    own = attacker.call('sleeper')
    control = attacker.call('probe', pid=own)
    assert all(control[what]['ok'] for what in ('environ', 'mem', 'fd', 'ptrace', 'vm_read')), control
    attacker.call('flock', path=str(home / 'auth.lock'))
    env = dict(module_env(), **SECRETS)
    run = ModuleRun('codex_auth_seed', world.seed_args(n=1), env=env)
    guard = world.guard()
    secret_seen = []
    try:
        assert run.wait_parked(str(home / 'auth.lock')), 'the module never waited for the lock'
        children = run.runner_children()
        assert children, 'no child of the module runs as %s: it works in the runner\'s home as root' % RUNNER
        probes = _probe_module_processes(world, attacker, run)
        for pid in probes:
            reply = attacker.request('contains', path='/proc/%d/environ' % pid, needle=SECRETS['AWS_SECRET_ACCESS_KEY'])
            if reply['ok'] and reply['value']:
                secret_seen.append(pid)
        attacker.call('unlock', path=str(home / 'auth.lock'))
        run.wait(30)
    finally:
        if run.rc is None:
            run.kill()
    guard.check([run.out, run.err])
    readable = []
    for pid, (uid, probe) in probes.items():
        for what in ('environ', 'mem', 'fd', 'ptrace', 'vm_read'):
            if not is_denied(probe[what]) and probe[what].get('errno') != 'ESRCH':
                readable.append('%s of pid %d (uid %s): %s' % (what, pid, uid, probe[what]))
    readable.extend('root\'s AWS_SECRET_ACCESS_KEY read from /proc/%d/environ' % pid for pid in secret_seen)
    figures = {'processes': len(probes), 'runner_children': len(children), 'control_environ': control['environ']['ok'],
               'secret_read_from': len(secret_seen),
               'results': sorted(set('%s:%s' % (what, probe[what].get('errno') or 'ok')
                                     for _uid, probe in probes.values()
                                     for what in ('environ', 'mem', 'fd', 'ptrace', 'vm_read')))}
    assert outcome(run.result) == 'ok', run.result
    return readable, figures


def test_dropped_child_not_readable_by_runner(world):
    """While a module runs in its runner-uid child (parked on a lock the runner holds, root's
    environment holding a secret), the runner cannot read that child's environment or memory,
    list its descriptors, ptrace it or process_vm_readv it; nor the root parent's. (Control: the
    same probes succeed against a process the attacker started itself.)"""
    readable, figures = _probe_parked_module(world)
    report_figures('dropped_child_probe', figures)
    assert not readable, 'the runner can read the module\'s processes:\n' + '\n'.join(readable)


def test_dropped_child_not_readable_with_suid_dumpable_1(world):
    """The same probes with fs.suid_dumpable=1 (a debugging setting some hosts carry): the child
    must make itself non-dumpable, not trust the sysctl."""
    with Sysctl('fs.suid_dumpable', 1):
        readable, figures = _probe_parked_module(world)
    report_figures('dropped_child_probe_suid_dumpable_1', dict(figures, readable=len(readable)))
    assert not readable, 'the runner can read the module\'s processes:\n' + '\n'.join(readable)


def test_stopped_child_does_not_stall_the_run(world):
    """The runner SIGSTOPs the module's runner-uid child (parked on its lock) and lets the lock go:
    the run must still end within lock_timeout + 5 seconds (failing is fine)."""
    home = world.make_codex_home()
    attacker = world.start_attacker()
    attacker.call('flock', path=str(home / 'auth.lock'))
    run = ModuleRun('codex_auth_seed', world.seed_args(n=1, lock_timeout=2))
    try:
        assert run.wait_parked(str(home / 'auth.lock')), 'the module never waited for the lock'
        children = run.runner_children()
        assert children, 'no runner-uid child to stop'
        for pid in children:
            attacker.call('kill', pid=pid, sig=signal.SIGSTOP)
        attacker.call('unlock', path=str(home / 'auth.lock'))
        run.wait(2 + 5)
    finally:
        if run.rc is None:
            run.kill()
    report_figures('stopped_child', {'seconds': round(run.elapsed, 1), 'outcome': outcome(run.result)})
    assert run.result is not None and run.elapsed < 2 + 5


# -- another runner on the same host: files one user planted must never become another's --------------

MCP_CONFIG = (b'cli_auth_credentials_store = "file"\n[mcp_servers.planted]\n'
              b'command = "/tmp/runs-as-whoever-runs-codex"\n')


def _taken_over(path, planted_inode, victim_uid):
    try:
        st = os.lstat(str(path))
    except FileNotFoundError:
        return False
    return st.st_ino == planted_inode and st.st_uid == victim_uid


@pytest.mark.parametrize('mode', [0o1777, 0o777], ids=['sticky_1777', 'world_0777'])
def test_files_planted_in_shared_codex_home_not_handed_over(world, mode):
    """CODEX_HOME is a root-owned directory in a root-only tree that others can write (an operator
    mistake, or a /tmp-like directory). Another local user plants config.toml (an MCP server =
    a command Codex runs) and keeps it open; codex_auth_seed provisions it for the victim runner.
    The planted file must not end up the victim's, writable through the attacker's descriptor."""
    victim = other_runner()
    shared = world.root / 'srv' / 'shared-codex'
    shared.parent.mkdir()
    shared.mkdir()
    os.chmod(str(shared), mode)
    attacker = world.start_attacker()
    attacker.call('write', path=str(shared / 'config.toml'), b64=b64(MCP_CONFIG), mode=0o644)
    attacker.call('hold_open', path=str(shared / 'config.toml'))
    planted = os.lstat(str(shared / 'config.toml')).st_ino
    guard = world.guard()
    run = run_module('codex_auth_seed', world.seed_args(n=0, home=shared, owner=victim.pw_name))
    guard.check([run.out, run.err], allow=[shared])
    taken = _taken_over(shared / 'config.toml', planted, victim.pw_uid)
    still = attacker.request('write_held', path=str(shared / 'config.toml'), b64=b64(b'# written later\n'))
    report_figures('shared_codex_home_%o' % mode, {'outcome': outcome(run.result), 'handed_over': taken,
                                                   'attacker_fd_still_writes': still['ok']})
    assert not taken, ('%s\'s config.toml is the file %s planted (outcome %s); its descriptor still writes: %s'
                       % (victim.pw_name, RUNNER, outcome(run.result), still['ok']))


def test_directory_made_between_walk_and_mkdir_not_adopted(world, monkeypatch):
    """CODEX_HOME of another runner (the victim) is to be created in a sticky world-writable
    directory (/tmp-like, which trusted_path counts as root's). The attacker creates it, with its
    config.toml and auth.json, in the moment between the walk (which found it missing) and the
    mkdir; the interleaving is forced by wrapping trusted_path.walk, the attacker acts for real.
    Nothing the attacker made may become the victim's."""
    from ansible_collections.codexops.runner.plugins.module_utils import errors, seeding, trusted_path
    victim = other_runner()
    shared = world.root / 'shared'
    shared.mkdir()
    os.chmod(str(shared), 0o1777)
    home = shared / ('codex-%s' % victim.pw_name)
    attacker = world.start_attacker()
    real_walk = trusted_path.walk
    planted = {}

    def walk(path, *args, **kwargs):
        where = real_walk(path, *args, **kwargs)
        if path == str(home) and where.missing and not planted:
            attacker.call('mkdir', path=str(home), mode=0o755)
            attacker.call('write', path=str(home / 'config.toml'), b64=b64(MCP_CONFIG), mode=0o644)
            attacker.call('write', path=str(home / 'auth.json'), b64=b64(world.seed_bytes(0)), mode=0o644)
            attacker.call('hold_open', path=str(home / 'config.toml'))
            planted.update((name, os.lstat(str(home / name)).st_ino) for name in ('config.toml', 'auth.json'))
        return where
    monkeypatch.setattr(trusted_path, 'walk', walk)
    seed = seeding.load_seed(world.seed_bytes(1), ['chatgpt'], True)
    try:
        result = seeding.SeedRun(str(home), world.seed_bytes(1), seed, policy='never', uid=victim.pw_uid,
                                 gid=victim.pw_gid).run()
        what = 'ok:%s' % result['action']
    except errors.CodexOpsError as exc:
        what = 'refused:%s' % exc.code
    assert planted, 'the walk never found the CODEX_HOME missing'
    taken = [name for name, inode in planted.items() if _taken_over(home / name, inode, victim.pw_uid)]
    report_figures('create_race_sticky_parent', {'outcome': what, 'handed_over': taken})
    assert not taken, '%s made %s; after provisioning they are %s\'s (outcome %s)' % (
        RUNNER, taken, victim.pw_name, what)
