"""provision / verify / reseed through `ansible-playbook codexops.runner.<name>` on a local fleet.

A local fleet is several inventory hosts with a local connection, each with its own CODEX_HOME;
ownership is tested for real when the tests run as root (the runner user is then `nobody`).
"""

import json
import os
import shutil
import stat

import pytest

from support.local_fleet import LocalFleet, changed_by_host, file_identity


@pytest.fixture
def fleet(workspace):
    return LocalFleet(workspace, 3)


def test_provision_check_then_run_then_idempotent_then_verify(fleet):
    for host in fleet.hosts:
        fleet.seed(host)
    predicted = fleet.run('provision', check=True)
    assert all(not fleet.home(host).exists() for host in fleet.hosts), 'check mode wrote something'
    assert set(changed_by_host(predicted).values()) == {1}
    first = fleet.run('provision')
    assert set(changed_by_host(first).values()) == {1}
    for host in fleet.hosts:
        assert stat.S_IMODE(os.stat(str(fleet.home(host))).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(str(fleet.auth(host))).st_mode) == 0o600
    again = fleet.run('provision')
    assert set(changed_by_host(again).values()) == {0}
    fleet.run('verify')
    report = fleet.report()
    assert report['ok'] and report['totals'] == {'hosts': 3, 'runners': 3, 'healthy': 3, 'broken': 0, 'sharing': 0,
                                                 'stale': 0, 'unknown': 0, 'unreachable': 0, 'shared_tokens': 0}
    markdown = (fleet.report_dir / 'fleet-report.md').read_text()
    assert all('| %s | chatgpt | healthy |' % host in markdown for host in fleet.hosts)


def test_same_seed_on_two_hosts_is_refused_before_any_write(fleet):
    doc = fleet.seed('runner-1')
    fleet.seed('runner-2', doc)
    fleet.seed('runner-3')
    output = fleet.run('provision', expect_failure=True)
    assert 'runner-1 and runner-2' in output
    assert all(not fleet.auth(host).exists() for host in fleet.hosts), 'a host was written'


def test_seed_equal_to_another_hosts_current_token_is_refused(fleet):
    for host in fleet.hosts:
        fleet.seed(host)
    fleet.run('provision')
    before = dict((host, file_identity(fleet.auth(host))) for host in fleet.hosts)
    # runner-3 is re-imaged (no auth.json) and someone hands it runner-1's seed.
    shutil.rmtree(str(fleet.home('runner-3')))
    fleet.seed('runner-3', json.loads(fleet.auth('runner-1').read_text()))
    output = fleet.run('provision', expect_failure=True)
    assert 'runner-1 and runner-3' in output
    assert not fleet.auth('runner-3').exists()
    assert all(file_identity(fleet.auth(host)) == before[host] for host in ('runner-1', 'runner-2'))


@pytest.mark.parametrize('damage', ['refresh_token_deleted', 'mode_0644', 'malformed_json'])
def test_verify_names_the_broken_host_and_reseed_repairs_exactly_it(fleet, damage):
    for host in fleet.hosts:
        fleet.seed(host)
    fleet.run('provision')
    broken = 'runner-2'
    path = fleet.auth(broken)
    expected_code = {'refresh_token_deleted': 'refresh_token_missing', 'mode_0644': 'auth_mode_bits',
                     'malformed_json': 'auth_not_json'}[damage]
    if damage == 'refresh_token_deleted':
        doc = json.loads(path.read_text())
        del doc['tokens']['refresh_token']
        path.write_text(json.dumps(doc))
    elif damage == 'mode_0644':
        os.chmod(str(path), 0o644)
    else:
        path.write_text('{"tokens": {')
    untouched = dict((host, file_identity(fleet.auth(host))) for host in fleet.hosts if host != broken)

    output = fleet.run('verify', expect_failure=True)
    assert 'broken (%s)' % broken in output
    report = fleet.report()
    assert report['broken'] == [broken]
    assert report['problems_by_code'][expected_code] == [broken]
    assert '| %s | ' % broken in (fleet.report_dir / 'fleet-report.md').read_text()

    fleet.run('reseed', codexops_reseed_serial=1)
    assert fleet.report('after-reseed')['ok']
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600
    assert all(file_identity(fleet.auth(host)) == untouched[host] for host in untouched)
    fleet.run('verify')
    assert fleet.report()['ok']


