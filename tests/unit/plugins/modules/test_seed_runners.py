# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""codex_auth_seed with `runners`: every runner instance of a host seeded in one module run, the whole list refused
before anything is written (layout, users, seeds, one refresh token on two instances, each CODEX_HOME); without
`runners`, the module is what it was."""

import datetime
import json
import os
import stat

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import codex_home as codex_home_utils
from ansible_collections.codexops.runner.plugins.module_utils import safe_files
from ansible_collections.codexops.runner.plugins.modules import codex_auth_seed
from ansible_collections.codexops.runner.plugins.modules import codex_auth_verify
from support import fake_credentials as fc
from support.module_run import run_module_main

# Everything a single-runner run returns (Ansible adds `invocation`, and `diff` with --diff).
SINGLE_KEYS = {'changed', 'pending', 'action', 'reason', 'backup_file', 'attributes_changed', 'removed_temp_files',
               'config_changed_keys', 'config_warnings', 'auth'}
FILE_STORE = {'cli_auth_credentials_store': 'file'}


def run_module(args, capsys):
    """(exit code, result dict, raw stdout) of one codex_auth_seed run."""
    return run_module_main(codex_auth_seed, args, capsys)


def assert_secret_free(text, secrets):
    for secret in secrets:
        assert secret not in text
        for part in secret.split('.'):
            if len(part) >= 16:
                assert part not in text


def mode_of(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def tree(root):
    """Every path under root with its bytes (None for a directory) and its mtime: what a refused run must leave."""
    found = {}
    for where, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(where, name)
            st = os.lstat(path)
            data = None
            if stat.S_ISREG(st.st_mode):
                with open(path, 'rb') as handle:
                    data = handle.read()
            found[path] = (data, st.st_mtime_ns, st.st_mode)
    return found


@pytest.fixture
def seeds():
    """Two different fake logins: (contents, every secret in them)."""
    one, secrets_one = fc.chatgpt_seed(tag='seed-instance-1')
    two, secrets_two = fc.chatgpt_seed(tag='seed-instance-2')
    return (fc.dumps(one), fc.dumps(two)), list(secrets_one) + list(secrets_two)


@pytest.fixture
def writes(monkeypatch):
    """Every file the module writes atomically (auth.json, config.toml), by path; the tests run as root, so
    the module writes in this process (tree() is what tells for certain)."""
    seen = []
    atomic_write = safe_files.HomeDir.atomic_write

    def recording(self, name, *args, **options):
        seen.append(os.path.join(self.path, name))
        return atomic_write(self, name, *args, **options)
    monkeypatch.setattr(safe_files.HomeDir, 'atomic_write', recording)
    return seen


def two_instances(tmp_path, seeds, **extra):
    (one, two), _secrets = seeds
    return [dict({'name': 'gh-1', 'codex_home': str(tmp_path / 'runner-1' / '.codex'), 'owner': 'root',
                  'content': one}, **extra),
            dict({'name': 'gh-2', 'codex_home': str(tmp_path / 'runner-2' / '.codex'), 'owner': 'root',
                  'content': two}, **extra)]


@pytest.fixture
def parents(tmp_path):
    for name in ('runner-1', 'runner-2', 'runner-3'):
        (tmp_path / name).mkdir()
    return tmp_path


def test_two_instances_seeded_in_one_run_then_kept(parents, capsys, seeds, writes):
    (one, two), secrets = seeds
    args = {'runners': two_instances(parents, seeds), 'config_settings': FILE_STORE}
    rc, result, out = run_module(args, capsys)
    assert rc == 0, result
    assert [path for path in writes if path.endswith('auth.json')] == [
        str(parents / name / '.codex' / 'auth.json') for name in ('runner-1', 'runner-2')]
    assert result['changed'] is True and result['pending'] is True
    assert set(result) - {'invocation'} == {'changed', 'pending', 'runners'}
    assert [item['name'] for item in result['runners']] == ['gh-1', 'gh-2']
    homes = [parents / 'runner-1' / '.codex', parents / 'runner-2' / '.codex']
    assert [item['codex_home'] for item in result['runners']] == [str(home) for home in homes]
    for item, home, content in zip(result['runners'], homes, (one, two)):
        assert set(item) == SINGLE_KEYS | {'name', 'codex_home'}
        assert item['changed'] is True and item['action'] == 'created'
        assert item['auth']['healthy'] is True, item['auth']
        assert item['config_changed_keys'] == {'cli_auth_credentials_store': 'added'}
        assert (home / 'auth.json').read_text() == content
        assert mode_of(home) == 0o700 and mode_of(home / 'auth.json') == 0o600
    fingerprints = [item['auth']['refresh_token_fingerprint'] for item in result['runners']]
    assert all(fingerprints) and fingerprints[0] != fingerprints[1]
    assert 'diff' not in result
    assert_secret_free(out, secrets)

    before = tree(parents)
    del writes[:]
    rc, again, out = run_module(args, capsys)
    assert rc == 0 and writes == []
    assert again['changed'] is False and again['pending'] is False
    assert [(item['changed'], item['action']) for item in again['runners']] == [(False, 'kept'), (False, 'kept')]
    assert [item['reason'] for item in again['runners']] == ['auth.json already holds exactly this seed'] * 2
    assert tree(parents) == before
    assert_secret_free(out, secrets)


def test_an_instance_is_seeded_as_a_single_runner_is(parents, capsys, seeds):
    """Each instance's result is what the single-runner mode returns for that CODEX_HOME and seed."""
    (one, _two), _secrets = seeds
    instances = two_instances(parents, seeds)
    common = {'fingerprint_salt': 'fleet-salt', 'config_settings': FILE_STORE}
    rc, result, _out = run_module(dict(common, runners=instances), capsys)
    assert rc == 0
    single_home = parents / 'runner-3' / '.codex'
    rc, single, _out = run_module(dict(common, codex_home=str(single_home), owner='root', content=one), capsys)
    assert rc == 0
    single.pop('invocation', None)
    instance = dict(result['runners'][0])
    assert (instance.pop('name'), instance.pop('codex_home')) == ('gh-1', instances[0]['codex_home'])
    for key in ('last_refresh', 'age_days'):
        instance['auth'].pop(key, None)
        single['auth'].pop(key, None)
    assert instance == single


