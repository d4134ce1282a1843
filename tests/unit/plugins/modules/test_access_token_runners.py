# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""codex_access_token_login with `runners`: every access-token runner instance of a host logged in in one module run,
each in its own CODEX_HOME with config.toml's file store, no call when its token is already stored, check mode
predicting the run, and the whole list refused before anything is written (an empty token, one token on two
instances, the layout, a CODEX_HOME refused on the runner). The real Codex is the oracle in
tests/integration/test_access_token_instances.py; here a stand-in records its calls."""

import json
import os
import stat

import pytest

from ansible_collections.codexops.runner.plugins.modules import codex_access_token_login
from support import fake_credentials as fc
from support.module_run import run_module_main
from test_modules import FakeCodex

FILE_STORE = {'cli_auth_credentials_store': 'file'}
INSTANCE_KEYS = {'name', 'codex_home', 'changed', 'token_kind', 'logged_in', 'auth_mode', 'attributes_changed',
                 'config_changed_keys', 'config_warnings', 'auth'}

pytestmark = pytest.mark.usefixtures('codex_as_test_user')


def run_module(args, capsys):
    return run_module_main(codex_access_token_login, args, capsys)


def tree(root):
    found = {}
    for where, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(where, name)
            st = os.lstat(path)
            data = None
            if stat.S_ISREG(st.st_mode):
                with open(path, 'rb') as handle:
                    data = handle.read()
            found[path] = (data, st.st_mtime_ns, st.st_ino)
    return found


@pytest.fixture
def codex(tmp_path):
    return FakeCodex(tmp_path)


@pytest.fixture
def tokens():
    return [fc.personal_access_token(tag='instance-1'), fc.personal_access_token(tag='instance-2')]


@pytest.fixture
def parents(tmp_path):
    for name in ('runner-1', 'runner-2', 'runner-3'):
        (tmp_path / name).mkdir()
    return tmp_path


def instances(parents, tokens):
    return [{'name': 'tok-%d' % (index + 1), 'codex_home': str(parents / ('runner-%d' % (index + 1)) / '.codex'),
             'owner': 'root', 'access_token': token} for index, token in enumerate(tokens)]


def args_for(parents, tokens, codex, **extra):
    return dict({'runners': instances(parents, tokens), 'codex_path': str(codex.path), 'config_settings': FILE_STORE},
                **extra)


def test_two_instances_logged_in_in_one_run_then_left_alone(parents, capsys, codex, tokens):
    rc, result, out = run_module(args_for(parents, tokens, codex), capsys)
    assert rc == 0, result
    assert set(result) - {'invocation'} == {'changed', 'runners'}
    assert result['changed'] is True
    assert [item['name'] for item in result['runners']] == ['tok-1', 'tok-2']
    for item, token in zip(result['runners'], tokens):
        home = parents / ('runner-%s' % item['name'][-1]) / '.codex'
        assert set(item) == INSTANCE_KEYS and item['codex_home'] == str(home)
        assert item['changed'] is True and item['logged_in'] is True
        assert item['token_kind'] == 'personal_access_token' and item['auth_mode'] == 'personalAccessToken'
        assert item['config_changed_keys'] == {'cli_auth_credentials_store': 'added'}
        assert item['auth']['healthy'] is True, item['auth']
        assert item['auth']['credentials_store'] == 'file'
        assert json.loads((home / 'auth.json').read_text())['personal_access_token'] == token
        assert (home / 'config.toml').read_text() == 'cli_auth_credentials_store = "file"\n'
    calls = codex.calls
    assert [call['env']['CODEX_HOME'] for call in calls] == [item['codex_home'] for item in result['runners']]
    assert all(call['argv'][1:] == ['login', '--with-access-token'] for call in calls)
    for token in tokens:
        assert token not in out and token not in json.dumps([call['argv'] for call in calls])

    before = tree(parents)
    rc, again, out = run_module(args_for(parents, tokens, codex), capsys)
    assert rc == 0 and again['changed'] is False
    assert [(item['changed'], item['logged_in']) for item in again['runners']] == [(False, False)] * 2
    assert len(codex.calls) == 2  # the same tokens are stored: Codex is not run
    assert tree(parents) == before


def test_check_mode_predicts_the_run_exactly_and_writes_nothing(parents, capsys, codex, tokens):
    before = tree(parents)
    rc, predicted, out = run_module(args_for(parents, tokens, codex, _ansible_check_mode=True), capsys)
    assert rc == 0, predicted
    assert tree(parents) == before and codex.calls == []
    rc, done, _out = run_module(args_for(parents, tokens, codex), capsys)
    assert rc == 0
    for guess, item in zip(predicted['runners'], done['runners']):
        assert guess == item
    assert predicted['changed'] is done['changed'] is True
    for token in tokens:
        assert token not in out


def test_a_rotated_token_logs_in_only_its_instance(parents, capsys, codex, tokens):
    assert run_module(args_for(parents, tokens, codex), capsys)[0] == 0
    untouched = parents / 'runner-1' / '.codex' / 'auth.json'
    st = os.stat(str(untouched))
    new = fc.personal_access_token(tag='instance-2-rotated')
    rc, predicted, _out = run_module(args_for(parents, [tokens[0], new], codex, _ansible_check_mode=True), capsys)
    assert rc == 0 and [item['changed'] for item in predicted['runners']] == [False, True]
    rc, result, out = run_module(args_for(parents, [tokens[0], new], codex), capsys)
    assert rc == 0 and [item['logged_in'] for item in result['runners']] == [False, True]
    assert len(codex.calls) == 3 and codex.calls[-1]['env']['CODEX_HOME'] == result['runners'][1]['codex_home']
    assert json.loads((parents / 'runner-2' / '.codex' / 'auth.json').read_text())['personal_access_token'] == new
    after = os.stat(str(untouched))
    assert (after.st_ino, after.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert new not in out and tokens[1] not in out


@pytest.mark.parametrize('change, words, code', [
    (lambda entries, tokens: entries[1].update(access_token='  %s\n' % tokens[0]),
     'instances tok-1 and tok-2 have the same access_token', 'runner_instance_access_token_shared'),
    (lambda entries, tokens: entries[1].update(access_token=''),
     'tok-2 uses the access_token method but has no access_token', 'runner_instance_credential_missing'),
    (lambda entries, tokens: entries[1].update(access_token='   '),
     'tok-2 uses the access_token method but its access_token is empty', 'runner_instance_credential_missing'),
    (lambda entries, tokens: entries[1].update(codex_home=entries[0]['codex_home']),
     'instances tok-1 and tok-2 have the same CODEX_HOME', 'runner_instance_home_duplicate'),
    (lambda entries, tokens: entries[1].update(owner='no-such-user-codexops'),
     'instance tok-2 runs as user no-such-user-codexops', 'runner_instance_user_unknown'),
])
def test_bad_lists_are_refused_with_nothing_written(parents, capsys, codex, tokens, change, words, code):
    args = args_for(parents, tokens, codex)
    change(args['runners'], tokens)
    before = tree(parents)
    rc, result, out = run_module(args, capsys)
    assert rc == 1 and words in result['msg'], result
    assert code in [item['code'] for item in result['problems']]
    assert tree(parents) == before and codex.calls == []
    for token in tokens:
        assert token not in out


def test_a_codex_home_refused_on_the_runner_refuses_the_list_with_nothing_written(parents, capsys, codex, tokens):
    home = parents / 'runner-2' / '.codex'
    home.mkdir(mode=0o700)
    os.symlink(str(parents / 'elsewhere.json'), str(home / 'auth.json'))
    before = tree(parents)
    rc, result, out = run_module(args_for(parents, tokens, codex), capsys)
    assert rc == 1 and 'Refusing the runner instances before anything was written: instance tok-2' in result['msg']
    assert tree(parents) == before and codex.calls == []
    assert not (parents / 'runner-1' / '.codex').exists()


def test_a_rejected_token_names_the_instance_and_what_was_logged_in(parents, capsys, tmp_path, tokens):
    failing = FakeCodex(tmp_path, fail=True)
    rc, result, out = run_module(args_for(parents, tokens, failing), capsys)
    assert rc == 1
    assert result['msg'].startswith('Logging runner instance tok-1 in failed')
    assert 'no instance was changed' in result['msg'] and result['runners'] == []
    assert len(failing.calls) == 1
    for token in tokens:
        assert token not in out


def test_a_token_rejected_after_another_was_logged_in_names_both(parents, capsys, tmp_path, tokens):
    """tok-1 logs in, Codex rejects tok-2's token: the task fails naming tok-2 and what was already done (tok-1,
    changed), and tok-2's CODEX_HOME is left as it was."""
    assert 'instance-2' in tokens[1] and 'instance-2' not in tokens[0]
    failing = FakeCodex(tmp_path, fail='instance-2')
    before = tree(parents / 'runner-2')
    rc, result, out = run_module(args_for(parents, tokens, failing), capsys)
    assert rc == 1
    assert result['msg'].startswith('Logging runner instance tok-2 in failed')
    assert 'the instances before it were logged in: tok-1' in result['msg']
    assert result['changed'] is True and [item['name'] for item in result['runners']] == ['tok-1']
    assert (parents / 'runner-1' / '.codex' / 'auth.json').exists()
    assert not (parents / 'runner-2' / '.codex' / 'auth.json').exists()
    assert set(tree(parents / 'runner-2')) - set(before) <= {str(parents / 'runner-2' / '.codex'),
                                                             str(parents / 'runner-2' / '.codex' / 'config.toml')}
    for token in tokens:
        assert token not in out


