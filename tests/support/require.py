"""Skip locally, fail under CI: what a test needs and this machine lacks.

A newcomer's machine may miss a tool (Python 3.9, a pty, chattr, the pinned Codex CLI, root...): the
test says what is missing and how to get it, and is skipped. CI (the `CI` environment variable set,
as `.ci/run` and `CI=true bash .ci/run` have it) is where everything must be present, so there the
same absence is a failure, never a silent skip.
"""

import os

import pytest


def under_ci():
    return bool(os.environ.get('CI'))


def require(condition, reason):
    """Go on when `condition` holds; else skip saying `reason` (pytest.fail under CI)."""
    if condition:
        return
    if under_ci():
        pytest.fail('%s (CI must provide it: a missing dependency fails there)' % reason)
    pytest.skip(reason)


def required(condition, reason):
    """`require` as an autouse fixture, for a module whose every test needs `condition`:
    `_needs_root = required(os.geteuid() == 0, 'runs as root')` at the module's top level. Module
    scoped, so it is asked before the module's own module-scoped fixtures set anything up."""
    @pytest.fixture(autouse=True, scope='module')
    def _requirement():
        require(condition, reason)
    return _requirement
