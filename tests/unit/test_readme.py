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


def test_make_help_and_the_readme_list_every_stage_of_make_test():
    import re
    import subprocess
    repo = Path(__file__).resolve().parents[2]
    stages = re.search(r'^test: (.*)$', (repo / 'Makefile').read_text(), re.M).group(1).split()
    assert 'units' in stages and 'galaxy-import-check' in stages
    shown = subprocess.run(['make', '-s', '--no-print-directory', 'help'], cwd=str(repo), stdout=subprocess.PIPE,
                           check=True).stdout.decode()
    for stage in stages:
        assert re.search(r'^\s*make %s\s+- ' % re.escape(stage), shown, re.M), stage
        assert '| `make %s` |' % stage in README, stage
