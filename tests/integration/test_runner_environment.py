"""How each job finds its CODEX_HOME (runner_environment) through the codex_auth role, for real.

One inventory host (the local one) carries two runner instances under two users, each a GitHub-style runner
directory owned by its user with a `.env` of other lines already in it. Provisioning gives each `.env` exactly one
CODEX_HOME line, keeps the other lines byte for byte and the file's owner and mode; a second run changes nothing;
check mode predicts. A `.env` the runner user replaced by a symlink to a root file is refused and the target is
untouched; verify reports an instance whose `.env` the user pointed at another CODEX_HOME. A single runner with a
systemd unit gets its drop-in (systemd does not run here: no daemon-reload). The second user is an existing
system account (test_runner_instances.second_user): nothing is created on the machine but files under the
workspace and the test unit's drop-in directory, which is removed.
"""

import json
import os
import pwd
import shutil
import stat
import sys
import uuid

import pytest

from support import fake_credentials
from support.local_fleet import changed_by_host
from support.private_files import write_private
from support.require import required
from support.runner_access import runner_owner

from test_runner_instances import PLAYBOOK, second_user

_needs_root = required(os.geteuid() == 0, 'runner directories under two users need root')

HOST = 'runner-1'
SINGLE = 'runner-0'
API_KEY = 'runner-3'
OTHER_LINES = b'LANG=C.UTF-8\nRUNNER_TOOL_CACHE=/opt/hostedtoolcache\n# a comment the runner ignores\nA= spaced \n'


class Runners(object):

    def __init__(self, space):
        self.space = space
        self.users = {'gh-1': pwd.getpwnam(runner_owner()), 'gh-2': second_user()}
        self.health_dir = space.root / 'health'
        self.health_dir.mkdir()
        self.playbook = space.root / 'runners.yml'
        self.playbook.write_text(PLAYBOOK)
        self.unit = 'codexops-test-%s.service' % uuid.uuid4().hex[:12]
        runners = []
        for name, user in self.users.items():
            directory = self.runner_dir(name)
            directory.mkdir(parents=True)
            self.env(name).write_bytes(OTHER_LINES)
            os.chmod(str(self.env(name)), 0o640)
            for path in (directory, self.env(name)):
                os.chown(str(path), user.pw_uid, user.pw_gid)
            (space.root / 'homes' / name).mkdir(parents=True)
            doc, secrets = fake_credentials.chatgpt_seed(account_id='acct-%s' % name)
            space.remember(secrets)
            runners.append({'name': name, 'user': user.pw_name, 'codex_home': str(self.home(name)),
                            'seed_content': fake_credentials.dumps(doc),
                            'runner_environment': {'github_runner_dir': str(directory)}})
        single_doc, secrets = fake_credentials.chatgpt_seed(account_id='acct-single')
        space.remember(secrets)
        (space.root / 'homes' / SINGLE).mkdir(parents=True)
        api_doc, secrets = fake_credentials.apikey_seed()
        space.remember(secrets)
        self.api_dir = space.root / 'actions-runners' / API_KEY
        self.api_dir.mkdir()
        os.chown(str(self.api_dir), self.users['gh-1'].pw_uid, self.users['gh-1'].pw_gid)
        (space.root / 'homes' / API_KEY).mkdir(parents=True)
        common = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                  'codex_auth_user': runner_owner(), 'health_dir': str(self.health_dir),
                  'codex_auth_seed_dir': str(space.root / 'codex_seeds')}
        inventory = {'codex_runners': {'hosts': {
            HOST: {'codex_auth_runners': runners},
            SINGLE: {'codex_auth_home': str(self.home(SINGLE)), 'codex_auth_seed_content': fake_credentials.dumps(
                single_doc), 'codex_auth_runner_environment': {'systemd_unit': self.unit}},
            API_KEY: {'codex_auth_home': str(self.home(API_KEY)), 'codex_auth_method': 'api_key',
                      'codex_auth_api_key': api_doc['OPENAI_API_KEY'],
                      'codex_auth_runner_environment': {'github_runner_dir': str(self.api_dir)}}},
            'vars': common}}
        self.inventory = write_private(space.root / 'inventory.json', json.dumps(inventory))

    def runner_dir(self, name):
        return self.space.root / 'actions-runners' / name

    def env(self, name):
        return self.runner_dir(name) / '.env'

    def home(self, name):
        return self.space.root / 'homes' / name / '.codex'

    def dropin(self):
        return '/etc/systemd/system/%s.d/codexops-codex-home.conf' % self.unit

    def run(self, limit=HOST, **options):
        return self.space.playbook(str(self.playbook), self.inventory, options.pop('variables', {}),
                                   extra_args=('--limit', limit), label='runner-env', **options)

    def health(self):
        return dict((row['name'], row) for row in json.loads((self.health_dir / ('%s.json' % HOST)).read_text()))

    def cleanup(self):
        shutil.rmtree('/etc/systemd/system/%s.d' % self.unit, ignore_errors=True)


@pytest.fixture
def runners(workspace):
    made = Runners(workspace)
    yield made
    made.cleanup()


def env_state(path):
    st = os.lstat(str(path))
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), path.read_bytes()


