# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures shared by the module_utils tests that start programs as the runner user."""

import os
import shutil
import tempfile

import pytest


@pytest.fixture
def shared_dir():
    """A directory nobody can traverse (pytest's tmp_path sits in a root-only directory): for the
    stand-in programs the runner user runs."""
    path = tempfile.mkdtemp(prefix='codexops-unit-', dir='/tmp')
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)
