"""`make demo`: provision a 3-runner local fleet from obviously fake seeds and print its health.

Each runner is an inventory host with a local connection and its own CODEX_HOME under .build/demo,
so the demo needs no root, no SSH and no network. The seeds are generated fresh each time and are
fake (their tokens say FAKE); nothing here is a real credential.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests'))

from support import fake_credentials  # noqa: E402

ROOT = REPO / '.build' / 'demo'
RUNNERS = ['runner-1', 'runner-2', 'runner-3']


def private_file(path, text):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as handle:
        handle.write(text)


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    seeds, reports = ROOT / 'seeds', ROOT / 'report'
    seeds.mkdir(parents=True, mode=0o700)
    reports.mkdir()
    hosts = {}
    for number, host in enumerate(RUNNERS, 1):
        doc, _secrets = fake_credentials.chatgpt_seed(tag='demo%d' % number, account_id='acct-demo-%d' % number)
        private_file(seeds / ('%s.json' % host), fake_credentials.dumps(doc))
        hosts[host] = {'codex_home': str(ROOT / 'runners' / host / '.codex')}
    inventory = {'codex_runners': {'hosts': hosts, 'vars': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
        'seed_dir': str(seeds), 'report_dir': str(reports)}}}
    (ROOT / 'inventory.json').write_text(json.dumps(inventory, indent=2))

    playbook = Path(sys.executable).parent / 'ansible-playbook'
    for run in ('first run', 'second run (idempotent: expect changed=0)'):
        print('\n=== provision, %s' % run, flush=True)
        subprocess.run([str(playbook), '-i', str(ROOT / 'inventory.json'), str(REPO / 'demo' / 'provision.yml')],
                       check=True)

    print('\n=== fleet health (facts only, never tokens)')
    columns = ('host', 'action', 'healthy', 'auth_mode', 'has_refresh_token', 'last_refresh',
               'credentials_store', 'codex_home_mode', 'auth_file_mode', 'refresh_token_fingerprint')
    rows = [json.loads((reports / ('%s.json' % host)).read_text()) for host in RUNNERS]
    table = [columns] + [tuple(str(row.get(column)) for column in columns) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for index, line in enumerate(table):
        print('  '.join(cell.ljust(width) for cell, width in zip(line, widths)))
        if index == 0:
            print('  '.join('-' * width for width in widths))
    print('\nRunners live in %s; seeds in %s (fake, 0600).' % (ROOT / 'runners', seeds))
    return 0 if all(row['healthy'] for row in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
