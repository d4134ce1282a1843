# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""codex_auth_export with runners: one export per instance in one run; an unreadable instance does not stop the
others."""

from ansible_collections.codexops.runner.plugins.modules import codex_auth_export
from support import fake_credentials as fc
from support.module_run import run_module_main


def test_runners(codex_home, capsys):
    seed, _s = fc.chatgpt_seed(tag='a')
    home = codex_home(auth=fc.dumps(seed))
    runners = [{'name': 'a', 'codex_home': str(home), 'owner': 'root'},
               {'name': 'b', 'codex_home': str(home) + '-missing', 'owner': 'root'}]
    rc, result, out = run_module_main(codex_auth_export, {'runners': runners}, capsys)
    assert rc == 0, result
    assert result['runners'][0]['exists'] is True and 'content' not in result['runners'][0]
    assert result['runners'][1]['error_code'] == 'codex_home_missing'