def test_fail_on_problems_names_the_broken_instances(parents, capsys, codex, tokens):
    args = args_for(parents, tokens, codex, fail_on_problems=True, allowed_auth_modes=['agentIdentity'])
    args['runners'][0]['allowed_auth_modes'] = ['personalAccessToken']
    rc, result, _out = run_module(args, capsys)
    assert rc == 1 and 'tok-2 (auth_mode_unexpected)' in result['msg'] and 'tok-1' not in result['msg']


@pytest.mark.parametrize('extra', [{'codex_home': '/srv/x'}, {'owner': 'root'}, {'access_token': 'at-x'}])
def test_single_runner_options_with_runners_make_no_sense(parents, capsys, codex, tokens, extra):
    rc, result, _out = run_module(args_for(parents, tokens, codex, **extra), capsys)
    assert rc == 1 and 'mutually exclusive' in result['msg']
    assert codex.calls == []


def test_runners_only_log_in(parents, capsys, codex, tokens):
    rc, result, _out = run_module(args_for(parents, tokens, codex, state='absent'), capsys)
    assert rc == 1 and 'state=present' in result['msg']
    rc, result, _out = run_module(dict(args_for(parents, tokens, codex), runners=[]), capsys)
    assert rc == 1 and 'runners is empty' in result['msg']


