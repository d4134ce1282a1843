"""The README's troubleshooting table is checked against the codes the code can produce."""

from pathlib import Path

from ansible_collections.codexops.runner.plugins.module_utils import health

README = (Path(__file__).resolve().parents[2] / 'README.md').read_text()


def test_every_problem_code_has_a_troubleshooting_row():
    missing = [code for code in health.PROBLEM_CODES if '| `%s` |' % code not in README]
    assert missing == []


def test_every_warning_code_is_explained():
    missing = [code for code in health.WARNING_CODES if '`%s`' % code not in README]
    assert missing == []


def test_readme_has_the_two_commands():
    assert 'make demo' in README and 'make test' in README
