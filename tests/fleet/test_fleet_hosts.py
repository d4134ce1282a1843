"""tests/fleet/fleet.sh: a 3-host SSH fleet in network namespaces, checked host by host and
through Ansible, then torn down.

Needs root (network namespaces, mounts). The fleet is brought up once for the module.
"""

import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO / 'tests') not in sys.path:
    sys.path.insert(0, str(REPO / 'tests'))

from support import fake_credentials  # noqa: E402 pylint: disable=wrong-import-position
from support.codex import CODEX_VERSION, codex_binary  # noqa: E402 pylint: disable=wrong-import-position
from support.private_files import write_private  # noqa: E402 pylint: disable=wrong-import-position
from support.require import required  # noqa: E402 pylint: disable=wrong-import-position

FLEET = REPO / 'tests' / 'fleet' / 'fleet.sh'
HOSTS = 3
NAME = 'ptf%d' % os.getpid()  # unique per run: never tears down someone else's fleet
HOST_NAMES = ['%s-%d' % (NAME, i) for i in range(1, HOSTS + 1)]
# Test ids must not carry the PID: pytest-xdist workers collect separately and must agree.
HOST_IDS = ['host%d' % i for i in range(1, HOSTS + 1)]

# A developer without root may skip; CI runs as root, and there a missing root must fail loudly.
_needs_root = required(os.geteuid() == 0, 'the fleet needs root (network namespaces, mounts)')


def run(args, timeout=120, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          check=False, **kw)


def ansible_bin():
    for candidate in (REPO / '.venv' / 'bin' / 'ansible', shutil.which('ansible')):
        if candidate and os.access(str(candidate), os.X_OK):
            return str(candidate)
    pytest.fail('ansible not found: run `make venv`')


def namespaces():
    out = run(['ip', 'netns', 'list']).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def file_digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Fleet:
    def __init__(self, directory, inventory):
        self.dir = Path(directory)
        self.inventory = inventory
        self.ssh_config = self.dir / 'ssh_config'
        hosts = inventory['codex_runners']['hosts']
        self.hosts = list(hosts)
        self.ip = {h: hosts[h]['ansible_host'] for h in hosts}

    def ssh(self, host, command, check=True):
        result = run(['ssh', '-F', self.ssh_config, 'root@%s' % self.ip[host], command], timeout=60)
        if check:
            assert result.returncode == 0, '%s: %r failed (%d):\n%s%s' % (
                host, command, result.returncode, result.stdout, result.stderr)
        return result

    def down(self):
        return run([FLEET, 'down', '--name', NAME, '--dir', self.dir], timeout=120)


@pytest.fixture(scope='module')
def fleet():
    codex = codex_binary()
    passwd_before = file_digest('/etc/passwd')
    hostname_before = socket.gethostname()
    root_ssh_before = os.path.exists('/root/.ssh')
    # Short path: ssh ControlPath sockets DIR/cp-<40 hex> must fit in 108 bytes.
    directory = tempfile.mkdtemp(prefix='fleet-', dir='/tmp')
    args = [FLEET, 'up', '--name', NAME, '--hosts', HOSTS, '--dir', directory]
    # The hosts see /work (and everything else on / copy-on-write) but get their own /root,
    # /home and /tmp: share the checkout and the Codex CLI when they live there.
    for path in sorted({str(REPO), str(Path(os.path.abspath(str(codex))).parents[2])}):
        if not path.startswith('/work/'):
            args += ['--share', path]
    result = run(args, timeout=300)
    try:
        assert result.returncode == 0, 'fleet up failed:\n%s%s' % (result.stdout, result.stderr)
        inventory = yaml.safe_load((Path(directory) / 'inventory.yml').read_text())
        f = Fleet(directory, inventory)
        f.codex = codex
        f.passwd_before = passwd_before
        f.hostname_before = hostname_before
        f.root_ssh_before = root_ssh_before
        yield f
    finally:
        down = run([FLEET, 'down', '--name', NAME, '--dir', directory], timeout=120)
        assert down.returncode == 0, 'fleet down failed:\n%s%s' % (down.stdout, down.stderr)
        shutil.rmtree(directory, ignore_errors=True)