def test_the_single_runner_path_writes_config_settings_before_the_login(tmp_path, capsys, codex, tokens):
    home = tmp_path / '.codex'
    args = {'codex_home': str(home), 'codex_path': str(codex.path), 'access_token': tokens[0],
            'config_settings': FILE_STORE}
    rc, predicted, _out = run_module(dict(args, _ansible_check_mode=True), capsys)
    assert rc == 0 and not home.exists()
    rc, result, _out = run_module(args, capsys)
    assert rc == 0 and result['config_changed_keys'] == {'cli_auth_credentials_store': 'added'}
    assert predicted['auth'] == result['auth'] and result['auth']['credentials_store'] == 'file'


# -- runner_environment: CODEX_HOME into the runner's own environment, in the login run ----------------------------

def with_environment(parents, tokens, codex, **extra):
    args = args_for(parents, tokens, codex, **extra)
    for entry, name in zip(args['runners'], ('runner-1', 'runner-2')):
        entry['runner_environment'] = {'github_runner_dir': str(parents / name)}
    args['runners'][1]['runner_environment']['gitlab_concurrent_id'] = 3
    return args


def test_runner_environment_written_predicted_and_kept(parents, capsys, codex, tokens):
    for name in ('runner-1', 'runner-2'):
        (parents / name / '.env').write_bytes(b'LANG=C.UTF-8\nCODEX_HOME=/old\n')
    args = with_environment(parents, tokens, codex, _ansible_check_mode=True)
    before = tree(parents)
    rc, predicted, out = run_module(args, capsys)
    assert rc == 0 and predicted['changed'], predicted
    assert tree(parents) == before and codex.calls == []
    assert [item['runner_environment']['github_env'] for item in predicted['runners']] == [
        {'path': str(parents / name / '.env'), 'action': 'updated'} for name in ('runner-1', 'runner-2')]
    assert predicted['gitlab_pre_build_script'].startswith(
        'case "${CI_CONCURRENT_ID:-}" in 3) export CODEX_HOME=%s ;;' % args['runners'][1]['codex_home'])
    assert 'LANG' not in out
    rc, result, out = run_module(dict(args, _ansible_check_mode=False), capsys)
    assert rc == 0 and result['changed'], result
    assert [item['runner_environment'] for item in result['runners']] == [
        item['runner_environment'] for item in predicted['runners']]
    assert result['gitlab_pre_build_script'] == predicted['gitlab_pre_build_script']
    for entry, name in zip(args['runners'], ('runner-1', 'runner-2')):
        assert (parents / name / '.env').read_bytes() == b'LANG=C.UTF-8\nCODEX_HOME=%s\n' % entry['codex_home'].encode()
    for token in tokens:
        assert token not in out
    rc, again, _out = run_module(dict(args, _ansible_check_mode=False), capsys)
    assert rc == 0 and again['changed'] is False, again
    assert [item['runner_environment']['github_env']['action'] for item in again['runners']] == ['kept'] * 2


