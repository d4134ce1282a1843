"""Environment files that would shadow auth.json, and Codex's own login status verdict."""

import os

from ansible_collections.codexops.runner.plugins.module_utils import runner_env

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


def test_login_status_masks_api_key_tails(tmp_path):
    codex = tmp_path / 'codex'
    codex.write_text('#!/bin/sh\necho "API key configured - sk-proj-***ABCDE" >&2\nexit 0\n')
    codex.chmod(0o755)
    home = tmp_path / '.codex'
    home.mkdir()
    status = runner_env.login_status(str(codex), str(home))
    assert status == {'rc': 0, 'message': 'API key configured - sk-proj-***'}
    assert os.path.isdir(str(home))
