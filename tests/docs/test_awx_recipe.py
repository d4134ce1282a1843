# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/awx.md's recipe runs: the seeds credential as AWX injects it, into the provision playbook.

AWX writes a credential's `file` injector to a private file and its `extra_vars` injector to an
extra-vars file in which every value is `!unsafe` (never templated). Here the same two files are
made from the credential type in the page, the inventory group variables are the ones in the page,
and the provision playbook runs on two local hosts: each must get its own seed. The page's
check_seeds.yml play must pass on distinct seeds and fail on a seed given to two hosts.
"""

import json
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import docs_support
from support import fake_credentials
from support.private_files import write_private

REPO = Path(docs_support.REPO)
PAGE = (REPO / 'docs' / 'awx.md').read_text()
COLLECTIONS = Path(docs_support.COLLECTIONS)


def block(first_line):
    """The fenced code block of the page whose first line is `first_line`."""
    for match in re.finditer(r'```(?:yaml|json)\n(.*?)```', PAGE, re.S):
        text = match.group(1)
        if text.splitlines()[0].strip() == first_line:
            return text
    raise AssertionError('docs/awx.md has no code block starting with %r' % first_line)


def credential_type():
    inputs = injectors = None
    for match in re.finditer(r'```yaml\n(.*?)```', PAGE, re.S):
        data = yaml.safe_load(match.group(1))
        if isinstance(data, dict) and any(field.get('id') == 'seeds' for field in data.get('fields', [])):
            inputs = data
        if isinstance(data, dict) and 'template.seeds' in (data.get('file') or {}):
            injectors = data
    assert inputs and injectors, 'the seeds credential type is not in docs/awx.md'
    return inputs, injectors


def awx_inject(work, inputs, injectors, values):
    """What AWX does with a credential: the file injector, then the extra vars file, all !unsafe."""
    fields = dict((field['id'], values[field['id']]) for field in inputs['fields'])
    assert set(inputs['required']) <= set(fields)
    seeds_file = work / 'seeds-credential'
    write_private(seeds_file, render(injectors['file']['template.seeds'], fields, {}))
    filenames = {'seeds': str(seeds_file)}
    lines = []
    for name, template in injectors['extra_vars'].items():
        value = render(template, fields, filenames)
        lines.append('%s: !unsafe %s' % (name, json.dumps(value)))
    extra_vars = work / 'awx-extravars.yml'
    write_private(extra_vars, '\n'.join(lines) + '\n')
    return extra_vars


def render(template, fields, filenames):
    """The injector templates of the page are plain `{{ field }}` / `{{ tower.filename.x }}` lookups."""
    def value(match):
        name = match.group(1)
        if name.startswith('tower.filename.'):
            return filenames[name[len('tower.filename.'):]]
        return fields[name]
    return re.sub(r'\{\{\s*([\w.]+)\s*\}\}', value, template)


def run(work, args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false',
               ANSIBLE_LOCAL_TEMP=str(work / 'ansible-local'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_DEPRECATION_WARNINGS='0')
    proc = subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook')] + args, cwd=str(work), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    return proc.returncode, proc.stdout.decode('utf-8', 'replace')


@pytest.fixture
def fleet(tmp_path):
    work = tmp_path
    os.chmod(str(work), 0o700)
    seeds, secrets = {}, ['salt-FAKE-awx']
    for host in ('ci-runner-01', 'ci-runner-02'):
        doc, tokens = fake_credentials.chatgpt_seed(account_id='acct-%s' % host)
        seeds[host] = doc
        secrets += tokens
    group_vars = yaml.safe_load(block('# Inventory -> codex_runners group -> Variables'))
    group_vars.update(ansible_connection='local', ansible_python_interpreter=sys.executable, codexops_become=False,
                      codex_auth_user=fake_user(), codex_auth_report_dir=str(work / 'report'))
    hosts = dict((host, {'codex_auth_home': str(work / host / '.codex')}) for host in seeds)
    (work / 'inventory.json').write_text(json.dumps({'codex_runners': {'hosts': hosts, 'vars': group_vars}}))
    return work, seeds, secrets


def fake_user():
    return pwd.getpwuid(os.geteuid()).pw_name


def test_seeds_credential_provisions_each_runner_with_its_own_seed(fleet):
    work, seeds, secrets = fleet
    inputs, injectors = credential_type()
    extra_vars = awx_inject(work, inputs, injectors, {'seeds': json.dumps(seeds), 'fingerprint_salt': 'salt-FAKE-awx'})
    (work / 'provision.yml').write_text(block('# provision.yml (likewise verify.yml, reseed.yml, rotate_access_token.yml)'))
    rc, output = run(work, ['-i', 'inventory.json', '-e', '@%s' % extra_vars.name, 'provision.yml'])
    assert rc == 0, output[-6000:]
    for host, doc in seeds.items():
        stored = json.loads((work / host / '.codex' / 'auth.json').read_text())
        assert stored['tokens']['refresh_token'] == doc['tokens']['refresh_token'], host
    report = json.loads((work / 'report' / 'fleet-report.json').read_text())
    assert report['ok'] and report['totals']['healthy'] == 2, report
    assert not [secret[:12] for secret in secrets if secret in output]


def test_check_seeds_play_refuses_one_refresh_token_on_two_runners(fleet):
    work, seeds, secrets = fleet
    inputs, injectors = credential_type()
    (work / 'check_seeds.yml').write_text(block('# check_seeds.yml'))
    extra_vars = awx_inject(work, inputs, injectors, {'seeds': json.dumps(seeds), 'fingerprint_salt': 'salt-FAKE-awx'})
    rc, output = run(work, ['-i', 'localhost,', '-e', '@%s' % extra_vars.name, 'check_seeds.yml'])
    assert rc == 0, output[-4000:]

    shared = dict(seeds, **{'ci-runner-02': seeds['ci-runner-01']})
    os.unlink(str(work / 'seeds-credential'))
    os.unlink(str(extra_vars))
    extra_vars = awx_inject(work, inputs, injectors, {'seeds': json.dumps(shared), 'fingerprint_salt': 'salt-FAKE-awx'})
    rc, output = run(work, ['-i', 'localhost,', '-e', '@%s' % extra_vars.name, 'check_seeds.yml'])
    assert rc != 0 and 'share a refresh token in the seeds credential: ci-runner-01 and ci-runner-02.' in output, output[-4000:]
    assert not [secret[:12] for secret in secrets if secret in output]


def test_access_token_credential_sets_the_role_and_rotation_variables():
    injectors = [yaml.safe_load(match.group(1)) for match in re.finditer(r'```yaml\n(.*?)```', PAGE, re.S)]
    token = [data for data in injectors if isinstance(data, dict) and 'codex_new_access_token' in data.get('extra_vars', {})]
    assert token, 'the access token credential type is not in docs/awx.md'
    assert set(token[0]['extra_vars']) == {'codex_auth_access_token', 'codex_new_access_token'}
    rotate = (REPO / 'playbooks' / 'rotate_access_token.yml').read_text()
    assert 'codex_new_access_token' in rotate
    specs = (REPO / 'roles' / 'codex_auth' / 'meta' / 'argument_specs.yml').read_text()
    assert 'codex_auth_access_token:' in specs and 'codex_auth_seed_content:' in specs