def test_verify_reports_what_breaks_runs_in_practice(workspace):
    from support.codex import codex_binary  # pylint: disable=import-outside-toplevel
    env_file = workspace.root / 'runner.env'
    env_file.write_text('RUNNER_NAME=ci-1\nexport OPENAI_API_KEY=sk-FAKE-left-over-from-a-test\n')
    env_file.chmod(0o600)  # a file with a key in it is private, or it is a leak of its own
    workspace.remember(['sk-FAKE-left-over-from-a-test'])
    fleet = LocalFleet(workspace, 2, codex_auth_environment_files=[str(env_file)], codex_auth_login_status=True,
                       codex_auth_codex_path=codex_binary())
    for host in fleet.hosts:
        fleet.seed(host)
    # The seed run's summary is verify's, environment included: provisioning already says what verify says.
    fleet.run('provision', expect_failure=True)
    assert fleet.report()['problems_by_code'] == {'env_shadowing': fleet.hosts}
    assert all(fleet.auth(host).exists() for host in fleet.hosts)
    # runner-2's config says API keys only: Codex would log out and delete its ChatGPT auth.json.
    with open(str(fleet.home('runner-2') / 'config.toml'), 'a') as handle:
        handle.write('forced_login_method = "api"\n')
    fleet.run('verify', expect_failure=True)
    report = fleet.report()
    assert report['problems_by_code']['env_shadowing'] == fleet.hosts
    assert report['problems_by_code']['forced_login_conflict'] == ['runner-2']
    assert report['problems_by_code']['codex_status_failed'] == ['runner-2']  # Codex: "Not logged in"
    assert 'codex_status_failed' not in [row for row in report['hosts'] if row['host'] == 'runner-1'][0]['problems']


def test_provision_runs_the_optional_steps_only_on_the_runners_that_ask(fleet, workspace, fake_crontab):
    cron_file = workspace.root / 'cron.d' / 'codex-keepalive'
    cron_file.parent.mkdir()
    fleet.set_host_vars('runner-2', codexops_keepalive=True, codex_keepalive_scheduler='cron',
                        codex_keepalive_cron_file=str(cron_file),
                        codex_keepalive_script_dir=str(workspace.root / 'libexec'))
    for host in fleet.hosts:
        fleet.seed(host)
    output = fleet.run('provision')
    cli_play = output.split('PLAY [Install the pinned Codex CLI]')[1].split('PLAY [')[0]
    assert 'skipping: no hosts matched' in cli_play
    keepalive_play = output.split('PLAY [Schedule the keepalive')[1].split('PLAY RECAP')[0]
    assert '[runner-2]' in keepalive_play
    assert '[runner-1]' not in keepalive_play and '[runner-3]' not in keepalive_play
    scripts = list((workspace.root / 'libexec').iterdir())
    assert len(scripts) == 1 and str(fleet.home('runner-2')) in scripts[0].read_text()
    assert str(scripts[0]) in cron_file.read_text()
    assert fleet.report()['ok']
    again = fleet.run('provision')
    assert set(changed_by_host(again).values()) == {0}


