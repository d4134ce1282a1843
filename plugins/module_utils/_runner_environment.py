# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How a runner's jobs find their CODEX_HOME: the runner's own environment, written and read back.

Private to this collection; standard library only, Python 3.9+. One concern: the `runner_environment` of a
runner (or runner instance), a dict of

- `github_runner_dir`: a GitHub Actions runner directory. Its `.env` (lines NAME=value, read by the runner when
  it starts: no quotes, no comments, the text after the first `=` is the value, the last line of a name wins)
  gets exactly one `CODEX_HOME=<home>` line; every other line is kept byte for byte. The directory is the
  runner user's (untrusted): it is walked without following links (trusted_path), and whoever controls it acts
  in it (the runner user through privsep, root only in a directory only root controls), through safe_files'
  atomic replace; a `.env` that is a link, a FIFO, a device, hard-linked or huge is refused.
- `systemd_unit`: the runner's systemd service. A root-owned drop-in `/etc/systemd/system/<unit>.d/` +
  DROPIN_NAME sets `Environment="CODEX_HOME=<home>"`. Written here rather than with ansible.builtin.copy in
  the role: the seed module already visits the host once for every instance, so the drop-ins cost no round
  trip, the refusal of a bad list covers them before anything is written, and check mode predicts them with
  the rest. systemd only reads it after `systemctl daemon-reload` (the role's handler, when systemd runs).
- `gitlab_concurrent_id`: the GitLab Runner `concurrent` slot (CI_CONCURRENT_ID) this instance serves. No file
  is written: gitlab_pre_build_script() gives the `pre_build_script` that points each slot's jobs at its
  instance's CODEX_HOME, for the runner's config.toml.

The runner reads its environment when it starts: a change takes effect at its next restart, which is left
to the operator (restarting would cancel the job it runs). CODEX_HOME is a path, not a secret; no other value of
`.env` is ever returned, shown in a diff or put in a message.
"""

import os
import re
import shlex
import stat

from ansible_collections.codexops.runner.plugins.module_utils import constants
from ansible_collections.codexops.runner.plugins.module_utils import privsep
from ansible_collections.codexops.runner.plugins.module_utils import safe_files
from ansible_collections.codexops.runner.plugins.module_utils import trusted_path

UnsafePathError = trusted_path.UnsafePathError

FIELDS = ('github_runner_dir', 'systemd_unit', 'gitlab_concurrent_id')
ENV_FILE = '.env'
VARIABLE = 'CODEX_HOME'
SYSTEMD_DIR = '/etc/systemd/system'
DROPIN_NAME = 'codexops-codex-home.conf'
DROPIN_MODE = 0o644
DROPIN_DIR_MODE = 0o755
# A runner's .env is a few lines; a bigger one is not what we think it is.
MAX_ENV_BYTES = 1024 * 1024
MAX_DROPIN_BYTES = 64 * 1024
# systemd's unit name characters (systemd.unit(5)); only a service has an environment.
_UNIT = re.compile(r'[A-Za-z0-9:_.\\@-]{1,247}\.service')
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')
_MAX_SLOT = 10000


def _is_blank(spec):
    return spec is None or spec == {} or spec == ''


def spec_problems(spec, home=None):
    """Why `spec` (a runner_environment) cannot be used, as messages without a subject ('' when it can): for
    the caller to prefix with the instance. `home` (the CODEX_HOME to write), when given, must be writable
    where the spec writes it."""
    if _is_blank(spec):
        return []
    if not isinstance(spec, dict):
        return ['runner_environment must be a dict with %s (got a %s)' % (', '.join(FIELDS), type(spec).__name__)]
    found = []
    unknown = sorted(str(key) for key in spec if key not in FIELDS)
    if unknown:
        found.append('runner_environment has unknown fields %s (known: %s)' % (', '.join(unknown), ', '.join(FIELDS)))
    directory = spec.get('github_runner_dir')
    if directory is not None:
        if not isinstance(directory, str) or not directory.startswith('/') or '..' in directory.split('/') \
                or _CONTROL.search(directory):
            found.append('runner_environment.github_runner_dir must be an absolute path without .. or control '
                         'characters (the GitHub runner directory that holds .env)')
    unit = spec.get('systemd_unit')
    if unit is not None:
        if not isinstance(unit, str) or _UNIT.fullmatch(unit) is None:
            found.append('runner_environment.systemd_unit must be a systemd service name such as '
                         'actions.runner.org-repo.runner-1.service (no /, ending in .service)')
    slot = spec.get('gitlab_concurrent_id')
    if slot is not None:
        if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < _MAX_SLOT:
            found.append('runner_environment.gitlab_concurrent_id must be a whole number from 0 (a GitLab Runner '
                         'CI_CONCURRENT_ID)')
    if home is not None and (directory is not None or unit is not None or slot is not None):
        if not isinstance(home, str) or _CONTROL.search(home):
            found.append('a CODEX_HOME written into the runner environment cannot hold control characters')
        elif slot is not None and not home.startswith('/'):
            found.append('a GitLab slot needs an absolute codex_home (its pre_build_script cannot expand ~USER)')
    return found


def writes(spec):
    """Whether `spec` asks for any file to be written or read on the host."""
    return not _is_blank(spec) and isinstance(spec, dict) and bool(
        spec.get('github_runner_dir') is not None or spec.get('systemd_unit') is not None)


# --- GitHub's .env -------------------------------------------------------------------------------------------

def _line_key(raw):
    line = raw.rstrip(b'\r\n')
    index = line.find(b'=')
    return line[:index] if index > 0 else None


def env_with_home(data, home):
    """`data` (a .env's bytes, or None) with exactly one CODEX_HOME line, in the place of the first one there
    was (else at the end), every other line byte for byte as it was."""
    line = ('%s=%s' % (VARIABLE, home)).encode('utf-8', 'surrogateescape')
    out, placed = [], False
    for raw in (data or b'').splitlines(True):
        if _line_key(raw) == VARIABLE.encode():
            if not placed:
                out.append(line + (raw[len(raw.rstrip(b'\r\n')):] or b'\n'))
                placed = True
            continue
        out.append(raw)
    if not placed:
        if out and not out[-1].endswith((b'\n', b'\r')):
            out.append(b'\n')
        out.append(line + b'\n')
    return b''.join(out)


def env_codex_home(data):
    """The CODEX_HOME the GitHub runner would set from a .env's bytes (the last line wins), or None."""
    found = None
    for raw in (data or b'').splitlines():
        if _line_key(raw) == VARIABLE.encode():
            found = raw[len(VARIABLE) + 1:].decode('utf-8', 'surrogateescape')
    return found


def _write_env(context):
    """As whoever controls the runner directory (privsep): judge and, unless `check`, replace its .env."""
    home_dir = safe_files.HomeDir(context['fd'], context['dir'])
    data, st = home_dir.read_regular(ENV_FILE, 'runner_env_file', MAX_ENV_BYTES)
    wanted = env_with_home(data, context['home'])
    if data == wanted:
        return 'kept'
    action = 'created' if data is None else 'updated'
    if not context['check']:
        if st is not None:
            # The file's own mode and, when root writes, its owner: the runner reads it as before.
            mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
        else:
            mode, uid, gid = 0o600, context['uid'], context['gid']
        if os.geteuid() != constants.ROOT_UID:
            uid = gid = None  # the runner's own file, in its own group
        home_dir.atomic_write(ENV_FILE, wanted, uid, gid, mode)
    return action


def github_env(directory, home, uid=None, gid=None, check=False):
    """Give `directory`/.env exactly one CODEX_HOME=`home` line: 'created', 'updated' or 'kept' (in check mode,
    what a run would do). Acts as the user who controls the directory - the runner `uid` (or, without one,
    whoever owns it) or root in a directory only root controls; refuses anything else, and links anywhere on
    the way."""
    where = trusted_path.walk(directory, code='runner_env_dir')
    try:
        if where.missing:
            raise UnsafePathError('runner_env_dir_missing', 'the GitHub runner directory %s does not exist; '
                                  'install the runner first, or correct github_runner_dir.' % directory)
        actor = where.controller
        if actor in ('many', trusted_path.ANYONE):
            raise UnsafePathError('runner_env_dir_shared', '%s can be changed by more than one user; its .env is '
                                  'not written.' % directory)
        if actor is None:
            actor = constants.ROOT_UID
        elif uid is not None and actor != uid:
            raise UnsafePathError('runner_env_dir_owner', '%s is controlled by %s, not by the runner %s; its .env is '
                                  'not written.' % (directory, safe_files.user_name(actor), safe_files.user_name(uid)))
        context = {'fd': where.fd, 'dir': directory, 'home': home, 'uid': uid, 'gid': gid, 'check': check}
        return privsep.run_as(privsep.Identity(actor), _write_env, context)
    finally:
        where.close()


def read_github_env(directory):
    """The CODEX_HOME a GitHub runner directory's .env sets (None when it sets none or is missing), read by root
    through trusted_path as environment files are (no link or hard link the runner planted is followed)."""
    data, _st = trusted_path.read_file(os.path.join(directory, ENV_FILE), 'runner_env_file', MAX_ENV_BYTES)
    return env_codex_home(data)


def github_env_path(spec):
    """The GitHub runner .env that `spec` (a runner_environment) writes, or None: every job of that runner gets its
    variables, so verify looks there for variables that shadow auth.json (runner_env.shadowing_problems)."""
    if isinstance(spec, dict) and spec.get('github_runner_dir') is not None:
        return os.path.join(spec['github_runner_dir'], ENV_FILE)
    return None


# --- systemd drop-in -----------------------------------------------------------------------------------------

def systemd_quote(value):
    """`value` as one word of a systemd Environment= line: C-style escapes in double quotes, % doubled (a
    specifier otherwise)."""
    return '"%s"' % value.replace('\\', '\\\\').replace('"', '\\"').replace('%', '%%')


def dropin_content(home):
    return ('# Managed by codexops.runner (codex_auth): where this runner\'s jobs find their Codex credentials.\n'
            '[Service]\nEnvironment=%s\n' % systemd_quote('%s=%s' % (VARIABLE, home))).encode('utf-8')


# A quoted word ("CODEX_HOME=..." with C escapes), else a bare one, on an Environment= line.
_DROPIN_VALUE = re.compile(r'^Environment=.*?(?:"CODEX_HOME=((?:[^"\\]|\\.)*)"|(?<![^\s=])CODEX_HOME=(\S*))', re.M)


def dropin_codex_home(data):
    """The CODEX_HOME our drop-in sets (the last assignment), unescaped as systemd would, or None."""
    found = None
    for match in _DROPIN_VALUE.finditer((data or b'').decode('utf-8', 'replace')):
        quoted = match.group(1)
        found = (re.sub(r'\\(.)', r'\1', quoted) if quoted is not None else match.group(2)).replace('%%', '%')
    return found


def dropin_path(unit):
    return '%s/%s.d/%s' % (SYSTEMD_DIR, unit, DROPIN_NAME)


def systemd_dropin(unit, home, check=False, systemd_dir=None):
    """Write the drop-in of `unit` setting CODEX_HOME=`home`, as root in root's own tree: 'created', 'updated' or
    'kept' (in check mode, what a run would do). The unit's .d directory is made 0755 when missing."""
    base = systemd_dir or SYSTEMD_DIR
    where = trusted_path.walk(base, code='runner_env_unit')
    fd = None
    try:
        if where.missing or where.controller is not None:
            raise UnsafePathError('runner_env_unit_dir', '%s is missing or not root\'s alone; the drop-in of %s is '
                                  'not written.' % (base, unit))
        name = unit + '.d'
        st = trusted_path.lstat_at(name, where.fd)
        wanted = dropin_content(home)
        if st is None:
            if not check:
                os.mkdir(name, DROPIN_DIR_MODE, dir_fd=where.fd)
                fd = trusted_path.open_dir(name, where.fd)
                os.fchmod(fd, DROPIN_DIR_MODE)
                safe_files.HomeDir(fd, '%s/%s' % (base, name)).atomic_write(DROPIN_NAME, wanted, 0, 0, DROPIN_MODE)
            return 'created'
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != constants.ROOT_UID or stat.S_IMODE(st.st_mode) & 0o022:
            raise UnsafePathError('runner_env_unit_dir', '%s/%s is not a directory only root can change; the drop-in '
                                  'is not written.' % (base, name))
        fd = trusted_path.open_dir(name, where.fd)
        home_dir = safe_files.HomeDir(fd, '%s/%s' % (base, name))
        data, found = home_dir.read_regular(DROPIN_NAME, 'runner_env_dropin', MAX_DROPIN_BYTES)
        if data == wanted and found.st_uid == constants.ROOT_UID and stat.S_IMODE(found.st_mode) == DROPIN_MODE:
            return 'kept'
        if not check:
            home_dir.atomic_write(DROPIN_NAME, wanted, 0, 0, DROPIN_MODE)
        return 'created' if data is None else 'updated'
    finally:
        if fd is not None:
            os.close(fd)
        where.close()


def read_dropin(unit, systemd_dir=None):
    data, _st = trusted_path.read_file('%s/%s.d/%s' % (systemd_dir or SYSTEMD_DIR, unit, DROPIN_NAME),
                                       'runner_env_dropin', MAX_DROPIN_BYTES)
    return dropin_codex_home(data)


def systemd_running():
    """Whether systemd is the running init (as sd_booted(3) asks): only then is a daemon-reload asked for."""
    return os.path.isdir('/run/systemd/system')


# --- one runner's environment, for the modules -----------------------------------------------------------------

def apply(spec, home, uid=None, gid=None, check=False, systemd_dir=None):
    """Write what `spec` asks for CODEX_HOME `home`: {github_env: {path, action}, systemd_dropin: {path,
    action}} for what it names, `changed`, and `daemon_reload` (a drop-in changed and systemd runs)."""
    result = {'changed': False, 'daemon_reload': False}
    if not writes(spec):
        return result
    if spec.get('github_runner_dir') is not None:
        action = github_env(spec['github_runner_dir'], home, uid, gid, check)
        result['github_env'] = {'path': os.path.join(spec['github_runner_dir'], ENV_FILE), 'action': action}
        result['changed'] = result['changed'] or action != 'kept'
    if spec.get('systemd_unit') is not None:
        action = systemd_dropin(spec['systemd_unit'], home, check, systemd_dir)
        result['systemd_dropin'] = {'path': dropin_path(spec['systemd_unit']) if systemd_dir is None else
                                    '%s/%s.d/%s' % (systemd_dir, spec['systemd_unit'], DROPIN_NAME),
                                    'action': action}
        result['changed'] = result['changed'] or action != 'kept'
        result['daemon_reload'] = action != 'kept' and systemd_running()
    return result


def into_result(result, spec, home, uid=None, gid=None, check=False):
    """A writing module's result (codex_auth_seed's, codex_access_token_login's) with the runner environment `spec`
    of CODEX_HOME `home` written (or, in `check` mode, predicted), in place, returned: RV(runner_environment) (what
    apply() gives), `changed` (and `pending`, when the result has one), and, when the result has a diff, its metadata
    (the paths and what they will set, never another line of them). Nothing when `spec` writes nothing."""
    if not writes(spec):
        return result
    environment = apply(spec, home, uid, gid, check=check)
    result['runner_environment'] = environment
    if environment['changed']:
        result['changed'] = True
        if 'pending' in result:
            result['pending'] = True
    diff = result.get('diff')
    for key in ('github_env', 'systemd_dropin'):
        if isinstance(diff, dict) and key in environment and environment[key]['action'] != 'kept':
            path = environment[key]['path']
            diff['before'].setdefault('runner_environment', {})[path] = (
                'absent' if environment[key]['action'] == 'created' else 'another CODEX_HOME, or none')
            diff['after'].setdefault('runner_environment', {})[path] = 'CODEX_HOME=%s' % home
    return result


def problems(spec, home, systemd_dir=None):
    """What verify reports about the runner environment `spec` of CODEX_HOME `home`: a job that would get
    another CODEX_HOME (or none) is broken for Codex auth, so these are problems, not warnings."""
    found = []
    if not writes(spec):
        return found
    checks = []
    if spec.get('github_runner_dir') is not None:
        checks.append((os.path.join(spec['github_runner_dir'], ENV_FILE), read_github_env, spec['github_runner_dir']))
    if spec.get('systemd_unit') is not None:
        checks.append(('%s/%s.d/%s' % (systemd_dir or SYSTEMD_DIR, spec['systemd_unit'], DROPIN_NAME),
                       lambda unit: read_dropin(unit, systemd_dir), spec['systemd_unit']))
    for shown, reader, argument in checks:
        try:
            value = reader(argument)
        except UnsafePathError as exc:
            found.append({'code': 'runner_env_unreadable', 'message': '%s was not read: %s' % (shown, exc.message)})
            continue
        except OSError as exc:
            found.append({'code': 'runner_env_unreadable', 'message': 'cannot read %s: %s.'
                          % (shown, exc.strerror or exc.__class__.__name__)})
            continue
        if not value:
            found.append({'code': 'runner_env_codex_home_missing', 'message': '%s sets no CODEX_HOME (or does not '
                          'exist); the runner\'s jobs use ~/.codex, not %s. Provision with runner_environment, then '
                          'restart the runner.' % (shown, home)})
        elif os.path.normpath(value) != os.path.normpath(home):
            found.append({'code': 'runner_env_codex_home_mismatch', 'message': '%s sets CODEX_HOME=%s, not the '
                          'configured %s; the runner\'s jobs use other credentials. Provision again (or correct '
                          'codex_home), then restart the runner.' % (shown, value, home)})
    return found


# --- GitLab slots ----------------------------------------------------------------------------------------------

def gitlab_slots(instances):
    """[[slot, CODEX_HOME], ...] of the instances that name a GitLab `concurrent` slot, by slot: instances are dicts
    with `codex_home` and `runner_environment`. What each writer returns (RV(gitlab_slots)), so that the role can
    make one script for a host whose slots two writers serve (seed and access-token instances)."""
    return sorted([instance['runner_environment']['gitlab_concurrent_id'], instance['codex_home']]
                  for instance in instances
                  if isinstance(instance.get('runner_environment'), dict)
                  and instance['runner_environment'].get('gitlab_concurrent_id') is not None)


def gitlab_script(slots):
    """The GitLab Runner `pre_build_script` line pointing each `concurrent` slot's jobs at its CODEX_HOME, from
    [[slot, CODEX_HOME], ...] ('' for none). A job in a slot no instance serves fails rather than use a CODEX_HOME
    of another."""
    if not slots:
        return ''
    arms = ' '.join('%d) export CODEX_HOME=%s ;;' % (slot, shlex.quote(home)) for slot, home in sorted(slots))
    return ('case "${CI_CONCURRENT_ID:-}" in %s *) echo "codexops: no CODEX_HOME for CI_CONCURRENT_ID='
            '${CI_CONCURRENT_ID:-unset}" >&2; exit 1 ;; esac' % arms)


def gitlab_pre_build_script(instances):
    """The GitLab Runner `pre_build_script` line for the instances' slots (gitlab_script of gitlab_slots)."""
    return gitlab_script(gitlab_slots(instances))
