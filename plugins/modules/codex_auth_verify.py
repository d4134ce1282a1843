#!/usr/bin/python
# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
module: codex_auth_verify
short_description: Report the health of a runner's Codex credentials, without ever showing one
version_added: 0.1.0
description:
  - Reads CODEX_HOME, C(auth.json) and C(config.toml) and reports facts - auth mode (resolved exactly as
    Codex resolves it), token presence, last refresh and age, access-token expiry, account and plan,
    a salted refresh-token fingerprint, file modes and owner, the credentials store - plus a list of
    problems with stable codes and a list of warnings.
  - Read-only. Never changes anything, never follows a symlink, never returns a credential.
  - Problem codes - V(codex_home_missing), V(codex_home_symlink), V(codex_home_not_dir), V(codex_home_mode),
    V(codex_home_owner), V(auth_missing), V(auth_symlink), V(auth_hardlink), V(auth_not_regular),
    V(auth_unreadable), V(auth_too_large), V(auth_mode_bits), V(auth_owner), V(auth_not_json),
    V(auth_invalid), V(auth_mode_invalid), V(auth_mode_unexpected), V(id_token_invalid),
    V(last_refresh_invalid), V(refresh_token_missing), V(credential_missing), V(store_not_file),
    V(config_invalid), V(config_unreadable), V(forced_login_conflict), V(env_shadowing),
    V(codex_status_failed), V(runner_unknown), V(refresh_failed), V(lock_unusable), V(keepalive_failing),
    V(codex_home_network_fs), V(runner_env_codex_home_missing), V(runner_env_codex_home_mismatch),
    V(runner_env_unreadable). The README's troubleshooting section gives the fix for each.
  - Warning codes (in RV(health_warnings)) - V(stale), V(access_token_expired), V(store_key_in_table),
    V(temp_files_left), V(environment_file_unreadable), V(keepalive_failed), V(keepalive_overdue),
    V(keepalive_status_invalid), V(keepalive_probe_failed).
  - A failed refresh leaves C(auth.json) byte-identical and valid-looking. What the last run of the keepalive
    (the R(codexops.runner.codex_keepalive, ansible_collections.codexops.runner.codex_keepalive_role) role) recorded in
    C(CODEX_HOME/codexops-keepalive.json) is reported as facts (RV(keepalive_last_run), RV(keepalive_result),
    RV(keepalive_reason), RV(keepalive_refreshed)) and codes - V(refresh_failed) when the reason says the
    credential is dead (V(refresh_token_reused), V(refresh_token_expired), V(refresh_token_invalidated),
    V(unauthorized)), V(keepalive_failed) for a transient one (V(network), V(timeout), V(config), V(other)),
    V(keepalive_failing) once O(keepalive_failure_threshold) runs in a row failed (whatever the reason), and
    V(keepalive_overdue) when the scheduled run is late. The file is the runner user's and is parsed under
    bounds; anything odd in it is V(keepalive_status_invalid), never an error.
