"""codex_auth_seed killed with SIGKILL while it replaces an existing auth.json.

Two ways of killing it, both on a real CODEX_HOME with the module's real main():
- at random delays after it starts the replacement (at least 200 kills that landed), and
- deterministically at every file-system call boundary of the run (just before and just after
  each os.open/read/write/fsync/rename/unlink/fchmod/fchown/close/listdir and flock), with and
  without `backup`, and with a config.toml change in the same run.
After every kill: auth.json parses and is byte for byte the old or the new file; config.toml is
the old or the new one; every file left in CODEX_HOME is private (temp files exactly 0600, owned
by the runner user); a backup, if one exists, is a complete copy of the old file; verify reports
leftover temp files as `temp_files_left`; and the next run removes them.
"""

import datetime
import json
import os
import random
import stat
import statistics

import pytest

from hardening_support import report_figures, run_module_process, runner_ids, runner_owner
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import health
from support import home_dir
from ansible_collections.codexops.runner.plugins.module_utils import seeding
from ansible_collections.codexops.runner.plugins.module_utils import toml_keys
from support import fake_credentials

CONFIG_OLD = '# runner config\ncli_auth_credentials_store = "file"\n\n[mcp_servers.docs]\ncommand = "docs"\n'
CONFIG_SETTINGS = {'cli_auth_credentials_store': 'file', 'model': 'gpt-hardening'}


class Scene:
    """A provisioned CODEX_HOME holding the old auth.json, and the new seed that replaces it."""

    def __init__(self, root):
        self.root = root
        self.home = root / 'home' / '.codex'
        self.home.parent.mkdir()
        self.uid, self.gid = runner_ids()
        a_year_ago = fake_credentials.now() - datetime.timedelta(days=365)
        old, _secrets = fake_credentials.chatgpt_seed(tag='old', account_id='acct-old', last_refresh=a_year_ago)
        new, _secrets = fake_credentials.chatgpt_seed(tag='new', account_id='acct-new')
        self.old = fake_credentials.dumps(old).encode()
        self.new = fake_credentials.dumps(new).encode()
        self.config_new = toml_keys.set_top_level(CONFIG_OLD, CONFIG_SETTINGS)[0].encode()
        self.auth = self.home / 'auth.json'
        self.config = self.home / 'config.toml'
        self.reset()

    def reset(self):
        if not self.home.exists():
            self.home.mkdir(mode=0o700)
        os.chown(str(self.home), self.uid, self.gid)
        os.chmod(str(self.home), 0o700)
        for path in self.home.iterdir():
            if path.name not in ('auth.lock', 'auth.json.lock'):
                path.unlink()
        for path, data in ((self.auth, self.old), (self.config, CONFIG_OLD.encode())):
            home_dir.atomic_write(str(path), data, self.uid, self.gid)

    def module_args(self, backup=False, config=False):
        args = {'codex_home': str(self.home), 'owner': runner_owner(), 'content': self.new.decode(),
                'replace': 'always', 'backup': backup}
        if config:
            args['config_settings'] = CONFIG_SETTINGS
        return args

    def check(self, label):
        """The invariants after a kill; returns (outcome, temp files left)."""
        data = self.auth.read_bytes()
        assert data in (self.old, self.new), '%s: auth.json is neither the old nor the new file' % label
        json.loads(data.decode())
        auth_model.AuthFile(data)
        outcome = 'new' if data == self.new else 'old'
        st = os.lstat(str(self.auth))
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == self.uid, label
        assert self.config.read_bytes() in (CONFIG_OLD.encode(), self.config_new), '%s: config.toml torn' % label
        temps = home_dir.leftover_temp_files(str(self.home))
        for path in self.home.iterdir():
            st = os.lstat(str(path))
            assert stat.S_ISREG(st.st_mode), '%s: %s is not a regular file' % (label, path)
            assert stat.S_IMODE(st.st_mode) & 0o077 == 0, '%s: %s is mode %04o' % (
                label, path.name, stat.S_IMODE(st.st_mode))
            if str(path) in temps:
                assert stat.S_IMODE(st.st_mode) == 0o600, '%s: temp file mode %04o' % (label, st.st_mode)
            if path.name.startswith('auth.json.') and path.name.endswith('.bak'):
                assert path.read_bytes() == self.old, '%s: %s is not a complete backup' % (label, path.name)
                assert stat.S_IMODE(st.st_mode) == 0o600
        return outcome, temps

    def verify_and_clean(self, temps, label, via_module=False):
        """Verify names the leftovers; the next seed run removes them and changes nothing else."""
        summary = health.evaluate(health.snapshot_path(str(self.home)), owner_uid=self.uid)
        codes = [item['code'] for item in summary['health_warnings']]
        assert 'temp_files_left' in codes, label
        if via_module:
            args = {'codex_home': str(self.home), 'owner': runner_owner()}
            rc, result, out, err = run_module_process('codex_auth_verify', args)
            assert rc == 0 and 'Traceback' not in out + err
            assert 'temp_files_left' in [item['code'] for item in result['health_warnings']]
            assert '%d leftover temp file' % len(temps) in json.dumps(result['health_warnings'])
        before = self.auth.read_bytes()
        seed = seeding.load_seed(self.new, ['chatgpt'], True)
        result = seeding.SeedRun(str(self.home), self.new, seed, policy='never', uid=self.uid, gid=self.gid).run()
        assert result['removed_temp_files'] == len(temps) and result['changed'], label
        assert home_dir.leftover_temp_files(str(self.home)) == []
        assert self.auth.read_bytes() == before
        assert 'temp_files_left' not in [w['code'] for w in result['auth']['health_warnings']]


