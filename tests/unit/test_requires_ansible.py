# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ansible-core floor we claim is the one `make test-matrix` tests.

meta/runtime.yml's `requires_ansible` and the lowest ansible-core entry of tests/matrix/run.sh are parsed
and compared, so neither can move without the other (and the entry is run by default).
"""

import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RUN_SH = (REPO / 'tests' / 'matrix' / 'run.sh').read_text()


def _version(text):
    return tuple(int(part) for part in text.split('.'))


def _claimed_floor():
    spec = yaml.safe_load((REPO / 'meta' / 'runtime.yml').read_text())['requires_ansible']
    match = re.fullmatch(r'\s*>=\s*(\d+\.\d+)\.0\s*', spec)
    assert match, 'requires_ansible should be a plain floor ">=X.Y.0", not %r' % spec
    return _version(match.group(1))


def _bash_array(name):
    """The `[key]=value` pairs of `declare -A NAME=(...)` in run.sh (values unquoted)."""
    body = re.search(r'^declare -A %s=\((.*?)\)\s*$' % re.escape(name), RUN_SH, re.M | re.S)
    assert body, 'no declare -A %s=(...) in tests/matrix/run.sh' % name
    return {key: value.strip('\'"') for key, value in re.findall(r'\[([\w.-]+)\]=(\S*)', body.group(1))}


def _floors():
    """Entry -> the ansible-core minor version it pins (entries without a lower bound, core-latest, left out)."""
    floors = {}
    for entry, requirement in _bash_array('core').items():
        match = re.fullmatch(r'ansible-core>=(\d+\.\d+),<(\d+\.\d+)', requirement)
        if match:
            floors[entry] = _version(match.group(1))
        else:
            assert requirement == 'ansible-core', (entry, requirement)
    return floors


def _default_entries():
    match = re.search(r'^\[ \$\{#entries\[@\]\} -gt 0 \] \|\| entries=\(([^)]*)\)$', RUN_SH, re.M)
    assert match, 'no default entries line in tests/matrix/run.sh'
    return match.group(1).split()


def test_requires_ansible_is_the_lowest_tested_ansible_core():
    floors = _floors()
    assert floors, 'tests/matrix/run.sh pins no ansible-core version'
    lowest_entry = min(floors, key=floors.get)
    assert floors[lowest_entry] == _claimed_floor(), (
        'meta/runtime.yml claims ansible-core %s, the lowest matrix entry %s tests %s'
        % ('.'.join(map(str, _claimed_floor())), lowest_entry, '.'.join(map(str, floors[lowest_entry]))))
    assert lowest_entry in _default_entries(), 'make test-matrix does not run the floor entry %s' % lowest_entry


def test_every_matrix_entry_is_complete_and_named_after_its_version():
    tables = {name: _bash_array(name) for name in ('python', 'core', 'upgrade', 'with_units')}
    entries = set(tables['core'])
    for name, table in tables.items():
        assert set(table) == entries, name
    assert set(_default_entries()) == entries
    for entry, floor in _floors().items():
        assert entry.startswith('core%d%d-' % floor), entry
    latest = [entry for entry in entries if entry not in _floors()]
    assert latest == ['core-latest-py313']
    assert tables['upgrade']['core-latest-py313'] == '--upgrade'


def test_the_check_can_fail(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], 'RUN_SH', RUN_SH.replace("'ansible-core>=2.", "'ansible-core>=3."))
    assert min(_floors().values())[0] == 3
    with pytest.raises(AssertionError, match='claims ansible-core'):
        test_requires_ansible_is_the_lowest_tested_ansible_core()


def test_every_role_states_the_same_floor():
    floor = '%d.%d' % _claimed_floor()
    stated = {path.parts[-3]: yaml.safe_load(path.read_text())['galaxy_info']['min_ansible_version']
              for path in sorted((REPO / 'roles').glob('*/meta/main.yml'))}
    assert stated and set(stated.values()) == {floor}, stated