def test_github_env_written_once_kept_and_verified(runners):
    before = dict((name, env_state(runners.env(name))) for name in runners.users)
    predicted = runners.run(check=True)
    assert changed_by_host(predicted) == {HOST: 1}
    assert dict((name, env_state(runners.env(name))) for name in runners.users) == before, 'check mode wrote'
    assert '"after": {' in predicted and 'CODEX_HOME=%s' % runners.home('gh-1') in predicted

    first = runners.run()
    assert changed_by_host(first) == {HOST: 1}
    for name, user in runners.users.items():
        uid, gid, mode, data = env_state(runners.env(name))
        assert (uid, gid, mode) == (user.pw_uid, user.pw_gid, 0o640), name
        assert data == OTHER_LINES + b'CODEX_HOME=%s\n' % str(runners.home(name)).encode(), name
        assert sorted(os.listdir(str(runners.runner_dir(name)))) == ['.env'], 'a temp file was left'
    assert 'keep-me' not in first and 'hostedtoolcache' not in first  # no other line in the output

    assert changed_by_host(runners.run()) == {HOST: 0}
    assert changed_by_host(runners.run(check=True)) == {HOST: 0}

    runners.run(variables={'entry': 'verify'})
    assert all(row['healthy'] for row in runners.health().values()), runners.health()

    # The runner user points gh-1's jobs elsewhere: verify names the instance, the found and the configured home.
    runners.env('gh-1').write_bytes(OTHER_LINES + b'CODEX_HOME=/tmp/elsewhere\n')
    runners.run(variables={'entry': 'verify'})
    health = runners.health()
    assert [item['code'] for item in health['gh-1']['problems']] == ['runner_env_codex_home_mismatch']
    assert '/tmp/elsewhere' in health['gh-1']['problems'][0]['message']
    assert str(runners.home('gh-1')) in health['gh-1']['problems'][0]['message']
    assert health['gh-2']['healthy']
    # Provisioning puts it back (one line, the others untouched).
    assert changed_by_host(runners.run()) == {HOST: 1}
    assert env_state(runners.env('gh-1'))[3] == OTHER_LINES + b'CODEX_HOME=%s\n' % str(runners.home('gh-1')).encode()


def test_env_symlink_planted_by_the_runner_is_refused(runners):
    shadow = runners.space.root / 'shadow'
    shadow.write_bytes(b'root:$6$not-a-real-hash:19000:0:99999:7:::\n')
    os.chmod(str(shadow), 0o600)
    planted = runners.env('gh-2')
    planted.unlink()
    os.symlink(str(shadow), str(planted))
    os.lchown(str(planted), runners.users['gh-2'].pw_uid, runners.users['gh-2'].pw_gid)
    output = runners.run(expect_failure=True)
    assert 'gh-2' in output and 'runner_env_file_symlink' in output or 'is a symlink' in output
    assert shadow.read_bytes() == b'root:$6$not-a-real-hash:19000:0:99999:7:::\n'
    assert os.stat(str(shadow)).st_uid == 0 and stat.S_IMODE(os.stat(str(shadow)).st_mode) == 0o600
    # Nothing was written for any instance: the list is refused as a whole.
    assert env_state(runners.env('gh-1'))[3] == OTHER_LINES
    assert not runners.home('gh-1').exists() and not runners.home('gh-2').exists()


def test_bad_runner_environment_is_refused_naming_the_instance(runners):
    with open(str(runners.inventory)) as handle:
        inventory = json.load(handle)
    inventory['codex_runners']['hosts'][HOST]['codex_auth_runners'][1]['runner_environment'] = {
        'systemd_unit': 'etc/evil.service'}
    os.unlink(str(runners.inventory))
    write_private(runners.inventory, json.dumps(inventory))
    output = runners.run(expect_failure=True)
    assert 'gh-2: runner_environment.systemd_unit must be a systemd service name' in output
    assert env_state(runners.env('gh-1'))[3] == OTHER_LINES and not runners.home('gh-1').exists()


@pytest.mark.skipif(not os.path.isdir('/etc/systemd/system'), reason='no /etc/systemd/system on this machine')
@pytest.mark.skipif(os.path.isdir('/run/systemd/system'), reason='systemd runs here: the drop-in test would reload it')
def test_systemd_dropin_without_a_running_systemd(runners):
    first = runners.run(limit=SINGLE)
    assert changed_by_host(first) == {SINGLE: 1}
    with open(runners.dropin(), 'rb') as handle:
        text = handle.read()
    assert b'[Service]\nEnvironment="CODEX_HOME=%s"\n' % str(runners.home(SINGLE)).encode() in text
    st = os.stat(runners.dropin())
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)
    # Notified by the changed seed task, skipped: systemd does not run here (the module's daemon_reload is false).
    handler = first.split('RUNNING HANDLER [codexops.runner.codex_auth : Reload systemd', 1)[1].split('PLAY RECAP')[0]
    assert 'skipping: [runner-0]' in handler and 'changed: [runner-0]' not in handler
    assert changed_by_host(runners.run(limit=SINGLE)) == {SINGLE: 0}
    runners.run(limit=SINGLE, variables={'entry': 'verify'})


def test_api_key_single_runner_writes_its_env(runners):
    first = runners.run(limit=API_KEY)
    assert changed_by_host(first) == {API_KEY: 1}
    env = runners.api_dir / '.env'
    uid, _gid, mode, data = env_state(env)
    assert (uid, mode, data) == (runners.users['gh-1'].pw_uid, 0o600,
                                 b'CODEX_HOME=%s\n' % str(runners.home(API_KEY)).encode())
    assert changed_by_host(runners.run(limit=API_KEY)) == {API_KEY: 0}
