#!/usr/bin/python
# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
module: codex_access_token_login
short_description: Log a runner's Codex CLI in with a ChatGPT Business/Enterprise access token
version_added: 0.1.0
description:
  - Runs C(codex login --with-access-token) for the runner user with the token on standard input, never on a
    command line, with C(CODEX_HOME) set and C(CODEX_ACCESS_TOKEN), C(OPENAI_API_KEY) and C(CODEX_API_KEY)
    removed from its environment so they cannot shadow what is stored.
  - Idempotent without a network call - when C(auth.json) already holds the same token, Codex is not run.
  - Codex checks the token online. A rejected token fails the task with Codex's message (the token masked),
    and Codex leaves the previous C(auth.json) as it was, so a failed rotation keeps the working login.
  - With O(state=absent), runs C(codex logout), which also revokes the stored credentials when online.
  - When the module runs as root and O(owner) is another user, Codex runs as that user, so every file it
    creates in CODEX_HOME belongs to the runner.
  - With O(runners), every access-token runner instance of the host is logged in in this one module run, each as
    its own user in its own CODEX_HOME with its own token; the result is then RV(runners), one per instance.
author:
  - codexops maintainers (@codexops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - codexops.runner.codex_home
  - codexops.runner.codex_home.OWNERSHIP
  - codexops.runner.codex_home.VERIFY
  - codexops.runner.codex_home.CODEX_PROCESS
  - codexops.runner.codex_home.LOCKS
options:
  codex_home:
    description:
      - The runner user's Codex home directory (what C(CODEX_HOME) points to), usually C(~runner/.codex).
      - Must be an absolute path. A symlinked CODEX_HOME is refused, so credentials cannot be redirected.
      - Required unless O(runners) is given; mutually exclusive with it.
    type: path
    required: false
  owner:
    description:
      - The runner user that must own CODEX_HOME and the files in it; Codex runs as this user.
      - Name or numeric ID. A user that does not exist is an error and nothing is written.
      - Mutually exclusive with O(runners) (each instance has its own).
    type: str
  group:
    description:
      - Group for CODEX_HOME and the files in it. Defaults to the primary group of O(owner).
      - Mutually exclusive with O(runners) (each instance has its own).
    type: str
  access_token:
    description:
      - The access token. C(at-...) tokens are personal access tokens; anything else is an agent identity JWT.
      - Required with O(state=present) unless O(runners) is given; mutually exclusive with O(runners).
    type: str
  config_settings:
    description:
      - Top-level C(config.toml) settings (as M(codexops.runner.codex_config) sets them, e.g.
        C(cli_auth_credentials_store=file)) written in the same run, before Codex logs in, so Codex stores the login
        where they say. With O(runners), in every instance's CODEX_HOME. Omitted - C(config.toml) is left alone.
    type: dict
    version_added: 0.2.0
  runner_environment:
    description:
      - Where the runner's jobs get CODEX_HOME from - the runner's own environment, written with the login (state
        V(present)) exactly as M(codexops.runner.codex_auth_seed) writes it (the same code); see its
        O(codexops.runner.codex_auth_seed#module:runner_environment) for each suboption, the checks and what is
        refused. Check mode predicts it; a spec that cannot be used, a missing runner directory or a C(.env) that is a
        link fails the task before Codex runs.
      - Mutually exclusive with O(runners) (each instance has its own O(runners[].runner_environment)).
    type: dict
    version_added: 0.2.0
    suboptions:
      github_runner_dir:
        description: The GitHub runner directory whose C(.env) gets C(CODEX_HOME=)O(codex_home).
        type: path
      systemd_unit:
        description: The runner's systemd service, which gets the drop-in C(codexops-codex-home.conf) setting C(CODEX_HOME).
        type: str
      gitlab_concurrent_id:
        description: The GitLab Runner C(concurrent) slot (C(CI_CONCURRENT_ID)) this runner serves (used with O(runners)).
        type: int
  runners:
    description:
      - Several runner instances on this host, each with its own CODEX_HOME, owner and access token, logged in in
        this one module run instead of O(codex_home). Each instance is logged in exactly as a single runner is -
        Codex runs as the instance's owner with the token on standard input, no call when the same token is
        already stored, O(config_settings) written first, check mode predicts exactly. The result is then
        RV(runners), one per instance in the order given, with C(changed) for the whole run; the other
        single-runner return values are not returned.
      - Before anything is written the whole list is refused, naming the instances and never a token, when two
        instances have one name or one CODEX_HOME, a CODEX_HOME lies inside another's, a name is not 1 to 32
        characters V(a-z), V(0-9), V(_) and V(-) starting with a letter or digit, an O(runners[].owner) or
        O(runners[].group) does not exist on the host, a token is empty, or two instances have the same token
        (rotating a token revokes it, which would cut off every runner still holding it). Then each CODEX_HOME is
        checked as check mode sees it (a symlinked C(auth.json), an unusable lock, an invalid C(config.toml), a
        runner Codex cannot run as), and any refusal there also refuses the whole list before anything is written.
      - Should an instance's login fail nonetheless (Codex rejects its token, or with O(smoke_test=true) the smoke
        test fails and its previous C(auth.json) is put back), the task fails naming it, with RV(runners) holding
        the instances before it, which were logged in; the ones after it are not touched.
      - O(force), O(smoke_test), O(config_settings) and the verify options apply to every instance;
        O(allowed_auth_modes) and O(environment_files) are the defaults of the instances that do not set their
        own. O(fail_on_problems) fails the task when the state left (or, in check mode, predicted) for any
        instance has a problem, naming the instances. Only O(state=present).
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      name:
        description:
          - The instance's name, unique on the host. It names its result row.
        type: str
        required: true
      codex_home:
        description:
          - The instance's CODEX_HOME, an absolute path; never a symlink.
        type: path
        required: true
      owner:
        description:
          - The runner user this instance's Codex runs as and its CODEX_HOME belongs to, as O(owner).
        type: str
      group:
        description:
          - Group for this CODEX_HOME, as O(group).
        type: str
      access_token:
        description:
          - This instance's access token, as O(access_token). Never returned, logged, shown in a message or
            put on a command line.
        type: str
        required: true
      allowed_auth_modes:
        description:
          - Auth modes this instance's resulting C(auth.json) may have, as O(allowed_auth_modes).
        type: list
        elements: str
        choices: [apikey, chatgpt, chatgptAuthTokens, callerProvided, agentIdentity, personalAccessToken,
                  bedrockApiKey, bedrockAccessKeys]
      environment_files:
        description:
          - This instance's environment files, as O(environment_files).
        type: list
        elements: path
      runner_environment:
        description:
          - How this instance's runner points its jobs at its CODEX_HOME, written in this same module run after the
            instance's login exactly as M(codexops.runner.codex_auth_seed) writes it (the same code) - the GitHub
            runner's C(.env) line (O(runners[].runner_environment.github_runner_dir)), a root-owned systemd drop-in
            C(codexops-codex-home.conf) (O(runners[].runner_environment.systemd_unit)), and for a GitLab slot
            (O(runners[].runner_environment.gitlab_concurrent_id)) the line in RV(gitlab_pre_build_script). Check mode
            predicts it; a missing runner directory, a C(.env) that is a link or a directory the runner does not
            control refuses the whole list before anything is written. Two instances with the same directory, unit
            or slot are refused, naming them. What was written is C(runner_environment) in the instance's RV(runners) row.
        type: dict
        version_added: 0.2.0
        suboptions:
          github_runner_dir:
            description: The GitHub runner directory whose C(.env) gets the instance's C(CODEX_HOME) line.
            type: path
          systemd_unit:
            description: The runner's systemd service, which gets the drop-in setting C(CODEX_HOME).
            type: str
          gitlab_concurrent_id:
            description: The GitLab Runner C(concurrent) slot (C(CI_CONCURRENT_ID)) this instance serves.
            type: int
  state:
    description:
      - V(present) logs in with O(access_token); V(absent) logs out.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - Log in even when the same token is already stored (to re-check it online).
    type: bool
    default: false
  smoke_test:
    description:
      - Run C(codex login status) as the runner user after the login (or, when the token was already stored,
        against it). If it fails after a new login, the previous C(auth.json) is put back (atomically, under
        Codex's lock) and the task fails, so a rotation never leaves a runner without its working login.
        For personal access tokens Codex checks the token online.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The token is checked against OpenAI's servers by Codex itself. Point C(CODEX_AUTHAPI_BASE_URL) elsewhere
    only for tests.
seealso:
  - module: codexops.runner.codex_auth_verify
'''

EXAMPLES = r'''
- name: Log the runner in with its access token
  codexops.runner.codex_access_token_login:
    codex_home: /home/ci/.codex
    owner: ci
    access_token: "{{ vault_codex_access_token }}"
  become: true

- name: Log every access-token runner instance of a host in, in one module run, each with its own token
  codexops.runner.codex_access_token_login:
    runners:
      - name: gh-1
        codex_home: /home/ci/.codex-gh-1
        owner: ci
        access_token: "{{ vault_codex_access_token_gh_1 }}"
      - name: gh-2
        codex_home: /home/ci/.codex-gh-2
        owner: ci
        access_token: "{{ vault_codex_access_token_gh_2 }}"
    config_settings:
      cli_auth_credentials_store: file
  become: true
  register: logged_in_instances

- name: Log out (and revoke when online)
  codexops.runner.codex_access_token_login:
    codex_home: /home/ci/.codex
    owner: ci
    state: absent
  become: true
'''

RETURN = r'''
token_kind:
  description: V(personal_access_token) or V(agent_identity); null with O(state=absent).
  returned: success, when O(runners) is not given
  type: str
  sample: personal_access_token
logged_in:
  description: Whether C(codex login) ran (or would run, in check mode).
  returned: success, when O(runners) is not given
  type: bool
  sample: false
auth_mode:
  description: The auth mode of the resulting C(auth.json), as Codex resolves it.
  returned: success, when O(runners) is not given
  type: str
  sample: personalAccessToken
attributes_changed:
  description: Mode and ownership repairs made.
  returned: success, when O(runners) is not given
  type: list
  elements: str
  sample: []
smoke_test:
  description: With O(smoke_test=true), what C(codex login status) said.
  returned: with O(smoke_test=true), outside check mode, when O(runners) is not given
  type: dict
  sample: {rc: 0, message: Logged in using personal access token}
config_changed_keys:
  description: With O(config_settings), the C(config.toml) keys changed (or that would be), as C(added), C(updated)
    or C(removed).
  returned: with O(config_settings), when O(runners) is not given
  type: dict
  version_added: 0.2.0
  sample: {cli_auth_credentials_store: added}
config_warnings:
  description: With O(config_settings), settings Codex would not see as given (also shown as warnings).
  returned: with O(config_settings), when O(runners) is not given
  type: list
  elements: str
  version_added: 0.2.0
  sample: []
auth:
  description: Health summary of the resulting file, as M(codexops.runner.codex_auth_verify) returns it.
  returned: success, when O(runners) is not given
  type: dict
  sample: {healthy: true, auth_mode: personalAccessToken, has_access_token: true, problems: []}
runners:
  description:
    - With O(runners), one result per instance, in the order given - its C(name) and C(codex_home), C(changed), and
      every other value this module returns for a single runner (RV(token_kind), RV(logged_in), RV(auth_mode),
      RV(attributes_changed), RV(smoke_test), RV(config_changed_keys), RV(config_warnings), RV(auth)), with the same
      meaning. Never a token.
  returned: success, when O(runners) is given
  type: list
  elements: dict
  version_added: 0.2.0
  sample:
    - name: gh-1
      codex_home: /home/ci/.codex-gh-1
      changed: true
      token_kind: personal_access_token
      logged_in: true
      auth_mode: personalAccessToken
      attributes_changed: [codex_home_created]
      config_changed_keys: {cli_auth_credentials_store: added}
      config_warnings: []
      auth: {healthy: true, auth_mode: personalAccessToken, has_access_token: true, problems: []}
gitlab_slots:
  description:
    - With O(runners), the GitLab slots this run's instances serve, as C([slot, CODEX_HOME]) pairs by slot - what
      RV(gitlab_pre_build_script) is made of. The codex_auth role joins the pairs of its two writers
      (M(codexops.runner.codex_auth_seed) and M(codexops.runner.codex_access_token_login)) into one script per host
      with the filter P(codexops.runner.codex_runner_gitlab_script#filter).
  returned: when an instance of O(runners) names a GitLab slot
  type: list
  elements: list
  version_added: 0.2.0
  sample: [[0, /srv/gitlab-codex/slot-0], [1, /srv/gitlab-codex/slot-1]]
runner_environment:
  description:
    - With O(runner_environment) naming a runner directory or unit, what was (in check mode, would be) written -
      C(github_env) and C(systemd_dropin), each its C(path) and C(action) (V(created), V(updated) or V(kept)) - with
      C(changed), and C(daemon_reload) when a drop-in changed where systemd runs.
  returned: success, when O(runner_environment) names a runner directory or unit
  type: dict
  version_added: 0.2.0
  sample: {changed: true, daemon_reload: false, github_env: {path: /srv/actions-runner-1/.env, action: updated}}
gitlab_pre_build_script:
  description:
    - With O(runners), when any instance names a GitLab slot (O(runners[].runner_environment.gitlab_concurrent_id)),
      the C(pre_build_script) for the GitLab Runner's C(config.toml) that points each slot's jobs at its instance's
      CODEX_HOME, as M(codexops.runner.codex_auth_seed) returns it. Each instance's RV(runners) row has, when its
      O(runners[].runner_environment) names a runner directory or unit, C(runner_environment) - C(github_env) and
      C(systemd_dropin), each its C(path) and C(action) (V(created), V(updated) or V(kept)), with C(changed) and
      C(daemon_reload) (a drop-in changed where systemd runs).
  returned: with O(runners), when an instance names a GitLab slot
  type: str
  version_added: 0.2.0
  sample: 'case "${CI_CONCURRENT_ID:-}" in 0) export CODEX_HOME=/home/ci/.codex-gl-0 ;; *) echo ... >&2; exit 1 ;; esac'
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.codexops.runner.plugins.module_utils import _runner_environment
from ansible_collections.codexops.runner.plugins.module_utils import _runner_instances
from ansible_collections.codexops.runner.plugins.module_utils import access_login
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import module_common
from ansible_collections.codexops.runner.plugins.module_utils import safe_files


def main():
    argument_spec = module_common.base_argument_spec(ownership=True, verify=True, runs_codex=True, locks=True)
    argument_spec['codex_home']['required'] = False
    argument_spec.update(
        access_token=dict(type='str', no_log=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        force=dict(type='bool', default=False),
        smoke_test=dict(type='bool', default=False),
        config_settings=dict(type='dict'),
        runner_environment=dict(type='dict', options=module_common.runner_environment_options()),
        runners=dict(type='list', elements='dict', options=dict(
            name=dict(type='str', required=True),
            codex_home=dict(type='path', required=True),
            owner=dict(type='str'),
            group=dict(type='str'),
            access_token=dict(type='str', no_log=True, required=True),
            allowed_auth_modes=dict(type='list', elements='str', choices=list(auth_model.KNOWN_AUTH_MODES)),
            environment_files=dict(type='list', elements='path'),
            runner_environment=dict(type='dict', options=module_common.runner_environment_options()),
        )),
    )
    module = AnsibleModule(argument_spec=argument_spec,
                           # Each instance has its own CODEX_HOME, owner, group and token.
                           mutually_exclusive=[('codex_home', 'runners'), ('owner', 'runners'), ('group', 'runners'),
                                               ('access_token', 'runners'), ('runner_environment', 'runners')],
                           required_one_of=[('codex_home', 'runners')],
                           required_if=[('state', 'present', ('access_token', 'runners'), True)],
                           supports_check_mode=True)
    params = module.params
    codex_path = params['codex_path'] or module.get_bin_path('codex')
    if not codex_path:
        module.fail_json(msg='the Codex CLI was not found on PATH; install it (codexops.runner.codex_cli role) or '
                             'set codex_path.')
    if params['runners'] is not None:
        _exit_instances(module, params, codex_path)
    result = module_common.guarded(module, _login, module, params, codex_path)
    for warning in result.get('config_warnings', []):
        module.warn(warning)
    module_common.add_environment_checks(result['auth'], params)
    module_common.exit_checked(module, result, result['auth'], predicted=module.check_mode)


def _login(module, params, codex_path):
    uid, gid = module_common.resolve_ids(module)
    spec = params['runner_environment']
    if spec and params['state'] != 'present':
        module.fail_json(msg='runner_environment is written with a login (state=present); a logout leaves the '
                             "runner's environment as it is.")
    found = _runner_environment.spec_problems(spec, params['codex_home'])
    if found:
        module.fail_json(msg='Refusing runner_environment before anything was written: %s.' % '; '.join(found),
                         error_code='runner_environment_invalid')
    # What a real run would refuse there (a .env that is a link, a missing runner directory) refuses the run before
    # Codex logs in, as codex_auth_seed refuses it before auth.json is written.
    _runner_environment.apply(spec, params['codex_home'], uid, gid, check=True)
    result = _present_or_absent(module, params, params['codex_home'], uid, gid, codex_path, module.check_mode,
                                params['access_token'])
    return _runner_environment.into_result(result, spec, params['codex_home'], uid, gid, module.check_mode)


def _present_or_absent(module, params, home, uid, gid, codex_path, check_mode, token):
    login = access_login.AccessTokenLogin(home, codex_path, uid=uid, gid=gid, check_mode=check_mode,
                                          verify_options=module_common.verify_options(params),
                                          codex_environment=params['codex_environment'],
                                          lock_timeout=params['lock_timeout'],
                                          config_settings=params['config_settings'])
    if params['state'] == 'present':
        return login.present(token, force=params['force'], smoke_test=params['smoke_test'])
    return login.absent()


def _exit_instances(module, params, codex_path):
    """Every instance in this one run. The whole list is refused before anything is written: its layout and users,
    each token (empty, or one token on two instances), then each CODEX_HOME as a check-mode plan sees it."""
    if params['state'] != 'present':
        module.fail_json(msg='runners logs instances in (state=present); log a runner out with codex_home and '
                             'state=absent.')
    if not params['runners']:
        module.fail_json(msg='runners is empty: give at least one instance, or codex_home.')
    instances = [_instance(params, entry) for entry in params['runners']]
    labels = _runner_instances.labels(instances)
    found = module_common.instance_list_problems(instances)
    module_common.resolve_instance_ids(instances, labels, found, safe_files.resolve_ids)
    for instance, label in zip(instances, labels):
        if not instance['access_token']:
            found.append(_runner_instances.problem('runner_instance_credential_missing', [label], '%s uses the '
                                                   'access_token method but has no access_token' % label))
        elif auth_model.has_lone_surrogate(instance['access_token']):
            found.append(_runner_instances.problem('runner_instance_credential_invalid', [label], '%s: access_token '
                                                   'is not valid Unicode text' % module_common.called(label)))
    found.extend(_runner_instances.access_token_problems(instances))
    if found:
        module_common.refuse_instances(module, found)
    results, failed = module_common.plan_then_run(
        module, instances, labels, lambda instance, check_mode: _run_instance(module, codex_path, instance, check_mode))
    if failed:
        done = _public_summaries(instances, results)
        module.fail_json(msg='Logging runner instance %s in failed: %s (%s).' % (
            failed[0], failed[1],
            'the instances before it were logged in: %s; the ones after it were not touched'
            % ', '.join(summary['name'] for summary in done) if done else 'no instance was changed'),
            changed=any(summary['changed'] for summary in done), runners=done)
    _exit_summaries(module, params, instances, results)


def _instance(params, entry):
    """One entry as _runner_instances sees an instance (method access_token, user), with the module's options for
    it: its own CODEX_HOME, owner and group, and the module's defaults for what it does not set."""
    instance = dict(entry, user=entry['owner'], method='access_token')
    instance_params = dict(params, codex_home=entry['codex_home'], owner=entry['owner'], group=entry['group'],
                           runner_environment=entry.get('runner_environment'))
    for option in ('allowed_auth_modes', 'environment_files'):
        if entry[option] is not None:
            instance_params[option] = entry[option]
    instance['params'] = instance_params
    return instance


def _run_instance(module, codex_path, instance, check_mode):
    """One instance's result, as the single-runner mode returns it, with its environment files' verdict."""
    uid, gid = instance['ids']
    result = _present_or_absent(module, instance['params'], instance['codex_home'], uid, gid, codex_path, check_mode,
                                instance['access_token'])
    # Where the runner's jobs find this CODEX_HOME, after its login, as codex_auth_seed writes it (the same function):
    # in the check-mode plan, what a runner directory would refuse refuses the whole list before anything is written.
    _runner_environment.into_result(result, instance['runner_environment'], instance['codex_home'], uid, gid,
                                    check_mode)
    module_common.add_environment_checks(result['auth'], instance['params'])
    return result


def _public_summaries(instances, results):
    return [dict([('name', instance['name']), ('codex_home', instance['codex_home'])], **result)
            for instance, result in zip(instances, results)]


def _exit_summaries(module, params, instances, results):
    summaries = _public_summaries(instances, results)
    for summary in summaries:
        for warning in summary.get('config_warnings', []):
            module.warn('instance %s: %s' % (summary['name'], warning))
    result = {'changed': any(summary['changed'] for summary in summaries), 'runners': summaries}
    slots = _runner_environment.gitlab_slots(instances)
    if slots:
        result['gitlab_slots'] = slots
        result['gitlab_pre_build_script'] = _runner_environment.gitlab_script(slots)
    broken = [summary for summary in summaries if not summary['auth']['healthy']]
    if params['fail_on_problems'] and broken:
        module.fail_json(msg='Codex credentials of runner instances have problems: %s%s' % ('; '.join(
            '%s (%s)' % (summary['name'], ', '.join(item['code'] for item in summary['auth']['problems']))
            for summary in broken), ' (predicted; nothing was written)' if module.check_mode else ''), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
