"""Benchmark: the collection against the hand-written baseline, on a local fleet.

    python benchmarks/run_bench.py [--suite all|hosts|instances] [--hosts 25 100]
                                   [--instances 1 4 16] [--instance-hosts 1] [--rounds 2] [--forks 10]

Suite `hosts`: for each fleet size, N hosts of one runner each (baseline.yml). Suite `instances`:
--instance-hosts hosts (default one) with 1, 4, 16 runner instances each (codex_auth_runners,
baseline_instances.yml: the baseline's tasks looped over the instances), plus a verify phase (the
verify playbook against the baseline's check tasks alone). Every job runs cold (empty CODEX_HOMEs)
and warm (a second run over the result); the job order is reversed from one round (and one size)
to the next, so drift on the machine hits all jobs alike. Reported per job and phase: wall
seconds, controller CPU seconds (user+sys of ansible-playbook and every child, modules included:
with a local connection they run on the controller), module executions per host (counted by a
per-host interpreter wrapper that logs each module run: exact, including the stat a builtin copy
runs first), and the ratio baseline/ours. Everything a size creates (fake seeds, CODEX_HOMEs,
reports, wrappers) is under --work (fleet-N, instances-N) and removed when the size is measured; the
runners are the current user, so no user is created.

--mitogen (suite hosts) adds the job `ours (mitogen)`: the provision playbook under Mitogen for Ansible's
mitogen_linear strategy (the `mitogen` package of requirements-dev.txt), and a verify phase over the warm
state: the baseline's check tasks alone, the verify playbook, and the verify playbook under mitogen_linear.
Mitogen runs every module inside one persistent interpreter per host, started once through the counting
wrapper: its module runs per host are not counted (shown as n/a).
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
PHASES = ('cold', 'warm', 'verify')
# The verify phase, run over the warm state: the baseline's check tasks alone (stat, slurp, assert per
# runner), the floor (floor.yml: one bare module run per host, nothing else) and the verify playbook (one
# codex_auth_verify per host, then the fleet report).
VERIFY_JOBS = ('baseline', 'floor', 'ours')
INSTANCE_PARENT = 'actions-runner-%s'
MITOGEN = 'ours (mitogen)'


def mitogen_env():
    """ANSIBLE_STRATEGY_PLUGINS / ANSIBLE_STRATEGY for Mitogen's mitogen_linear (README: Mitogen)."""
    try:
        import ansible_mitogen  # pylint: disable=import-outside-toplevel
    except ImportError:
        sys.exit('--mitogen needs the mitogen package in this venv (requirements-dev.txt): make venv')
    return {'ANSIBLE_STRATEGY_PLUGINS': os.path.join(os.path.dirname(ansible_mitogen.__file__), 'plugins', 'strategy'),
            'ANSIBLE_STRATEGY': 'mitogen_linear'}


def instance_names(count):
    return ['gh-%02d' % number for number in range(1, count + 1)]


def instance_home(root, host, name):
    """An instance's CODEX_HOME, in its own runner directory (which exists before provisioning)."""
    return root / 'runners' / host / (INSTANCE_PARENT % name) / '.codex'


