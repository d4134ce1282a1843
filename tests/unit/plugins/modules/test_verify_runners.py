# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""codex_auth_verify with `runners`: every runner instance of a host in one module run, the list refused as a
whole before any CODEX_HOME is read; without `runners`, the module is what it was."""


import pytest

from ansible_collections.codexops.runner.plugins.module_utils import codex_home as codex_home_utils
from ansible_collections.codexops.runner.plugins.module_utils import codex_process
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status
from ansible_collections.codexops.runner.plugins.modules import codex_auth_verify
from support import fake_credentials as fc
from support.module_run import run_module_main

SINGLE_FIELDS = ('problems', 'health_warnings', 'auth_mode', 'last_refresh', 'age_days', 'stale', 'has_access_token',
                 'has_id_token', 'has_refresh_token', 'has_api_key', 'access_token_expires_at', 'account_id',
                 'plan_type', 'refresh_token_fingerprint', 'codex_home_mode', 'auth_file_mode', 'owner',
                 'credentials_store')


def run_module(args, capsys):
    """(exit code, result dict, raw stdout) of one codex_auth_verify run."""
    return run_module_main(codex_auth_verify, args, capsys)


@pytest.fixture
def seeds():
    """Two different fake logins: (contents, every secret in them)."""
    one, secrets_one = fc.chatgpt_seed(tag='instance-1')
    two, secrets_two = fc.chatgpt_seed(tag='instance-2')
    return (fc.dumps(one), fc.dumps(two)), list(secrets_one) + list(secrets_two)


@pytest.fixture
def reads(monkeypatch):
    """Every CODEX_HOME the module reads."""
    seen = []
    act = codex_home_utils.act

    def recording(path, *args, **options):
        seen.append(path)
        return act(path, *args, **options)
    monkeypatch.setattr(codex_home_utils, 'act', recording)
    return seen


def test_without_runners_the_result_is_the_single_runners(codex_home, capsys, seeds):
    home = codex_home(auth=seeds[0][0])
    rc, result, _out = run_module({'codex_home': str(home), 'owner': 'root'}, capsys)
    assert rc == 0 and result['healthy'] is True and result['changed'] is False
    assert 'runners' not in result
    for field in SINGLE_FIELDS:
        assert field in result


def test_every_instance_in_one_run(codex_home, capsys, seeds, reads):
    (one, two), secrets = seeds
    home_one, home_two = codex_home(auth=one), codex_home(auth=two, auth_mode=0o644)
    home_three = codex_home()
    rc, result, out = run_module({'runners': [
        {'name': 'gh-1', 'codex_home': str(home_one), 'owner': 'root'},
        {'name': 'gh-2', 'codex_home': str(home_two)},
        {'name': 'gh-3', 'codex_home': str(home_three)},
    ], 'fingerprint_salt': 'fleet-salt'}, capsys)
    assert rc == 0 and result['changed'] is False
    assert result['healthy'] is False
    assert reads == [str(home_one), str(home_two), str(home_three)]
    assert [item['name'] for item in result['runners']] == ['gh-1', 'gh-2', 'gh-3']
    assert [item['codex_home'] for item in result['runners']] == [str(home_one), str(home_two), str(home_three)]
    assert [item['healthy'] for item in result['runners']] == [True, False, False]
    assert [p['code'] for p in result['runners'][1]['problems']] == ['auth_mode_bits']
    assert [p['code'] for p in result['runners'][2]['problems']] == ['auth_missing']
    for field in SINGLE_FIELDS:
        assert field in result['runners'][0]
        assert field not in result
    one_fp, two_fp = (item['refresh_token_fingerprint'] for item in result['runners'][:2])
    assert one_fp and two_fp and one_fp != two_fp
    # The same summary as a single-runner run of that CODEX_HOME gives.
    _rc, single, _out = run_module({'codex_home': str(home_one), 'owner': 'root', 'fingerprint_salt': 'fleet-salt'},
                                   capsys)
    instance = dict(result['runners'][0])
    assert (instance.pop('name'), instance.pop('codex_home')) == ('gh-1', str(home_one))
    single.pop('changed')
    single.pop('invocation', None)
    assert instance == single
    for secret in secrets + ['fleet-salt']:
        assert secret not in out


def test_instance_options_override_the_hosts(codex_home, capsys, seeds):
    (one, two), _secrets = seeds
    rc, result, _out = run_module({'runners': [
        {'name': 'a', 'codex_home': str(codex_home(auth=one))},
        {'name': 'b', 'codex_home': str(codex_home(auth=two)), 'allowed_auth_modes': ['apikey']},
    ], 'allowed_auth_modes': ['chatgpt']}, capsys)
    assert rc == 0
    assert [[p['code'] for p in item['problems']] for item in result['runners']] == [[], ['auth_mode_unexpected']]


def test_fail_on_problems_names_the_broken_instances(codex_home, capsys, seeds):
    (one, two), secrets = seeds
    rc, result, out = run_module({'runners': [
        {'name': 'good', 'codex_home': str(codex_home(auth=one))},
        {'name': 'bad', 'codex_home': str(codex_home(auth=two, home_mode=0o755))},
    ], 'fail_on_problems': True}, capsys)
    assert rc == 1 and result['failed'] is True
    assert result['msg'] == 'Codex credentials of runner instances have problems: bad (codex_home_mode)'
    assert [item['name'] for item in result['runners']] == ['good', 'bad']
    for secret in secrets:
        assert secret not in out


@pytest.mark.parametrize('runners, words', [
    ([{'name': 'a', 'codex_home': '/srv/x'}, {'name': 'a', 'codex_home': '/srv/y'}],
     ['a (instance 1) and a (instance 2) have the same name a']),
    ([{'name': 'a', 'codex_home': '/srv/x'}, {'name': 'b', 'codex_home': '/srv/x/'}],
     ['instances a and b have the same CODEX_HOME']),
    ([{'name': 'outer', 'codex_home': '/srv/x'}, {'name': 'inner', 'codex_home': '/srv/x/inner'}],
     ['the CODEX_HOME of instance inner lies inside that of instance outer']),
    ([{'name': 'Bad.Name', 'codex_home': '/srv/x'}], ['instance 1 needs a name of 1 to 32 characters']),
    ([{'name': 'a', 'codex_home': 'relative'}], ['a needs an absolute CODEX_HOME']),
    ([{'name': 'a', 'codex_home': '/srv/a', 'owner': 'no-such-user-codexops'},
      {'name': 'b', 'codex_home': '/srv/b', 'owner': 'no-such-user-codexops'}],
     ['instances a and b run as user no-such-user-codexops, which does not exist on this host']),
])
def test_bad_lists_are_refused_before_anything_is_read(runners, words, capsys, reads):
    rc, result, _out = run_module({'runners': runners}, capsys)
    assert rc == 1 and result['failed'] is True
    assert result['msg'].startswith('Refusing the runner instances before anything was read or written: ')
    for text in words:
        assert text in result['msg']
    assert reads == []
    assert 'runners' not in result


def test_an_empty_list_is_refused(capsys, reads):
    rc, result, _out = run_module({'runners': []}, capsys)
    assert rc == 1 and 'runners is empty' in result['msg']
    assert reads == []


@pytest.mark.parametrize('args', [
    {'codex_home': '/srv/a', 'runners': [{'name': 'a', 'codex_home': '/srv/a'}]},
    {'owner': 'root', 'runners': [{'name': 'a', 'codex_home': '/srv/a'}]},
    {'probe_command': '/bin/true', 'runners': [{'name': 'a', 'codex_home': '/srv/a'}]},
    {},
    {'runners': [{'name': 'a'}]},
    {'runners': [{'name': 'a', 'codex_home': '/srv/a', 'home': '/srv/b'}]},
])
def test_option_combinations_that_make_no_sense(args, capsys, reads):
    rc, result, _out = run_module(args, capsys)
    assert rc == 1 and result['failed'] is True
    assert reads == []


@pytest.mark.usefixtures("codex_as_test_user")
def test_each_instance_probes_its_own_keepalive(codex_home, capsys, seeds, monkeypatch):
    seen = []
    monkeypatch.setattr(codex_process, 'run_keepalive', lambda command, *a, **k: seen.append(command) or (0, False))
    (one, two), _secrets = seeds
    home_one, home_two, home_three = codex_home(auth=one), codex_home(auth=two), codex_home(auth=one)
    rc, result, _out = run_module({'runners': [
        {'name': 'gh-1', 'codex_home': str(home_one)},
        {'name': 'default', 'codex_home': str(home_two)},
        {'name': 'gh-3', 'codex_home': str(home_three), 'probe_command': '/opt/keepalive-3'},
    ], 'probe': True}, capsys)
    assert rc == 0 and result['changed'] is True
    user = result['runners'][0]['owner']
    assert seen == [
        keepalive_status.DEFAULT_SCRIPT_DIR + '/' + keepalive_status.keepalive_name(user, str(home_one), 'gh-1'),
        keepalive_status.DEFAULT_SCRIPT_DIR + '/' + keepalive_status.keepalive_name(user, str(home_two)),
        '/opt/keepalive-3',
    ]
    assert seen[0].startswith(keepalive_status.DEFAULT_SCRIPT_DIR + '/codex-keepalive-%s-gh-1-' % user)
    assert [item['keepalive_probe']['command'] for item in result['runners']] == seen


def test_probe_is_skipped_in_check_mode_for_every_instance(codex_home, capsys, seeds):
    (one, two), _secrets = seeds
    rc, result, _out = run_module({'runners': [
        {'name': 'a', 'codex_home': str(codex_home(auth=one))},
        {'name': 'b', 'codex_home': str(codex_home(auth=two))},
    ], 'probe': True, '_ansible_check_mode': True}, capsys)
    assert rc == 0 and result['changed'] is False
    assert [item['keepalive_probe']['ran'] for item in result['runners']] == [False, False]


# -- runner_environment: what the runner's own environment sets for CODEX_HOME -----------------------------------

def test_runner_environment_missing_mismatch_and_match(codex_home, capsys, seeds, tmp_path):
    home = codex_home(auth=seeds[0][0])
    runner_dir = tmp_path / 'actions-runner'
    runner_dir.mkdir()
    args = {'codex_home': str(home), 'owner': 'root', 'runner_environment': {'github_runner_dir': str(runner_dir)}}
    rc, result, _out = run_module(args, capsys)
    assert rc == 0 and [item['code'] for item in result['problems']] == ['runner_env_codex_home_missing']
    (runner_dir / '.env').write_text('LANG=C.UTF-8\nCODEX_HOME=/srv/elsewhere\n')
    rc, result, out = run_module(dict(args, fail_on_problems=True), capsys)
    assert rc == 1 and 'runner_env_codex_home_mismatch' in result['msg']
    assert '/srv/elsewhere' in result['problems'][0]['message'] and str(home) in result['problems'][0]['message']
    assert 'C.UTF-8' not in out  # no other line of .env is shown
    (runner_dir / '.env').write_text('LANG=C.UTF-8\nCODEX_HOME=%s\n' % home)
    rc, result, _out = run_module(args, capsys)
    assert rc == 0 and result['healthy'] is True, result


def test_runner_environment_per_instance_and_gitlab_script(codex_home, capsys, seeds, tmp_path):
    (one, two), _secrets = seeds
    home_one, home_two = codex_home(auth=one), codex_home(auth=two)
    runner_dir = tmp_path / 'r1'
    runner_dir.mkdir()
    (runner_dir / '.env').write_text('CODEX_HOME=%s\n' % home_two)
    rc, result, _out = run_module({'runners': [
        {'name': 'gh-1', 'codex_home': str(home_one), 'owner': 'root',
         'runner_environment': {'github_runner_dir': str(runner_dir)}},
        {'name': 'slot-0', 'codex_home': str(home_two), 'owner': 'root',
         'runner_environment': {'gitlab_concurrent_id': 0}}]}, capsys)
    assert rc == 0 and result['healthy'] is False
    assert [item['code'] for item in result['runners'][0]['problems']] == ['runner_env_codex_home_mismatch']
    assert result['runners'][1]['healthy'] is True
    assert 'in 0) export CODEX_HOME=%s ;;' % home_two in result['gitlab_pre_build_script']
    rc, result, _out = run_module({'runners': [
        {'name': 'gh-1', 'codex_home': str(home_one), 'runner_environment': {'systemd_unit': 'a/b.service'}}]}, capsys)
    assert rc == 1 and 'gh-1: runner_environment.systemd_unit must be' in result['msg']