def test_runner_environment_alone_changes_an_instance_already_logged_in(parents, capsys, codex, tokens):
    assert run_module(args_for(parents, tokens, codex), capsys)[0] == 0
    args = with_environment(parents, tokens, codex)
    rc, predicted, _out = run_module(dict(args, _ansible_check_mode=True), capsys)
    assert rc == 0 and predicted['changed'] is True
    assert [(item['logged_in'], item['changed']) for item in predicted['runners']] == [(False, True)] * 2
    rc, result, _out = run_module(args, capsys)
    assert rc == 0 and [(item['logged_in'], item['changed']) for item in result['runners']] == [(False, True)] * 2
    assert [item['runner_environment']['github_env']['action'] for item in result['runners']] == ['created'] * 2
    assert len(codex.calls) == 2  # the tokens were stored: only the environment was written


@pytest.mark.parametrize('spec,fragment', [
    ({'github_runner_dir': 'relative/dir'}, 'tok-2: runner_environment.github_runner_dir must be an absolute path'),
    ({'systemd_unit': 'a/b.service'}, 'tok-2: runner_environment.systemd_unit must be a systemd service name'),
    ({'github_runner_dir': '/nonexistent/runner-dir'}, 'tok-2: the GitHub runner directory /nonexistent/runner-dir '
                                                       'does not exist'),
])
def test_bad_runner_environment_refuses_the_list_with_nothing_written(parents, capsys, codex, tokens, spec, fragment):
    args = args_for(parents, tokens, codex)
    args['runners'][1]['runner_environment'] = spec
    before = tree(parents)
    rc, result, out = run_module(args, capsys)
    assert rc == 1 and fragment in result['msg'], result
    assert tree(parents) == before and codex.calls == []
    for token in tokens:
        assert token not in out


