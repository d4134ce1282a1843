"""The runner's own environment (module_utils/_runner_environment.py): .env and drop-in texts, the spec's
validation, the GitLab pre_build_script, and writes through the safe primitives."""

import os
import stat
import subprocess

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import _runner_environment as env
from ansible_collections.codexops.runner.plugins.module_utils import _runner_instances

NOBODY = 65534
HOME = '/srv/runner-1/.codex'


@pytest.mark.parametrize('before,after', [
    (None, b'CODEX_HOME=/srv/runner-1/.codex\n'),
    (b'', b'CODEX_HOME=/srv/runner-1/.codex\n'),
    (b'LANG=C.UTF-8\nPATH=/usr/bin', b'LANG=C.UTF-8\nPATH=/usr/bin\nCODEX_HOME=/srv/runner-1/.codex\n'),
    (b'A=1\r\nCODEX_HOME=/old\r\nB= x \r\nCODEX_HOME=/older\n',
     b'A=1\r\nCODEX_HOME=/srv/runner-1/.codex\r\nB= x \r\n'),
    (b'# CODEX_HOME=/c\n CODEX_HOME=/d\nCODEX_HOMEX=/e\n',
     b'# CODEX_HOME=/c\n CODEX_HOME=/d\nCODEX_HOMEX=/e\nCODEX_HOME=/srv/runner-1/.codex\n'),
])
def test_env_gets_exactly_one_line_and_keeps_the_others(before, after):
    assert env.env_with_home(before, HOME) == after
    assert env.env_codex_home(after) == HOME
    assert env.env_with_home(after, HOME) == after  # idempotent


def test_env_value_is_read_as_the_runner_reads_it():
    assert env.env_codex_home(b'CODEX_HOME=/a\nCODEX_HOME=/b\r\n') == '/b'
    assert env.env_codex_home(b'X=1\n') is None
    assert env.env_codex_home(b'CODEX_HOME=\n') == ''
    assert env.env_codex_home(None) is None


@pytest.mark.parametrize('home', ['/srv/r 1/.codex', '/srv/100%/x', '/srv/q"uote\\back'])
def test_dropin_quotes_for_systemd_and_reads_back(home):
    text = env.dropin_content(home)
    assert text.startswith(b'#') and b'[Service]\nEnvironment="CODEX_HOME=' in text
    assert env.dropin_codex_home(text) == home


@pytest.mark.parametrize('spec,fragment', [
    ('x', 'must be a dict'),
    ({'github_runner_dir': 'actions-runner'}, 'github_runner_dir must be an absolute path'),
    ({'github_runner_dir': '/srv/../etc'}, 'github_runner_dir must be an absolute path'),
    ({'github_runner_dir': '/srv/a\nb'}, 'github_runner_dir must be an absolute path'),
    ({'systemd_unit': 'etc/x.service'}, 'systemd_unit must be a systemd service name'),
    ({'systemd_unit': 'actions.runner.x'}, 'systemd_unit must be a systemd service name'),
    ({'gitlab_concurrent_id': -1}, 'gitlab_concurrent_id must be a whole number'),
    ({'gitlab_concurrent_id': True}, 'gitlab_concurrent_id must be a whole number'),
    ({'github_dir': '/srv/x'}, 'unknown fields github_dir'),
])
def test_bad_specs_are_refused(spec, fragment):
    found = env.spec_problems(spec, HOME)
    assert found and fragment in found[0], found


def test_good_specs_pass():
    assert env.spec_problems(None) == [] and env.spec_problems({}) == []
    assert env.spec_problems({'github_runner_dir': '/srv/actions-runner-1',
                              'systemd_unit': 'actions.runner.org-repo.r1.service',
                              'gitlab_concurrent_id': None}, HOME) == []
    assert env.spec_problems({'gitlab_concurrent_id': 0}, '~ci/.codex') != []
    assert env.spec_problems({'github_runner_dir': '/srv/r'}, '/srv/a\nb') != []


def test_instances_name_the_instance_and_refuse_shared_places():
    instances = [{'name': 'gh-1', 'codex_home': '/srv/1/.codex', 'runner_environment': {'github_runner_dir': 'rel'}},
                 {'name': 'gh-2', 'codex_home': '/srv/2/.codex', 'runner_environment': {'systemd_unit': 'a.service'}},
                 {'name': 'gh-3', 'codex_home': '/srv/3/.codex', 'runner_environment': {'systemd_unit': 'a.service'}}]
    found = _runner_instances.layout_problems(instances)
    assert [(item['code'], item['instances']) for item in found] == [
        ('runner_instance_environment_invalid', ['gh-1']),
        ('runner_instance_environment_shared', ['gh-2', 'gh-3'])]
    assert found[0]['message'].startswith('gh-1: runner_environment.github_runner_dir')


def test_gitlab_script_points_each_slot_at_its_home(tmp_path):
    instances = [{'codex_home': '/srv/gitlab-codex/slot-%d' % slot, 'runner_environment': {'gitlab_concurrent_id': slot}}
                 for slot in (1, 0)] + [{'codex_home': '/x', 'runner_environment': {}}]
    script = env.gitlab_pre_build_script(instances)
    assert env.gitlab_pre_build_script(instances[2:]) == ''
    for slot, expected in (('0', '/srv/gitlab-codex/slot-0'), ('1', '/srv/gitlab-codex/slot-1')):
        out = subprocess.run(['sh', '-c', script + '; printf %s "$CODEX_HOME"'], env={'CI_CONCURRENT_ID': slot},
                             capture_output=True, text=True, check=True)
        assert out.stdout == expected
    failed = subprocess.run(['sh', '-c', script + '; echo reached'], env={'CI_CONCURRENT_ID': '2'},
                            capture_output=True, text=True, check=False)
    assert failed.returncode == 1 and 'reached' not in failed.stdout and 'CI_CONCURRENT_ID=2' in failed.stderr


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='writes as another user (privsep)')