def test_fail_on_problems_fails_a_runner_before_writing_and_reports_it_broken(fleet):
    # runner-3's config would force API-key logins: a ChatGPT seed there can never be healthy.
    fleet.set_host_vars('runner-3', codex_auth_forced_login_method='api', codex_auth_fail_on_problems=True)
    for host in fleet.hosts:
        fleet.seed(host)
    output = fleet.run('provision', expect_failure=True)
    assert 'have problems: forced_login_conflict (predicted; nothing was written)' in output
    assert not fleet.auth('runner-3').exists()
    assert all(fleet.auth(host).exists() for host in ('runner-1', 'runner-2'))
    report = fleet.report()
    assert report['broken'] == ['runner-3'] and report['unknown'] == []
    assert report['problems_by_code']['forced_login_conflict'] == ['runner-3']


def test_one_broken_runner_does_not_leave_the_good_ones_unscheduled(fleet, workspace, fake_crontab):
    """The fleet report finds runner-3 broken, yet the keepalive play still schedules every runner that
    was written (runner-1, runner-2); the run fails at its end, after them, naming runner-3."""
    script_dir = workspace.root / 'libexec'
    for host in fleet.hosts:
        cron_file = workspace.root / 'cron.d' / host
        cron_file.parent.mkdir(exist_ok=True)
        fleet.set_host_vars(host, codexops_keepalive=True, codex_keepalive_scheduler='cron',
                            codex_keepalive_cron_file=str(cron_file), codex_keepalive_script_dir=str(script_dir))
    fleet.set_host_vars('runner-3', codex_auth_forced_login_method='api', codex_auth_fail_on_problems=True)
    for host in fleet.hosts:
        fleet.seed(host)
    output = fleet.run('provision', expect_failure=True)
    keepalive_play = output.split('PLAY [Schedule the keepalive')[1].split('PLAY [')[0]
    assert '[runner-1]' in keepalive_play and '[runner-2]' in keepalive_play
    assert '[runner-3]' not in keepalive_play  # failed before anything was written: nothing to keep alive
    installed = sorted(path.read_text() for path in script_dir.iterdir())
    assert len(installed) == 2
    assert any(str(fleet.home('runner-1')) in text for text in installed)
    assert any(str(fleet.home('runner-2')) in text for text in installed)
    last_play = output.split('PLAY [Fail when the fleet needs attention]')[1]
    assert "broken ['runner-3']" in last_play
    assert fleet.report()['broken'] == ['runner-3']


def test_old_playbook_variable_names_still_work_with_a_deprecation_warning(fleet):
    # 0.1.0's names, one from the command line (the play's) and one per host: both still act.
    fleet.set_host_vars('runner-1', codex_become=True)
    for host in fleet.hosts:
        fleet.seed(host)
    output = fleet.run('provision', env={'ANSIBLE_DEPRECATION_WARNINGS': '1'}, codex_hosts='runner-1')
    assert fleet.auth('runner-1').exists()
    assert not fleet.auth('runner-2').exists() and not fleet.auth('runner-3').exists()
    text = ' '.join(output.split())
    for old, new, where in (('codex_hosts', 'codexops_hosts', ''), ('codex_become', 'codexops_become',
                                                                    ' (set for runner-1)')):
        assert ('[DEPRECATION WARNING]: The playbook variable %s%s is deprecated: use %s, which means the same.'
                % (old, where, new)) in text
    assert "will be removed from collection 'codexops.runner' version 0.3.0" in text


def test_a_wrong_typed_playbook_variable_fails_naming_it_before_anything_is_written(fleet):
    fleet.set_host_vars('runner-2', codexops_keepalive='sometimes')
    for host in fleet.hosts:
        fleet.seed(host)
    output = fleet.run('provision', expect_failure=True)
    assert ("Invalid playbook variables of the provision playbook, nothing was done: codexops_keepalive "
            "(host runner-2) must be a boolean (true or false), not 'sometimes'.") in output
    assert all(not fleet.home(host).exists() for host in fleet.hosts)
    output = fleet.run('reseed', expect_failure=True, codexops_reseed_serial='a quarter')
    assert 'codexops_reseed_serial must be a number of hosts (25), a percentage of them ("25%")' in output
    assert 'TASK [codexops.runner.codex_auth : ' not in output