author:
  - codexops maintainers (@codexops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - codexops.runner.codex_home
  - codexops.runner.codex_home.VERIFY
  - codexops.runner.codex_home.CODEX_PROCESS
options:
  codex_home:
    description:
      - The runner user's Codex home directory (what C(CODEX_HOME) points to), usually C(~runner/.codex).
      - Must be an absolute path. A symlinked CODEX_HOME is refused, so credentials cannot be redirected.
      - Required unless O(runners) is given; mutually exclusive with it.
    required: false
  owner:
    description:
      - The runner user expected to own CODEX_HOME and C(auth.json). When set, any other owner is a problem.
      - Mutually exclusive with O(runners) (each instance has its own).
    type: str
  runners:
    description:
      - Several runner instances on this host, each with its own CODEX_HOME, verified in this one module run
        instead of O(codex_home). The result is then RV(runners), one summary per instance in the order given,
        and RV(healthy); the single-runner return values are not returned.
      - Before anything is read, the list is refused, naming the instances, when two instances have one name or
        one CODEX_HOME, a CODEX_HOME lies inside another's, a name is not 1 to 32 characters V(a-z), V(0-9),
        V(_) and V(-) starting with a letter or digit, or an O(runners[].owner) does not exist on the host.
      - Every other option applies to every instance; O(allowed_auth_modes) and O(environment_files) are the
        defaults of the instances that do not set their own. O(fail_on_problems) fails the task when any instance
        has a problem, naming the instances.
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      name:
        description:
          - The instance's name, unique on the host. It names the instance's keepalive and its report row.
        type: str
        required: true
      codex_home:
        description:
          - The instance's CODEX_HOME, an absolute path; never a symlink.
        type: path
        required: true
      owner:
        description:
          - The runner user expected to own this CODEX_HOME, as O(owner).
        type: str
      allowed_auth_modes:
        description:
          - Auth modes that count as healthy for this instance. Default is O(allowed_auth_modes).
        type: list
        elements: str
        choices: [apikey, chatgpt, chatgptAuthTokens, callerProvided, agentIdentity, personalAccessToken,
                  bedrockApiKey, bedrockAccessKeys]
      environment_files:
        description:
          - This instance's environment files, as O(environment_files) (which is the default).
        type: list
        elements: path
      runner_environment:
        description:
          - This instance's runner environment, as O(runner_environment). Two instances with the same
            O(runners[].runner_environment.github_runner_dir), O(runners[].runner_environment.systemd_unit) or
            O(runners[].runner_environment.gitlab_concurrent_id) are refused, naming them.
        type: dict
        version_added: 0.2.0
        suboptions:
          github_runner_dir:
            description: As O(runner_environment.github_runner_dir).
            type: path
          systemd_unit:
            description: As O(runner_environment.systemd_unit).
            type: str
          gitlab_concurrent_id:
            description: As O(runner_environment.gitlab_concurrent_id).
            type: int
      probe_command:
        description:
          - The keepalive script of this instance for O(probe). Default is the path the codex_keepalive role
            installs it at for this instance, C(/usr/local/libexec/codexops/codex-keepalive-USER-NAME-HASH) (the
            filter R(codexops.runner.codex_keepalive_name,ansible_collections.codexops.runner.codex_keepalive_name_filter)
            given the instance's name), or for an instance named V(default), the single-runner one.
        type: path
  allowed_auth_modes:
    description:
      - Auth modes that count as healthy. Default is every mode Codex knows.
  runner_environment:
    description:
      - Where the runner's jobs get CODEX_HOME from - the runner's own environment, %s
      - A spec that cannot be used (a relative or C(..) directory, a unit name with C(/) or not ending in
        C(.service), a CODEX_HOME with control characters) fails the task, naming the instance, before anything
        is read.
      - Mutually exclusive with O(runners) (each instance has its own O(runners[].runner_environment)).
    type: dict
    version_added: 0.2.0
    suboptions:
      github_runner_dir:
        description:
          - A GitHub Actions runner directory (absolute). Its C(.env) (lines C(NAME=value), read by the runner
            when it starts) must set C(CODEX_HOME) to O(codex_home).
          - Walked without following links; a C(.env) that is a symlink, hard link, FIFO or device, or larger than
            1 MiB, is refused, as is a directory that is missing or controlled by another user than O(owner).
        type: path
      systemd_unit:
        description:
          - The runner's systemd service, for example C(actions.runner.org-repo.runner-1.service). Its root-owned
            drop-in C(/etc/systemd/system/<unit>.d/codexops-codex-home.conf) must set
            C(Environment="CODEX_HOME=<codex_home>").
        type: str
      gitlab_concurrent_id:
        description:
          - The GitLab Runner C(concurrent) slot (C(CI_CONCURRENT_ID)) this runner serves. Nothing is written or read
            on the host; the codex_auth role's fact C(codex_auth_gitlab_pre_build_script) gives the
            C(pre_build_script) for the slots.
        type: int
  login_status:
    description:
      - Also run C(codex login status) as the runner user (O(owner)) with this CODEX_HOME, and return its verdict
        in RV(codex_login_status). A non-zero exit is a V(codex_status_failed) problem.
      - For personal access tokens Codex checks the token online.
    type: bool
    default: false
  probe:
    description:
      - Run the keepalive now, as the runner user (O(owner), else the owner of CODEX_HOME), before reading
        CODEX_HOME, and report its fresh outcome. This is a real Codex request - one tiny C(codex exec) per
        runner, like the scheduled keepalive, which may refresh and rotate C(auth.json) - so the task reports
        C(changed) when the probe ran.
      - The command runs with the allow-listed environment (plus O(codex_environment)), never the play's, with no
        stdin and no arguments. Its output is Codex's and is discarded; RV(keepalive_probe) says whether it ran.
        A probe that records no outcome is a V(keepalive_probe_failed) warning.
      - Skipped in check mode (a probe can change C(auth.json)); the last recorded outcome is reported.
    type: bool
    default: false
  probe_command:
    description:
      - The keepalive wrapper script to run for O(probe). Mutually exclusive with O(runners) (see
        O(runners[].probe_command)).
      - Default is the path the codex_keepalive role installs it at with its defaults,
        C(/usr/local/libexec/codexops/codex-keepalive-USER) for the default CODEX_HOME (C(~USER/.codex)), and
        C(codex-keepalive-USER-HASH) for another, HASH being the first 8 hex digits of the SHA-256 of
        O(codex_home). That matches the role when its C(codex_keepalive_home) was given as this same absolute
        path; the codex_auth role computes the path from C(codex_auth_home) as given when C(codex_auth_probe_command) is
        empty.
    type: path
  probe_timeout:
    description:
      - Seconds Codex may take in the probe (passed to the script, which stops Codex with C(timeout(1)) and
        records V(timeout)). The script itself is stopped 30 seconds after that. Offline, a run takes about
        25 seconds; Codex gives up on a token endpoint that does not answer after 20.
    type: int
    default: 120
attributes:
  check_mode:
    support: full
    details:
      - The module never changes anything, so check mode runs it as usual, except O(probe), which is skipped.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it as the runner user or with C(become) so it can read C(auth.json).
seealso:
  - module: codexops.runner.codex_auth_seed
'''

EXAMPLES = r'''
- name: Check a runner's Codex credentials
  codexops.runner.codex_auth_verify:
    codex_home: /home/ci/.codex
    owner: ci
    fingerprint_salt: "{{ vault_codex_fingerprint_salt }}"
  become: true
  register: codex_health

- name: Print facts, never tokens
  ansible.builtin.debug:
    msg: >-
      {{ inventory_hostname }}: healthy={{ codex_health.healthy }}
      mode={{ codex_health.auth_mode }} refresh_token={{ codex_health.has_refresh_token }}
      age={{ codex_health.age_days }}d problems={{ codex_health.problems | map(attribute='code') | list }}

- name: Run the installed keepalive now and report what it did (one small Codex request)
  codexops.runner.codex_auth_verify:
    codex_home: /home/ci/.codex
    owner: ci
    probe: true
  become: true
  register: codex_probe

- name: Say whether the refresh token still works
  ansible.builtin.debug:
    msg: >-
      {{ codex_probe.keepalive_result }} ({{ codex_probe.keepalive_reason }}),
      refreshed={{ codex_probe.keepalive_refreshed }}

- name: Check every runner instance of a host in one module run
  codexops.runner.codex_auth_verify:
    runners:
      - name: gh-1
        codex_home: /srv/actions-runner-1/.codex
        owner: ci
      - name: gh-2
        codex_home: /srv/actions-runner-2/.codex
        owner: ci
    fingerprint_salt: "{{ vault_codex_fingerprint_salt }}"
  become: true
  register: codex_instances

- name: One line per instance, never a token
  ansible.builtin.debug:
    msg: >-
      {{ inventory_hostname }}/{{ item.name }}: healthy={{ item.healthy }}
      problems={{ item.problems | map(attribute='code') | list }}
  loop: "{{ codex_instances.runners }}"
  loop_control:
    label: "{{ item.name }}"

- name: Fail the play on a broken runner
  codexops.runner.codex_auth_verify:
    codex_home: /home/ci/.codex
    allowed_auth_modes: [chatgpt]
    fail_on_problems: true
  become: true
'''

RETURN = r'''
gitlab_pre_build_script:
  description:
    - With O(runners), when any instance names a GitLab slot (O(runners[].runner_environment.gitlab_concurrent_id)),
      the C(pre_build_script) for the GitLab Runner's C(config.toml) that points each slot's jobs at its instance's
      CODEX_HOME (a job in a slot no instance serves fails).
  returned: when an instance of O(runners) names a GitLab slot
  type: str
  version_added: 0.2.0
  sample: 'case "${CI_CONCURRENT_ID:-}" in 0) export CODEX_HOME=/srv/gitlab-codex/slot-0 ;; *) exit 1 ;; esac'
healthy:
  description:
    - True when there is no problem (warnings do not count).
    - With O(runners), true when no instance has a problem.
  returned: always
  type: bool
  sample: true
problems:
  description: What stops Codex from working with these credentials, each with a stable C(code) and a message.
  returned: when O(runners) is not given
  type: list
  elements: dict
  sample: [{code: auth_mode_bits, message: auth.json is mode 0644; it must be 0600.}]
health_warnings:
  description:
    - What will soon stop it working (V(stale), V(access_token_expired), ...), same shape as RV(problems).
    - Named C(health_warnings) because C(warnings) is reserved in Ansible module results.
  returned: when O(runners) is not given
  type: list
  elements: dict
  sample: []
auth_mode:
  description: The auth mode Codex uses for this file (resolved when C(auth_mode) is absent); null without a usable file.
  returned: when O(runners) is not given
  type: str
  sample: chatgpt
last_refresh:
  description: When Codex last refreshed the tokens (UTC, RFC 3339).
  returned: when O(runners) is not given
  type: str
  sample: '2026-11-21T10:22:00Z'
age_days:
  description: Days since RV(last_refresh).
  returned: when O(runners) is not given
  type: float
  sample: 1.25
stale:
  description: ChatGPT credentials not refreshed within O(max_age_days), or whose access token has expired.
  returned: when O(runners) is not given
  type: bool
  sample: false
has_access_token:
  description: An access token (ChatGPT, personal access token or agent identity) is present.
  returned: when O(runners) is not given
  type: bool
  sample: true
has_id_token:
  description: A ChatGPT id token is present.
  returned: when O(runners) is not given
  type: bool
  sample: true
has_refresh_token:
  description: A non-empty ChatGPT refresh token is present.
  returned: when O(runners) is not given
  type: bool
  sample: true
has_api_key:
  description: An API key is present.
  returned: when O(runners) is not given
  type: bool
  sample: false
access_token_expires_at:
  description: The access token's C(exp) claim (UTC), when the token is a JWT.
  returned: when O(runners) is not given
  type: str
  sample: '2026-11-30T10:22:00Z'
account_id:
  description: The ChatGPT account (workspace) ID, not a secret.
  returned: when O(runners) is not given
  type: str
  sample: acct-1234
plan_type:
  description: The ChatGPT plan from the id token.
  returned: when O(runners) is not given
  type: str
  sample: enterprise
refresh_token_fingerprint:
  description:
    - Short salted SHA-256 of the refresh token; null without one. Equal on two hosts means one refresh token
      on two runners, which breaks one of them at the next refresh.
  returned: when O(runners) is not given
  type: str
  sample: 3f9a1c0e5b7d2a64
codex_home_mode:
  description: Mode of CODEX_HOME, octal.
  returned: when O(runners) is not given
  type: str
  sample: '0700'
auth_file_mode:
  description: Mode of C(auth.json), octal.
  returned: when O(runners) is not given
  type: str
  sample: '0600'
owner:
  description: Owner of C(auth.json) (of CODEX_HOME when there is no file).
  returned: when O(runners) is not given
  type: str
  sample: ci
credentials_store:
  description: The top-level C(cli_auth_credentials_store) of config.toml; null when unset.
  returned: when O(runners) is not given
  type: str
  sample: file
forced_login_method:
  description: The top-level C(forced_login_method) of config.toml; null when unset.
  returned: when O(runners) is not given
  type: str
  sample: null
codex_login_status:
  description: With O(login_status=true), the exit code and message of C(codex login status) (API key tails masked).
  returned: when O(login_status=true) and O(runners) is not given
  type: dict
  sample: {rc: 0, message: Logged in using ChatGPT}
keepalive_last_run:
  description: When the last keepalive run finished (UTC, RFC 3339), from C(codexops-keepalive.json); null without one.
  returned: when O(runners) is not given
  type: str
  sample: '2026-11-30T03:12:31Z'
keepalive_result:
  description:
    - V(ok) when the last keepalive run did its job (Codex exited 0, or it rotated C(auth.json) and then failed,
      e.g. offline at the model call), V(failed) otherwise; null without a status file.
  returned: when O(runners) is not given
  type: str
  sample: failed
keepalive_reason:
  description:
    - The classified failure of the last run - V(refresh_token_reused), V(refresh_token_expired),
      V(refresh_token_invalidated), V(unauthorized), V(network), V(timeout), V(config), V(other) - also on an
      V(ok) run that refreshed and then failed; null when Codex exited 0.
  returned: when O(runners) is not given
  type: str
  sample: refresh_token_reused
keepalive_refreshed:
  description: Whether the last keepalive run rotated C(auth.json); null without a status file.
  returned: when O(runners) is not given
  type: bool
  sample: false
keepalive_codex_version:
  description: The Codex version the last keepalive run used (C(codex --version)).
  returned: when O(runners) is not given
  type: str
  sample: 0.171.0
keepalive_consecutive_failures:
  description:
    - How many keepalive runs in a row have failed, the last one included (0 after a run that did its job);
      null when there is no status file or it was written by a keepalive older than this count.
  returned: when O(runners) is not given
  type: int
  sample: 2
keepalive_probe:
  description:
    - With O(probe=true) - whether the probe ran (C(ran)), the command, its exit status (C(rc), 0 when the run did
      its job), whether it was stopped at its deadline (C(timed_out)), and C(msg) when it did not run (check mode,
      a command that cannot be run).
  returned: when O(probe=true) and O(runners) is not given
  type: dict
  sample: {ran: true, command: /usr/local/libexec/codexops/codex-keepalive-ci, rc: 0, timed_out: false}
runners:
  description:
    - With O(runners), one summary per instance, in the order given - its C(name) and C(codex_home), and every
      other value this module returns for a single runner (RV(problems), RV(health_warnings), RV(auth_mode),
      RV(refresh_token_fingerprint), ..., RV(codex_login_status) and RV(keepalive_probe) when asked for), with
      the same meaning.
  returned: when O(runners) is given
  type: list
  elements: dict
  version_added: 0.2.0
  sample:
    - name: gh-1
      codex_home: /srv/actions-runner-1/.codex
      healthy: true
      problems: []
      health_warnings: []
      auth_mode: chatgpt
      owner: ci
      refresh_token_fingerprint: 3f9a1c0e5b7d2a64
    - name: gh-2
      codex_home: /srv/actions-runner-2/.codex
      healthy: false
      problems: [{code: auth_missing, message: 'auth.json does not exist; ...'}]
      health_warnings: []
      auth_mode: null
      owner: ci
      refresh_token_fingerprint: null
'''

import datetime

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.codexops.runner.plugins.module_utils import _runner_environment
from ansible_collections.codexops.runner.plugins.module_utils import _runner_process
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import codex_home
from ansible_collections.codexops.runner.plugins.module_utils import codex_process
from ansible_collections.codexops.runner.plugins.module_utils import health
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status
from ansible_collections.codexops.runner.plugins.module_utils import module_common
from ansible_collections.codexops.runner.plugins.module_utils import privsep
from ansible_collections.codexops.runner.plugins.module_utils import safe_files


def main():
    argument_spec = module_common.base_argument_spec(verify=True, runs_codex=True)
    argument_spec['codex_home']['required'] = False
    argument_spec.update(
        owner=dict(type='str'),
        login_status=dict(type='bool', default=False),
        probe=dict(type='bool', default=False),
        probe_command=dict(type='path'),
        probe_timeout=dict(type='int', default=120),
        runners=dict(type='list', elements='dict', options=dict(
            name=dict(type='str', required=True),
            codex_home=dict(type='path', required=True),
            owner=dict(type='str'),
            allowed_auth_modes=dict(type='list', elements='str', choices=list(auth_model.KNOWN_AUTH_MODES)),
            environment_files=dict(type='list', elements='path'),
            probe_command=dict(type='path'),
            runner_environment=dict(type='dict', options=module_common.runner_environment_options()),
        )),
        runner_environment=dict(type='dict', options=module_common.runner_environment_options()),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=[('codex_home', 'runners')],
        # Each instance has its own: one value for all of them would be wrong for all but one.
        mutually_exclusive=[('codex_home', 'runners'), ('owner', 'runners'), ('probe_command', 'runners'),
                            ('runner_environment', 'runners')],
        supports_check_mode=True,
    )
    params = module.params
    codex_path = None
    if params['login_status']:
        codex_path = params['codex_path'] or module.get_bin_path('codex')
        if not codex_path:
            module.fail_json(msg='login_status needs the Codex CLI: not found on PATH; set codex_path.')
    if params['probe'] and not 1 <= params['probe_timeout'] <= 3600:
        module.fail_json(msg='probe_timeout must be between 1 and 3600 seconds.')
    module_common.guarded(module, codex_process.check_environment, params['codex_environment'])
    if params['runners'] is None:
        found = _runner_environment.spec_problems(params['runner_environment'], params['codex_home'])
        if found:
            module.fail_json(msg='Refusing runner_environment: %s.' % '; '.join(found),
                             error_code='runner_environment_invalid')
        result = _verify_runner(module, params, codex_path)
        module_common.exit_checked(module, result, result)
    _exit_instances(module, params, codex_path)


def _verify_runner(module, params, codex_path, instance=None):
    """One runner's summary, its `changed` included: the whole of this module for a single CODEX_HOME."""
    probe = params['probe'] and not module.check_mode
    uid, _gid = module_common.guarded(module, safe_files.resolve_ids, params['owner'])
    options = {}
    if probe:
        # The runner-user child waits for the probe: give it the probe's own bound and some.
        options['child_timeout'] = privsep.DEFAULT_CHILD_TIMEOUT + params['probe_timeout']
    try:
        # Read as whoever owns CODEX_HOME now: reading never takes anything over. A CODEX_HOME of a user
        # other than `owner` is reported (codex_home_owner) without being read: anyone could have made it.
        result = codex_home.act(params['codex_home'], codex_home.reader(uid), _verify, params, uid, codex_path,
                                probe, instance, **options)
    except codex_home.UnsafePathError as exc:
        result = _evaluate(health.refused_snapshot(exc), params, uid)
        if probe:
            result['keepalive_probe'] = {'ran': False, 'msg': 'not run: CODEX_HOME was refused.'}
    if params['probe'] and not probe:
        result['keepalive_probe'] = {'ran': False, 'msg': 'not run in check mode: a probe sends a request to Codex '
                                     'and may rotate auth.json; the last recorded outcome is reported.'}
    module_common.add_environment_checks(result, params)
    module_common.add_runner_environment_checks(result, params)
    status = result.get('codex_login_status', {})
    if status.get('rc', 0) != 0:
        # runner_unknown: Codex was not run at all (never as root); anything else is Codex's own failure.
        code = 'runner_unknown' if status.get('code') == 'runner_unknown' else 'codex_status_failed'
        result['problems'].append({'code': code, 'message': 'codex login status failed: %s' % status['message']})
        status.pop('code', None)
    result['healthy'] = not result['problems']
    # Reading changes nothing; a probe that ran sent a request and rewrote the status file (and
    # maybe auth.json).
    result['changed'] = bool(result.get('keepalive_probe', {}).get('ran'))
    return result


def _exit_instances(module, params, codex_path):
    """Every instance in this one run: the list is refused as a whole before any CODEX_HOME is read."""
    if not params['runners']:
        module.fail_json(msg='runners is empty: give at least one instance, or codex_home.')
    instances = [dict(entry, user=entry['owner']) for entry in params['runners']]
    found = module_common.instance_list_problems(instances)
    if found:
        module_common.refuse_instances(module, found)
    summaries = []
    changed = False
    for entry in params['runners']:
        instance_params = dict(params, codex_home=entry['codex_home'], owner=entry['owner'],
                               probe_command=entry['probe_command'], runner_environment=entry['runner_environment'])
        for option in ('allowed_auth_modes', 'environment_files'):
            if entry[option] is not None:
                instance_params[option] = entry[option]
        summary = _verify_runner(module, instance_params, codex_path, instance=entry['name'])
        changed = summary.pop('changed') or changed
        summaries.append(dict(summary, name=entry['name'], codex_home=entry['codex_home']))
    result = {'changed': changed, 'healthy': all(summary['healthy'] for summary in summaries), 'runners': summaries}
    script = _runner_environment.gitlab_pre_build_script(params['runners'])
    if script:
        result['gitlab_pre_build_script'] = script
    if params['fail_on_problems'] and not result['healthy']:
        module.fail_json(msg='Codex credentials of runner instances have problems: %s' % '; '.join(
            '%s (%s)' % (summary['name'], ', '.join(item['code'] for item in summary['problems']))
            for summary in summaries if not summary['healthy']), **result)
    module.exit_json(**result)


def _evaluate(snapshot, params, uid):
    return health.evaluate(snapshot, owner_uid=uid, **module_common.verify_options(params))


def _verify(context, params, uid, codex_path, probe=False, instance=None):
    """As whoever controls CODEX_HOME: run the keepalive probe and ask Codex (as the runner) when asked,
    read, evaluate."""
    report = None
    if probe:
        report, started = _probe(context, params, uid, instance)
    snapshot = health.take_snapshot(context.home)
    result = _evaluate(snapshot, params, uid)
    if report is not None:
        result['keepalive_probe'] = report
        if not report['ran']:
            # A probe never runs as root: no known runner is a problem, any other failure to start a warning.
            code = report.pop('code', None)
            if code == 'runner_unknown':
                result['problems'].append({'code': code, 'message': report['msg']})
            else:
                result['health_warnings'].append({'code': 'keepalive_probe_failed', 'message': report['msg']})
        elif not keepalive_status.recorded_since(snapshot.get('keepalive'), started):
            result['health_warnings'].append({
                'code': 'keepalive_probe_failed',
                'message': 'the probe ran %s (exit status %s%s), but %s records no run that started then.'
                           % (report['command'], report['rc'], ', stopped at its deadline' if report['timed_out']
                              else '', keepalive_status.STATUS_FILE)})
    if codex_path:
        # As the runner CODEX_HOME belongs to (or is meant to), never as root: Codex's verdict is the runner's.
        try:
            runner = _runner(context, uid, 'codex login status')
            status = codex_process.login_status(codex_path, params['codex_home'], runner,
                                                extra_env=params['codex_environment'])
            result['codex_login_status'] = {'rc': status['rc'], 'message': status['message']}
        except codex_process.CodexProcessError as exc:
            result['codex_login_status'] = {'rc': None, 'message': exc.message, 'code': exc.code}
    return result


def _runner(context, uid, purpose):
    home_owner = context.home.stat().st_uid if context.exists else None
    try:
        return _runner_process.runner_for(uid, home_owner, purpose)
    except _runner_process.RunnerProcessError as exc:
        raise codex_process.CodexProcessError(exc.message, code=exc.code)


def _probe(context, params, uid, instance=None):
    """Run the keepalive script now as the runner: (report, when it started)."""
    started = datetime.datetime.now(datetime.timezone.utc)
    command = params['probe_command']
    try:
        runner = _runner(context, uid, 'the keepalive probe')
        command = command or keepalive_status.default_script(runner.name, params['codex_home'], runner.home,
                                                             instance=instance)
        rc, timed_out = codex_process.run_keepalive(command, params['codex_home'], runner,
                                                    timeout=params['probe_timeout'],
                                                    extra_env=params['codex_environment'])
    except codex_process.CodexProcessError as exc:
        return {'ran': False, 'command': command, 'msg': exc.message, 'code': exc.code}, started
    return {'ran': True, 'command': command, 'rc': rc, 'timed_out': timed_out}, started


if __name__ == '__main__':
    main()
