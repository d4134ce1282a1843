# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Paths for the documentation tests; import it before the collection or tests/support.

The collection is imported through the link `make collection` creates under .build/collections,
as in tests/unit; the shared helpers come from tests/support (`from support import ...`).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(TESTS)
COLLECTIONS = os.path.join(REPO, '.build', 'collections')
# The maintainer tools (tools/role_docs.py, the role docs generator, is tested here).
TOOLS = os.path.join(REPO, 'tools')

for _path in (HERE, TESTS, COLLECTIONS, TOOLS):
    if _path not in sys.path:
        sys.path.insert(0, _path)

if not os.path.isdir(os.path.join(COLLECTIONS, 'ansible_collections', 'codexops', 'runner', 'plugins')):
    raise RuntimeError('%s is missing the collection link; run `make collection` first.' % COLLECTIONS)