@needs_root
def test_github_env_as_the_runner_keeps_lines_owner_and_mode(tmp_path):
    runner_dir = tmp_path / 'actions-runner'
    runner_dir.mkdir()
    os.chmod(str(tmp_path), 0o755)
    (runner_dir / '.env').write_bytes(b'LANG=C.UTF-8\nSECRET_LIKE=keep-me\n')
    os.chmod(str(runner_dir / '.env'), 0o640)
    os.chown(str(runner_dir / '.env'), NOBODY, NOBODY)
    os.chown(str(runner_dir), NOBODY, NOBODY)
    assert env.github_env(str(runner_dir), HOME, NOBODY, NOBODY, check=True) == 'updated'
    assert (runner_dir / '.env').read_bytes() == b'LANG=C.UTF-8\nSECRET_LIKE=keep-me\n'
    assert env.github_env(str(runner_dir), HOME, NOBODY, NOBODY) == 'updated'
    st = os.lstat(str(runner_dir / '.env'))
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY, 0o640)
    assert (runner_dir / '.env').read_bytes() == b'LANG=C.UTF-8\nSECRET_LIKE=keep-me\nCODEX_HOME=%s\n' % HOME.encode()
    assert env.github_env(str(runner_dir), HOME, NOBODY, NOBODY) == 'kept'
    assert env.problems({'github_runner_dir': str(runner_dir)}, HOME) == []
    assert sorted(os.listdir(str(runner_dir))) == ['.env']


@needs_root
@pytest.mark.parametrize('plant', ['symlink', 'hardlink', 'fifo'])
def test_github_env_refuses_what_the_runner_planted(tmp_path, plant):
    runner_dir = tmp_path / 'actions-runner'
    runner_dir.mkdir()
    os.chmod(str(tmp_path), 0o755)
    target = tmp_path / 'shadow'
    target.write_bytes(b'root:x:0:\n')
    if plant == 'symlink':
        os.symlink(str(target), str(runner_dir / '.env'))
    elif plant == 'hardlink':
        os.chown(str(target), NOBODY, NOBODY)
        os.link(str(target), str(runner_dir / '.env'))
    else:
        os.mkfifo(str(runner_dir / '.env'))
    os.chown(str(runner_dir), NOBODY, NOBODY)
    with pytest.raises(env.UnsafePathError) as info:
        env.github_env(str(runner_dir), HOME, NOBODY, NOBODY)
    assert info.value.code.startswith('runner_env_file_')
    assert target.read_bytes() == b'root:x:0:\n'
    assert [item['code'] for item in env.problems({'github_runner_dir': str(runner_dir)}, HOME)] == \
        ['runner_env_unreadable']


@needs_root
def test_github_env_refuses_a_missing_dir_or_another_users(tmp_path):
    with pytest.raises(env.UnsafePathError) as info:
        env.github_env(str(tmp_path / 'missing'), HOME, NOBODY, NOBODY, check=True)
    assert info.value.code == 'runner_env_dir_missing'
    os.chown(str(tmp_path), NOBODY, NOBODY)
    with pytest.raises(env.UnsafePathError) as info:
        env.github_env(str(tmp_path), HOME, 0, 0)
    assert info.value.code == 'runner_env_dir_owner'


@needs_root
def test_verify_reports_missing_and_mismatch(tmp_path):
    runner_dir = tmp_path / 'r'
    runner_dir.mkdir()
    spec = {'github_runner_dir': str(runner_dir)}
    assert [item['code'] for item in env.problems(spec, HOME)] == ['runner_env_codex_home_missing']
    (runner_dir / '.env').write_bytes(b'CODEX_HOME=/elsewhere\n')
    found = env.problems(spec, HOME)
    assert [item['code'] for item in found] == ['runner_env_codex_home_mismatch']
    assert '/elsewhere' in found[0]['message'] and HOME in found[0]['message']


@needs_root
def test_systemd_dropin_created_kept_and_read(tmp_path):
    base = tmp_path / 'system'
    base.mkdir()
    unit = 'actions.runner.org-repo.r1.service'
    assert env.systemd_dropin(unit, HOME, check=True, systemd_dir=str(base)) == 'created'
    assert not (base / (unit + '.d')).exists()
    result = env.apply({'systemd_unit': unit}, HOME, systemd_dir=str(base))
    assert result['systemd_dropin']['action'] == 'created' and result['changed']
    path = base / (unit + '.d') / env.DROPIN_NAME
    assert stat.S_IMODE(os.lstat(str(path)).st_mode) == 0o644
    assert env.systemd_dropin(unit, HOME, systemd_dir=str(base)) == 'kept'
    assert env.problems({'systemd_unit': unit}, HOME, systemd_dir=str(base)) == []
    assert env.systemd_dropin(unit, '/other', systemd_dir=str(base)) == 'updated'
    assert [item['code'] for item in env.problems({'systemd_unit': unit}, HOME, systemd_dir=str(base))] == \
        ['runner_env_codex_home_mismatch']
