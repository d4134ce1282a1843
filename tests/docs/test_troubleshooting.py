# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/troubleshooting.md has a section for every code verify can report, with its fix.

The page is where a code's fix is written (its **Fix:** line); health.py only names the codes, so
no fix text is shipped to the runners. These tests hold the two together in both directions."""

import re
from pathlib import Path

import pytest

import docs_support
from ansible_collections.codexops.runner.plugins.module_utils import health

REPO = Path(docs_support.REPO)
PAGE = (REPO / 'docs' / 'troubleshooting.md').read_text()
# Findings of the fleet report (plugins/filter/fleet.py), not of a single runner.
REPORT_CODES = {'unreachable', 'unreachable_or_unverified'}
ALL_CODES = health.PROBLEM_CODES + health.WARNING_CODES


def sections():
    """{code: section text} for every `### `code`` heading."""
    found = {}
    parts = re.split(r'^### ', PAGE, flags=re.M)
    for part in parts[1:]:
        heading, _sep, body = part.partition('\n')
        match = re.fullmatch(r'`([a-z0-9_]+)`', heading.strip())
        if match:
            found[match.group(1)] = body.split('\n## ', 1)[0]
    return found


def fix_of(code):
    """The one-paragraph **Fix:** of a code's section (None when it has none)."""
    match = re.search(r'^\*\*Fix:\*\* (.+?)(?:\n\n|\n?$)', sections().get(code, ''), flags=re.M | re.S)
    return None if match is None else ' '.join(match.group(1).split())


@pytest.mark.parametrize('code', sorted(ALL_CODES + tuple(REPORT_CODES)))
def test_every_code_has_a_section_with_its_fix(code):
    assert code in sections(), 'docs/troubleshooting.md has no "### `%s`" section' % code
    fix = fix_of(code)
    assert fix, 'the %s section has no "**Fix:** ..." paragraph' % code
    assert fix.endswith('.') or fix.endswith(')'), fix


def test_no_section_for_a_code_that_does_not_exist():
    unknown = sorted(set(sections()) - set(ALL_CODES) - REPORT_CODES)
    assert unknown == [], 'sections for codes health.py does not know: %s' % unknown


def test_the_fix_that_keeps_a_runner_logged_in_says_what_is_at_stake():
    # forced_login_method set against the credentials makes Codex log out and delete auth.json.
    assert 'DELETES' in fix_of('forced_login_conflict')


def test_warnings_are_documented_as_warnings():
    warnings_part = PAGE.split('\n## Warnings\n', 1)[1].split('\n## ', 1)[0]
    for code in health.WARNING_CODES:
        assert '### `%s`' % code in warnings_part, code
    for code in health.PROBLEM_CODES:
        assert '### `%s`' % code not in warnings_part, code


def test_report_codes_are_what_the_fleet_filter_emits():
    source = (REPO / 'plugins' / 'filter' / 'fleet.py').read_text()
    for code in REPORT_CODES:
        assert "'%s'" % code in source, code
