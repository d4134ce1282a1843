# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Running the Codex CLI for a runner user.

Private to this collection. Secrets go to Codex on stdin, never in argv (argv is world-readable
in /proc). The child runs as the runner user, so every file Codex creates in CODEX_HOME (auth.json,
its lock files, log/) belongs to that user, and with the variables that would shadow auth.json
removed, so what Codex stores is what was asked for.
"""

import os
import pwd
import subprocess

# Read by Codex at run time and preferred over auth.json.
SHADOWING_VARIABLES = ('CODEX_ACCESS_TOKEN', 'OPENAI_API_KEY', 'CODEX_API_KEY')
MASK = '********'
_NOISE = ('WARNING: proceeding, even though we could not create PATH aliases',)


class CodexProcessError(Exception):
    pass


def child_environment(home, uid=None):
    env = dict((key, value) for key, value in os.environ.items() if key not in SHADOWING_VARIABLES)
    env['CODEX_HOME'] = home
    if uid is not None and uid != os.geteuid():
        entry = pwd.getpwuid(uid)
        env.update(HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name)
    return env


def run_codex(codex_path, args, home, stdin=b'', uid=None, gid=None, secrets=(), timeout=120):
    """(rc, output) with every secret masked and Codex's harmless PATH-alias warning dropped."""
    kwargs = {}
    if uid is not None and uid != os.geteuid():
        kwargs.update(user=uid, group=gid if gid is not None else pwd.getpwuid(uid).pw_gid, extra_groups=[])
    try:
        proc = subprocess.run([codex_path] + list(args), input=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=child_environment(home, uid), cwd=home,
                              timeout=timeout, check=False, **kwargs)
    except subprocess.TimeoutExpired:
        raise CodexProcessError('codex %s did not finish within %d seconds.' % (' '.join(args), timeout))
    except OSError as exc:
        raise CodexProcessError('cannot run %s as the runner user: %s. Install the Codex CLI where that user '
                                'can execute it (codex_path).' % (codex_path, exc.strerror))
    except ValueError:  # a NUL byte in codex_path
        raise CodexProcessError('cannot run %r: it is not a valid file name (codex_path).' % codex_path)
    return proc.returncode, mask(proc.stdout.decode('utf-8', 'replace'), secrets)


def mask(text, secrets):
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith(_NOISE)]
    return '\n'.join(lines)
