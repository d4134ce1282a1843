# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The keepalive's status file: what the last scheduled Codex run did, as verify reports it.

Private to this collection. A failed refresh leaves no trace in CODEX_HOME (auth.json stays
byte-identical), so the keepalive wrapper script (roles/codex_keepalive/templates/keepalive.sh.j2,
the one place runs are classified) records each run's outcome in CODEX_HOME/codexops-keepalive.json:

    {"format": 1, "started": "2026-11-30T03:12:09Z", "finished": "2026-11-30T03:12:31Z",
     "exit_status": 1, "result": "failed", "reason": "refresh_token_reused", "refreshed": false,
     "codex_version": "0.171.0", "interval_seconds": 604800, "consecutive_failures": 1}

`consecutive_failures` (since 0.2.x of this collection; absent in older files, read as unknown) counts
the failed runs in a row, this one included: verify escalates a keepalive that failed
`failure_threshold` times in a row to a problem, whatever the reason.

The file is written by the runner user, who is untrusted: whatever it holds (anything, of any size,
a link, a FIFO) becomes a warning here, never an exception, and no message quotes its content; only
values that passed validation are ever shown. Stdlib only, Python 3.9+.
"""

import datetime
import hashlib
import json
import os
import re

from ansible_collections.codexops.runner.plugins.module_utils import constants
from ansible_collections.codexops.runner.plugins.module_utils import safe_files

STATUS_FILE = 'codexops-keepalive.json'
# A real status file is about 250 bytes.
MAX_STATUS_BYTES = 16 * 1024
FORMAT = 1

# Reasons whose failure means the credential itself is dead: only a new seed brings it back.
DEAD_CREDENTIAL_REASONS = ('refresh_token_reused', 'refresh_token_expired', 'refresh_token_invalidated',
                           'unauthorized')
# Reasons that say nothing about the credential: the next run may well succeed.
TRANSIENT_REASONS = ('network', 'timeout', 'config', 'other')
REASONS = DEAD_CREDENTIAL_REASONS + TRANSIENT_REASONS
RESULTS = ('ok', 'failed')
REASON_TEXT = {
    'refresh_token_reused': 'the refresh token was already used: another copy of this auth.json refreshed first',
    'refresh_token_expired': 'the refresh token has expired',
    'refresh_token_invalidated': 'the refresh token was revoked (a logout elsewhere, or the login was invalidated)',
    'unauthorized': 'the server refused the credentials (401 Unauthorized)',
    'network': 'Codex could not reach the token endpoint or the model (network, DNS or proxy)',
    'timeout': 'the run did not finish in time',
    'config': 'Codex refused its configuration (config.toml, or forced-login settings that logged it out)',
    'other': 'Codex failed in a way the keepalive does not recognise',
}

# How late a scheduled run may be before it is overdue: a quarter of the interval, at least two
# hours (systemd's RandomizedDelaySec, 1h by default, plus the run itself, bounded by its timeout).
MIN_SLACK_SECONDS = 2 * 3600
SLACK_FRACTION = 0.25
# A finish time further in the future than this is not a clock skew but a forged or broken file.
FUTURE_TOLERANCE_SECONDS = constants.CLOCK_SKEW_TOLERANCE_SECONDS
MAX_INTERVAL_SECONDS = 400 * 86400
# The script caps its count here; the default number of failed runs in a row that is a problem.
MAX_CONSECUTIVE_FAILURES = 9999
DEFAULT_FAILURE_THRESHOLD = 2

EMPTY_FACTS = {
    'keepalive_last_run': None,
    'keepalive_result': None,
    'keepalive_reason': None,
    'keepalive_refreshed': None,
    'keepalive_codex_version': None,
    'keepalive_consecutive_failures': None,
}

_TIMESTAMP = re.compile(r'^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$')
_VERSION = re.compile(r'^[0-9A-Za-z.+-]{1,64}$')


# Where the codex_keepalive role installs its script by default, and what it names it.
DEFAULT_SCRIPT_DIR = '/usr/local/libexec/codexops'

# Runner instances (several runners on one host, module_utils/_runner_instances.py). The instance an
# inventory without a list has - the one the single-runner variables describe - is called this, and its
# keepalive keeps the name keepalives always had.
DEFAULT_INSTANCE = 'default'
# What an instance may be called. The name becomes part of a script path, systemd unit and cron file
# names (cron_file_name keeps only [A-Za-z0-9_-] in a cron file name, so no '.'), report keys (`host/name`)
# and a Vault policy name (Vault lowercases those, so no capitals: two names must not become one).
# Matched whole (fullmatch): `$` would let a trailing newline through.
INSTANCE_NAME = re.compile(r'[a-z0-9][a-z0-9_-]{0,31}')


def keepalive_name(user, home, instance=None):
    """The name of the keepalive of `user` for CODEX_HOME `home` (its script, units and cron job): the ONE
    place it is computed. The codex_keepalive role's default codex_keepalive_name, codex_auth's probe
    command and codex_auth_verify's default probe all ask this (the roles through the filter
    codexops.runner.codex_keepalive_name). `codex-keepalive-USER` for `~USER/.codex` (the role's default,
    the name keepalives always had), else with the first 8 hex digits of the SHA-256 of `home` as given:
    `/home/ci/.codex` given as a path is named by its hash on every side.

    With a runner `instance` other than DEFAULT_INSTANCE the name comes from the instance, not from its
    home: `codex-keepalive-USER-INSTANCE-HASH`, HASH being the first 8 hex digits of the SHA-256 of
    USER NUL INSTANCE. The readable part alone is ambiguous (user `ci` with instance `a-b` and user `ci-a`
    with instance `b` both read `ci-a-b`); the hash of the unambiguous pair tells them apart. Moving an
    instance's CODEX_HOME keeps its name, so the role rewrites that keepalive instead of leaving the old
    one running. The default instance (None or DEFAULT_INSTANCE) keeps exactly the name above."""
    if not isinstance(user, str) or not isinstance(home, str) or not user or not home:
        raise ValueError('keepalive_name needs a user name and a CODEX_HOME')
    legacy = 'codex-keepalive-%s' % user
    if instance is None or instance == DEFAULT_INSTANCE:
        if home == '~%s/.codex' % user:
            return legacy
        return '%s-%s' % (legacy, hashlib.sha256(home.encode('utf-8')).hexdigest()[:8])
    if not isinstance(instance, str) or not INSTANCE_NAME.fullmatch(instance):
        raise ValueError('keepalive_name needs an instance name of 1 to 32 characters a-z, 0-9, _ and -, '
                         'starting with a letter or digit')
    pair = ('%s\0%s' % (user, instance)).encode('utf-8')
    return '%s-%s-%s' % (legacy, instance, hashlib.sha256(pair).hexdigest()[:8])


# cron (Debian's run-parts rule, cronie's too) silently skips a file in /etc/cron.d whose name has any other
# character: a keepalive of user `ci.runner` would be installed and never run.
_CRON_UNSAFE = re.compile(r'[^A-Za-z0-9_-]')
# systemd refuses a unit name with any other character (`systemd-analyze verify` and `systemctl` both: "Invalid
# argument"); '@' would make the unit an instance of a template, and '\\' is systemd's own escape.
_UNIT_UNSAFE = re.compile(r'[^A-Za-z0-9:_.-]')


def _scheduler_name(name, unsafe, what):
    if not isinstance(name, str) or not name:
        raise ValueError('%s needs a keepalive name (the result of keepalive_name)' % what)
    return unsafe.sub('_', name)


def cron_file_name(name):
    """The name of the cron file (in the role's codex_keepalive_cron_dir) of the keepalive called `name`
    (keepalive_name's result): the ONE place it is computed. Every character other than A-Z, a-z, 0-9, '_' and '-'
    (so '.', spaces, '/', '@', any non-ASCII character: one '_' each) becomes '_'. The codex_keepalive role's
    default codex_keepalive_cron_file, the cron file of each runner instance and of each keepalive it removes,
    and the runner instances' collision check all ask this (the role through the filter
    codexops.runner.codex_keepalive_cron_file)."""
    return _scheduler_name(name, _CRON_UNSAFE, 'cron_file_name')


def unit_name(name):
    """The name, without .service or .timer, of the systemd units of the keepalive called `name`: the ONE place it
    is computed. Every character systemd does not take in a unit name ('$', '+', '@', '\\', spaces, '/', any
    non-ASCII character) becomes '_'; letters, digits, ':', '_', '.' and '-' stay, so a name made of those keeps
    its units (a user `ci.runner` does). The codex_keepalive role asks this (filter
    codexops.runner.codex_keepalive_unit) for every unit it installs, starts, stops or removes."""
    return _scheduler_name(name, _UNIT_UNSAFE, 'unit_name')


def default_script(user, home, user_home=None, exists=os.path.exists, instance=None):
    """The keepalive script the role installs for `user` and CODEX_HOME `home` by default. A module gets
    `home` already expanded (Ansible expands `~ci/.codex` of a path option to `/home/ci/.codex`): for the
    user's own default CODEX_HOME the script the role named for `~USER/.codex` is used when that one is
    installed and the one named for the path is not. A runner `instance` other than the default names its
    keepalive itself, whatever its home."""
    if instance is not None and instance != DEFAULT_INSTANCE:
        return os.path.join(DEFAULT_SCRIPT_DIR, keepalive_name(user, home, instance))
    script = os.path.join(DEFAULT_SCRIPT_DIR, keepalive_name(user, home))
    if user_home and os.path.normpath(home) == os.path.normpath(os.path.join(user_home, '.codex')) \
            and not exists(script):
        legacy = os.path.join(DEFAULT_SCRIPT_DIR, keepalive_name(user, '~%s/.codex' % user))
        if exists(legacy):
            return legacy
    return script


class StatusError(ValueError):
    """A status file that is not what the keepalive writes; the message never quotes it."""


def problem(code, message):
    return {'code': code, 'message': message}


def read(home, auth_file='auth.json'):
    """The status file of the open HomeDir `home`, as a JSON-safe record for a health snapshot:
    {'state': 'missing'}, {'state': 'invalid', 'message'} or {'state': 'present', 'uid', 'status',
    'auth_mtime'} (auth.json's mtime: a failure older than the credentials on disk is not theirs).
    Never raises for anything the file holds."""
    try:
        data, st = home.read_regular(STATUS_FILE, 'keepalive_status', MAX_STATUS_BYTES)
    except safe_files.UnsafePathError as exc:
        return {'state': 'invalid', 'message': exc.message}
    if data is None:
        return {'state': 'missing'}
    try:
        status = parse(data)
    except StatusError as exc:
        return {'state': 'invalid', 'message': '%s: %s' % (home.shown(STATUS_FILE), exc)}
    try:
        auth_st = home.lstat(auth_file)
    except (OSError, safe_files.UnsafePathError):
        auth_st = None
    return {'state': 'present', 'uid': st.st_uid, 'status': status,
            'auth_mtime': None if auth_st is None else auth_st.st_mtime}


def parse(data):
    """Bytes of a status file -> the validated status dict, or StatusError. Bounded: the caller read
    at most MAX_STATUS_BYTES; anything deeper, odder or bigger is refused here."""
    if not isinstance(data, bytes) or len(data) > MAX_STATUS_BYTES:
        raise StatusError('larger than %d bytes' % MAX_STATUS_BYTES)
    try:
        text = data.decode('utf-8')
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise StatusError('not UTF-8 text')
    except RecursionError:
        raise StatusError('nested too deeply')
    except ValueError as exc:
        raise StatusError(str(exc) if isinstance(exc, StatusError) else 'not JSON')
    if not isinstance(doc, dict):
        raise StatusError('not a JSON object')
    if _integer(doc.get('format')) != FORMAT:
        raise StatusError('not format %d of the keepalive status' % FORMAT)
    started, finished = _timestamp(doc, 'started'), _timestamp(doc, 'finished')
    if finished < started:
        raise StatusError('finished before it started')
    exit_status = _integer(doc.get('exit_status'))
    if exit_status is None or not 0 <= exit_status <= 255:
        raise StatusError('exit_status is not an exit status')
    result = doc.get('result')
    if result not in RESULTS:
        raise StatusError('result is not one of %s' % ', '.join(RESULTS))
    reason = doc.get('reason')
    if reason is not None and reason not in REASONS:
        raise StatusError('reason is not one of %s' % ', '.join(REASONS))
    if result == 'failed' and reason is None:
        raise StatusError('a failed run without a reason')
    refreshed = doc.get('refreshed')
    if not isinstance(refreshed, bool):
        raise StatusError('refreshed is not true or false')
    version = doc.get('codex_version')
    if version is not None and not (isinstance(version, str) and _VERSION.match(version)):
        raise StatusError('codex_version is not a version')
    interval = doc.get('interval_seconds')
    if interval is not None:
        interval = _integer(interval)
        if interval is None or not 60 <= interval <= MAX_INTERVAL_SECONDS:
            raise StatusError('interval_seconds is not between 60 and %d' % MAX_INTERVAL_SECONDS)
    consecutive = None
    if 'consecutive_failures' in doc:
        consecutive = _integer(doc['consecutive_failures'])
        if consecutive is None or not 0 <= consecutive <= MAX_CONSECUTIVE_FAILURES:
            raise StatusError('consecutive_failures is not between 0 and %d' % MAX_CONSECUTIVE_FAILURES)
        if (consecutive == 0) != (result == 'ok'):
            raise StatusError('consecutive_failures does not agree with the result')
    return {'started': doc['started'], 'finished': doc['finished'], 'exit_status': exit_status,
            'result': result, 'reason': reason, 'refreshed': refreshed, 'codex_version': version,
            'interval_seconds': interval, 'consecutive_failures': consecutive}


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise StatusError('a key appears twice')
        seen[key] = value
    return seen


def _no_constant(name):
    raise StatusError('NaN or Infinity is not a value the keepalive writes')


def _integer(value):
    """An int that is not a bool (JSON true is not 1 here), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _timestamp(doc, key):
    value = doc.get(key)
    moment = parse_time(value)
    if moment is None:
        raise StatusError('%s is not a UTC time like 2026-11-30T03:12:09Z' % key)
    return moment


def parse_time(value):
    """The keepalive's timestamps (date -u +%Y-%m-%dT%H:%M:%SZ) as aware datetimes, else None."""
    match = _TIMESTAMP.match(value) if isinstance(value, str) else None
    if not match:
        return None
    try:
        return datetime.datetime(*(int(part) for part in match.groups()), tzinfo=datetime.timezone.utc)
    except ValueError:  # month 13, second 61
        return None


def slack_seconds(interval):
    return max(MIN_SLACK_SECONDS, int(interval * SLACK_FRACTION))


def overdue_seconds(status, now):
    """Seconds past the time the next run should have finished by, or None (not overdue, or no schedule)."""
    interval = status.get('interval_seconds')
    if not interval:
        return None
    late = (now - parse_time(status['finished'])).total_seconds() - interval - slack_seconds(interval)
    return late if late > 0 else None


def evaluate(record, owner_uid=None, now=None, user_name=str, failure_threshold=DEFAULT_FAILURE_THRESHOLD):
    """A snapshot record (read()) -> (facts, problems, warnings) for the verify summary. A keepalive that
    failed `failure_threshold` runs in a row (whatever the reason) is the problem `keepalive_failing`."""
    facts, problems, warnings = dict(EMPTY_FACTS), [], []
    record = record or {'state': 'missing'}
    state = record.get('state')
    if state == 'missing':
        return facts, problems, warnings
    if state != 'present':
        warnings.append(problem('keepalive_status_invalid', 'The keepalive status file was ignored: %s.'
                                % record.get('message', 'unreadable')))
        return facts, problems, warnings
    if owner_uid is not None and record.get('uid') != owner_uid:
        warnings.append(problem('keepalive_status_invalid', 'The keepalive status file %s is owned by %s, not by '
                                'the runner user %s, so its keepalive did not write it; it was ignored.'
                                % (STATUS_FILE, user_name(record.get('uid')), user_name(owner_uid))))
        return facts, problems, warnings
    status = record['status']
    now = now or datetime.datetime.now(datetime.timezone.utc)
    finished = parse_time(status['finished'])
    if (finished - now).total_seconds() > FUTURE_TOLERANCE_SECONDS:
        warnings.append(problem('keepalive_status_invalid', 'The keepalive status file says the last run finished '
                                'at %s, in the future; it was ignored (check the clock of the runner).'
                                % status['finished']))
        return facts, problems, warnings
    facts.update(keepalive_last_run=status['finished'], keepalive_result=status['result'],
                 keepalive_reason=status['reason'], keepalive_refreshed=status['refreshed'],
                 keepalive_codex_version=status['codex_version'],
                 keepalive_consecutive_failures=status.get('consecutive_failures'))
    if status['result'] == 'failed':
        reason = status['reason']
        auth_mtime = record.get('auth_mtime')
        superseded = auth_mtime is not None and auth_mtime > finished.timestamp() + 1
        if superseded:
            pass  # auth.json was replaced (reseeded) after the failure: the failure was its predecessor's
        elif reason in DEAD_CREDENTIAL_REASONS:
            problems.append(problem('refresh_failed', 'The keepalive run that finished at %s could not refresh the '
                                    'credentials: %s (%s). auth.json still looks valid, but Codex cannot use '
                                    'it any more.' % (status['finished'], reason, REASON_TEXT[reason])))
        elif (status.get('consecutive_failures') or 0) >= max(1, failure_threshold):
            problems.append(problem('keepalive_failing', 'The keepalive failed %d runs in a row, the last one '
                                    'finishing at %s: %s (%s). Nothing has been refreshed since; the credentials '
                                    'die when the access token and then the refresh token expire.'
                                    % (status['consecutive_failures'], status['finished'], reason,
                                       REASON_TEXT[reason])))
        else:
            warnings.append(problem('keepalive_failed', 'The keepalive run that finished at %s failed: %s (%s); '
                                    'nothing was refreshed. The next run tries again.'
                                    % (status['finished'], reason, REASON_TEXT[reason])))
    late = overdue_seconds(status, now)
    if late is not None:
        warnings.append(problem('keepalive_overdue', 'The keepalive last ran at %s, but it is scheduled every %s: '
                                'the run due since then has not happened (%s late).'
                                % (status['finished'], _duration(status['interval_seconds']), _duration(late))))
    return facts, problems, warnings


def recorded_since(record, moment):
    """Whether the status `record` is of a run that started at `moment` (an aware datetime) or later."""
    if not record or record.get('state') != 'present':
        return False
    started = parse_time(record['status']['started'])
    return started >= moment.replace(microsecond=0)


def _duration(seconds):
    seconds = int(seconds)
    if seconds >= 86400:
        return '%.1f days' % (seconds / 86400.0)
    if seconds >= 3600:
        return '%.1f hours' % (seconds / 3600.0)
    return '%d minutes' % max(1, seconds // 60)
