# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The job-time round trip on the runner (issue 21): codex-job-credential, installed as the
codex_job_hooks role installs it, run by the hooks as GitHub's and GitLab's runners call them, as the
runner user, against the real OpenBao and moto servers, with the store credential the role's
least-privilege policy allows (Vault: the rendered HCL policy itself; moto checks only the actions)."""

import ast
import json
import os
import threading
import uuid

from job_hooks_support import MODULE_UTILS, VaultSide, role_defaults, role_vars
from job_hooks_support import layout, side  # noqa: F401 pylint: disable=unused-import
from store_harness import SECRETS, auth_file, new_name
from support import leaks

RACE_RUNS = 50


def no_leak(*completed):
    outputs = []
    for item in completed:
        outputs.extend([item.stdout.decode('utf-8', 'replace'), item.stderr.decode('utf-8', 'replace')])
    assert leaks.find_leaks(SECRETS, outputs) == []


def make_runner(layout, side, name, instance=None, **extra):
    return layout.runner(instance or 'runner-%s' % uuid.uuid4().hex[:8], side.kind, name, side.section(name), **extra)


def test_the_installed_files_are_closed_under_their_imports():
    """The role installs module_utils files as they are: every collection import they make is installed."""
    installed = set(role_vars()['__codex_job_hooks_module_utils'])
    for name in installed:
        with open(os.path.join(MODULE_UTILS, name)) as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('ansible_collections.'):
                assert node.module.startswith('ansible_collections.codexops.runner.plugins.module_utils'), \
                    '%s imports %s, which the runner does not get' % (name, node.module)
                if node.module.endswith('.module_utils'):
                    needed = ['%s.py' % alias.name for alias in node.names]
                else:
                    needed = ['%s.py' % node.module.rsplit('.', 1)[1]]
                assert set(needed) <= installed, '%s needs %s' % (name, needed)
            elif isinstance(node, ast.Import):
                assert not any(alias.name.startswith(('ansible', 'hvac', 'boto')) for alias in node.names), name


def test_restore_then_writeback_through_the_github_hooks(layout, side):
    name = new_name('job')
    seed = auth_file(180)
    side.harness.seed(name, seed)
    runner = make_runner(layout, side, name)
    started = runner.github_hook('started')
    assert started.returncode == 0, started.stdout
    assert started.result['action'] == 'restored' and started.result['code'] is None
    assert runner.auth() == seed
    home_stat, auth_stat = os.stat(runner.home), os.stat(os.path.join(runner.home, 'auth.json'))
    assert home_stat.st_mode & 0o777 == 0o700 and auth_stat.st_mode & 0o777 == 0o600
    assert auth_stat.st_uid == home_stat.st_uid != 0 or os.geteuid() != 0
    assert os.path.exists(os.path.join(runner.home, 'auth.json.lock')), "Codex's lock files are taken"
    versions = side.harness.versions(name)

    refreshed = auth_file(1)  # what Codex leaves after refreshing during the job
    runner.put_auth(refreshed)
    completed = runner.github_hook('completed')
    assert completed.returncode == 0, completed.stdout
    assert completed.result['action'] == 'stored' and completed.result['written'] is True
    assert side.harness.raw(name)[0].encode('utf-8') == refreshed
    assert side.harness.versions(name) == versions + 1

    again = runner.github_hook('completed')
    assert again.returncode == 0 and again.result['action'] == 'unchanged' and not again.result['written']
    assert side.harness.versions(name) == versions + 1, 'byte-identical: no new version'
    restored_again = runner.github_hook('started')
    assert restored_again.returncode == 0 and restored_again.result['action'] == 'unchanged'
    no_leak(started, completed, again, restored_again)


def test_an_older_file_is_refused_and_a_newer_runner_file_is_kept(layout, side):
    name = new_name('job')
    newer = auth_file(5)
    side.harness.seed(name, newer)
    runner = make_runner(layout, side, name)
    runner.put_auth(auth_file(120))
    state = side.harness.state(name)
    refused = runner.command('writeback')
    assert refused.returncode == 0, 'an older copy is the normal loser of a race, not a failure'
    assert refused.result['action'] == 'refuse' and refused.result['code'] == 'runner_older'
    assert side.harness.state(name) == state and side.harness.raw(name)[0].encode('utf-8') == newer
    # Restore replaces the runner's older file with the store's newer copy...
    restored = runner.command('restore')
    assert restored.returncode == 0 and restored.result['action'] == 'restored' and runner.auth() == newer
    # ...and keeps a runner file that is newer than the store's.
    newest = auth_file(1)
    runner.put_auth(newest)
    kept = runner.command('restore')
    assert kept.returncode == 0 and kept.result['action'] == 'kept' and kept.result['code'] == 'runner_older'
    assert runner.auth() == newest
    no_leak(refused, restored, kept)


def test_future_foreign_and_broken_files_are_refused_with_exit_3(layout, side):
    name = new_name('job')
    stored = auth_file(30)
    side.harness.seed(name, stored)
    runner = make_runner(layout, side, name)
    state = side.harness.state(name)
    for data, code in ((auth_file(-60), 'runner_from_future'),
                       (auth_file(1, account='acct-fake-other'), 'runner_identity_changed'),
                       (b'{"tokens": ', 'runner_file_invalid')):
        runner.put_auth(data)
        refused = runner.command('writeback')
        assert (refused.returncode, refused.result['code']) == (3, code), refused.stdout
        assert side.harness.state(name) == state
        no_leak(refused)
    os.unlink(os.path.join(runner.home, 'auth.json'))
    missing = runner.command('writeback')
    assert (missing.returncode, missing.result['code']) == (3, 'auth_missing')
    assert side.harness.state(name) == state


def test_errors_have_the_store_codes_and_write_nothing(layout, side):
    name = new_name('job')
    runner = make_runner(layout, side, name)
    missing = runner.github_hook('started')
    assert missing.returncode == 1 and missing.result['code'] == 'store_secret_missing', missing.stdout
    assert runner.auth() is None

    # The runner's credential is scoped to its own secret: another runner's is out of reach.
    other = new_name('other')
    side.harness.seed(other, auth_file(60))
    other_state = side.harness.state(other)
    config = json.load(open(runner.config_path))
    config['secret'] = other
    runner.write_config(config)
    runner.put_auth(auth_file(1))
    denied_read = runner.command('restore')
    denied_write = runner.command('writeback')
    if side.kind == 'vault':  # (moto checks IAM actions, not the secret's ARN)
        assert denied_read.result['code'] == 'store_permission_denied' and denied_read.returncode == 1
        assert denied_write.result['code'] == 'store_permission_denied' and denied_write.returncode == 1
        assert side.harness.state(other) == other_state

    config['secret'] = name
    section = 'vault' if side.kind == 'vault' else 'aws'
    config[section] = dict(config[section], **({'url': 'http://127.0.0.1:9'} if side.kind == 'vault'
                                               else {'endpoint_url': 'http://127.0.0.1:9'}))
    runner.write_config(config)
    unreachable = runner.command('writeback')
    assert unreachable.returncode == 1 and unreachable.result['code'] == 'store_unreachable'

    runner.write_config(config, mode=0o644)
    loose = runner.command('restore')
    assert loose.returncode == 1 and loose.result['code'] == 'config_invalid'
    no_leak(missing, denied_read, denied_write, unreachable, loose)


def test_concurrent_writebacks_the_newer_wins(layout, side):
    """Two jobs of the same runner instance finish at once with copies of different ages: the newer
    copy is in the store afterwards, every run (check-and-set, one re-read, the one verdict)."""
    name = new_name('race')
    section = side.section(name)
    older_runner = layout.runner('race-old-%s' % uuid.uuid4().hex[:6], side.kind, name, section)
    newer_runner = layout.runner('race-new-%s' % uuid.uuid4().hex[:6], side.kind, name, section)
    outcomes = {}
    for run in range(RACE_RUNS):
        side.harness.seed(name, auth_file(600 - run)) if run == 0 else None
        base_age = 300 - run * 2
        older, newer = auth_file(base_age + 1), auth_file(base_age)
        older_runner.put_auth(older)
        newer_runner.put_auth(newer)
        results = {}
        barrier = threading.Barrier(2)

        def job(who, runner):
            barrier.wait(30)
            results[who] = runner.command('writeback')

        threads = [threading.Thread(target=job, args=item)
                   for item in (('older', older_runner), ('newer', newer_runner))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert side.harness.raw(name)[0].encode('utf-8') == newer, 'run %d: %r' % (
            run, {who: item.result for who, item in results.items()})
        for who, item in results.items():
            assert item.returncode == 0, (run, who, item.stdout)
            key = (who, item.result['action'], item.result.get('code'), item.result.get('cas_lost'))
            outcomes[key] = outcomes.get(key, 0) + 1
    print('\n%s races (%d runs): %s' % (side.kind, RACE_RUNS, sorted(outcomes.items())))


def test_the_gitlab_hooks_wrap_the_job_and_their_exit_status_counts(layout, side):
    name = new_name('gitlab')
    seed = auth_file(60)
    side.harness.seed(name, seed)
    runner = make_runner(layout, side, name)
    refreshed = auth_file(1)
    # The job's script stands for Codex: it finds the restored file and leaves a refreshed one.
    job = ('cmp -s "$HOME/.codex/auth.json" %s && cp %s "$HOME/.codex/.refresh" && '
           'mv "$HOME/.codex/.refresh" "$HOME/.codex/auth.json"' % (layout_copy(layout, seed), layout_copy(layout, refreshed)))
    done = runner.gitlab_job(job)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert side.harness.raw(name)[0].encode('utf-8') == refreshed
    # A restore that fails (no such secret) fails the job before its script runs.
    broken = make_runner(layout, side, new_name('gitlab-missing'))
    failed = broken.gitlab_job('touch "$HOME/job-ran"')
    assert failed.returncode != 0 and not os.path.exists(os.path.join(os.path.dirname(broken.home), 'job-ran'))
    no_leak(done, failed)


def layout_copy(layout, data):
    """`data` in a file the runner user can read (the job compares the restored file with it)."""
    path = os.path.join(layout.base, 'expected-%s' % uuid.uuid4().hex[:8])
    with open(path, 'wb') as handle:
        handle.write(data)
    os.chmod(path, 0o644)
    return path


def test_defaults_fail_a_job_on_restore_errors_only():
    defaults = role_defaults()
    assert defaults['codex_job_hooks_fail_job_on_restore_error'] is True
    assert defaults['codex_job_hooks_fail_job_on_writeback_error'] is False


def test_vault_approle_from_the_config_and_a_wrong_secret_id(layout, openbao):
    side = VaultSide(openbao)
    root = side.harness.root
    if 'approle/' not in root.sys.list_auth_methods()['data']:
        root.sys.enable_auth_method('approle')
    name = new_name('job-approle')
    side.harness.seed(name, auth_file(60))
    token_section = side.section(name)  # creates the role's rendered policy for this secret
    policy = root.lookup_token(token_section['token'])['data']['policies']
    role = 'codexops-job-%s' % uuid.uuid4().hex[:8]
    root.auth.approle.create_or_update_approle(role, token_policies=[p for p in policy if p != 'default'],
                                               token_ttl='10m')
    role_id = root.auth.approle.read_role_id(role)['data']['role_id']
    secret_id = root.auth.approle.generate_secret_id(role)['data']['secret_id']
    SECRETS.extend([secret_id])
    runner = layout.runner('approle-%s' % uuid.uuid4().hex[:6], 'vault', name,
                           {'url': openbao.url, 'role_id': role_id, 'secret_id': secret_id})
    restored = runner.github_hook('started')
    assert restored.returncode == 0 and restored.result['action'] == 'restored', restored.stdout
    runner.put_auth(auth_file(1))
    stored = runner.github_hook('completed')
    assert stored.returncode == 0 and stored.result['action'] == 'stored', stored.stdout
    config = json.load(open(runner.config_path))
    config['vault']['secret_id'] = 'fake-wrong-secret-id'
    runner.write_config(config)
    refused = runner.command('restore')
    assert (refused.returncode, refused.result['code']) == (1, 'store_permission_denied')
    no_leak(restored, stored, refused)


def test_credentials_from_the_environment_the_ci_runner_starts_the_hook_with(layout, side):
    """An empty credential section: VAULT_ADDR/VAULT_TOKEN, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/
    AWS_REGION/AWS_ENDPOINT_URL, from the runner service's environment (never argv)."""
    name = new_name('job-env')
    side.harness.seed(name, auth_file(60))
    section = side.section(name)
    runner = layout.runner('env-%s' % uuid.uuid4().hex[:6], side.kind, name, {})
    env = runner.github_env()
    if side.kind == 'vault':
        env.update(VAULT_ADDR=section['url'], VAULT_TOKEN=section['token'])
    else:
        env.update(AWS_ACCESS_KEY_ID=section['access_key_id'], AWS_SECRET_ACCESS_KEY=section['secret_access_key'],
                   AWS_REGION=section['region'], AWS_ENDPOINT_URL=section['endpoint_url'])
    restored = runner.github_hook('started', env)
    assert restored.returncode == 0 and restored.result['action'] == 'restored', restored.stdout
    missing = runner.github_hook('started', runner.github_env())
    assert missing.returncode == 1 and missing.result['code'] in ('store_options_invalid', 'store_permission_denied')
    no_leak(restored, missing)
