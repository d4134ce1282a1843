"""Mitogen for Ansible (PyPI `mitogen`, pinned in requirements-dev.txt) over the SSH fleet (tests/fleet/fleet.sh).

Under mitogen's strategies a module runs inside a persistent Python interpreter on the host (one per
connection and become user), not in a fresh process: the collection's privilege-separated child
(module_utils/privsep.py) is then forked from that interpreter. These tests run the collection's own
playbooks as a user would, with become (to root, and to the runner user `ci`), the child acting as `ci`
and the real Codex CLI as the oracle:

- mitogen_linear: provision, a second provision that changes nothing, verify with `codex login status` run
  by the runner-user child, the runner user's own view through become, a runner broken by its user found
  and reseeded (the other runner untouched); no test secret in any -vvvv output or report;
- mitogen_free and mitogen_host_pinned (the free strategy family): Ansible refuses provision and verify at
  once (a run_once add_host), before anything is written - see README "Mitogen".

One fleet of two hosts for the file. Needs root (CI runs as root).
"""

import json
import os
import shutil
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
from support.codex import codex_binary  # noqa: E402 pylint: disable=wrong-import-position
from support.leaks import find_leaks  # noqa: E402 pylint: disable=wrong-import-position
from support.local_fleet import changed_by_host  # noqa: E402 pylint: disable=wrong-import-position
from support.private_files import write_private  # noqa: E402 pylint: disable=wrong-import-position
from support.require import require, required  # noqa: E402 pylint: disable=wrong-import-position

FLEET = REPO / 'tests' / 'fleet' / 'fleet.sh'
NAME = 'ptm%d' % os.getpid()  # unique per run: never tears down someone else's fleet
BIN = REPO / '.venv' / 'bin'
# What ansible-core 2.19+ prints for any strategy plugin outside ansible.builtin (README "Mitogen").
STRATEGY_DEPRECATION = ('Use of strategy plugins not included in ansible.builtin are deprecated and do not carry '
                        'any backwards compatibility guarantees.')

_needs_root = required(os.geteuid() == 0, 'the fleet needs root (network namespaces, mounts)')


def run(args, timeout=120, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          check=False, **kw)


def mitogen_strategy_dir():
    """ansible_mitogen's strategy plugins, from the venv's own Python (where requirements-dev.txt installs it)."""
    proc = run([BIN / 'python', '-c', 'import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))'])
    require(proc.returncode == 0, 'mitogen is not installed in the venv: `make venv` (requirements-dev.txt)')
    return str(Path(proc.stdout.strip()) / 'plugins' / 'strategy')


