# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Role documentation generated from roles/<role>/meta/argument_specs.yml, the single source.

    role_docs.py --write   regenerate docs/roles/<role>.md and roles/<role>/README.md
    role_docs.py --check   exit 1 (naming the files) when any of them is missing or stale

roles/<role>/README.md is what Galaxy / Automation Hub shows for a role (the Galaxy importer
refuses a role without one); docs/roles/<role>.md is the same page in the docs tree. Both are
generated, so neither can drift from the argument specs that Ansible validates role input against.
Needs only PyYAML (which ansible-core brings).
"""

import argparse
import json
import os
import re
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMESPACE, NAME = 'codexops', 'runner'
GENERATOR = 'tools/role_docs.py'


def roles(repo=REPO):
    base = os.path.join(repo, 'roles')
    return sorted(name for name in os.listdir(base)
                  if os.path.isfile(os.path.join(base, name, 'meta', 'argument_specs.yml')))


def load_specs(role, repo=REPO):
    with open(os.path.join(repo, 'roles', role, 'meta', 'argument_specs.yml'), encoding='utf-8') as handle:
        return yaml.safe_load(handle)['argument_specs']


def _balanced(text, start):
    """Index of the ')' closing the '(' just before `start`, allowing nested parentheses."""
    depth = 1
    for index in range(start, len(text)):
        if text[index] == '(':
            depth += 1
        elif text[index] == ')':
            depth -= 1
            if depth == 0:
                return index
    return -1


_MACRO = re.compile(r'\b(RV|[BCEIMOPRUVL])\(')


def markup(text):
    """Ansible doc markup (C(), M(), O(), V(), RV(), P(), R(), L(), U(), I(), B(), E()) -> Markdown."""
    out, pos = [], 0
    text = str(text)
    while True:
        match = _MACRO.search(text, pos)
        if not match:
            out.append(text[pos:])
            break
        end = _balanced(text, match.end())
        if end < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:match.start()])
        macro, body = match.group(1), text[match.end():end]
        if macro in ('C', 'V', 'O', 'RV', 'E', 'M'):
            if macro in ('O', 'RV') and '#' in body:  # O(fqcn#type:option) -> option
                body = body.split(':', 1)[-1]
            out.append('`%s`' % body)
        elif macro == 'P':
            out.append('`%s`' % body.split('#', 1)[0])
        elif macro == 'I':
            out.append('*%s*' % body)
        elif macro == 'B':
            out.append('**%s**' % body)
        elif macro == 'U':
            out.append('<%s>' % body)
        elif macro == 'L':
            label, _sep, url = body.rpartition(',')
            out.append('[%s](%s)' % (label.strip(), url.strip()))
        elif macro == 'R':
            out.append(body.rpartition(',')[0].strip() or body)
        pos = end + 1
    return ''.join(out)


def _paragraphs(value):
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [markup(' '.join(str(item).split())) for item in items]


def _cell(text):
    return text.replace('|', '\\|').replace('\n', ' ')


def _value(value):
    if isinstance(value, str):
        return '`""`' if value == '' else '`%s`' % value
    return '`%s`' % json.dumps(value)


def _type(option):
    kind = option.get('type', 'str')
    if kind == 'list' and option.get('elements'):
        kind = 'list of %s' % option['elements']
    return kind


def render(role, specs):
    fqcn = '%s.%s.%s' % (NAMESPACE, NAME, role)
    main = specs.get('main', {})
    lines = [
        '# %s' % fqcn,
        '',
        '<!-- Generated from roles/%s/meta/argument_specs.yml by %s --write; do not edit by hand. -->'
        % (role, GENERATOR),
        '',
        markup(main.get('short_description', '')) + '.' if main.get('short_description') else '',
        '',
        'A role of the `%s.%s` collection. `ansible-doc -t role %s` shows the same documentation, from '
        "the same source, and Ansible validates the role's variables against it when the role runs."
        % (NAMESPACE, NAME, fqcn),
        '',
        '```yaml',
        '- hosts: codex_runners',
        '  become: true',
        '  roles:',
        '    - role: %s' % fqcn,
    ]
    required = [(name, option) for name, option in (main.get('options') or {}).items() if option.get('required')]
    if required:
        lines.append('      vars:')
        lines += ['        %s: CHANGE_ME   # required: %s' % (name, (_paragraphs(option.get('description')) or [''])[0])
                  for name, option in required]
    lines += ['```', '']
    entry_points = sorted(specs, key=lambda name: (name != 'main', name))
    if len(entry_points) > 1:
        lines += ['Entry points: %s. Run another entry point with `tasks_from`:' % ', '.join(
            '[`%s`](#entry-point-%s)' % (name, name.replace('_', '-')) for name in entry_points), '',
            '```yaml',
            '- ansible.builtin.include_role:',
            '    name: %s' % fqcn,
            '    tasks_from: %s' % entry_points[-1],
            '```', '']
    for entry in entry_points:
        spec = specs[entry] or {}
        lines += ['## Entry point `%s`' % entry, '']
        if spec.get('short_description') and entry != 'main':
            lines += ['**%s**' % markup(spec['short_description']), '']
        for paragraph in _paragraphs(spec.get('description')):
            lines += [paragraph, '']
        options = spec.get('options') or {}
        if not options:
            lines += ['This entry point takes no variables.', '']
            continue
        lines += ['| Variable | Type | Required / default | Description |', '|---|---|---|---|']
        for name, option in options.items():
            option = option or {}
            if option.get('required'):
                default = '**required**'
            elif 'default' in option:
                default = _value(option['default'])
            else:
                default = '-'
            description = ' '.join(_paragraphs(option.get('description')))
            if option.get('choices'):
                description += ' Choices: %s.' % ', '.join(_value(choice) for choice in option['choices'])
            cells = (name, _cell(_type(option)), _cell(default), _cell(description.strip()))
            lines.append('| `%s` | %s | %s | %s |' % cells)
        lines.append('')
    text = '\n'.join(lines)
    text = re.sub(r'\n{3,}', '\n\n', text)
    return text.rstrip('\n') + '\n'


def outputs(repo=REPO):
    """{path relative to the repo: expected content} for every generated file."""
    expected = {}
    for role in roles(repo):
        text = render(role, load_specs(role, repo))
        expected['docs/roles/%s.md' % role] = text
        expected['roles/%s/README.md' % role] = text
    return expected


def _current(full):
    """The text of a generated file as it is now, or None when it is missing."""
    if not os.path.exists(full):
        return None
    with open(full, encoding='utf-8') as handle:
        return handle.read()


def stale(repo=REPO):
    problems = []
    for path, text in sorted(outputs(repo).items()):
        current = _current(os.path.join(repo, path))
        if current != text:
            problems.append('%s is %s' % (path, 'missing' if current is None else 'stale'))
    return problems


def write(repo=REPO):
    written = []
    for path, text in sorted(outputs(repo).items()):
        full = os.path.join(repo, path)
        if _current(full) != text:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, 'w', encoding='utf-8') as handle:
                handle.write(text)
            written.append(path)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--write', action='store_true', help='regenerate the role docs')
    group.add_argument('--check', action='store_true', help='fail when a role doc is missing or stale')
    args = parser.parse_args(argv)
    if args.write:
        for path in write():
            print('wrote %s' % path)
        return 0
    problems = stale()
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print('Run `python %s --write` (make docs) after changing a meta/argument_specs.yml.' % GENERATOR,
              file=sys.stderr)
        return 1
    print('role docs are current (%d files)' % len(outputs()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