def test_inventory(fleet):
    group = fleet.inventory['codex_runners']
    assert group['vars'] == {'codex_runner_user': 'ci'}
    assert fleet.hosts == HOST_NAMES
    assert len(set(fleet.ip.values())) == HOSTS
    for host in fleet.hosts:
        hv = group['hosts'][host]
        assert hv['ansible_user'] == 'root'
        assert hv['ansible_ssh_private_key_file'] == str(fleet.dir / 'id_ed25519')
        assert 'ControlPath=%s/cp-%%C' % fleet.dir in hv['ansible_ssh_common_args']
        assert 'UserKnownHostsFile=%s/known_hosts' % fleet.dir in hv['ansible_ssh_common_args']
        assert os.access(hv['ansible_python_interpreter'], os.X_OK)


@pytest.mark.parametrize('index', range(HOSTS), ids=HOST_IDS)
def test_own_hostname(fleet, index):
    host = HOST_NAMES[index]
    assert fleet.ssh(host, 'hostname').stdout.strip() == host
    assert socket.gethostname() == fleet.hostname_before


def test_home_etc_tmp_are_per_host(fleet):
    one, two = fleet.hosts[0], fleet.hosts[1]
    fleet.ssh(one, 'echo from-1 > /home/ci/x && chown ci: /home/ci/x && echo e > /etc/fleet-x'
                   ' && echo t > /tmp/fleet-x && echo r > /root/fleet-x')
    assert fleet.ssh(one, 'cat /home/ci/x').stdout.strip() == 'from-1'
    for path in ('/home/ci/x', '/etc/fleet-x', '/tmp/fleet-x', '/root/fleet-x'):
        assert fleet.ssh(two, 'test -e %s' % path, check=False).returncode == 1, path
    for path in ('/etc/fleet-x', '/tmp/fleet-x', '/root/fleet-x'):
        assert not os.path.exists(path), path


@pytest.mark.parametrize('index', range(HOSTS), ids=HOST_IDS)
def test_runner_user_exists_only_on_the_host(fleet, index):
    out = fleet.ssh(HOST_NAMES[index], 'id ci; getent passwd ci').stdout.splitlines()
    assert out[0].startswith('uid=1001(ci) gid=1001(ci)'), out
    assert out[1] == 'ci:x:1001:1001::/home/ci:/bin/bash', out
    assert fleet.ssh(HOST_NAMES[index], 'stat -c %U /home/ci').stdout.strip() == 'ci'
    # The real machine's account files are untouched (whatever accounts it has, a `ci` of its own included:
    # test_hosts_get_their_own_runner_user_whatever_the_controller_has).
    assert file_digest('/etc/passwd') == fleet.passwd_before
    assert os.path.exists('/root/.ssh') == fleet.root_ssh_before


@pytest.mark.parametrize('index', range(HOSTS), ids=HOST_IDS)
def test_sudo_to_runner_user(fleet, index):
    assert fleet.ssh(HOST_NAMES[index], 'sudo -u ci id -un').stdout.strip() == 'ci'


@pytest.mark.parametrize('index', range(HOSTS), ids=HOST_IDS)
def test_python(fleet, index):
    host = HOST_NAMES[index]
    python = fleet.inventory['codex_runners']['hosts'][host]['ansible_python_interpreter']
    out = fleet.ssh(host, "%s -c 'import sys; print(sys.version_info[0])' && python3 -V" % python).stdout
    assert out.splitlines()[0] == '3'


@pytest.mark.parametrize('index', range(HOSTS), ids=HOST_IDS)
def test_codex_runs_on_the_host(fleet, index):
    out = fleet.ssh(HOST_NAMES[index], '%s --version' % shlex.quote(str(fleet.codex))).stdout.strip()
    assert out == 'codex-cli %s' % CODEX_VERSION


def ansible(fleet, *args):
    env = dict(os.environ, ANSIBLE_PIPELINING='1', ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
               ANSIBLE_DEPRECATION_WARNINGS='0')
    result = run([ansible_bin(), '-i', fleet.dir / 'inventory.yml', 'codex_runners'] + list(args),
                 timeout=300, env=env, cwd=str(fleet.dir))
    assert result.returncode == 0, 'ansible failed:\n%s%s' % (result.stdout, result.stderr)
    return result.stdout


def test_ansible_ping(fleet):
    out = ansible(fleet, '-m', 'ansible.builtin.ping')
    for host in fleet.hosts:
        assert re.search(r'^%s \| SUCCESS => \{[^}]*"ping": "pong"' % re.escape(host), out, re.M), out


def test_ansible_become_runner_user(fleet):
    out = ansible(fleet, '-m', 'ansible.builtin.command', '-a', 'id -un', '--become', '--become-user', 'ci')
    for host in fleet.hosts:
        assert re.search(r'^%s \| CHANGED \| rc=0 >>\nci$' % re.escape(host), out, re.M), out


