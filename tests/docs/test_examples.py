# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every EXAMPLES block of every module and filter runs, as written, through ansible-playbook.

The examples address a runner as users will (`codex_home: /home/ci/.codex`, `owner: ci`,
`become: true`, seeds in `codex_seeds/<inventory_hostname>.json` (a runner instance's in
`codex_seeds/<inventory_hostname>/<instance>.json`), vault variables). Here each
runs on two local hosts with its own scratch CODEX_HOME: the path becomes that host's scratch
home, `ci` the user running the tests, `become` is dropped, the seeds are fake and per host, the
vault variables are set, and the play has a vault secret (`--vault-password-file`, as a user's run
of codex_auth_writeback has). Nothing else of an example is changed. codex_access_token_login's
examples run the pinned Codex CLI against the loopback backend of tests/support.
"""

import os
import pwd
import re
import secrets as secrets_module
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

import docs_support
from support import fake_credentials
from support.codex import codex_binary
from support.leaks import find_leaks
from support.private_files import write_private
from support.runner_access import runner_owner
# `backend` is a pytest fixture; importing it is how this suite gets it.
from support.backend_fixture import backend  # noqa: F401 pylint: disable=unused-import

REPO = Path(docs_support.REPO)
COLLECTIONS = Path(docs_support.COLLECTIONS)
HOSTS = ('runner-1', 'runner-2')
INSTANCES = ('gh-1', 'gh-2')


def _plugins():
    found = []
    for path in sorted((REPO / 'plugins' / 'modules').glob('*.py')):
        if not path.name.startswith('_'):
            found.append(('module', path.stem, path))
    for path in sorted((REPO / 'plugins' / 'filter').glob('*.yml')):
        found.append(('filter', path.stem, path))
    return found


def examples_of(kind, path):
    if kind == 'filter':
        return yaml.safe_load(path.read_text())['EXAMPLES']
    match = re.search(r"^EXAMPLES = r?'''(.*?)'''", path.read_text(), re.S | re.M)
    assert match, '%s has no EXAMPLES' % path
    return match.group(1)


def adapt(text):
    """The only changes made to an example: where the runner is, who it is, no become."""
    text = re.sub(r'(:\s+)/home/ci/\.codex(\S*)', r'\1"{{ example_codex_home }}\2"', text)
    text = re.sub(r'^(\s*)owner: ci\s*$', r'\1owner: "{{ example_owner }}"', text, flags=re.M)
    text = re.sub(r'^\s*become: true\s*\n', '', text, flags=re.M)
    assert '/home/ci' not in text and 'owner: ci' not in text, 'an example addresses the runner another way:\n' + text
    return text


@pytest.mark.parametrize('kind,name,path', _plugins(), ids=lambda value: value if isinstance(value, str) else None)
def test_examples_run(kind, name, path, backend):
    work = Path(tempfile.mkdtemp(prefix='codexops-examples-'))
    os.chmod(str(work), 0o700)
    secrets = []
    try:
        _run(kind, name, path, work, backend, secrets)
    finally:
        shutil.rmtree(str(work), ignore_errors=True)


def _run(kind, name, path, work, backend, secrets):
    env = dict(os.environ)
    variables = {
        'example_owner': pwd.getpwuid(os.geteuid()).pw_name,
        'vault_codex_fingerprint_salt': 'salt-FAKE-examples',
        'codex_workspace_id': 'acct-fake-0001',
    }
    api_doc, api_secrets = fake_credentials.apikey_seed()
    variables['vault_openai_api_key'] = api_doc['OPENAI_API_KEY']
    secrets += api_secrets + ['salt-FAKE-examples']

    seeds = work / 'codex_seeds'
    seeds.mkdir(mode=0o700)
    inventory = ['[runners]']
    for host in HOSTS:
        doc, host_secrets = fake_credentials.chatgpt_seed()
        secrets += host_secrets
        seed = seeds / ('%s.json' % host)
        write_private(seed, fake_credentials.dumps(doc))
        # The runner instances the examples name, each with its own seed: codex_seeds/<host>/<instance>.json.
        (seeds / host).mkdir(mode=0o700)
        for instance in INSTANCES:
            doc, instance_secrets = fake_credentials.chatgpt_seed()
            secrets += instance_secrets
            write_private(seeds / host / ('%s.json' % instance), fake_credentials.dumps(doc))
        home_parent = work / host
        home_parent.mkdir(mode=0o700)
        if name == 'codex_access_token_login':
            os.chmod(str(home_parent), 0o755)  # the runner user's home is its own to reach
        inventory.append('%s ansible_connection=local example_codex_home=%s' % (host, home_parent / '.codex'))
    (work / 'inventory.ini').write_text('\n'.join(inventory) + '\n')
    vault_password = 'vault-FAKE-examples-%s' % secrets_module.token_hex(8)
    secrets.append(vault_password)
    vault_password_file = work / 'vault-password'
    write_private(vault_password_file, vault_password)

    setup = []
    module_defaults = {}
    if name == 'codex_access_token_login':
        # Codex never runs as root (issue 18): the example logs in an unprivileged runner, as users do.
        variables['example_owner'] = runner_owner()
        os.chmod(str(work), 0o755)
        codex = codex_binary()
        token = fake_credentials.personal_access_token()
        backend.allow_access_token(token)
        secrets.append(token)
        variables['vault_codex_access_token'] = token
        # The runners example: each instance its own token (one token on two instances is refused).
        for instance in ('gh_1', 'gh_2'):
            own = fake_credentials.personal_access_token()
            backend.allow_access_token(own)
            secrets.append(own)
            variables['vault_codex_access_token_%s' % instance] = own
        env['PATH'] = '%s:%s' % (os.path.dirname(codex), env.get('PATH', ''))
        # Codex never inherits the play's environment: the test backend is named the way a proxy would be.
        module_defaults['codexops.runner.codex_access_token_login'] = {
            'codex_environment': {'CODEX_AUTHAPI_BASE_URL': backend.base_url}}
    elif name not in ('codex_auth_seed', 'codex_config'):
        # Everything else starts from a provisioned runner, each host with its own seed.
        setup.append({
            'name': 'Provision the runner the examples address',
            'codexops.runner.codex_auth_seed': {
                'codex_home': '{{ example_codex_home }}', 'owner': '{{ example_owner }}',
                'content': "{{ lookup('ansible.builtin.file', 'codex_seeds/' ~ inventory_hostname ~ '.json') }}",
                'config_settings': {'cli_auth_credentials_store': 'file'},
            },
        })

    tasks = yaml.safe_load(adapt(examples_of(kind, path)))
    assert isinstance(tasks, list) and tasks, '%s: EXAMPLES is not a list of tasks' % name
    play = [{'name': 'EXAMPLES of %s' % name, 'hosts': 'runners', 'gather_facts': False,
             'vars': variables, 'module_defaults': module_defaults, 'pre_tasks': setup, 'tasks': tasks}]
    playbook = work / 'examples.yml'
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))

    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false',
        ANSIBLE_LOCAL_TEMP=str(work / 'ansible-local'),
        ANSIBLE_REMOTE_TEMP=str(work / 'ansible-remote'),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_NOCOLOR='1',
        ANSIBLE_RETRY_FILES_ENABLED='0',
        ANSIBLE_DEPRECATION_WARNINGS='0',
    )
    proc = subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), '-i', 'inventory.ini', '--diff',
                           '--vault-password-file', str(vault_password_file), '-v', 'examples.yml'],
                          cwd=str(work), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=False)
    output = proc.stdout.decode('utf-8', 'replace')
    log_dir = REPO / 'tests' / 'output' / 'logs'
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / ('examples-%s-%s.log' % (kind, name))).write_text(output)
    assert proc.returncode == 0, 'the EXAMPLES of %s %s failed:\n%s' % (kind, name, output[-6000:])
    leaked = find_leaks(secrets, [output])
    assert not leaked, 'the EXAMPLES of %s printed a secret: %s' % (name, leaked)
    recap = re.findall(r'^(runner-\d)\s+: ok=(\d+)\s.*failed=(\d+)', output, re.M)
    assert sorted(host for host, _ok, failed in recap if failed == '0') == list(HOSTS), output[-3000:]
