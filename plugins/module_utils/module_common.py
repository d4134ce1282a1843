# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Argument specs and small helpers the modules share, so each module stays a thin wrapper.

Private to this collection.
"""

import stat

from ansible_collections.codexops.runner.plugins.module_utils import _runner_environment
from ansible_collections.codexops.runner.plugins.module_utils import _runner_instances
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import errors
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status
from ansible_collections.codexops.runner.plugins.module_utils import runner_env
from ansible_collections.codexops.runner.plugins.module_utils import safe_files
from ansible_collections.codexops.runner.plugins.module_utils import trusted_path


def base_argument_spec(ownership=False, verify=False, runs_codex=False, locks=False):
    spec = {'codex_home': dict(type='path', required=True)}
    if ownership:
        spec.update(owner=dict(type='str'), group=dict(type='str'))
    if runs_codex:
        spec.update(codex_path=dict(type='path'),
                    codex_environment=dict(type='dict', default={}, no_log=True))
    if locks:
        spec.update(lock_timeout=dict(type='float', default=safe_files.DEFAULT_LOCK_TIMEOUT))
    if verify:
        spec.update(
            allowed_auth_modes=dict(type='list', elements='str', choices=list(auth_model.KNOWN_AUTH_MODES)),
            require_refresh_token=dict(type='bool', default=True),
            max_age_days=dict(type='float', default=8),
            require_file_store=dict(type='bool', default=True),
            fingerprint_salt=dict(type='str', no_log=True),
            fail_on_problems=dict(type='bool', default=False),
            keepalive_failure_threshold=dict(type='int', default=keepalive_status.DEFAULT_FAILURE_THRESHOLD),
            environment_files=dict(type='list', elements='path', default=[]),
        )
    return spec


def runner_environment_options():
    """The suboptions of `runner_environment` (module_utils/_runner_environment.py), as every module takes them."""
    return dict(github_runner_dir=dict(type='path'), systemd_unit=dict(type='str'),
                gitlab_concurrent_id=dict(type='int'))


def add_runner_environment_checks(summary, params):
    """What the runner's own environment (`runner_environment`) sets for CODEX_HOME, into a health summary, in
    place: a job that gets another CODEX_HOME, or none, is a problem (runner_env_codex_home_mismatch, ...)."""
    summary['problems'].extend(_runner_environment.problems(params.get('runner_environment'), params['codex_home']))
    summary['healthy'] = not summary['problems']
    return summary


def verify_options(params):
    return {
        'allowed_auth_modes': params.get('allowed_auth_modes'),
        'require_refresh_token': params.get('require_refresh_token', True),
        'max_age_days': params.get('max_age_days', 8),
        'require_file_store': params.get('require_file_store', True),
        'salt': params.get('fingerprint_salt'),
        'keepalive_failure_threshold': params.get('keepalive_failure_threshold',
                                                  keepalive_status.DEFAULT_FAILURE_THRESHOLD),
    }


def add_environment_checks(summary, params):
    """The runner's environment files (`environment_files`, and the GitHub runner .env its `runner_environment`
    writes) into a health summary, in place: verify, seed and access-token login all return this, so each gives
    the same verdict (env_shadowing). The .env is the runner's own: a missing or unreadable one is reported by
    verify's runner environment check, not here again."""
    listed = list(params.get('environment_files') or [])
    problems, warnings = runner_env.shadowing_problems(listed)
    runner_file = _runner_environment.github_env_path(params.get('runner_environment'))
    if runner_file is not None and runner_file not in listed:
        problems.extend(runner_env.shadowing_problems([runner_file])[0])
    summary['problems'].extend(problems)
    summary['health_warnings'].extend(warnings)
    summary['healthy'] = not summary['problems']
    return summary


def exit_checked(module, result, summary, predicted=False):
    """exit_json, or fail_json with the same result when fail_on_problems is set and `summary` (the
    state the task leaves; `predicted` when a writing module only predicted it under check mode)
    has problems."""
    if module.params.get('fail_on_problems') and not summary.get('healthy', False):
        module.fail_json(msg='Codex credentials in %s have problems: %s%s' % (
            module.params['codex_home'], ', '.join(item['code'] for item in summary.get('problems', [])),
            ' (predicted; nothing was written)' if predicted else ''), **result)
    module.exit_json(**result)


def guarded(module, func, *args, **kwargs):
    """func(*args, **kwargs), every refusal turned into fail_json with its message (which never
    quotes file or option content). The one place modules catch errors."""
    try:
        return func(*args, **kwargs)
    except Exception as exc:  # pylint: disable=broad-except
        msg, code = refusal(exc)
        if code is None:
            module.fail_json(msg=msg)
        module.fail_json(msg=msg, error_code=code)


