# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every module test here runs its module in-process as a module process (support.module_run runs it)."""

import pytest
from ansible.module_utils import _internal as ansible_internal


@pytest.fixture(autouse=True)
def module_process(monkeypatch):
    """Once controller code is imported (the filter tests do), module warnings would go to the
    controller's display instead of the result; a real module process is never the controller."""
    monkeypatch.setattr(ansible_internal, 'is_controller', False)