CONTROLLER_ACCOUNTS = {
    # A controller with accounts of its own where the fleet puts its runner user: a `ci` with another
    # uid, home and shell, and another user on the runner's uid 1001.
    'passwd': ['ci:x:1500:1500:controller ci:/srv/ci-controller:/bin/sh', 'alice:x:1001:1001::/home/alice:/bin/bash'],
    'group': ['ci:x:1500:', 'alice:x:1001:'],
    'shadow': ['ci:!:19000:0:99999:7:::', 'alice:!:19000:0:99999:7:::'],
    'gshadow': ['ci:!::', 'alice:!::'],
}
# Runs inside `unshare --mount`: the controller's account files, with CONTROLLER_ACCOUNTS added, are bound
# over /etc/* in that mount namespace only, so the real files never change. fleet.sh copies them into the
# host from there.
WITH_CONTROLLER_ACCOUNTS = r'''
set -eu
fake=$1 fleet=$2 name=$3 dir=$4
# The host's network namespace is bound under /run/netns in this mount namespace only: it must be torn
# down from here too, or its sshd outlives the test.
trap '"$fleet" down --name "$name" --dir "$dir" >/dev/null' EXIT
for f in passwd group shadow gshadow; do
    [ -e "/etc/$f" ] || continue
    mount --bind "$fake/$f" "/etc/$f"
done
getent passwd ci alice | sed 's/^/controller: /'
"$fleet" up --name "$name" --hosts 1 --dir "$dir"
ip=$(sed -n 's/^ *ansible_host: //p' "$dir/inventory.yml")
ssh -F "$dir/ssh_config" "root@$ip" 'id ci; getent passwd ci; getent passwd 1001; getent group ci; stat -c %U:%G /home/ci; sudo -u ci id -un'
'''


