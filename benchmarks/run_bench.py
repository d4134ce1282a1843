"""Benchmark: the collection against the hand-written baseline, on a local fleet.

    python benchmarks/run_bench.py --hosts 25 100 [--rounds 2] [--forks 10]

For each fleet size, every job runs cold (empty CODEX_HOMEs) and warm (a second run over the
result); the job order is reversed from one round (and one fleet size) to the next, so drift on
the machine hits all jobs alike. Reported
per job and phase: wall seconds, controller CPU seconds (user+sys of ansible-playbook and every
child, modules included: with a local connection they run on the controller), module executions
per host (counted by a per-host interpreter wrapper that logs each module run: exact, including
the stat a builtin copy runs first), and the ratio baseline/ours.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / 'tests'))

from support import make_seeds  # noqa: E402

BIN = Path(sys.executable).parent
# ours: the provision playbook, whose single round trip per runner returns the verified health and
# ends with the fleet report (provision and verify in one run). ours+verify: provision, then the
# separate verify playbook (one more module run per runner), for comparison.
JOBS = ('baseline', 'ours', 'ours+verify')


def build_fleet(root, size):
    """N hosts with a local connection, each with its own CODEX_HOME and counting interpreter."""
    shutil.rmtree(str(root), ignore_errors=True)
    (root / 'python').mkdir(parents=True)
    (root / 'counts').mkdir()
    hosts = ['runner-%03d' % number for number in range(1, size + 1)]
    make_seeds.main([str(root / 'codex_seeds')] + hosts)
    inventory = {}
    for host in hosts:
        wrapper = root / 'python' / host
        wrapper.write_text('#!/bin/sh\necho >> %s\nexec %s "$@"\n' % (root / 'counts' / host, sys.executable))
        wrapper.chmod(0o755)
        inventory[host] = {'ansible_python_interpreter': str(wrapper),
                           'codex_auth_home': str(root / 'runners' / host / '.codex')}
    user = subprocess.run(['id', '-un'], stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    (root / 'inventory.json').write_text(json.dumps({'codex_runners': {'hosts': inventory, 'vars': {
        'ansible_connection': 'local', 'codex_auth_user': user, 'codexops_become': False,
        'codex_auth_seed_dir': str(root / 'codex_seeds'), 'codex_auth_report_dir': str(root / 'report')}}}))
    return hosts


def reset_homes(root):
    shutil.rmtree(str(root / 'runners'), ignore_errors=True)
    shutil.rmtree(str(root / 'report'), ignore_errors=True)


def module_runs(root, hosts):
    total = 0
    for host in hosts:
        path = root / 'counts' / host
        if path.exists():
            total += len(path.read_text().splitlines())
            path.unlink()
    return total / float(len(hosts))


def run(job, root, hosts, forks):
    env = dict(os.environ, ANSIBLE_PIPELINING='1', ANSIBLE_FORKS=str(forks), ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH=str(REPO / '.build' / 'collections'), ANSIBLE_GATHERING='explicit',
               PATH='%s:%s' % (BIN, os.environ.get('PATH', '')))
    args = ['-i', str(root / 'inventory.json')]
    playbook = str(BIN / 'ansible-playbook')
    cmd = {'baseline': [playbook] + args + [str(HERE / 'baseline.yml')],
           'ours': [playbook] + args + ['codexops.runner.provision'],
           'ours+verify': [str(HERE / 'ours.sh')] + args}[job]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit('%s failed:\n%s' % (job, proc.stdout.decode()[-3000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {'wall': wall, 'cpu': cpu, 'modules_per_host': module_runs(root, hosts)}


def measure(size, rounds, forks, work, flip=0):
    root = work / ('fleet-%d' % size)
    hosts = build_fleet(root, size)
    results = dict(((job, phase), []) for job in JOBS for phase in ('cold', 'warm'))
    for round_number in range(rounds):
        order = JOBS if (round_number + flip) % 2 == 0 else tuple(reversed(JOBS))
        for job in order:
            reset_homes(root)
            results[(job, 'cold')].append(run(job, root, hosts, forks))
            results[(job, 'warm')].append(run(job, root, hosts, forks))
    return results


def mean(items, key):
    return sum(item[key] for item in items) / len(items)


def table(size, results):
    lines = []
    for phase in ('cold', 'warm'):
        base = results[('baseline', phase)]
        for job in JOBS:
            items = results[(job, phase)]
            ratio = '' if job == 'baseline' else ' (%.2fx / %.2fx)' % (
                mean(base, 'wall') / mean(items, 'wall'), mean(base, 'cpu') / mean(items, 'cpu'))
            lines.append('| %d | %s | %s%s | %.1f | %.1f | %.2f | %.1f | %.3f |' % (
                size, phase, job, ratio, mean(items, 'wall'), mean(items, 'cpu'), mean(items, 'modules_per_host'),
                mean(items, 'wall') * 1000 / size, mean(items, 'cpu') / size))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hosts', type=int, nargs='+', default=[25, 100])
    parser.add_argument('--rounds', type=int, default=1)
    parser.add_argument('--forks', type=int, default=10)
    parser.add_argument('--work', default=str(REPO / '.build' / 'bench'))
    options = parser.parse_args()
    work = Path(options.work)
    print('| hosts | phase | job (baseline/job: wall / CPU) | wall s | controller CPU s | module runs/host '
          '| wall ms/host | CPU s/host |')
    print('|---|---|---|---|---|---|---|---|')
    for index, size in enumerate(options.hosts):
        for line in table(size, measure(size, options.rounds, options.forks, work, flip=index)):
            print(line, flush=True)
    print('\nforks=%d, pipelining on, fact gathering off, %d alternating rounds per size; %s'
          % (options.forks, options.rounds, ' '.join(sys.argv)))


if __name__ == '__main__':
    main()