def refusal(exc):
    """(message, error code or None) of an exception, as guarded shows it: a refusal's own message, an OS error's
    file and reason, and for anything else (a bug, not a refusal, whose text could quote what it was parsing)
    only its class (as privsep does for a runner-user child)."""
    if isinstance(exc, errors.CodexOpsError):
        return exc.message, exc.code
    if isinstance(exc, OSError):
        return os_error_message(exc), None
    return ('unexpected %s; nothing more is shown, as it could quote file content' % type(exc).__name__,
            'internal_error')


def resolve_ids(module):
    return safe_files.resolve_ids(module.params.get('owner'), module.params.get('group'))


def known_user(user):
    # The modules' one rule for a user (name or numeric ID), as a lookup _runner_instances can ask.
    try:
        return safe_files.resolve_ids(user)
    except safe_files.UnsafePathError:
        return None


def instance_list_problems(instances, created=()):
    """What refuses a list of runner instances as a whole on this host (layout, then unknown users), for every
    module that takes `runners`. A user in `created` (users an earlier task of a check-mode run only predicted
    creating: codex_auth_seed's owners_to_create) counts as known."""
    return _runner_instances.layout_problems(instances) + _runner_instances.user_problems(
        instances, lambda user: True if user in created else known_user(user))


def called(label):
    """How a message names an instance: a label is the instance's name, or 'instance N' when the name is not one
    (names have no spaces)."""
    return label if label.startswith('instance ') else 'instance %s' % label


def resolve_instance_ids(instances, labels, found, resolve):
    """Each instance's (uid, gid) into instance['ids'] by `resolve(user, group)`; a user or group that does not
    resolve, and that `found` does not already name as an unknown user, becomes a problem naming the instance."""
    unknown = set(name for item in found if item['code'] == 'runner_instance_user_unknown'
                  for name in item['instances'])
    for instance, label in zip(instances, labels):
        try:
            instance['ids'] = resolve(instance['user'], instance['group'])
        except safe_files.UnsafePathError as exc:
            if label not in unknown:
                found.append(_runner_instances.problem(
                    'runner_instance_%s' % ('group_unknown' if exc.code == 'group_missing' else 'user_unknown'),
                    [label], '%s: %s' % (called(label), exc.message.rstrip('.'))))


def plan_then_run(module, instances, labels, run_one):
    """The writers' order for a list of runner instances (codex_auth_seed, codex_access_token_login), once the list
    itself was accepted: a read-only plan of every instance first (`run_one(instance, check_mode=True)`), the whole
    list refused when any plan is (a symlinked auth.json, an unusable lock, an invalid config.toml, a runner Codex
    cannot run as) - so nothing is written for a list a run would stop half-way - then, unless in check mode (where
    the plans are the answer), each instance for real. Returns (results, None), or, when an instance failed,
    (the results of the instances before it, (its label, the reason)): the ones after it were not touched."""
    plans, refused = [], []
    for instance, label in zip(instances, labels):
        try:
            plans.append(run_one(instance, check_mode=True))
        except Exception as exc:  # pylint: disable=broad-except
            refused.append('%s: %s' % (called(label), refusal(exc)[0].rstrip('.')))
    if refused:
        module.fail_json(msg='Refusing the runner instances before anything was written: %s.' % '; '.join(refused))
    if module.check_mode:
        return plans, None
    results = []
    for instance, label in zip(instances, labels):
        try:
            results.append(run_one(instance, check_mode=False))
        except Exception as exc:  # pylint: disable=broad-except
            return results, (label, refusal(exc)[0].rstrip('.'))
    return results, None


def refuse_instances(module, found):
    """Fail the task with the instances' problems (they name instances, never a credential)."""
    error = _runner_instances.InstanceError(found)
    module.fail_json(msg=error.message, error_code=error.code, problems=found)


def read_seed_file(module, path):
    """Seed bytes from a file on the managed host, read by root through trusted_path (no link a
    non-root user made is followed). A seed others can read is already a leak; say so, but still
    use it (the fix is on the source, not on the runner)."""
    data, warning = seed_file(path)
    if data is None:
        module.fail_json(msg='src %s does not exist. Nothing was written.' % path)
    if warning:
        module.warn(warning)
    return data


def seed_file(path):
    """(bytes, warning or None) of a seed file on the managed host as read_seed_file reads it; (None, None) when
    it does not exist."""
    data, st = trusted_path.read_file(path, 'seed', auth_model.MAX_AUTH_BYTES)
    if data is None:
        return None, None
    if stat.S_IMODE(st.st_mode) & 0o077:
        return data, 'seed file %s is mode %04o; it holds credentials, make it 0600.' % (path, stat.S_IMODE(st.st_mode))
    return data, None


def os_error_message(exc):
    where = ' (%s)' % exc.filename if getattr(exc, 'filename', None) else ''
    return 'could not complete the operation%s: %s. Nothing partial was left in place.' % (
        where, exc.strerror or exc.__class__.__name__)