def test_hosts_get_their_own_runner_user_whatever_the_controller_has(tmp_path):
    name = 'ptfacct%d' % os.getpid()
    directory = tempfile.mkdtemp(prefix='fleet-acct-', dir='/tmp')
    fake = tmp_path / 'etc'
    fake.mkdir()
    for base, lines in CONTROLLER_ACCOUNTS.items():
        if os.path.exists('/etc/' + base):
            original = Path('/etc/' + base).read_text()
            kept = [line for line in original.splitlines() if line.split(':')[0] not in ('ci', 'alice')]
            (fake / base).write_text('\n'.join(kept + lines) + '\n')
            (fake / base).chmod(os.stat('/etc/' + base).st_mode & 0o777)
    before = {base: file_digest('/etc/' + base) for base in CONTROLLER_ACCOUNTS if os.path.exists('/etc/' + base)}
    try:
        result = run(['unshare', '--mount', '--propagation', 'private', 'bash', '-c', WITH_CONTROLLER_ACCOUNTS, 'bash',
                      fake, FLEET, name, directory], timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout.splitlines()
        assert 'controller: ci:x:1500:1500:controller ci:/srv/ci-controller:/bin/sh' in out, out
        host = out[out.index('controller: alice:x:1001:1001::/home/alice:/bin/bash') + 1:]
        assert host == ['uid=1001(ci) gid=1001(ci) groups=1001(ci)', 'ci:x:1001:1001::/home/ci:/bin/bash',
                        'ci:x:1001:1001::/home/ci:/bin/bash', 'ci:x:1001:', 'ci:ci', 'ci'], out
    finally:
        down = run([FLEET, 'down', '--name', name, '--dir', directory], timeout=120)
        shutil.rmtree(directory, ignore_errors=True)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not {'%s-1' % name} & namespaces()
    assert {base: file_digest('/etc/' + base) for base in before} == before
    # No host process is left behind (it would be sshd in the host's own PID namespace).
    left = [pid for pid in os.listdir('/proc') if pid.isdigit() and
            ('H=%s-1' % name).encode() in _environ(pid)]
    assert left == [], 'fleet host processes left behind: %s' % left


def _environ(pid):
    try:
        with open('/proc/%s/environ' % pid, 'rb') as handle:
            return handle.read().split(b'\0')
    except OSError:
        return []


def playbook(fleet, inventory, name, extra, expect_ok=True):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0', ANSIBLE_DEPRECATION_WARNINGS='0',
               ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_COLLECTIONS_PATH=str(REPO / '.build' / 'collections'),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false')
    command = [str(Path(ansible_bin()).parent / 'ansible-playbook'), '-i', str(inventory),
               'codexops.runner.%s' % name, '-e', json.dumps(extra)]
    result = run(command, timeout=600, env=env, cwd=str(fleet.dir))
    if expect_ok:
        assert result.returncode == 0, '%s failed:\n%s%s' % (name, result.stdout, result.stderr)
    return result


def test_an_unreachable_runner_is_unknown_and_left_alone_by_reseed(fleet, tmp_path):
    """Real SSH hosts: provision all three, then one stops answering SSH. verify calls it unknown
    (code `unreachable`), never broken; reseed queues nobody and touches no host."""
    seeds = tmp_path / 'codex_seeds'
    seeds.mkdir(mode=0o700)
    for host in fleet.hosts:
        doc, _secrets = fake_credentials.chatgpt_seed(account_id='acct-%s' % host)
        write_private(seeds / ('%s.json' % host), fake_credentials.dumps(doc))
    report = tmp_path / 'report'
    extra = {'codex_auth_user': 'ci', 'codex_auth_seed_dir': str(seeds), 'codex_auth_report_dir': str(report),
             'codex_auth_fingerprint_salt': 'salt-FAKE-fleet'}
    playbook(fleet, fleet.dir / 'inventory.yml', 'provision', extra)

    # The third host's sshd port is closed for Ansible: a connection to one of our own addresses is refused.
    down = fleet.hosts[2]
    inventory = yaml.safe_load((fleet.dir / 'inventory.yml').read_text())
    inventory['codex_runners']['hosts'][down]['ansible_port'] = 1
    unreachable_inventory = tmp_path / 'inventory.yml'
    unreachable_inventory.write_text(yaml.safe_dump(inventory))

    verified = playbook(fleet, unreachable_inventory, 'verify', extra, expect_ok=False)
    assert verified.returncode != 0  # an unknown host fails verify
    fleet_report = json.loads((report / 'fleet-report.json').read_text())
    rows = dict((row['host'], row) for row in fleet_report['hosts'])
    # A single runner's row: its runner_host is the host, no instance (issue 20's rows per instance).
    assert rows[down] == {'host': down, 'runner_host': down, 'instance': None, 'healthy': None,
                          'problems': ['unreachable']}
    assert fleet_report['unknown'] == [down] and fleet_report['unreachable'] == [down]
    assert fleet_report['broken'] == [] and fleet_report['needs_reseed'] == []
    assert fleet_report['totals']['healthy'] == 2
    markdown = (report / 'fleet-report.md').read_text()
    assert '**3 hosts: 2 healthy, 0 broken, 0 sharing a refresh token, 0 stale, 1 unknown (1 unreachable).**' in markdown

    before = dict((host, fleet.ssh(host, 'sha256sum /home/ci/.codex/auth.json').stdout)
                  for host in fleet.hosts[:2])
    reseeded = playbook(fleet, unreachable_inventory, 'reseed', extra, expect_ok=False)
    reseed_play = reseeded.stdout.split('PLAY [Reseed, a few runners at a time]', 1)[1].split('PLAY [', 1)[0]
    assert 'skipping: no hosts matched' in reseed_play and 'Reseed this runner' not in reseed_play, reseeded.stdout
    after = json.loads((report / 'before-reseed.json').read_text())
    assert after['needs_reseed'] == [] and after['unreachable'] == [down]
    for host in fleet.hosts[:2]:
        assert fleet.ssh(host, 'sha256sum /home/ci/.codex/auth.json').stdout == before[host]
        assert fleet.ssh(host, 'ls /home/ci/.codex').stdout.count('.bak') == 0


def test_zz_down_removes_everything(fleet):
    # Runs last in this module: after it the fixture's own `down` is a no-op.
    assert set(HOST_NAMES) <= namespaces()
    result = fleet.down()
    assert result.returncode == 0, result.stdout + result.stderr
    assert not set(HOST_NAMES) & namespaces()
    assert not (fleet.dir / 'hosts').exists()
    assert not (fleet.dir / 'inventory.yml').exists()
    assert not list(fleet.dir.glob('cp-*'))
    assert not Path('/run/fleet-sh/%s.env' % NAME).exists()
    mountinfo = Path('/proc/self/mountinfo').read_text()
    assert str(fleet.dir) not in mountinfo
    links = run(['ip', '-o', 'link', 'show']).stdout
    bridge = 'fb' + hashlib.sha1(NAME.encode()).hexdigest()[:8]
    assert bridge not in links
    # No process is left chrooted into a host (a zombie waiting for its reaper holds nothing).
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            root = os.readlink('/proc/%s/root' % pid)
        except OSError:
            continue
        assert not root.startswith(str(fleet.dir)), 'process %s still runs in %s' % (pid, root)
