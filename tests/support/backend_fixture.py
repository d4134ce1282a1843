"""The loopback Codex auth backend as a pytest fixture, for every suite that runs the real Codex CLI.

Import `backend` into a conftest (or a test module) and pytest finds the fixture by name there.
"""

import pytest

from support import codex_backend


@pytest.fixture(scope='session')
def backend():
    server = codex_backend.CodexBackend().start()
    try:
        yield server
    finally:
        server.stop()
