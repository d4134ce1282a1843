"""The real Codex CLI refreshing auth.json while codex_auth_seed runs on the same CODEX_HOME.

Each iteration starts from a runner whose auth.json is the seed of a login at the loopback
backend, with an access token inside Codex's refresh window, so `codex exec` (run as the runner
user) refreshes it at once: it rotates the refresh token at the backend and saves the new file
under its locks (auth.lock, then auth.json.lock). Codex is killed as soon as the rotated file is on
disk (it would otherwise fail at the model call ~20 s later). A seed run is started at a random
moment around it, as the runner's provisioning would be, with `replace: older` or
`replace: invalid`, a seed newer than the runner's file but older than any refresh. In half of the
iterations the seed run pauses, under the lock, between its decision and its write: a Codex
refresh arriving then has to wait for it (seen as a blocked flock in /proc/locks), and a seed run
that did not take Codex's lock would overwrite the refresh there (checked: with the lock taken
out of safe_files.codex_lock, the first iteration already loses the refreshed token).

Every fifth iteration constructs the stale-read race outright: the seed run's plan (check mode,
what the provision playbook does first) reads the file and predicts a replacement; Codex then
refreshes; the real run must re-decide under the lock, see Codex's write and keep it.

After every iteration the refreshed token must not be lost: auth.json is the rotated file, its
refresh token is the backend's current one, nothing was ever reused, and that token still
refreshes at the backend.
"""

import datetime
import json
import os
import random
import signal
import subprocess
import threading
import time
import urllib.request

from hardening_support import OUTPUT, codex_binary, report_figures, runner_ids
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from support import fake_credentials
from support.private_files import write_private
from support.require import require

ITERATIONS = 60
SHORT = datetime.timedelta(minutes=1)


def owned_private(path, data, uid, gid):
    """A new 0600 file (support.private_files) owned by uid:gid."""
    write_private(path, data)
    os.chown(str(path), uid, gid)


def refresh_token_of(path):
    try:
        return json.loads(path.read_text())['tokens']['refresh_token']
    except (OSError, ValueError, KeyError):
        return None


def lock_waiters(inodes):
    """Blocked flock requests (`->` lines of /proc/locks) on the given inodes."""
    waiting = 0
    with open('/proc/locks') as handle:
        for line in handle:
            parts = line.split()
            if '->' in parts and parts[parts.index('->') + 1] == 'FLOCK':
                device_inode = parts[parts.index('->') + 5]
                if int(device_inode.split(':')[-1]) in inodes:
                    waiting += 1
    return waiting