class Fleet:
    def __init__(self, directory, strategies):
        self.dir = Path(directory)
        self.strategies = strategies
        self.inventory = self.dir / 'inventory.yml'
        hosts = yaml.safe_load(self.inventory.read_text())['codex_runners']['hosts']
        self.hosts = list(hosts)
        self.ip = dict((host, hosts[host]['ansible_host']) for host in hosts)
        self.seeds = self.dir / 'codex_seeds'
        self.report_dir = self.dir / 'report'
        self.secrets = []
        self.outputs = []
        self.codex = codex_binary()
        self.extra = {'codex_auth_user': 'ci', 'codex_auth_seed_dir': str(self.seeds),
                      'codex_auth_report_dir': str(self.report_dir), 'codex_auth_fingerprint_salt': 'salt-FAKE-mitogen'}

    def ssh(self, host, command):
        result = run(['ssh', '-F', self.dir / 'ssh_config', 'root@%s' % self.ip[host], command], timeout=60)
        assert result.returncode == 0, '%s: %r failed:\n%s%s' % (host, command, result.stdout, result.stderr)
        return result.stdout

    def playbook(self, playbook, strategy, expect_ok=True, extra=None):
        """ansible-playbook -vvvv under a mitogen strategy; every output is kept for the leak check."""
        env = dict(os.environ, ANSIBLE_STRATEGY_PLUGINS=self.strategies, ANSIBLE_STRATEGY=strategy,
                   ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0', ANSIBLE_RETRY_FILES_ENABLED='0',
                   ANSIBLE_COLLECTIONS_PATH=str(REPO / '.build' / 'collections'),
                   ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false')
        variables = dict(self.extra, **(extra or {}))
        result = run([BIN / 'ansible-playbook', '-vvvv', '-i', self.inventory, playbook, '-e', json.dumps(variables)],
                     timeout=300, env=env, cwd=str(self.dir))
        output = result.stdout + result.stderr
        self.outputs.append(output)
        if expect_ok:
            assert result.returncode == 0, '%s under %s failed:\n%s' % (playbook, strategy, output[-6000:])
            # mitogen ran it: no ssh command line per task (the plain ssh connection logs one per task at -vvvv).
            assert 'SSH: EXEC' not in output and STRATEGY_DEPRECATION in output, output[-3000:]
        return output

    def report(self, name='fleet-report'):
        return json.loads((self.report_dir / ('%s.json' % name)).read_text())

    def auth_digest(self, host):
        return self.ssh(host, 'sha256sum /home/ci/.codex/auth.json 2>/dev/null || echo none').split()[0]


@pytest.fixture(scope='module')
def fleet():
    strategies = mitogen_strategy_dir()
    codex = codex_binary()
    # Short path: ssh ControlPath sockets DIR/cp-<40 hex> must fit in 108 bytes.
    directory = tempfile.mkdtemp(prefix='fleet-mito-', dir='/tmp')
    args = [FLEET, 'up', '--name', NAME, '--hosts', '2', '--dir', directory]
    prefix = str(Path(os.path.abspath(str(codex))).parents[2])  # the pinned CLI's prefix, for the hosts
    if not prefix.startswith('/work/'):
        args += ['--share', prefix]
    result = run(args, timeout=300)
    try:
        assert result.returncode == 0, 'fleet up failed:\n%s%s' % (result.stdout, result.stderr)
        f = Fleet(directory, strategies)
        f.seeds.mkdir(mode=0o700)
        for host in f.hosts:
            doc, secrets = fake_credentials.chatgpt_seed(account_id='acct-%s' % host)
            f.secrets.extend(secrets)
            write_private(f.seeds / ('%s.json' % host), fake_credentials.dumps(doc))
        yield f
        assert find_leaks(f.secrets, f.outputs, root=f.report_dir) == []
    finally:
        down = run([FLEET, 'down', '--name', NAME, '--dir', directory], timeout=120)
        shutil.rmtree(directory, ignore_errors=True)
    assert down.returncode == 0, 'fleet down failed:\n%s%s' % (down.stdout, down.stderr)


# Become to the runner user under mitogen (a second interpreter, as ci, through sudo): what the runner's jobs
# see - the file is theirs and private, and the real Codex accepts it (`login status` reads auth.json, no
# network; bounded all the same, as every Codex run of the tests is).
AS_RUNNER = '''
- name: The runner's own view, through become
  hosts: codex_runners
  gather_facts: false
  become: true
  become_user: ci
  tasks:
    - name: Who we are, and auth.json as the runner sees it
      ansible.builtin.command:
        argv: [sh, -c, 'id -un; stat -c "%U %a" "$HOME/.codex/auth.json"; timeout -k 5 60 "$0" login status 2>&1', CODEX]
      environment:
        CODEX_HOME: /home/ci/.codex
      register: as_runner
      changed_when: false
    - name: Keep it for the test
      ansible.builtin.copy:
        content: "{{ as_runner.stdout }}\\n"
        dest: "REPORT/as-runner-{{ inventory_hostname }}.txt"
        mode: "0644"
      delegate_to: localhost
      become: false
'''


def test_provision_verify_reseed_under_mitogen_linear(fleet):
    first = fleet.playbook('codexops.runner.provision', 'mitogen_linear')
    assert changed_by_host(first) == dict((host, 1) for host in fleet.hosts), first[-3000:]
    again = fleet.playbook('codexops.runner.provision', 'mitogen_linear')
    assert changed_by_host(again) == dict((host, 0) for host in fleet.hosts), again[-3000:]
    for host in fleet.hosts:
        assert fleet.ssh(host, 'stat -c "%U %a" /home/ci/.codex /home/ci/.codex/auth.json').split() == [
            'ci', '700', 'ci', '600']

    # verify, with `codex login status` run by the privilege-separated child as ci (forked from mitogen's
    # persistent interpreter, exec'ing the real CLI).
    fleet.playbook('codexops.runner.verify', 'mitogen_linear',
                   extra={'codex_auth_login_status': True, 'codex_auth_codex_path': fleet.codex})
    report = fleet.report()
    assert report['ok'] and report['totals']['healthy'] == 2 and report['totals']['unknown'] == 0, report
    assert all(row['healthy'] for row in report['hosts']), report

    play = fleet.dir / 'as_runner.yml'
    play.write_text(AS_RUNNER.replace('CODEX', fleet.codex).replace('REPORT', str(fleet.report_dir)))
    fleet.playbook(str(play), 'mitogen_linear')
    for host in fleet.hosts:
        lines = (fleet.report_dir / ('as-runner-%s.txt' % host)).read_text().splitlines()
        assert lines[:2] == ['ci', 'ci 600'] and 'Logged in using ChatGPT' in lines[2:], (host, lines)

    # The runner user breaks its own auth.json; reseed (its verify and its report, then the write) finds it
    # and replaces it alone.
    broken, other = fleet.hosts
    fleet.ssh(broken, "sudo -u ci sh -c 'echo { > /home/ci/.codex/auth.json'")
    untouched = fleet.auth_digest(other)
    fleet.playbook('codexops.runner.reseed', 'mitogen_linear', extra={'codexops_reseed_serial': 1})
    before = fleet.report('before-reseed')
    assert before['broken'] == [broken] and before['problems_by_code'].get('auth_not_json') == [broken], before
    assert fleet.report('after-reseed')['ok']
    assert fleet.auth_digest(other) == untouched
    assert fleet.ssh(broken, 'stat -c "%U %a" /home/ci/.codex/auth.json').split() == ['ci', '600']


def test_free_strategy_is_refused_before_anything_is_written(fleet):
    """The free family (mitogen_free, mitogen_host_pinned, and core's own free and host_pinned) lets each host
    run ahead, so a once-per-play step cannot see the whole fleet: Ansible itself refuses provision's first
    play (run_once add_host), and nothing reaches a host."""
    before = dict((host, fleet.auth_digest(host)) for host in fleet.hosts)
    report = fleet.report_dir / 'fleet-report.json'
    report_before = report.stat().st_mtime_ns if report.exists() else None
    output = fleet.playbook('codexops.runner.provision', 'mitogen_free', expect_ok=False,
                            extra={'codex_auth_replace': 'always'})
    assert "add_host' module bypasses the host loop, which is currently not supported in the free strategy" \
        in output, output[-3000:]
    # verify has no add_host of its own: its first play refuses the free family the same way, by name.
    output = fleet.playbook('codexops.runner.verify', 'mitogen_host_pinned', expect_ok=False)
    assert "add_host' module bypasses the host loop" in output and \
        'Refuse the free strategy family (the fleet report needs every runner' in output, output[-3000:]
    assert (report.stat().st_mtime_ns if report.exists() else None) == report_before  # no report written
    assert dict((host, fleet.auth_digest(host)) for host in fleet.hosts) == before


def test_zz_nothing_left_on_the_hosts(fleet):
    # Runs last: mitogen's interpreters end with their connections (no python left behind as root or ci).
    for host in fleet.hosts:
        left = fleet.ssh(host, 'for i in 1 2 3 4 5 6 7 8 9 10; do out=$(ps -eo user,args --no-headers | grep "[m]itogen")'
                               ' || exit 0; sleep 0.5; done; echo "$out"')
        assert left == '', (host, left)
