"""AWX / Automation Controller's way of running the playbooks, for the tests: ansible-runner on a private data
dir laid out as AWX's RunJob lays it out (awx/main/tasks/jobs.py), the artifacts read back as AWX reads them.

- inventory/hosts: the inventory script AWX writes (a Python script printing the inventory as JSON), of one
  slice: the enabled hosts sorted by name, every `count`-th from the `number`-th (Inventory.get_sliced_hosts),
  each group listing only the slice's hosts;
- env/extravars: the job template's extra variables (trusted) and AWX's meta variables (awx_job_id, ...) and
  the artifacts of the previous workflow node, those two dumped `!unsafe` as AWX's safe_dump does;
- env/cmdline: `--ask-vault-pass` (a vault credential without a vault id), env/passwords: the answer to
  `Vault password:` (AWX's expect_passwords), both 0600 as AWX writes every private data file;
- env/envvars, env/settings, project/ (the thin playbooks of docs/awx.md and what the project holds), and
  artifacts/<job id>/ where ansible-runner writes the job events, stdout, the command and the fact cache.

A job's artifacts (set_stats) are the playbook_on_stats event's artifact_data, as AWX's callback takes them; a
sliced job's are its slices' merged in the order they finished (WorkflowJob.get_effective_artifacts), and the
next workflow node gets them as extra variables (WorkflowJobNode.get_job_kwargs).
"""

import json
import os
import shutil
import threading
import time

import yaml

from support.private_files import write_private
from support.workspace import OUTPUT

# The thin playbooks of a project (docs/awx.md, "A project with thin playbooks").
PLAYBOOKS = ('provision', 'verify', 'merge_slices')
VAULT_PROMPT = r'Vault password:\s*?$'


def slice_hosts(hosts, number, count):
    """The hosts of slice `number` of `count` (1-based), as AWX cuts an inventory: sorted by name, every
    count-th from the number-th."""
    ordered = sorted(hosts)
    return ordered[number - 1::count] if count > 1 else ordered


class _UnsafeDumper(yaml.SafeDumper):
    """AWX's SafeStringDumper: every string `!unsafe`, so Ansible never templates it."""

    def represent_data(self, data):
        if isinstance(data, str):
            return self.represent_scalar('!unsafe', data)
        return super(_UnsafeDumper, self).represent_data(data)


def awx_extravars(trusted, untrusted):
    """env/extravars as AWX writes it: the job template's own variables as they are, the rest `!unsafe`."""
    parts = [yaml.safe_dump({key: value}, default_flow_style=False) for key, value in trusted.items()]
    parts += [yaml.dump({key: value}, Dumper=_UnsafeDumper, default_flow_style=False)
              for key, value in untrusted.items() if key not in trusted]
    return ''.join(parts)


