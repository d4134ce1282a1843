"""The codex_cli role on the local host: npm install of the pinned version, idempotence, and a
tarball whose checksum does not match is refused before anything is unpacked."""

import os
import sys

from support.codex import CODEX_TARBALL

PLAY = '''
- hosts: localhost
  gather_facts: false
  roles:
    - role: codexops.runner.codex_cli
'''


def run_role(workspace, variables, expect_failure=False):
    playbook = workspace.root / 'codex_cli.yml'
    playbook.write_text(PLAY)
    inventory = workspace.root / 'cli-inventory.ini'
    inventory.write_text('localhost ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
    return workspace.playbook(str(playbook), str(inventory), variables, expect_failure=expect_failure,
                              label='codex_cli', verbose=False)


def test_npm_install_is_pinned_and_idempotent(workspace):
    prefix = workspace.root / 'opt' / 'codex-cli'
    link = workspace.root / 'bin' / 'codex'
    link.parent.mkdir()
    variables = {'codex_cli_prefix': str(prefix), 'codex_cli_link': str(link)}
    first = run_role(workspace, variables)
    assert 'changed=2' in first  # npm install + link
    assert os.path.islink(str(link)) and os.access(str(link), os.X_OK)
    second = run_role(workspace, variables)
    assert 'changed=0' in second and 'Install @openai/codex' not in second


def test_tarball_with_wrong_checksum_is_refused(workspace):
    tarball = workspace.root / 'codex.tar.gz'
    tarball.write_bytes(b'not the tarball you are looking for')
    prefix = workspace.root / 'opt' / 'codex-cli'
    output = run_role(workspace, {'codex_cli_prefix': str(prefix), 'codex_cli_link': '',
                                  'codex_cli_method': 'tarball', 'codex_cli_tarball': str(tarball),
                                  'codex_cli_tarball_sha256': '0' * 64}, expect_failure=True)
    assert 'does not match codex_cli_tarball_sha256' in output
    assert not prefix.exists()


def test_real_tarball_installs_offline(workspace):
    tarball = os.environ.get('CODEXOPS_CODEX_TARBALL') or str(CODEX_TARBALL)
    assert os.path.exists(tarball), 'run `make codex-tarball` (make integration does)'
    with open(tarball + '.sha256') as handle:
        checksum = handle.read().strip()
    prefix = workspace.root / 'opt' / 'codex-cli'
    variables = {'codex_cli_prefix': str(prefix), 'codex_cli_link': '', 'codex_cli_method': 'tarball',
                 'codex_cli_tarball': tarball, 'codex_cli_tarball_sha256': checksum,
                 'codex_cli_tarball_remote_src': True}
    run_role(workspace, variables)
    assert os.access(str(prefix / 'node_modules' / '.bin' / 'codex'), os.X_OK)
    assert 'changed=0' in run_role(workspace, variables)
