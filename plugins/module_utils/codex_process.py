# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Running the Codex CLI for a runner user.

Private to this collection. Secrets go to Codex on stdin, never in argv (argv is world-readable
in /proc). The child runs as the runner user and only ever as the runner (started by a child that
has already dropped to it, with a deadline on every wait: _runner_process), so every file Codex creates in CODEX_HOME (auth.json,
its lock files, log/) belongs to that user, and Codex runs code the runner user controls (its
config, its MCP servers), so its environment is built from an allow-list, never inherited: root's
environment (a proxy password, cloud keys from a play's `environment:`) stays root's. What Codex
needs beyond the list (proxy settings, test endpoints) the operator names explicitly
(`codex_environment`). The variables that would shadow auth.json are never passed.
"""

import os
import re

from ansible_collections.codexops.runner.plugins.module_utils import _runner_process
from ansible_collections.codexops.runner.plugins.module_utils import errors

# Read by Codex at run time and preferred over auth.json (the OPENAI_IDENTITY_*/SPIFFE_* ones: workload identity, 0.171.0).
SHADOWING_VARIABLES = ('CODEX_ACCESS_TOKEN', 'OPENAI_API_KEY', 'CODEX_API_KEY', 'OPENAI_IDENTITY_TOKEN_SOURCE',
                       'OPENAI_FEDERATION_RULE_ID', 'OPENAI_IDENTITY_TOKEN_FILE', 'SPIFFE_ENDPOINT_SOCKET',
                       'OPENAI_SPIFFE_AUDIENCE', 'OPENAI_SPIFFE_ID')
# Passed from the module's own environment when set; HOME, USER and LOGNAME are the runner's.
INHERITED_VARIABLES = ('PATH', 'LANG', 'TMPDIR', 'TZ')
INHERITED_PREFIXES = ('LC_',)
DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin'
_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
MASK = '********'
_NOISE = ('WARNING: proceeding, even though we could not create PATH aliases',)
_API_KEY_TAIL = re.compile(r'\*\*\*[A-Za-z0-9_-]+')


class CodexProcessError(errors.CodexOpsError):
    default_code = 'codex_failed'


def check_environment(extra):
    """The operator's `codex_environment`: names and values must be plain strings, no shadowing
    variable (that would defeat what this collection stores), no CODEX_HOME (we set it)."""
    for name, value in (extra or {}).items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise CodexProcessError('codex_environment: %r is not a valid environment variable name.' % (name,))
        if name in SHADOWING_VARIABLES or name == 'CODEX_HOME':
            raise CodexProcessError('codex_environment must not set %s: Codex would use it instead of what is '
                                    'stored in CODEX_HOME.' % name)
        if not isinstance(value, str) or '\0' in value:
            raise CodexProcessError('codex_environment: the value of %s must be a string without NUL bytes.' % name)


def child_environment(home, identity, extra=None):
    """The whole environment of a Codex child: the allow-list, the runner's identity, the operator's
    explicit additions, CODEX_HOME."""
    env = {}
    for name, value in os.environ.items():
        if name in INHERITED_VARIABLES or name.startswith(INHERITED_PREFIXES):
            env[name] = value
    env.setdefault('PATH', DEFAULT_PATH)
    env.update(HOME=identity.home, USER=identity.name, LOGNAME=identity.name)
    check_environment(extra)
    env.update(extra or {})
    env['CODEX_HOME'] = home
    return env


def run_codex(codex_path, args, home, identity, stdin=b'', secrets=(), timeout=120, extra_env=None):
    """(rc, output) of `codex ARGS` as the runner `identity` (never root: _runner_process), every secret
    and any API key tail masked, Codex's harmless PATH-alias warning dropped. The working directory is
    /, so no path the runner controls is resolved before the program is the runner's."""
    try:
        outcome = _runner_process.run(identity, [codex_path] + list(args),
                                      child_environment(home, identity, extra_env), stdin=stdin, timeout=timeout)
    except _runner_process.RunnerProcessError as exc:
        raise CodexProcessError(exc.message, code=exc.code)
    except OSError as exc:
        raise CodexProcessError('cannot run %s as %s: %s. Install the Codex CLI where that user can execute it '
                                '(codex_path).' % (codex_path, identity.name, exc.strerror))
    except ValueError:  # a NUL byte in codex_path
        raise CodexProcessError('cannot run %r: it is not a valid file name (codex_path).' % codex_path)
    if outcome['timed_out'] or outcome['unreaped']:
        raise CodexProcessError('codex %s did not finish within %d seconds%s.'
                                % (' '.join(args), timeout, '' if not outcome['unreaped'] else
                                   ' and could not be reaped (another process holds it); it was abandoned'),
                                code='codex_unreaped' if outcome['unreaped'] else 'codex_timeout')
    return outcome['rc'], mask(outcome['output'] or '', secrets)


def login_status(codex_path, home, identity, secrets=(), extra_env=None):
    """Codex's own verdict on CODEX_HOME: {'rc', 'message', 'logged_in'}. `logged_in` (exit 0) is what
    every caller tests; exit 1 means both "not logged in" and "could not read the credentials or
    config", and only the message tells which."""
    rc, output = run_codex(codex_path, ['login', 'status'], home, identity, secrets=secrets, timeout=60,
                           extra_env=extra_env)
    return {'rc': rc, 'message': output, 'logged_in': rc == 0}


# After the script's own timeout(1) has stopped Codex, it writes its status file: a few seconds.
KEEPALIVE_GRACE_SECONDS = 30


def run_keepalive(command, home, identity, timeout=120, extra_env=None):
    """Run the keepalive wrapper script `command` now, as the runner `identity`, the way its schedule
    does (no arguments, no stdin, working directory /), with the allow-listed environment. Returns
    (exit status, timed_out); the exit status is None when the script could not be reaped. Its output
    is Codex's and is discarded unread: what the run did is in the status file it writes. The script
    bounds Codex by `timeout` (CODEXOPS_KEEPALIVE_TIMEOUT); if the script itself is still running
    `KEEPALIVE_GRACE_SECONDS` later, its process group is stopped."""
    env = child_environment(home, identity, extra_env)
    env['CODEXOPS_KEEPALIVE_TIMEOUT'] = str(int(timeout))
    try:
        outcome = _runner_process.run(identity, [command], env, timeout=timeout + KEEPALIVE_GRACE_SECONDS,
                                      capture=False)
    except _runner_process.RunnerProcessError as exc:
        raise CodexProcessError(exc.message, code=exc.code)
    except OSError as exc:
        raise CodexProcessError('cannot run the keepalive %s as %s: %s. Install it with the codex_keepalive role, '
                                'or give its path in probe_command.' % (command, identity.name, exc.strerror),
                                code='keepalive_probe_failed')
    except ValueError:  # a NUL byte
        raise CodexProcessError('cannot run %r: it is not a valid file name (probe_command).' % command,
                                code='keepalive_probe_failed')
    return outcome['rc'], outcome['timed_out'] or outcome['unreaped']


def mask(text, secrets):
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _API_KEY_TAIL.sub('***', text)
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith(_NOISE)]
    return '\n'.join(lines)