class AwxJob(object):
    """One job: its private data dir, its run, its outcome."""

    def __init__(self, controller, job_id, playbook, slice_number=1, slice_count=1, extra_vars=None,
                 artifacts=None, verbosity=0, check=False):
        self.controller = controller
        self.id = job_id
        self.playbook = playbook
        self.slice = (slice_number, slice_count)
        self.dir = controller.root / ('awx_%d_job' % job_id)
        self.hosts = slice_hosts(controller.hosts, slice_number, slice_count)
        self.report_dir = self.dir / 'project' / 'codex-report'
        self.runner = None
        self._build(dict(extra_vars or {}), dict(artifacts or {}), verbosity, check)

    def _build(self, extra_vars, artifacts, verbosity, check):
        controller = self.controller
        os.mkdir(str(self.dir), 0o700)
        for sub in ('inventory', 'env'):
            os.mkdir(str(self.dir / sub), 0o700)
        shutil.copytree(str(controller.project), str(self.dir / 'project'))  # a project sync per job, as AWX's
        groups = dict((name, {'hosts': [host for host in hosts if host in self.hosts], 'vars': variables})
                      for name, (hosts, variables) in controller.groups.items())
        script = dict(groups, all={'children': sorted(groups)},
                      _meta={'hostvars': dict((host, controller.hostvars[host]) for host in self.hosts)})
        write_private(self.dir / 'inventory' / 'hosts', '#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint(%r)\n'
                      % json.dumps(script), mode=0o700)
        # Paths in the job's project: /runner/project in an execution environment, here the private data dir's.
        trusted = dict(controller.template_vars, codex_auth_report_dir=str(self.report_dir),
                       codex_auth_seed_dir=str(self.dir / 'project' / 'codex_seeds'))
        trusted.update(extra_vars)
        meta = {'awx_job_id': self.id, 'tower_job_id': self.id, 'awx_job_launch_type': 'workflow'}
        meta.update(artifacts)
        write_private(self.dir / 'env' / 'extravars', awx_extravars(trusted, meta))
        cmdline = (['--ask-vault-pass', '--forks=5'] + (['-' + 'v' * verbosity] if verbosity else [])
                   + (['--check'] if check else []))  # the job type Check
        write_private(self.dir / 'env' / 'cmdline', ' '.join(cmdline))
        write_private(self.dir / 'env' / 'passwords', json.dumps({VAULT_PROMPT: controller.vault_password}))
        write_private(self.dir / 'env' / 'envvars', json.dumps(controller.envvars))
        write_private(self.dir / 'env' / 'settings', json.dumps({'job_timeout': 300, 'suppress_ansible_output': True,
                                                                 'pexpect_timeout': 5}))

    def start(self):
        """ansible_runner.run_async, as the execution node's `ansible-runner worker` runs a job."""
        import ansible_runner  # pylint: disable=import-outside-toplevel
        self.started = time.monotonic()
        thread, self.runner = ansible_runner.run_async(
            private_data_dir=str(self.dir), playbook='%s.yml' % self.playbook, ident=str(self.id),
            inventory=str(self.dir / 'inventory' / 'hosts'), fact_cache_type='jsonfile', quiet=True)
        self._thread = thread
        return self

    def wait(self, timeout=240):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), 'AWX job %d (%s) did not finish in %d s' % (self.id, self.playbook, timeout)
        self.finished = time.monotonic()
        self.controller.space.outputs.append(self.stdout())
        log_dir = self.controller.log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / ('%s-job%d-%s.log' % (self.controller.space.name, self.id, self.playbook))).write_text(self.stdout())
        return self

    def run(self):
        return self.start().wait()

    @property
    def status(self):
        return self.runner.status

    def stdout(self):
        path = self.artifact_dir / 'stdout'
        return path.read_text() if path.exists() else ''

    @property
    def artifact_dir(self):
        return self.dir / 'artifacts' / str(self.id)

    def events(self):
        return list(self.runner.events)

    def artifacts(self):
        """The job's artifacts as AWX stores them: the stats event's artifact_data (set_stats, per_host false)."""
        stats = [event for event in self.events() if event.get('event') == 'playbook_on_stats']
        assert len(stats) == 1, 'job %d has %d stats events' % (self.id, len(stats))
        return stats[0]['event_data'].get('artifact_data') or {}

    def ran_on(self):
        """The hosts a task of this job ran on (its runner_on_* events)."""
        return sorted(set(event['event_data']['host'] for event in self.events()
                          if event.get('event', '').startswith('runner_on_') and event['event_data'].get('host')
                          and event['event_data']['host'] != 'localhost'))

    def interval(self):
        """When ansible-playbook ran, by its first and last event (the callback's timestamps)."""
        created = sorted(event['created'] for event in self.events() if event.get('created'))
        return created[0], created[-1]

    def report(self):
        return json.loads((self.report_dir / 'fleet-report.json').read_text())


class AwxController(object):
    """An AWX organization in miniature: one project (thin playbooks + vault-encrypted seeds), one inventory
    (group codex_runners and its variables), a vault credential, job template variables; jobs numbered as AWX
    numbers them."""

    def __init__(self, space, hosts, hostvars, group_vars, template_vars, vault_password, collections, envvars):
        self.space = space
        self.root = space.root
        self.hosts = list(hosts)
        self.hostvars = hostvars
        self.groups = {'codex_runners': (self.hosts, group_vars)}
        self.template_vars = template_vars
        self.vault_password = vault_password
        self.envvars = dict(envvars, ANSIBLE_COLLECTIONS_PATH=str(collections))
        self.log_dir = OUTPUT / 'logs'  # where every playbook test keeps its logs (tests/output, gitignored)
        self.project = self.root / 'project'
        self.project.mkdir()
        for name in PLAYBOOKS:
            (self.project / ('%s.yml' % name)).write_text(
                '---\n- name: codexops.runner.%s\n  ansible.builtin.import_playbook: codexops.runner.%s\n' % (name, name))
        self.jobs = []
        self._next = 100
        self._lock = threading.Lock()

    def job(self, playbook, **kwargs):
        with self._lock:
            self._next += 1
            job = AwxJob(self, self._next, playbook, **kwargs)
        self.jobs.append(job)
        return job

    def sliced(self, playbook, count, **kwargs):
        """A sliced job template launched: `count` jobs, one per slice, started together and run in parallel."""
        jobs = [self.job(playbook, slice_number=number, slice_count=count, **kwargs) for number in range(1, count + 1)]
        for job in jobs:
            job.start()
        return [job.wait() for job in jobs]


def workflow_artifacts(jobs):
    """What the next workflow node gets from a (sliced) job node: each job's artifacts, merged in the order the
    jobs finished (WorkflowJob.get_effective_artifacts: a later one wins a key both have)."""
    merged = {}
    for job in sorted(jobs, key=lambda job: (job.finished, job.id)):
        merged.update(job.artifacts())
    return merged
