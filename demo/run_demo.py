"""`make demo`: provision a 3-runner local fleet from obviously fake seeds and print its report.

Each runner is an inventory host with a local connection and its own CODEX_HOME under .build/demo,
so the demo needs no root, no SSH and no network. It runs the collection's own playbooks:
provision (twice: the second run changes nothing), then verify, which writes the fleet report.
The seeds are generated fresh each time and are fake (their tokens say FAKE).
"""

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests'))

from support import make_seeds  # noqa: E402

ROOT = REPO / '.build' / 'demo'
RUNNERS = ['runner-1', 'runner-2', 'runner-3']


def playbook(name, inventory):
    print('\n=== ansible-playbook codexops.runner.%s -i %s' % (name, inventory), flush=True)
    subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), 'codexops.runner.%s' % name,
                    '-i', str(inventory)], check=True)


def main():
    shutil.rmtree(str(ROOT), ignore_errors=True)
    ROOT.mkdir(parents=True)
    make_seeds.main([str(ROOT / 'codex_seeds')] + RUNNERS)
    hosts = dict((host, {'codex_auth_home': str(ROOT / 'runners' / host / '.codex')}) for host in RUNNERS)
    inventory = ROOT / 'inventory.json'
    inventory.write_text(json.dumps({'codex_runners': {'hosts': hosts, 'vars': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable, 'codexops_become': False,
        'codex_auth_user': pwd.getpwuid(os.geteuid()).pw_name,
        'codex_auth_report_dir': str(ROOT / 'report')}}}, indent=2))

    playbook('provision', inventory)
    playbook('provision', inventory)  # idempotent: changed=0 on every runner
    playbook('verify', inventory)

    print('\n' + (ROOT / 'report' / 'fleet-report.md').read_text())
    print('Runners: %s   Seeds (fake, 0600): %s   Report: %s' % (ROOT / 'runners', ROOT / 'codex_seeds',
                                                                 ROOT / 'report'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