def refresh_directly(backend, token):
    body = json.dumps({'client_id': 'hardening', 'grant_type': 'refresh_token', 'refresh_token': token}).encode()
    request = urllib.request.Request(backend.base_url + '/oauth/token', data=body,
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


class Runner:

    def __init__(self, root, backend, index):
        self.uid, self.gid = runner_ids()
        self.base = root / ('runner-%d' % index)
        self.base.mkdir()
        os.chown(str(self.base), self.uid, self.gid)
        self.home = self.base / '.codex'
        self.home.mkdir(mode=0o700)
        os.chown(str(self.home), self.uid, self.gid)
        self.auth = self.home / 'auth.json'
        owned_private(self.home / 'config.toml', b'cli_auth_credentials_store = "file"\n', self.uid, self.gid)
        start = fake_credentials.now() - datetime.timedelta(days=1)
        doc, _secrets = backend.login(access_ttl=SHORT, last_refresh=start)
        self.first_refresh_token = doc['tokens']['refresh_token']
        owned_private(self.auth, fake_credentials.dumps(doc).encode(), self.uid, self.gid)
        # The seed: the same login, stamped an hour later than the runner's file, so `older` would
        # replace the runner's file, but never a file Codex has refreshed since.
        seed = dict(doc, last_refresh=fake_credentials.rfc3339(start + datetime.timedelta(hours=1)))
        self.seed_path = self.base / 'seed.json'
        owned_private(self.seed_path, fake_credentials.dumps(seed).encode(), 0, 0)
        self.seed_last_refresh = auth_model.parse_rfc3339(seed['last_refresh'])
        self.backend = backend
        self.history = []  # (time, inode, still the first refresh token) as the polls saw it

    def start_codex(self):
        env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(self.base), 'CODEX_HOME': str(self.home),
               'CODEX_REFRESH_TOKEN_URL_OVERRIDE': self.backend.base_url + '/oauth/token'}
        kwargs = {}
        if os.geteuid() == 0:
            kwargs = {'user': self.uid, 'group': self.gid, 'extra_groups': []}
        self.codex_log = self.base / 'codex.log'
        with open(str(self.codex_log), 'wb') as log:
            return subprocess.Popen([codex_binary(), 'exec', '--skip-git-repo-check', 'say hi'], env=env,
                                    cwd=str(self.base), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, **kwargs)

    def seed_command(self, policy, check=False, hold=0, slow_chown=0):
        return {'op': 'seed', 'home': str(self.home), 'seed_path': str(self.seed_path), 'policy': policy,
                'uid': self.uid, 'gid': self.gid, 'check': check, 'hold': hold, 'slow_chown': slow_chown}

    def rotated(self):
        token = refresh_token_of(self.auth)
        try:
            state = (round(time.monotonic(), 4), os.stat(str(self.auth)).st_ino, token == self.first_refresh_token)
        except OSError:
            state = (round(time.monotonic(), 4), None, None)
        if not self.history or self.history[-1][1:] != state[1:]:
            self.history.append(state)
        return token is not None and token != self.first_refresh_token

    def lock_inodes(self):
        inodes = set()
        for name in ('auth.lock', 'auth.json.lock'):
            try:
                inodes.add(os.stat(str(self.home / name)).st_ino)
            except OSError:
                pass
        return inodes


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def test_codex_refresh_races_seed_runs(scratch, backend, seed_worker):
    rng = random.Random(1121)
    figures = {'iterations': 0, 'overlapping': 0, 'seed_locked_before_codex_write': 0,
               'seed_locked_after_codex_write': 0, 'seed_found_lock_held': 0, 'codex_waited_for_our_lock': 0,
               'stale_plan_constructed': 0, 'seed_replaced': 0, 'seed_kept': 0, 'policies': {'older': 0, 'invalid': 0},
               'verification_refreshes_ok': 0}
    log_start = len(backend.log_lines())
    rotated_before = backend.count('/oauth/token', 'rotated')
    reused_before = backend.count('/oauth/token', 'refresh_token_reused')
    started = time.monotonic()
    latencies = []
    for index in range(ITERATIONS):
        runner = Runner(scratch, backend, index)
        policy = 'older' if index % 2 == 0 else 'invalid'
        figures['policies'][policy] += 1
        constructed = index % 5 == 4
        replies = []
        if constructed:
            plan = seed_worker.call(runner.seed_command(policy, check=True))
            if policy == 'older':
                assert plan['action'] == 'replaced', plan  # the plan read the file before Codex wrote
            codex = runner.start_codex()
            spawn = time.monotonic()
            deadline = spawn + 30
            while not runner.rotated() and time.monotonic() < deadline:
                time.sleep(0.002)
            rotation = time.monotonic()
            stop(codex)
            replies.append(seed_worker.call(runner.seed_command(policy)))
            figures['stale_plan_constructed'] += 1
        else:
            # Aim at Codex's refresh: its latency after spawn (0.07-0.4 s here) varies from run to run.
            expected = sorted(latencies)[len(latencies) // 2] if latencies else 0.15
            offset = rng.uniform(-0.3, 0.9) * expected
            hold = rng.uniform(0.05, 0.3) if rng.random() < 0.5 else 0
            thread = threading.Thread(target=lambda: replies.append(seed_worker.call(
                runner.seed_command(policy, hold=hold))))
            if offset < 0:
                thread.start()
                time.sleep(-offset)
                codex = runner.start_codex()
                spawn = time.monotonic()
            else:
                codex = runner.start_codex()
                spawn = time.monotonic()
                time.sleep(offset)
                thread.start()
            deadline = spawn + 30
            rotation = None
            waited = False
            while time.monotonic() < deadline and (rotation is None or thread.is_alive()):
                if rotation is None and runner.rotated():
                    rotation = time.monotonic()
                if thread.is_alive() and not waited and lock_waiters(runner.lock_inodes()):
                    waited = True
                time.sleep(0.002)
            stop(codex)
            thread.join(30)
            figures['codex_waited_for_our_lock'] += int(waited)
        (reply,) = replies
        if rotation is None or not runner.rotated():
            raise AssertionError('iteration %d: the refreshed file is not on disk. Seed run: %s (timings after the '
                                 'Codex spawn: %s). File as polled (time after spawn, inode, first token?): %s. '
                                 'Backend: %s. Codex said:\n%s' % (
                                     index, reply['action'], dict((k, round(v - spawn, 4)) for k, v in
                                                                  reply['timings'].items()),
                                     [(round(t - spawn, 4), ino, first) for t, ino, first in runner.history],
                                     backend.log_lines()[-6:], runner.codex_log.read_text()[-1200:]))
        timings = reply['timings']
        figures['iterations'] += 1
        latencies.append(rotation - spawn)
        figures['overlapping'] += int(timings['start'] <= rotation and timings['end'] >= spawn)
        if timings['locked'] < rotation:
            figures['seed_locked_before_codex_write'] += 1
        else:
            figures['seed_locked_after_codex_write'] += 1
            # Under the lock the seed run saw Codex's newer file: it must have kept it.
            assert reply['action'] == 'kept', (index, reply)
        figures['seed_found_lock_held'] += int(reply['contended'] > 0)
        figures['seed_replaced' if reply['action'] == 'replaced' else 'seed_kept'] += 1
        if policy == 'invalid':
            assert reply['action'] == 'kept', reply

        # The refreshed token is not lost: the file is the rotated one, and the backend agrees.
        final = runner.auth.read_bytes()
        parsed = auth_model.AuthFile(final)
        token = json.loads(final)['tokens']['refresh_token']
        assert token == backend.current_refresh_token(runner.first_refresh_token), 'iteration %d lost it' % index
        assert parsed.last_refresh > runner.seed_last_refresh
        st = os.stat(str(runner.auth))
        assert st.st_mode & 0o777 == 0o600 and st.st_uid == runner.uid
        assert backend.count('/oauth/token', 'refresh_token_reused') == reused_before
        assert refresh_directly(backend, token) == 200
        figures['verification_refreshes_ok'] += 1
    figures['codex_refresh_latency_median'] = round(sorted(latencies)[len(latencies) // 2], 3)
    figures['codex_refresh_latency_range'] = [round(min(latencies), 3), round(max(latencies), 3)]
    figures['seconds'] = round(time.monotonic() - started, 1)
    figures['backend_rotated'] = backend.count('/oauth/token', 'rotated') - rotated_before
    figures['backend_reused'] = backend.count('/oauth/token', 'refresh_token_reused') - reused_before
    # One refresh by Codex and one verification refresh per iteration, and not a single reuse.
    report_figures('codex_race', figures)
    log = OUTPUT / 'logs' / 'hardening-codex-race-backend.log'  # token fingerprints, never tokens
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text('\n'.join(backend.log_lines()[log_start:]) + '\n')
    assert figures['backend_rotated'] == 2 * ITERATIONS and figures['backend_reused'] == 0
    assert figures['iterations'] >= 50 and figures['overlapping'] >= ITERATIONS // 3


def test_lock_files_are_the_runner_users_from_the_first_moment(scratch, backend, seed_worker):
    """Found by the test above, under load: the seed run created Codex's lock files as root and
    chowned them a moment later. A Codex saving its refresh in that moment cannot open the lock
    file; it has already rotated the refresh token at the server, never saves the new one, and
    retries with the old one: refresh_token_reused, and the runner is broken until reseeded.
    Here every fchown of the seed run is slowed down while Codex refreshes on a fresh CODEX_HOME
    (no lock files yet): the refresh must still be saved."""
    require(os.geteuid() == 0, 'the runner user differs from the test user only when the tests run as root (as in CI)')
    reused = backend.count('/oauth/token', 'refresh_token_reused')
    for index in range(6):
        runner = Runner(scratch, backend, 100 + index)
        replies = []
        thread = threading.Thread(target=lambda: replies.append(seed_worker.call(
            runner.seed_command('invalid', slow_chown=0.5))))
        thread.start()
        time.sleep(0.01)
        codex = runner.start_codex()
        deadline = time.monotonic() + 30
        while not runner.rotated() and time.monotonic() < deadline:
            time.sleep(0.005)
        stop(codex)
        thread.join(30)
        assert runner.rotated(), 'iteration %d: Codex could not save its refresh:\n%s' % (
            index, runner.codex_log.read_text()[-800:])
        assert replies[0]['action'] == 'kept'
        token = refresh_token_of(runner.auth)
        assert token == backend.current_refresh_token(runner.first_refresh_token)
        for name in ('auth.lock', 'auth.json.lock'):
            assert os.stat(str(runner.home / name)).st_uid == runner.uid
    assert backend.count('/oauth/token', 'refresh_token_reused') == reused