@pytest.fixture
def scene(scratch):
    return Scene(scratch)


def test_random_sigkill_during_replace(scene, seed_worker, tmp_path):
    rng = random.Random(20261121)
    output = tmp_path / 'child.out'
    # Calibrate: how long the replacement takes, from SeedRun.run to the child's exit.
    durations = []
    for _attempt in range(7):
        scene.reset()
        reply = seed_worker.call({'op': 'crash', 'args': scene.module_args(backup=True), 'output': str(output)})
        assert reply['exit'] == 0, output.read_text()
        assert scene.auth.read_bytes() == scene.new
        durations.append(reply['elapsed'])
    span = first_span = statistics.median(durations)
    outcomes = {'old': 0, 'new': 0}
    with_temp = verified_by_module = completed = kills = attempts = 0
    while kills < 240 and attempts < 1200:
        attempts += 1
        scene.reset()
        config = attempts % 3 == 0
        reply = seed_worker.call({'op': 'crash', 'args': scene.module_args(backup=attempts % 2 == 0, config=config),
                                  'output': str(output), 'delay': rng.uniform(0, span * 1.1)})
        if not reply['signaled']:
            completed += 1
            assert reply['exit'] == 0, output.read_text()
            span *= 0.97  # the machine got faster: aim earlier
            continue
        span *= 1.01
        kills += 1
        assert 'Traceback' not in output.read_text()
        outcome, temps = scene.check('random kill %d' % kills)
        outcomes[outcome] += 1
        if temps:
            with_temp += 1
            scene.verify_and_clean(temps, 'random kill %d' % kills, via_module=verified_by_module < 3)
            verified_by_module += 1
    assert kills >= 200
    report_figures('crash_random', {'kills': kills, 'attempts': attempts, 'completed_before_kill': completed,
                                    'left_old_file': outcomes['old'], 'left_new_file': outcomes['new'],
                                    'left_temp_files': with_temp, 'run_median_seconds': round(first_span, 4),
                                    'final_delay_span_seconds': round(span, 4)})


@pytest.mark.parametrize('variant', ['plain', 'backup', 'config'])
def test_sigkill_at_every_file_system_call(scene, seed_worker, tmp_path, variant):
    output = tmp_path / 'child.out'
    count_file = tmp_path / 'calls.json'
    args = scene.module_args(backup=variant == 'backup', config=variant == 'config')
    # A first run creates Codex's lock files (as the runner user's); count the calls of the next one.
    assert seed_worker.call({'op': 'crash', 'args': args, 'output': str(output)})['exit'] == 0
    scene.reset()
    reply = seed_worker.call({'op': 'crash', 'args': args, 'output': str(output), 'count_file': str(count_file)})
    assert reply['exit'] == 0, output.read_text()
    calls = json.loads(count_file.read_text())
    assert 'rename' in calls and 'fsync' in calls and 'flock' in calls
    outcomes = {'old': 0, 'new': 0}
    with_temp = 0
    for position in range(1, len(calls) + 1):
        for when in ('before', 'after'):
            scene.reset()
            label = '%s: kill %s call %d (%s)' % (variant, when, position, calls[position - 1])
            reply = seed_worker.call({'op': 'crash', 'args': args, 'output': str(output), 'kill_at': position,
                                      'kill_when': when})
            assert reply['signaled'] and reply['signal'] == 9, label
            outcome, temps = scene.check(label)
            outcomes[outcome] += 1
            if temps:
                with_temp += 1
                scene.verify_and_clean(temps, label)
    # The rename of auth.json is the commit point: every kill before it leaves the old file, after it the new.
    assert outcomes['old'] >= 1 and outcomes['new'] >= 1
    report_figures('crash_every_call_%s' % variant, {
        'file_system_calls': len(calls), 'kills': 2 * len(calls), 'left_old_file': outcomes['old'],
        'left_new_file': outcomes['new'], 'left_temp_files': with_temp})
