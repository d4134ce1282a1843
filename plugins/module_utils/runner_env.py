# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What in a runner's environment would make Codex ignore auth.json.

Private to this collection. CODEX_ACCESS_TOKEN, OPENAI_API_KEY and CODEX_API_KEY are read at run
time and win over auth.json, so a value left in /etc/environment, a CI runner's .env or a systemd
unit quietly replaces the credentials this collection provisions. Files are scanned for
assignments of those names; values are never read into a result.
"""

import os
import re
import stat

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import codex_process

MAX_ENV_FILE_BYTES = 1024 * 1024
# `NAME=`, `export NAME=`, systemd `Environment=NAME=...` / `Environment="NAME=..."`, YAML `NAME: ...`
_ASSIGNMENT = re.compile(r'(?:^|[\s"\'=])(%s)\s*[=:]' % '|'.join(codex_process.SHADOWING_VARIABLES))
_API_KEY_TAIL = re.compile(r'\*\*\*[A-Za-z0-9_-]+')


def shadowing_problems(paths):
    """(problems, warnings) for the environment files given."""
    problems, warnings = [], []
    for path in paths or []:
        try:
            data = _read_regular(path)
        except (IOError, OSError, ValueError) as exc:
            warnings.append(auth_model.problem('environment_file_unreadable', 'cannot read %s: %s.'
                                               % (path, getattr(exc, 'strerror', None) or exc)))
            continue
        for number, line in enumerate(data.decode('utf-8', 'replace').splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith(('#', ';')):
                continue
            for name in sorted(set(_ASSIGNMENT.findall(stripped))):
                problems.append(auth_model.problem('env_shadowing', '%s is set in %s (line %d); Codex uses it '
                                                   'instead of auth.json. Remove it, or unset it for Codex.'
                                                   % (name, path, number)))
    return problems, warnings


def _read_regular(path):
    """The first MAX_ENV_FILE_BYTES of a regular file (links followed: nothing is written). A FIFO
    would block the module forever, and a device is not an environment file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError('not a regular file')
        chunks, size = [], 0
        while size < MAX_ENV_FILE_BYTES:
            chunk = os.read(fd, MAX_ENV_FILE_BYTES - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b''.join(chunks)
    finally:
        os.close(fd)


def login_status(codex_path, home, uid=None, gid=None):
    """Codex's own verdict on CODEX_HOME: {'rc', 'message'}, with any API key tail masked."""
    rc, output = codex_process.run_codex(codex_path, ['login', 'status'], home, uid=uid, gid=gid, timeout=60)
    return {'rc': rc, 'message': _API_KEY_TAIL.sub('***', output)}
