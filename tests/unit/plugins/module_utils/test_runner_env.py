"""Environment files that would shadow auth.json, and Codex's own login status verdict."""

import os

from ansible_collections.codexops.runner.plugins.module_utils import codex_process
from ansible_collections.codexops.runner.plugins.module_utils import privsep
from ansible_collections.codexops.runner.plugins.module_utils import runner_env
from support.private_files import write_private

NOBODY = 65534
SECRET = 'sk-proj-FAKE-shadow-value-0123456789'


def codes(problems):
    return [item['code'] for item in problems]


def test_each_assignment_style_is_found_without_the_value(tmp_path):
    files = {
        'environment': 'PATH=/usr/bin\nOPENAI_API_KEY=%s\n' % SECRET,
        'runner.env': 'export CODEX_ACCESS_TOKEN="%s"\n' % SECRET,
        'runner.service': '[Service]\nEnvironment="HOME=/home/ci" "CODEX_API_KEY=%s"\n' % SECRET,
        'compose.yml': 'environment:\n  OPENAI_API_KEY: %s\n' % SECRET,
    }
    paths = []
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    problems, warnings = runner_env.shadowing_problems(paths)
    assert codes(problems) == ['env_shadowing'] * 4 and warnings == []
    messages = ' '.join(item['message'] for item in problems)
    assert SECRET not in messages
    assert 'OPENAI_API_KEY is set in %s (line 2)' % paths[0] in messages
    assert 'CODEX_API_KEY is set in %s (line 2)' % paths[2] in messages


def test_comments_and_lookalikes_are_not_shadowing(tmp_path):
    path = tmp_path / 'env'
    path.write_text('# OPENAI_API_KEY=old\nMY_OPENAI_API_KEY_BACKUP=1\nOPENAI_API_KEY_FILE=/x\n; CODEX_API_KEY=1\n')
    assert runner_env.shadowing_problems([str(path)]) == ([], [])


def test_unreadable_file_is_a_warning(tmp_path):
    problems, warnings = runner_env.shadowing_problems([str(tmp_path / 'absent')])
    assert problems == [] and codes(warnings) == ['environment_file_unreadable']


def test_login_status_masks_api_key_tails(tmp_path, codex_as_test_user):
    codex = tmp_path / 'codex'
    codex.write_text('#!/bin/sh\necho "API key configured - sk-proj-***ABCDE" >&2\nexit 0\n')
    codex.chmod(0o755)
    home = tmp_path / '.codex'
    home.mkdir()
    status = codex_process.login_status(str(codex), str(home), privsep.current())
    assert status == {'rc': 0, 'message': 'API key configured - sk-proj-***', 'logged_in': True}
    assert os.path.isdir(str(home))


def test_runner_made_link_to_a_root_file_is_not_followed(tmp_path):
    """The runner points a link at root's file that sets a shadowing variable: root does not read
    through it, so the verdict is an unreadable file, not a finding in root's file."""
    roots = tmp_path / 'root-only.env'
    write_private(roots, 'OPENAI_API_KEY=%s\n' % SECRET)
    assert runner_env.shadowing_problems([str(roots)])[0] != []  # root's own file is read
    link = tmp_path / 'runner.env'
    link.symlink_to(roots)
    os.lchown(str(link), NOBODY, NOBODY)
    problems, warnings = runner_env.shadowing_problems([str(link)])
    assert problems == []
    assert codes(warnings) == ['environment_file_unreadable']
    assert str(link) in warnings[0]['message'] and SECRET not in warnings[0]['message']


def test_hard_link_in_the_runners_directory_is_not_read(tmp_path):
    runner = tmp_path / 'runner'
    runner.mkdir()
    os.chown(str(runner), NOBODY, NOBODY)
    roots = tmp_path / 'root-only.env'
    write_private(roots, 'CODEX_API_KEY=%s\n' % SECRET)
    os.link(str(roots), str(runner / '.env'))
    problems, warnings = runner_env.shadowing_problems([str(runner / '.env')])
    assert problems == [] and codes(warnings) == ['environment_file_unreadable']
    assert 'hard links' in warnings[0]['message']


def test_root_link_in_a_root_directory_is_followed(tmp_path):
    real = tmp_path / 'environment.d'
    real.mkdir()
    (real / 'codex.conf').write_text('CODEX_ACCESS_TOKEN=%s\n' % SECRET)
    link = tmp_path / 'environment'
    link.symlink_to(real / 'codex.conf')
    problems, warnings = runner_env.shadowing_problems([str(link)])
    assert codes(problems) == ['env_shadowing'] and warnings == []
    assert 'CODEX_ACCESS_TOKEN is set in %s (line 1)' % link in problems[0]['message']


def test_fifo_and_oversized_files_are_warnings(tmp_path):
    fifo = tmp_path / 'fifo.env'
    os.mkfifo(str(fifo))
    big = tmp_path / 'big.env'
    big.write_bytes(b'#' * (runner_env.MAX_ENV_FILE_BYTES + 1))
    problems, warnings = runner_env.shadowing_problems([str(fifo), str(big), 'relative.env'])
    assert problems == [] and codes(warnings) == ['environment_file_unreadable'] * 3


WORKLOAD_IDENTITY = ('OPENAI_IDENTITY_TOKEN_SOURCE', 'OPENAI_FEDERATION_RULE_ID', 'OPENAI_IDENTITY_TOKEN_FILE',
                     'SPIFFE_ENDPOINT_SOCKET', 'OPENAI_SPIFFE_AUDIENCE', 'OPENAI_SPIFFE_ID')


def test_workload_identity_variables_are_shadowing(tmp_path):
    """Codex 0.171.0 uses workload identity instead of auth.json when any of these is set (and fails
    closed when the set is incomplete): a leftover one sidelines the seeded credentials."""
    assert set(WORKLOAD_IDENTITY) <= set(codex_process.SHADOWING_VARIABLES)
    env_file = tmp_path / 'environment'
    env_file.write_text(''.join('%s=%s\n' % (name, SECRET) for name in WORKLOAD_IDENTITY))
    unit = tmp_path / 'runner.service'
    unit.write_text('[Service]\nEnvironment="OPENAI_IDENTITY_TOKEN_SOURCE=spiffe" '
                    '"SPIFFE_ENDPOINT_SOCKET=unix:///run/spire/agent.sock"\n')
    problems, warnings = runner_env.shadowing_problems([str(env_file), str(unit)])
    assert warnings == [] and codes(problems) == ['env_shadowing'] * (len(WORKLOAD_IDENTITY) + 2)
    messages = ' '.join(item['message'] for item in problems)
    assert SECRET not in messages and '/run/spire' not in messages
    for number, name in enumerate(WORKLOAD_IDENTITY, 1):
        assert '%s is set in %s (line %d)' % (name, env_file, number) in messages
    # A longer name that starts with one of them is not one of them.
    env_file.write_text('OPENAI_SPIFFE_IDS=1\nOPENAI_IDENTITY_TOKEN_FILE_OLD=/x\n')
    assert runner_env.shadowing_problems([str(env_file)]) == ([], [])


def test_codex_children_never_get_workload_identity(tmp_path):
    for name in WORKLOAD_IDENTITY:
        try:
            codex_process.check_environment({name: 'x'})
        except codex_process.CodexProcessError as exc:
            assert name in exc.message
        else:
            raise AssertionError('%s was accepted in codex_environment' % name)
