# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What in a runner's environment would make Codex ignore auth.json.

Private to this collection. CODEX_ACCESS_TOKEN, OPENAI_API_KEY, CODEX_API_KEY and the workload-identity
variables of Codex 0.171.0 (codex_process.SHADOWING_VARIABLES) are read at run time and win
over auth.json, so a value left in /etc/environment, a CI runner's .env or a systemd unit quietly
replaces the credentials this collection provisions. Files are scanned for assignments of those names; values are never read
into a result.
"""

import re

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import codex_process
from ansible_collections.codexops.runner.plugins.module_utils import trusted_path

MAX_ENV_FILE_BYTES = 1024 * 1024
# An assignment is short; a longer line is only searched this far (the regex stays linear).
MAX_LINE_CHARS = 4096
# `NAME=`, `export NAME=`, systemd `Environment=NAME=...` / `Environment="NAME=..."`, YAML `NAME: ...`
_ASSIGNMENT = re.compile(r'(?:^|[\s"\'=])(%s)\s*[=:]' % '|'.join(codex_process.SHADOWING_VARIABLES))


def shadowing_problems(paths):
    """(problems, warnings) for the environment files given. Root reads them (a systemd
    EnvironmentFile is often root's), but through trusted_path: a link or hard link the runner
    user planted cannot point root at another file."""
    problems, warnings = [], []
    for path in paths or []:
        try:
            data, _st = trusted_path.read_file(path, 'environment_file', MAX_ENV_FILE_BYTES)
        except trusted_path.UnsafePathError as exc:
            warnings.append(auth_model.problem('environment_file_unreadable', exc.message))
            continue
        except OSError as exc:
            warnings.append(auth_model.problem('environment_file_unreadable', 'cannot read %s: %s.'
                                               % (path, exc.strerror or exc.__class__.__name__)))
            continue
        if data is None:
            warnings.append(auth_model.problem('environment_file_unreadable', '%s does not exist.' % path))
            continue
        for number, line in enumerate(data.decode('utf-8', 'replace').splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith(('#', ';')):
                continue
            for name in sorted(set(_ASSIGNMENT.findall(stripped[:MAX_LINE_CHARS]))):
                problems.append(auth_model.problem('env_shadowing', '%s is set in %s (line %d); Codex uses it '
                                                   'instead of auth.json. Remove it, or unset it for Codex.'
                                                   % (name, path, number)))
    return problems, warnings
