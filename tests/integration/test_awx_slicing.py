"""The playbooks run as AWX / Automation Controller runs them, through ansible-runner on an AWX-style private data
dir (tests/support/awx_jobs.py), and a sliced run that gives the fleet verdict of one unsliced run.

Four local runners (runner-1 .. runner-4, one CODEX_HOME each), their seeds vault-encrypted in the project and
the vault password given as AWX gives it: `--ask-vault-pass`, answered from env/passwords. runner-1 and runner-2
share one refresh token; sliced in two as AWX slices (sorted by name, every second host) they land in different
slices (1: runner-1, runner-3; 2: runner-2, runner-4), so neither slice can see the pair. The workflow's
aggregation node, codexops.runner.merge_slices, gets the slices' reports as AWX hands a job's set_stats artifacts
to the next node, and must give the unsliced run's verdict.
"""

import json
import os
import sys

import pytest

from support import fake_credentials
from support.awx_jobs import AwxController, slice_hosts, workflow_artifacts
from support.leaks import secret_needles
from support.require import require
from support.runner_access import runner_owner
from support.workspace import COLLECTIONS

HOSTS = ['runner-%d' % number for number in range(1, 5)]
SHARED = ['runner-1', 'runner-2']
VAULT_PASSWORD = 'awx-vault-credential-FAKE-pw-7c1e'
SALT = 'awx-fleet-salt-FAKE-3f9a'

try:
    import ansible_runner  # noqa: F401 pylint: disable=unused-import
    HAVE_RUNNER = True
except ImportError:
    HAVE_RUNNER = False


def vault_encrypt(text, password):
    from ansible.parsing.vault import VaultLib, VaultSecret  # pylint: disable=import-outside-toplevel
    return VaultLib().encrypt(text, secret=VaultSecret(password.encode())).decode()


@pytest.fixture
def awx(workspace):
    require(HAVE_RUNNER, 'ansible-runner is not installed (requirements-dev.txt has it: make venv)')
    workspace.remember([VAULT_PASSWORD, SALT])
    hostvars = dict((host, {'codex_auth_home': str(workspace.root / 'runners' / host / '.codex')}) for host in HOSTS)
    group_vars = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                  'codex_auth_user': runner_owner(),
                  'codex_auth_codex_environment': {'CODEX_AUTHAPI_BASE_URL': workspace.backend.base_url}}
    # What a credential injects as extra variables: the fleet's fingerprint salt, the same for every slice.
    template_vars = {'codex_auth_fingerprint_salt': SALT}
    env = workspace.env()
    envvars = dict((name, env[name]) for name in ('ANSIBLE_COLLECTIONS_SCAN_SYS_PATH', 'ANSIBLE_LOCAL_TEMP',
                                                  'ANSIBLE_REMOTE_TEMP', 'ANSIBLE_NOCOLOR',
                                                  'ANSIBLE_DEPRECATION_WARNINGS'))
    controller = AwxController(workspace, HOSTS, hostvars, group_vars, template_vars, VAULT_PASSWORD, COLLECTIONS,
                               envvars)
    # The seeds: vault-encrypted files in the project (docs/awx.md), codex_auth_seed_dir in the job's project.
    seeds = controller.project / 'codex_seeds'
    seeds.mkdir(mode=0o700)
    docs = {}
    for host in HOSTS:
        if host == SHARED[1]:
            docs[host] = docs[SHARED[0]]  # one codex login given to two runners
        else:
            docs[host], secrets = fake_credentials.chatgpt_seed(account_id='acct-%s' % host)
            workspace.remember(secrets)
        (seeds / ('%s.json' % host)).write_text(vault_encrypt(fake_credentials.dumps(docs[host]), VAULT_PASSWORD))
    return controller


def verdict(report):
    """A fleet report without what differs between two runs of the same fleet."""
    return dict((key, value) for key, value in report.items() if key not in ('generated_at', 'merged_reports'))


def artifact_leaks(jobs, space):
    """Every file under each job's artifacts/ that holds a secret (any: the artifacts are shown by AWX and kept
    after the job), and the number of files read."""
    needles = [needle.encode() for needle in secret_needles(space.secrets)]
    found, read = [], 0
    for job in jobs:
        for path in sorted((job.dir / 'artifacts').rglob('*')):
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            read += 1
            found += ['%s holds a secret (%s...)' % (path, needle[:12].decode()) for needle in needles if needle in data]
    return found, read