def test_two_instances_with_one_runner_directory_are_refused(parents, capsys, codex, tokens):
    args = args_for(parents, tokens, codex)
    for entry in args['runners']:
        entry['runner_environment'] = {'github_runner_dir': str(parents / 'runner-3')}
    rc, result, _out = run_module(args, capsys)
    assert rc == 1 and 'runner_instance_environment_shared' in [item['code'] for item in result['problems']]
    assert codex.calls == [] and not (parents / 'runner-3' / '.env').exists()


def test_a_planted_env_symlink_refuses_the_list_with_nothing_written(parents, capsys, codex, tokens):
    target = parents / 'target'
    target.write_bytes(b'keep\n')
    os.symlink(str(target), str(parents / 'runner-2' / '.env'))
    args = with_environment(parents, tokens, codex)
    rc, result, _out = run_module(args, capsys)
    assert rc == 1 and 'Refusing the runner instances before anything was written: instance tok-2' in result['msg']
    assert target.read_bytes() == b'keep\n' and codex.calls == []
    assert not (parents / 'runner-1' / '.env').exists() and not (parents / 'runner-1' / '.codex').exists()


def test_single_runner_environment_written_with_the_login_predicted_and_kept(parents, capsys, codex, tokens):
    """A single runner (no runners) with the access_token method writes codex_auth_runner_environment too, by the
    seed's own code: check mode predicts it with nothing written, the login writes it, a second run keeps it."""
    (parents / 'runner-1' / '.env').write_bytes(b'LANG=C.UTF-8\n')
    home = str(parents / 'runner-1' / '.codex')
    args = {'codex_home': home, 'owner': 'root', 'access_token': tokens[0], 'codex_path': str(codex.path),
            'config_settings': FILE_STORE, 'runner_environment': {'github_runner_dir': str(parents / 'runner-1')}}
    before = tree(parents)
    rc, predicted, _out = run_module(dict(args, _ansible_check_mode=True), capsys)
    assert rc == 0 and predicted['changed'], predicted
    assert tree(parents) == before and codex.calls == []
    assert predicted['runner_environment']['github_env'] == {'path': str(parents / 'runner-1' / '.env'),
                                                             'action': 'updated'}
    rc, result, out = run_module(args, capsys)
    assert rc == 0 and result['changed'] and result['runner_environment'] == predicted['runner_environment'], result
    assert (parents / 'runner-1' / '.env').read_bytes() == b'LANG=C.UTF-8\nCODEX_HOME=%s\n' % home.encode()
    assert tokens[0] not in out
    rc, again, _out = run_module(args, capsys)
    assert rc == 0 and again['changed'] is False and again['runner_environment']['github_env']['action'] == 'kept'


@pytest.mark.parametrize('extra,fragment', [
    ({'runner_environment': {'github_runner_dir': 'relative/dir'}}, 'must be an absolute path'),
    ({'runner_environment': {'github_runner_dir': '/nonexistent/runner-dir'}}, 'does not exist'),
    ({'state': 'absent', 'runner_environment': {'github_runner_dir': '/srv'}}, 'written with a login'),
])
def test_single_runner_environment_refused_before_the_login(parents, capsys, codex, tokens, extra, fragment):
    args = dict({'codex_home': str(parents / 'runner-1' / '.codex'), 'owner': 'root', 'access_token': tokens[0],
                 'codex_path': str(codex.path), 'config_settings': FILE_STORE}, **extra)
    if args.get('state') == 'absent':
        del args['access_token']
    before = tree(parents)
    rc, result, out = run_module(args, capsys)
    assert rc != 0 and fragment in result['msg'], result
    assert tree(parents) == before and codex.calls == []
    assert tokens[0] not in out
