"""What compiling its Python costs a module run, ours against a builtin's.

    .venv/bin/python benchmarks/compile_cost.py [--rounds 20]

AnsiballZ ships a module and the module_utils it imports as source in a zip and imports them from it,
with no bytecode, so every module run compiles them again. For each module this lists the source files
an import of it loads (asked of a fresh interpreter), split into this collection's and Ansible's own, and
times `compile()` of each set: process CPU, the least of --rounds rounds (the least is the least
disturbed by the rest of the machine). `stat` is the builtin the bench's floor runs. Needs the
collection link of `make collection` (.build/collections).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODULES = ('ansible_collections.codexops.runner.plugins.modules.codex_auth_seed',
           'ansible_collections.codexops.runner.plugins.modules.codex_auth_verify',
           'ansible.modules.stat')
LISTER = ('import json, sys; import {0}; '
          'print(json.dumps([(m.__name__, getattr(m, "__file__", None)) for m in list(sys.modules.values())]))')


def imported_sources(module):
    """(name, file) of every module an import of `module` loads from a .py file, in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=str(REPO / '.build' / 'collections'), PYTHONDONTWRITEBYTECODE='1')
    out = subprocess.run([sys.executable, '-c', LISTER.format(module)], env=env, stdout=subprocess.PIPE,
                         check=True, universal_newlines=True).stdout
    return [(name, path) for name, path in json.loads(out) if path and path.endswith('.py')]


def compile_cost(paths, rounds):
    """(kB of source, least CPU ms to compile it all)."""
    sources = []
    for path in paths:
        with open(path, 'rb') as handle:
            sources.append((path, handle.read()))
    least = None
    for _round in range(rounds):
        started = time.process_time()
        for path, source in sources:
            compile(source, path, 'exec', dont_inherit=True)
        spent = time.process_time() - started
        least = spent if least is None else min(least, spent)
    return sum(len(source) for _path, source in sources) / 1024.0, least * 1000.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--rounds', type=int, default=20)
    args = parser.parse_args()
    print('| module | this collection: files, kB, compile CPU ms | Ansible: files, kB, compile CPU ms |')
    print('|---|---|---|')
    for module in MODULES:
        sources = imported_sources(module)
        ours = [path for name, path in sources if name.startswith('ansible_collections.codexops.')]
        ansible = [path for name, path in sources if name == 'ansible' or name.startswith('ansible.')]
        print('| %s | %d, %.0f, %.1f | %d, %.0f, %.1f |'
              % ((module.rsplit('.', 1)[1], len(ours)) + compile_cost(ours, args.rounds)
                 + (len(ansible),) + compile_cost(ansible, args.rounds)))


if __name__ == '__main__':
    main()