def build_fleet(root, size, instances=0):
    """N hosts with a local connection, each with its own CODEX_HOME and counting interpreter; with
    instances, each host has that many runner instances (codex_auth_runners), each its own CODEX_HOME
    and seed (codex_seeds/<host>/<instance>.json), all as the current user."""
    shutil.rmtree(str(root), ignore_errors=True)
    (root / 'python').mkdir(parents=True)
    (root / 'counts').mkdir()
    hosts = ['runner-%03d' % number for number in range(1, size + 1)]
    if not instances:
        make_seeds.main([str(root / 'codex_seeds')] + hosts)
    inventory = {}
    for host in hosts:
        wrapper = root / 'python' / host
        wrapper.write_text('#!/bin/sh\necho >> %s\nexec %s "$@"\n' % (root / 'counts' / host, sys.executable))
        wrapper.chmod(0o755)
        inventory[host] = {'ansible_python_interpreter': str(wrapper)}
        if instances:
            names = instance_names(instances)
            make_seeds.main([str(root / 'codex_seeds' / host)] + names)
            inventory[host]['codex_auth_runners'] = [
                {'name': name, 'codex_home': str(instance_home(root, host, name))} for name in names]
        else:
            inventory[host]['codex_auth_home'] = str(root / 'runners' / host / '.codex')
    user = subprocess.run(['id', '-un'], stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    groups = {'codex_runners': {'hosts': inventory, 'vars': {
        'ansible_connection': 'local', 'codex_auth_user': user, 'codexops_become': False,
        'codex_auth_seed_dir': str(root / 'codex_seeds'), 'codex_auth_report_dir': str(root / 'report')}}}
    if instances:
        # The controller counted too (the fleet report's module runs, delegated to localhost): a cost per
        # play, whatever the number of hosts and instances.
        wrapper = root / 'python' / 'localhost'
        wrapper.write_text('#!/bin/sh\necho >> %s\nexec %s "$@"\n' % (root / 'counts' / 'localhost', sys.executable))
        wrapper.chmod(0o755)
        groups['ungrouped'] = {'hosts': {'localhost': {'ansible_connection': 'local',
                                                       'ansible_python_interpreter': str(wrapper)}}}
    (root / 'inventory.json').write_text(json.dumps(groups))
    return hosts


def reset_homes(root, hosts, instances=0):
    shutil.rmtree(str(root / 'runners'), ignore_errors=True)
    shutil.rmtree(str(root / 'report'), ignore_errors=True)
    for host in hosts:
        for name in instance_names(instances):
            instance_home(root, host, name).parent.mkdir(parents=True)


def module_runs(root, hosts):
    total = 0
    for host in hosts:
        path = root / 'counts' / host
        if path.exists():
            total += len(path.read_text().splitlines())
            path.unlink()
    return total / float(len(hosts))


def run(job, root, hosts, forks, instances=0, phase='provision', profile=None):
    env = dict(os.environ, ANSIBLE_PIPELINING='1', ANSIBLE_FORKS=str(forks), ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH=str(REPO / '.build' / 'collections'), ANSIBLE_GATHERING='explicit',
               PATH='%s:%s' % (BIN, os.environ.get('PATH', '')))
    args = ['-i', str(root / 'inventory.json')]
    playbook = str(BIN / 'ansible-playbook')
    baseline = str(HERE / ('baseline_instances.yml' if instances else 'baseline.yml'))
    # The local connection hands the controller's environment to every module run, which a runner reached over SSH
    # never sees. PYTHONUNBUFFERED (set on many CI machines and containers, this one included) makes the module's
    # interpreter read its pipelined source from stdin one byte per read(), a cost that grows with the payload and
    # would be charged to whichever job ships the larger module (README Performance: the bench's module environment).
    env.pop('PYTHONUNBUFFERED', None)
    if job == MITOGEN:
        env.update(mitogen_env())
    if profile:
        env.update(ANSIBLE_CALLBACK_PLUGINS=str(HERE / 'callback_plugins'), ANSIBLE_CALLBACKS_ENABLED='bench_profile',
                   CODEXOPS_BENCH_PROFILE=str(profile))
    if phase == 'verify':
        cmd = {'baseline': [playbook] + args + ['--tags', 'verify', baseline],
               'floor': [playbook] + args + [str(HERE / 'floor.yml')],
               'ours': [playbook] + args + ['codexops.runner.verify'],
               MITOGEN: [playbook] + args + ['codexops.runner.verify']}[job]
    else:
        cmd = {'baseline': [playbook] + args + [baseline],
               'ours': [playbook] + args + ['codexops.runner.provision'],
               'ours+verify': [str(HERE / 'ours.sh')] + args,
               MITOGEN: [playbook] + args + ['codexops.runner.provision']}[job]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit('%s failed:\n%s' % (job, proc.stdout.decode()[-3000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {'wall': wall, 'cpu': cpu, 'modules_per_host': module_runs(root, hosts),
            'controller_modules': module_runs(root, ['localhost'])}


def measure(size, rounds, forks, work, flip=0, instances=0, mitogen=False, profile=False):
    """Every job cold then warm, then the verify phase over the warm state, in alternating order; with
    `profile`, one more pass of every job and phase under the bench_profile callback (not timed: the
    callback's own cost stays out of the rows), kept under results[('profile', job, phase)]. The size's
    directory is removed at the end, whatever happens."""
    root = work / (('instances-%d' % instances) if instances else ('fleet-%d' % size))
    jobs, verify_jobs = (JOBS + (MITOGEN,), VERIFY_JOBS + (MITOGEN,)) if mitogen else (JOBS, VERIFY_JOBS)
    try:
        hosts = build_fleet(root, size, instances)
        results = dict(((job, phase), []) for job in jobs + verify_jobs for phase in PHASES)
        for round_number in range(rounds + (1 if profile else 0)):
            profiling = round_number == rounds
            order = jobs if (round_number + flip) % 2 == 0 else tuple(reversed(jobs))
            for job in order:
                reset_homes(root, hosts, instances)
                for phase in ('cold', 'warm'):
                    measured = run(job, root, hosts, forks, instances, profile=root / 'profile.json' if profiling else None)
                    keep(results, job, phase, measured, root if profiling else None)
                if job != 'ours':
                    continue
                # The verify phase over ours' warm state (the baseline's own state is the same files).
                for verify_job in (verify_jobs if (round_number + flip) % 2 == 0 else tuple(reversed(verify_jobs))):
                    measured = run(verify_job, root, hosts, forks, instances, 'verify',
                                   profile=root / 'profile.json' if profiling else None)
                    keep(results, verify_job, 'verify', measured, root if profiling else None)
        return dict((key, value) for key, value in results.items() if value)
    finally:
        shutil.rmtree(str(root), ignore_errors=True)


def keep(results, job, phase, measured, profiled_in=None):
    if profiled_in is None:
        results[(job, phase)].append(measured)
    else:
        results[('profile', job, phase)] = json.loads((profiled_in / 'profile.json').read_text())


def mean(items, key):
    return sum(item[key] for item in items) / len(items)


def table(size, results, runners=None, controller=False):
    """Rows per phase and job; `size` is the first column (hosts, or instances per host), `runners`
    divides the per-runner columns (the hosts, or every instance of every host); `controller` adds
    the module runs on the controller (per play: the fleet report). A verify row also says how far
    it is above the floor (floor.yml: one bare module run per host)."""
    runners = runners or size
    lines = []
    for phase in PHASES:
        if ('baseline', phase) not in results:
            continue
        base, floor = results[('baseline', phase)], results.get(('floor', phase))
        for job in (JOBS if phase != 'verify' else VERIFY_JOBS) + (MITOGEN,):
            items = results.get((job, phase))
            if not items:
                continue
            ratio = '' if job == 'baseline' else ' (%.2fx / %.2fx)' % (
                mean(base, 'wall') / mean(items, 'wall'), mean(base, 'cpu') / mean(items, 'cpu'))
            if floor and job not in ('baseline', 'floor'):
                ratio += ' [%.2f / %.2f of the floor]' % (
                    mean(items, 'wall') / mean(floor, 'wall'), mean(items, 'cpu') / mean(floor, 'cpu'))
            # Mitogen starts one interpreter per host through the counting wrapper, then runs every module in it.
            modules = 'n/a' if job == MITOGEN else '%.2f' % mean(items, 'modules_per_host')
            line = '| %d | %s | %s%s | %.1f | %.1f | %s | %.1f | %.3f |' % (
                size, phase, job, ratio, mean(items, 'wall'), mean(items, 'cpu'), modules,
                mean(items, 'wall') * 1000 / runners, mean(items, 'cpu') / runners)
            if controller:
                line += ' %.0f |' % mean(items, 'controller_modules')
            lines.append(line)
    return lines


def fit(points):
    """Least squares of CPU against runners: (fixed cost per run, cost per runner)."""
    count = float(len(points))
    mean_x = sum(point[0] for point in points) / count
    mean_y = sum(point[1] for point in points) / count
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = covariance / sum((point[0] - mean_x) ** 2 for point in points)
    return mean_y - slope * mean_x, slope


def cost_table(by_size):
    """Per job and phase, over the fleet sizes: CPU per runner (the slope) and the fixed cost of a run (the
    intercept: playbook start, plays, run_once tasks, the report), from a straight line through every size."""
    lines = ['| phase | job | CPU s per runner | fixed CPU s per run | wall ms per runner | fixed wall s per run |',
             '|---|---|---|---|---|---|']
    keys = sorted(set(key for results in by_size.values() for key in results if key[0] != 'profile'),
                  key=lambda key: (PHASES.index(key[1]), key[0]))
    for job, phase in keys:
        points = [(size, results[(job, phase)]) for size, results in sorted(by_size.items()) if (job, phase) in results]
        if len(points) < 2:
            continue
        cpu_fixed, cpu_slope = fit([(size, mean(items, 'cpu')) for size, items in points])
        wall_fixed, wall_slope = fit([(size, mean(items, 'wall')) for size, items in points])
        lines.append('| %s | %s | %.3f | %.1f | %.0f | %.1f |' % (
            phase, job, cpu_slope, cpu_fixed, wall_slope * 1000, wall_fixed))
    return lines


def profile_table(size, results, top=12):
    """The costliest tasks of each profiled job and phase (bench_profile callback): where the time goes."""
    lines = []
    for key in sorted(key for key in results if key[0] == 'profile'):
        job, phase = key[1], key[2]
        profile = results[key]
        lines.append('\n%d runners, %s, %s: %.1f s wall, %.1f s CPU in all' % (
            size, phase, job, profile['wall'], profile['cpu']))
        lines.append('| task (play) | host runs | wall s | CPU s | CPU ms per host run |')
        lines.append('|---|---|---|---|---|')
        for row in sorted(profile['tasks'], key=lambda row: -row['cpu'])[:top]:
            lines.append('| %s (%s) | %d | %.2f | %.2f | %s |' % (
                row['task'], row['play'][:40], row['hosts'], row['wall'], row['cpu'],
                '%.0f' % (row['cpu'] * 1000 / row['hosts']) if row['hosts'] else '-'))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--suite', choices=('all', 'hosts', 'instances'), default='all',
                        help='hosts: N hosts of one runner; instances: runner instances per host; all: both')
    parser.add_argument('--hosts', type=int, nargs='+', default=[25, 100], help='fleet sizes (suite hosts)')
    parser.add_argument('--instances', type=int, nargs='+', default=[1, 4, 16],
                        help='runner instances per host (suite instances)')
    parser.add_argument('--instance-hosts', type=int, default=1, help='hosts of the instances suite')
    parser.add_argument('--rounds', type=int, default=1)
    parser.add_argument('--forks', type=int, default=10)
    parser.add_argument('--work', default=str(REPO / '.build' / 'bench'))
    parser.add_argument('--mitogen', action='store_true',
                        help='suite hosts: also the provision and verify playbooks under mitogen_linear')
    parser.add_argument('--profile', action='store_true',
                        help='one more, untimed pass of every job under the bench_profile callback: the costliest tasks')
    options = parser.parse_args()
    work = Path(options.work)
    footer = 'forks=%d, pipelining on, fact gathering off, %d alternating rounds per size; %s' % (
        options.forks, options.rounds, ' '.join(sys.argv))
    if options.suite in ('all', 'hosts'):
        print('| hosts | phase | job (baseline/job: wall / CPU) | wall s | controller CPU s | module runs/host '
              '| wall ms/host | CPU s/host |')
        print('|---|---|---|---|---|---|---|---|')
        by_size, profiles = {}, []
        for index, size in enumerate(options.hosts):
            by_size[size] = measure(size, options.rounds, options.forks, work, flip=index, mitogen=options.mitogen,
                                    profile=options.profile)
            for line in table(size, by_size[size]):
                print(line, flush=True)
            profiles.extend(profile_table(size, by_size[size]))
        print('\n' + footer + '\n', flush=True)
        if len(by_size) > 1:
            print('\n'.join(cost_table(by_size)) + '\n', flush=True)
        if profiles:
            print('\n'.join(profiles) + '\n', flush=True)
    if options.suite in ('all', 'instances'):
        hosts = options.instance_hosts
        print('| instances/host | phase | job (baseline/job: wall / CPU) | wall s | controller CPU s '
              '| module runs/host | wall ms/instance | CPU s/instance | module runs on the controller |')
        print('|---|---|---|---|---|---|---|---|---|')
        profiles = []
        for index, count in enumerate(options.instances):
            results = measure(hosts, options.rounds, options.forks, work, flip=index, instances=count,
                              profile=options.profile)
            for line in table(count, results, runners=count * hosts, controller=True):
                print(line, flush=True)
            profiles.extend(profile_table(count * hosts, results))
        print('\n%d host(s); %s' % (hosts, footer), flush=True)
        if profiles:
            print('\n'.join(profiles) + '\n', flush=True)


if __name__ == '__main__':
    main()
