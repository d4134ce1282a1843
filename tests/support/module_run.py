# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One way to run a module's main() in-process for the unit tests, as a fresh module process would run."""

import json

import pytest
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args


def run_module_main(module, args, capsys):
    """(exit code, result dict, raw stdout) of one run of `module`'s main()."""
    # Module warnings live in process-wide registries; a real module runs in a fresh process.
    ansible_warnings._global_warnings.clear()
    ansible_warnings._global_deprecations.clear()
    capsys.readouterr()
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            module.main()
    out = capsys.readouterr().out
    return info.value.code, json.loads(out), out