def test_the_playbooks_run_through_ansible_runner_and_write_no_secret_to_the_artifacts(awx, workspace):
    provision = awx.job('provision', verbosity=4).run()
    # The shared pair is refused before anything is written, as with ansible-playbook: the vault prompt was
    # answered (the seeds were decrypted and compared) and the job ran on every runner.
    assert provision.status == 'failed', provision.stdout()[-3000:]
    assert 'Vault password' in provision.stdout()
    assert 'runner-1 and runner-2' in provision.stdout()
    assert not any((workspace.root / 'runners' / host / '.codex' / 'auth.json').exists() for host in HOSTS)

    # Without the shared pair (runner-2 out of the job template's hosts), provision then verify succeed.
    limited = {'codexops_hosts': 'codex_runners:!runner-2'}
    provision = awx.job('provision', verbosity=4, extra_vars=limited).run()
    assert provision.status == 'successful', provision.stdout()[-3000:]
    verify = awx.job('verify', verbosity=4, extra_vars=limited).run()
    assert verify.status == 'successful', verify.stdout()[-3000:]
    assert verify.ran_on() == ['runner-1', 'runner-3', 'runner-4']
    report = verify.report()
    assert report['ok'] and report['totals']['healthy'] == 3
    # The job's artifact for the next workflow node: its report, under its AWX job id.
    published = verify.artifacts()['codexops_fleet_report_%d' % verify.id]
    assert published['playbook'] == 'verify' and published['job_id'] == verify.id
    assert verdict(json.loads(published['report'])) == verdict(report)
    # A Check job writes no report file, and publishes its own report all the same (the fact, never a file).
    checked = awx.job('verify', extra_vars=limited, check=True).run()
    assert checked.status == 'successful', checked.stdout()[-3000:]
    assert not checked.report_dir.exists()
    published = checked.artifacts()['codexops_fleet_report_%d' % checked.id]
    assert published['playbook'] == 'verify' and published['job_id'] == checked.id
    assert verdict(json.loads(published['report'])) == verdict(report)

    # What ansible-runner writes there: the events, stdout and stderr, the command with its environment, rc and
    # status (and the fact cache AWX turns on, which stays empty: the playbooks gather and cache no facts).
    assert {'job_events', 'stdout', 'stderr', 'command', 'rc', 'status'} <= set(
        path.name for path in verify.artifact_dir.iterdir())
    leaks, read = artifact_leaks(awx.jobs, workspace)
    assert read >= 3 * 10, 'too few artifact files to prove anything: %d' % read
    assert leaks == []
    # The scan can find what is there: a runner's (salted, not secret) fingerprint is in the job events.
    fingerprint = [row for row in report['hosts'] if row['host'] == 'runner-1'][0]['refresh_token_fingerprint']
    assert any(fingerprint in path.read_text() for path in (verify.artifact_dir / 'job_events').iterdir())


def test_a_sliced_run_merged_by_the_workflow_gives_the_verdict_of_one_unsliced_run(awx, workspace):
    assert [slice_hosts(HOSTS, number, 2) for number in (1, 2)] == [['runner-1', 'runner-3'], ['runner-2', 'runner-4']]

    # Sliced provision: neither slice sees the pair, so neither refuses it; both write their runners.
    provision = awx.sliced('provision', 2)
    for job, hosts in zip(provision, (['runner-1', 'runner-3'], ['runner-2', 'runner-4'])):
        assert job.status == 'successful', job.stdout()[-3000:]
        assert job.ran_on() == hosts
        assert job.report()['ok'] and job.report()['sharing'] == []
    assert all((workspace.root / 'runners' / host / '.codex' / 'auth.json').exists() for host in HOSTS)
    # The aggregation node after the sliced provision finds the pair.
    merged_provision = awx.job('merge_slices', artifacts=workflow_artifacts(provision)).run()
    assert merged_provision.status == 'failed'
    assert merged_provision.report()['sharing'] == SHARED
    assert merged_provision.ran_on() == []  # on the controller alone

    # One unsliced verify: the reference verdict.
    unsliced = awx.job('verify').run()
    assert unsliced.status == 'failed'
    reference = unsliced.report()
    # A verify that fails still publishes its report (the merge is needed most then).
    assert verdict(json.loads(unsliced.artifacts()['codexops_fleet_report_%d' % unsliced.id]['report'])) == verdict(reference)
    assert reference['sharing'] == SHARED and list(reference['shared_fingerprints'].values()) == [SHARED]

    # Sliced verify, two jobs in parallel: each alone reports no sharing and succeeds.
    slices = awx.sliced('verify', 2)
    for job in slices:
        assert job.status == 'successful', job.stdout()[-3000:]
        assert job.report()['ok'] and job.report()['sharing'] == [] and job.report()['totals']['runners'] == 2
    (start_1, end_1), (start_2, end_2) = [job.interval() for job in slices]
    assert start_1 < end_2 and start_2 < end_1, 'the slices did not run in parallel'

    # The aggregation node after the sliced verify gets the artifacts of every node before it (AWX accumulates
    # them: the provision slices' reports too) and merges the latest playbook's, verify's.
    artifacts = workflow_artifacts(provision)
    artifacts.update(workflow_artifacts(slices))
    assert len(artifacts) == 4
    merged = awx.job('merge_slices', artifacts=artifacts).run()
    assert merged.status == 'failed'
    assert '2 slice reports of verify' in merged.stdout()
    report = merged.report()
    assert report['merged_reports'] == 2
    assert verdict(report) == verdict(reference)
    assert 'shared refresh tokens [[%s]]' % ', '.join("'%s'" % host for host in SHARED) in merged.stdout()

    # Without AWX's artifacts: the slices' report files (each slice's own report directory), the same verdict.
    from_files = awx.job('merge_slices', extra_vars={
        'codexops_fleet_report_files': [str(job.report_dir / 'fleet-report.json') for job in slices]}).run()
    assert from_files.status == 'failed'
    assert verdict(from_files.report()) == verdict(reference)

    # A slice that never reported: its hosts are unknown, never silently left out.
    partial = awx.job('merge_slices', artifacts=slices[0].artifacts()).run()
    assert partial.status == 'failed'
    assert partial.report()['unknown'] == ['runner-2', 'runner-4']

    leaks, _read = artifact_leaks(awx.jobs, workspace)
    assert leaks == []
    assert all(os.stat(str(job.dir / 'env' / 'passwords')).st_mode & 0o077 == 0 for job in awx.jobs)
    json.dumps([job.artifacts() for job in awx.jobs])  # the artifacts are plain JSON, as AWX stores them
