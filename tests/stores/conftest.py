# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tests/stores: the secret-store contract and the write-back loop against real servers on loopback
(OpenBao for `vault`, moto's server for `aws_secretsmanager`), started once per session by the
fixtures in tests/support/store_servers.py and stopped by their PIDs. `make stores` runs them.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_TESTS = os.path.dirname(_HERE)
_COLLECTIONS = os.path.join(os.path.dirname(_TESTS), '.build', 'collections')
for _path in (_TESTS, _COLLECTIONS):
    if _path not in sys.path:
        sys.path.insert(0, _path)

if not os.path.isdir(os.path.join(_COLLECTIONS, 'ansible_collections', 'codexops', 'runner', 'plugins')):
    raise RuntimeError('%s is missing the collection link; run `make collection` first.' % _COLLECTIONS)

# `openbao` and `moto` are session fixtures; importing them is how this suite gets them.
from support.store_servers import moto, openbao  # noqa: E402,F401 pylint: disable=unused-import