def test_check_mode_predicts_exactly_and_writes_nothing(parents, capsys, seeds):
    (one, two), secrets = seeds
    home_two = parents / 'runner-2' / '.codex'
    home_two.mkdir(mode=0o755)
    (home_two / 'auth.json').write_text(two)
    (home_two / 'auth.json').chmod(0o644)
    args = {'runners': two_instances(parents, seeds), 'config_settings': FILE_STORE, 'fingerprint_salt': 'salt'}
    before = tree(parents)
    rc, planned, out = run_module(dict(args, _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert rc == 0, planned
    assert tree(parents) == before
    assert planned['changed'] is True
    assert [item['action'] for item in planned['runners']] == ['created', 'kept']
    assert planned['runners'][1]['attributes_changed'] == ['codex_home_mode', 'auth_mode']
    # One metadata-only diff per instance.
    assert [item['before_header'] for item in planned['diff']] == [
        str(parents / 'runner-1' / '.codex' / 'auth.json'), str(home_two / 'auth.json')]
    assert planned['diff'][0]['before'] == {'state': 'absent'}
    assert planned['diff'][0]['after']['mode'] == '0600'
    assert_secret_free(out, secrets)

    rc, applied, out = run_module(dict(args, _ansible_diff=True), capsys)
    assert rc == 0
    for item in planned['runners'] + applied['runners']:
        item['auth'].pop('age_days', None)
    for item in planned['diff'] + applied['diff']:
        item['after'].pop('last_refresh', None)
    assert applied['runners'] == planned['runners']
    assert applied['diff'] == planned['diff']
    assert (parents / 'runner-1' / '.codex' / 'auth.json').read_text() == one
    assert mode_of(home_two / 'auth.json') == 0o600
    assert_secret_free(out, secrets)


@pytest.mark.parametrize('how', ['same_content', 'same_refresh_token', 'same_token_from_src'])
def test_one_refresh_token_on_two_instances_is_refused_with_nothing_written(parents, capsys, seeds, how, writes):
    (one, _two), secrets = seeds
    instances = two_instances(parents, seeds)
    doc = json.loads(one)
    if how == 'same_content':
        instances[1]['content'] = one
    elif how == 'same_refresh_token':
        # Another copy of the same login, refreshed later: the refresh token is what must not be on two runners.
        later = fc.rfc3339(fc.now() + datetime.timedelta(minutes=5))
        instances[1]['content'] = fc.dumps(dict(doc, last_refresh=later))
    else:
        src = parents / 'seed-2.json'
        src.write_text(json.dumps(doc, indent=4))
        src.chmod(0o600)
        del instances[1]['content']
        instances[1]['src'] = str(src)
    before = tree(parents)
    rc, result, out = run_module({'runners': instances}, capsys)
    assert rc == 1 and result['failed'] is True
    assert result['error_code'] == 'runner_instance_seed_shared'
    assert result['msg'] == ('Refusing the runner instances before anything was read or written: instances gh-1 and '
                             'gh-2 have seeds with the same refresh token: one refresh token on two runners, and the '
                             'first to refresh breaks the other with refresh_token_reused; give each its own seed.')
    assert [item['instances'] for item in result['problems']] == [['gh-1', 'gh-2']]
    assert 'runners' not in result
    assert tree(parents) == before and writes == []
    assert_secret_free(out, secrets)


def test_an_api_key_on_two_instances_is_not_a_shared_refresh_token(parents, capsys):
    doc, secrets = fc.apikey_seed(tag='shared-key')
    instances = [{'name': 'a', 'codex_home': str(parents / 'runner-1' / '.codex'), 'content': fc.dumps(doc)},
                 {'name': 'b', 'codex_home': str(parents / 'runner-2' / '.codex'), 'content': fc.dumps(doc)}]
    rc, result, out = run_module({'runners': instances, 'allowed_auth_modes': ['apikey']}, capsys)
    assert rc == 0, result
    assert [item['action'] for item in result['runners']] == ['created', 'created']
    assert_secret_free(out, secrets)


@pytest.mark.parametrize('change, words, code', [
    ({'name': 'gh-1'}, ['gh-1 (instance 1) and gh-1 (instance 2) have the same name gh-1'],
     'runner_instance_name_duplicate'),
    ({'codex_home': 'HOME1/'}, ['instances gh-1 and gh-2 have the same CODEX_HOME'], 'runner_instance_home_duplicate'),
    ({'codex_home': 'HOME1/inner'}, ['the CODEX_HOME of instance gh-2 lies inside that of instance gh-1'],
     'runner_instance_home_nested'),
    ({'name': 'Bad.Name'}, ['instance 2 needs a name of 1 to 32 characters'], 'runner_instance_name_invalid'),
    ({'codex_home': 'relative/.codex'}, ['gh-2 needs an absolute CODEX_HOME'], 'runner_instance_home_invalid'),
    ({'owner': 'no-such-user-codexops'}, ['instance gh-2 runs as user no-such-user-codexops, which does not exist on '
                                          'this host'], 'runner_instance_user_unknown'),
    ({'group': 'no-such-group-codexops'}, ["instance gh-2: group 'no-such-group-codexops' does not exist on this "
                                           "host"], 'runner_instance_group_unknown'),
    ({'content': '{"auth_mode": "chatgpt", "tokens": '}, ['the seed of instance gh-2 is not a usable auth.json'],
     'seed_invalid'),
    ({'content': None, 'src': 'PARENTS/absent.json'}, ['instance gh-2: src ', 'absent.json does not exist'],
     'runner_instance_seed_missing'),
])
def test_bad_lists_are_refused_with_nothing_written(parents, capsys, seeds, change, words, code, writes):
    """The first instance is fine; what is wrong with the second refuses both."""
    _contents, secrets = seeds
    instances = two_instances(parents, seeds)
    home_one = instances[0]['codex_home']
    for key, value in change.items():
        if isinstance(value, str):
            value = value.replace('HOME1', home_one).replace('PARENTS', str(parents))
        if value is None:
            del instances[1][key]
        else:
            instances[1][key] = value
    before = tree(parents)
    rc, result, out = run_module({'runners': instances}, capsys)
    assert rc == 1 and result['failed'] is True, result
    assert result['msg'].startswith('Refusing the runner instances before anything was read or written: ')
    for text in words:
        assert text in result['msg']
    assert result['error_code'] == code
    assert 'runners' not in result
    assert tree(parents) == before and writes == []
    assert_secret_free(out, secrets)


def test_a_codex_home_refused_on_the_runner_refuses_the_list_with_nothing_written(parents, capsys, seeds, writes):
    """What a real run would refuse in the second CODEX_HOME (here a symlinked auth.json) is found by the plan of
    every instance first: the first instance is not written either."""
    instances = two_instances(parents, seeds)
    home_two = parents / 'runner-2' / '.codex'
    home_two.mkdir(mode=0o700)
    target = parents / 'elsewhere.json'
    target.write_text('{}')
    (home_two / 'auth.json').symlink_to(target)
    before = tree(parents)
    rc, result, out = run_module({'runners': instances, 'replace': 'always'}, capsys)
    assert rc == 1 and result['failed'] is True
    assert result['msg'].startswith('Refusing the runner instances before anything was written: instance gh-2: ')
    assert 'symlink' in result['msg'] and 'gh-1' not in result['msg']
    assert tree(parents) == before and writes == []
    assert_secret_free(out, seeds[1])


def test_a_write_that_fails_names_the_instance_and_what_was_seeded(parents, capsys, seeds, monkeypatch):
    instances = two_instances(parents, seeds)
    act = codex_home_utils.act

    def failing(path, target, func, *args, **options):
        if path == instances[1]['codex_home'] and not func.__self__.check_mode:
            raise OSError(28, 'No space left on device', path)
        return act(path, target, func, *args, **options)
    monkeypatch.setattr(codex_home_utils, 'act', failing)
    rc, result, out = run_module({'runners': instances}, capsys)
    assert rc == 1 and result['failed'] is True
    assert result['msg'].startswith('Seeding runner instance gh-2 failed: could not complete the operation')
    assert result['msg'].endswith('(the instances before it were seeded: gh-1; the ones after it were not touched).')
    assert result['changed'] is True
    assert [(item['name'], item['action']) for item in result['runners']] == [('gh-1', 'created')]
    assert not (parents / 'runner-2' / '.codex').exists()
    assert_secret_free(out, seeds[1])


def test_instance_options_override_the_modules(parents, capsys, seeds):
    (one, two), secrets = seeds
    homes = [parents / 'runner-1' / '.codex', parents / 'runner-2' / '.codex']
    older, _older_secrets = fc.chatgpt_seed(tag='older', last_refresh=fc.now() - datetime.timedelta(days=1))
    for home in homes:
        home.mkdir(mode=0o700)
        (home / 'auth.json').write_text(fc.dumps(older))
        (home / 'auth.json').chmod(0o600)
    instances = two_instances(parents, seeds)
    instances[1]['replace'] = 'older'
    rc, result, out = run_module({'runners': instances, 'require_file_store': False}, capsys)
    assert rc == 0
    assert [item['action'] for item in result['runners']] == ['kept', 'replaced']
    assert (homes[0] / 'auth.json').read_text() == fc.dumps(older)
    assert (homes[1] / 'auth.json').read_text() == two
    assert_secret_free(out, secrets)


def test_fail_on_problems_names_the_broken_instances(parents, capsys, seeds):
    instances = two_instances(parents, seeds)
    unit = parents / 'runner.service'
    unit.write_text('[Service]\nEnvironment="OPENAI_API_KEY=from-the-unit"\n')
    instances[1]['environment_files'] = [str(unit)]
    rc, result, out = run_module({'runners': instances, 'require_file_store': False, 'fail_on_problems': True,
                                  '_ansible_check_mode': True}, capsys)
    assert rc == 1 and result['failed'] is True
    assert result['msg'] == ('Codex credentials of runner instances have problems: gh-2 (env_shadowing) '
                             '(predicted; nothing was written)')
    assert [item['auth']['healthy'] for item in result['runners']] == [True, False]
    assert not (parents / 'runner-1' / '.codex').exists()
    assert 'from-the-unit' not in out
    assert_secret_free(out, seeds[1])


def test_dict_seeds_keep_their_auth_mode_visible(parents, capsys):
    one, secrets_one = fc.chatgpt_seed(tag='dict-1')
    two, secrets_two = fc.chatgpt_seed(tag='dict-2')
    instances = [{'name': 'a', 'codex_home': str(parents / 'runner-1' / '.codex'), 'content': one},
                 {'name': 'b', 'codex_home': str(parents / 'runner-2' / '.codex'), 'content': two}]
    rc, result, out = run_module({'runners': instances}, capsys)
    assert rc == 0
    assert [item['auth']['auth_mode'] for item in result['runners']] == ['chatgpt', 'chatgpt']
    assert json.loads((parents / 'runner-2' / '.codex' / 'auth.json').read_text()) == two
    assert_secret_free(out, secrets_one + secrets_two)


def test_an_empty_list_is_refused(capsys, writes):
    rc, result, _out = run_module({'runners': []}, capsys)
    assert rc == 1 and 'runners is empty' in result['msg']
    assert writes == []


@pytest.mark.parametrize('extra', [
    {'codex_home': '/srv/a'}, {'owner': 'root'}, {'group': 'root'}, {'content': '{}'}, {'src': '/srv/seed.json'},
])
def test_single_runner_options_with_runners_make_no_sense(parents, capsys, seeds, extra, writes):
    rc, result, out = run_module(dict(extra, runners=two_instances(parents, seeds)), capsys)
    assert rc == 1 and 'mutually exclusive' in result['msg']
    assert writes == []
    assert_secret_free(out, seeds[1])


@pytest.mark.parametrize('entry', [
    {'name': 'a', 'codex_home': '/srv/a'},
    {'name': 'a', 'codex_home': '/srv/a', 'content': '{}', 'src': '/srv/seed.json'},
    {'name': 'a', 'content': '{}'},
    {'name': 'a', 'codex_home': '/srv/a', 'content': '{}', 'seed_content': '{}'},
])
def test_entries_that_make_no_sense(capsys, entry, writes):
    rc, result, _out = run_module({'runners': [entry]}, capsys)
    assert rc == 1 and result['failed'] is True
    assert writes == []


def test_without_runners_the_module_is_the_single_runners(tmp_path, capsys, seeds):
    (one, _two), secrets = seeds
    home = tmp_path / '.codex'
    args = {'codex_home': str(home), 'content': one, 'require_file_store': False}
    rc, result, out = run_module(args, capsys)
    assert rc == 0
    assert set(result) - {'invocation'} == SINGLE_KEYS
    assert result['action'] == 'created' and result['auth']['healthy'] is True
    rc, result, out = run_module(args, capsys)
    assert rc == 0 and result['changed'] is False and set(result) - {'invocation'} == SINGLE_KEYS
    rc, result, _out = run_module({'codex_home': str(home)}, capsys)
    assert rc == 1 and 'content' in result['msg'] and 'src' in result['msg']
    assert_secret_free(out, secrets)


# -- runner_environment: CODEX_HOME into the runner's own environment, in the same run ----------------------------

def test_runner_environment_written_predicted_and_kept(parents, capsys, seeds):
    (one, two), _secrets = seeds
    for name in ('runner-1', 'runner-2'):
        (parents / name / '.env').write_bytes(b'LANG=C.UTF-8\nCODEX_HOME=/old\n')
    runners = two_instances(parents, seeds)
    for entry, name in zip(runners, ('runner-1', 'runner-2')):
        entry['runner_environment'] = {'github_runner_dir': str(parents / name)}
    runners[1]['runner_environment']['gitlab_concurrent_id'] = 3
    args = {'runners': runners, '_ansible_check_mode': True, '_ansible_diff': True}
    rc, predicted, _out = run_module(args, capsys)
    assert rc == 0 and predicted['changed'], predicted
    assert [item['runner_environment']['github_env']['action'] for item in predicted['runners']] == ['updated'] * 2
    assert (parents / 'runner-1' / '.env').read_bytes() == b'LANG=C.UTF-8\nCODEX_HOME=/old\n'
    assert predicted['diff'][0]['after']['runner_environment'] == {
        str(parents / 'runner-1' / '.env'): 'CODEX_HOME=%s' % runners[0]['codex_home']}
    assert 'LANG' not in json.dumps(predicted['diff'])
    assert predicted['gitlab_pre_build_script'].startswith('case "${CI_CONCURRENT_ID:-}" in 3) export CODEX_HOME=')
    rc, result, _out = run_module(dict(args, _ansible_check_mode=False), capsys)
    assert rc == 0 and [item['runner_environment'] for item in result['runners']] == [
        item['runner_environment'] for item in predicted['runners']]
    assert (parents / 'runner-2' / '.env').read_bytes() == b'LANG=C.UTF-8\nCODEX_HOME=%s\n' % runners[1][
        'codex_home'].encode()
    rc, again, _out = run_module(dict(args, _ansible_check_mode=False), capsys)
    assert rc == 0 and again['changed'] is False, again
    assert [item['runner_environment']['github_env']['action'] for item in again['runners']] == ['kept'] * 2


@pytest.mark.parametrize('spec,fragment', [
    ({'github_runner_dir': 'relative/dir'}, 'gh-2: runner_environment.github_runner_dir must be an absolute path'),
    ({'systemd_unit': 'a/b.service'}, 'gh-2: runner_environment.systemd_unit must be a systemd service name'),
    ({'github_runner_dir': '/nonexistent/runner-dir'}, 'gh-2: the GitHub runner directory /nonexistent/runner-dir '
                                                       'does not exist'),
])
def test_bad_runner_environment_refuses_the_list_with_nothing_written(parents, capsys, seeds, spec, fragment):
    runners = two_instances(parents, seeds)
    runners[1]['runner_environment'] = spec
    before = tree(parents)
    rc, result, _out = run_module({'runners': runners}, capsys)
    assert rc == 1 and fragment in result['msg'], result
    assert tree(parents) == before


def test_single_runner_environment_and_its_refusal(parents, capsys, seeds):
    (one, _two), _secrets = seeds
    home = str(parents / 'runner-1' / '.codex')
    args = {'codex_home': home, 'owner': 'root', 'content': one,
            'runner_environment': {'github_runner_dir': str(parents / 'runner-3')}}
    rc, result, _out = run_module(args, capsys)
    assert rc == 0 and result['runner_environment']['github_env']['action'] == 'created', result
    assert (parents / 'runner-3' / '.env').read_bytes() == b'CODEX_HOME=%s\n' % home.encode()
    assert mode_of(parents / 'runner-3' / '.env') == 0o600
    os.unlink(str(parents / 'runner-3' / '.env'))
    os.symlink('/etc/hostname', str(parents / 'runner-3' / '.env'))
    os.unlink(str(parents / 'runner-1' / '.codex' / 'auth.json'))
    rc, result, _out = run_module(args, capsys)
    assert rc == 1 and 'symlink' in result['msg'] and result['error_code'] == 'runner_env_file_symlink', result
    assert not (parents / 'runner-1' / '.codex' / 'auth.json').exists()


def test_a_shadowing_variable_in_the_runners_own_env_is_in_the_summary_as_in_verifys(parents, capsys, seeds):
    """The GitHub runner .env that runner_environment writes is an environment file of every job: a variable there
    that Codex uses instead of auth.json (a workload-identity one of 0.171.0 here) is env_shadowing in the summary
    seed returns, for a single runner and for an instance, as verify reports it; nothing else in the file is read
    into a result."""
    (one, two), _secrets = seeds
    for name in ('runner-1', 'runner-2'):
        (parents / name / '.env').write_bytes(b'LANG=C.UTF-8\nOPENAI_IDENTITY_TOKEN_FILE=/run/token-sekrit\n')
    single = {'codex_home': str(parents / 'runner-1' / '.codex'), 'owner': 'root', 'content': one,
              'require_file_store': False, 'runner_environment': {'github_runner_dir': str(parents / 'runner-1')}}
    runners = two_instances(parents, seeds)
    runners[1]['runner_environment'] = {'github_runner_dir': str(parents / 'runner-2')}
    for check_mode in (True, False):
        rc, result, out = run_module(dict(single, _ansible_check_mode=check_mode), capsys)
        assert rc == 0 and [item['code'] for item in result['auth']['problems']] == ['env_shadowing'], result
        assert 'OPENAI_IDENTITY_TOKEN_FILE' in result['auth']['problems'][0]['message'] and 'sekrit' not in out
        rc, result, out = run_module({'runners': runners, 'require_file_store': False,
                                      '_ansible_check_mode': check_mode}, capsys)
        assert rc == 0 and [[item['code'] for item in runner['auth']['problems']] for runner in result['runners']] == [
            [], ['env_shadowing']], result
    rc, verified, out = run_module_main(codex_auth_verify, {'codex_home': single['codex_home'], 'owner': 'root',
                                                            'require_file_store': False, 'runner_environment': single['runner_environment']}, capsys)
    assert rc == 0 and [item['code'] for item in verified['problems']] == ['env_shadowing'], verified
    assert 'sekrit' not in out
    # Listed in environment_files as well: reported once.
    rc, verified, _out = run_module_main(codex_auth_verify, {
        'codex_home': single['codex_home'], 'owner': 'root', 'runner_environment': single['runner_environment'],
        'require_file_store': False, 'environment_files': [str(parents / 'runner-1' / '.env')]}, capsys)
    assert [item['code'] for item in verified['problems']] == ['env_shadowing'], verified


# A user no test machine has (useradd refuses names this long; getpwnam simply does not find it).
NEW_USER = 'cxo-not-created-yet-0123456789ab'


@pytest.mark.parametrize('where', ['absolute', 'new_home'])
def test_check_mode_predicts_an_owner_an_earlier_task_creates(parents, capsys, seeds, writes, where):
    """owners_to_create under check mode (the codex_auth role's --check with codex_auth_create_user): an instance whose
    owner does not exist yet is predicted as the run will find it, created and seeded, owned by the new user; nothing
    is written. Its CODEX_HOME in the new user's home to be (~USER/.codex, not expandable yet) is predicted from the
    seed alone."""
    (_one, _two), secrets = seeds
    instances = two_instances(parents, seeds)
    instances[1]['owner'] = NEW_USER
    if where == 'new_home':
        instances[1]['codex_home'] = '~%s/.codex' % NEW_USER
    args = {'runners': instances, 'config_settings': FILE_STORE, 'owners_to_create': [NEW_USER]}
    before = tree(parents)
    rc, planned, out = run_module(dict(args, _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert rc == 0, planned
    assert tree(parents) == before and writes == []
    assert planned['changed'] is True
    item = planned['runners'][1]
    assert (item['action'], item['changed'], item['attributes_changed']) == ('created', True, ['codex_home_created'])
    assert item['auth']['healthy'] is True and item['auth']['owner'] == NEW_USER, item['auth']
    assert planned['diff'][1]['after']['owner'] == NEW_USER
    assert item['codex_home'] == instances[1]['codex_home']
    assert_secret_free(out, secrets)


def test_an_owner_to_create_is_still_refused_outside_check_mode(parents, capsys, seeds, writes):
    """A real run comes after the task that creates the user: one still missing then is refused, nothing written."""
    instances = two_instances(parents, seeds)
    instances[1]['owner'] = NEW_USER
    before = tree(parents)
    rc, result, _out = run_module({'runners': instances, 'owners_to_create': [NEW_USER]}, capsys)
    assert rc == 1 and result['error_code'] == 'runner_instance_user_unknown', result
    assert tree(parents) == before and writes == []


def test_an_unknown_owner_not_listed_to_create_is_refused_in_check_mode(parents, capsys, seeds, writes):
    instances = two_instances(parents, seeds)
    instances[1]['owner'] = NEW_USER
    rc, result, _out = run_module({'runners': instances, 'owners_to_create': ['someone-else'],
                                   '_ansible_check_mode': True}, capsys)
    assert rc == 1 and result['error_code'] == 'runner_instance_user_unknown', result
    assert 'instance gh-2 runs as user %s, which does not exist' % NEW_USER in result['msg']
    assert writes == []


def test_check_mode_predicts_a_single_runner_owner_an_earlier_task_creates(tmp_path, capsys, seeds, writes):
    (one, _two), secrets = seeds
    args = {'codex_home': str(tmp_path / 'single' / '.codex'), 'owner': NEW_USER, 'content': one,
            'config_settings': FILE_STORE}
    rc, refused, _out = run_module(dict(args, _ansible_check_mode=True), capsys)
    assert rc == 1 and 'does not exist on this host' in refused['msg']
    rc, planned, out = run_module(dict(args, owners_to_create=[NEW_USER], _ansible_check_mode=True), capsys)
    assert rc == 0, planned
    assert (planned['action'], planned['changed'], planned['auth']['owner']) == ('created', True, NEW_USER)
    assert writes == [] and not (tmp_path / 'single').exists()
    rc, refused, _out = run_module(dict(args, owners_to_create=[NEW_USER]), capsys)
    assert rc == 1 and 'does not exist on this host' in refused['msg'] and writes == []
    assert_secret_free(out, secrets)
