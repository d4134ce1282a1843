# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Role docs are generated from meta/argument_specs.yml, and the specs match what the roles do."""

import os

import pytest
import yaml

import docs_support
import role_docs

ROLES = role_docs.roles()
assert role_docs.REPO == docs_support.REPO


def test_generated_role_docs_are_current():
    assert role_docs.stale() == [], 'run `python tools/role_docs.py --write` (make docs)'


def _defaults(role):
    path = os.path.join(role_docs.REPO, 'roles', role, 'defaults', 'main.yml')
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def _documented(role):
    options = {}
    for entry, spec in role_docs.load_specs(role).items():
        for name, option in ((spec or {}).get('options') or {}).items():
            options.setdefault(name, []).append((entry, option or {}))
    return options


@pytest.mark.parametrize('role', ROLES)
def test_every_default_is_documented(role):
    documented = _documented(role)
    missing = sorted(name for name in _defaults(role) if not name.startswith('_') and name not in documented)
    assert missing == [], '%s: defaults/main.yml variables missing from argument_specs.yml: %s' % (role, missing)


@pytest.mark.parametrize('role', ROLES)
def test_documented_defaults_are_the_real_defaults(role):
    """ansible-doc and the generated docs show argument_specs' `default`; the role uses defaults/main.yml."""
    defaults = _defaults(role)
    wrong = []
    for name, entries in sorted(_documented(role).items()):
        for entry, option in entries:
            if option.get('required'):
                if name in defaults:
                    wrong.append('%s (%s) is required but defaults/main.yml sets it' % (name, entry))
            elif name not in defaults:
                wrong.append('%s (%s) is optional but has no value in defaults/main.yml' % (name, entry))
            elif 'default' in option and option['default'] != defaults[name]:
                wrong.append('%s (%s): argument_specs says %r, defaults/main.yml has %r'
                             % (name, entry, option['default'], defaults[name]))
    assert wrong == [], '%s:\n  %s' % (role, '\n  '.join(wrong))


@pytest.mark.parametrize('role', ROLES)
def test_role_readme_has_every_variable(role):
    text = open(os.path.join(role_docs.REPO, 'roles', role, 'README.md')).read()
    missing = [name for name in _documented(role) if '| `%s` |' % name not in text]
    assert missing == []


def test_markup_conversion():
    assert role_docs.markup('C(timeout(1)) and M(codexops.runner.codex_cli)') == '`timeout(1)` and `codexops.runner.codex_cli`'
    assert role_docs.markup('R(the role, ansible_collections.codexops.runner.codex_auth_role)') == 'the role'
    assert role_docs.markup('O(codexops.runner.codex_auth_seed#module:replace) is V(never)') == '`replace` is `never`'
    assert role_docs.markup('L(Codex, https://example.invalid/) I(now) B(bold)') == '[Codex](https://example.invalid/) *now* **bold**'
