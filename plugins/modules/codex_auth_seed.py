#!/usr/bin/python
# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
module: codex_auth_seed
short_description: Seed a Codex auth.json onto a runner, once, safely
version_added: 0.1.0
description:
  - Writes a Codex C(auth.json) into CODEX_HOME from a seed made on a trusted machine, and makes
    CODEX_HOME C(0700) and C(auth.json) C(0600), owned by the runner user.
  - Codex refreshes ChatGPT credentials by itself and rotates the refresh token each time, so the file
    on a runner is usually newer than any seed. By default (O(replace=never)) the seed is written only
    when C(auth.json) is absent; rewriting it from the original seed would throw the refreshed tokens away.
  - The seed is validated before anything is written. A bad seed fails the task and changes nothing.
  - Writes the way Codex does, under Codex's own locks (C(auth.lock), then C(auth.json.lock)), through an
    C(O_EXCL) temp file at C(0600) in CODEX_HOME, fsync, and an atomic rename. A symlinked or hard-linked
    C(auth.json) and a symlinked CODEX_HOME are refused.
  - Returns the same health summary as M(codexops.runner.codex_auth_verify) for the resulting file,
    so provisioning needs no separate verify task.
  - Never returns, logs or diffs a credential.
author:
  - codexops maintainers (@codexops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - codexops.runner.codex_home
  - codexops.runner.codex_home.OWNERSHIP
  - codexops.runner.codex_home.VERIFY
  - codexops.runner.codex_home.LOCKS
  - codexops.runner.codex_home.ATTRIBUTES
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
      - The runner user that must own CODEX_HOME and the files in it.
      - Name or numeric ID. A user that does not exist is an error and nothing is written.
      - When omitted, ownership is left as it is (new files belong to the user the module runs as).
      - Mutually exclusive with O(runners) (each instance has its own).
    type: str
  group:
    description:
      - Group for CODEX_HOME and the files in it. Defaults to the primary group of O(owner).
      - Mutually exclusive with O(runners) (each instance has its own).
    type: str
  content:
    description:
      - The seed C(auth.json) content, typically from a vault-encrypted per-host file
        (C(lookup('ansible.builtin.file', 'codex_seeds/' ~ inventory_hostname ~ '.json'))).
      - A dict is accepted too and serialized as JSON (Ansible may turn a JSON string into a dict when
        templating).
      - Mutually exclusive with O(src) and O(runners).
      - One seed per runner. A ChatGPT refresh token copied onto two runners breaks the second one
        with C(refresh_token_reused) as soon as the first refreshes.
    type: raw
  src:
    description:
      - Path of the seed file on the managed host. Mutually exclusive with O(content) and O(runners).
      - Read without following symlinks.
    type: path
  runners:
    description:
      - Several runner instances on this host, each with its own CODEX_HOME, owner and seed, seeded in this one
        module run instead of O(codex_home). Each instance is seeded exactly as a single runner is (the seed
        written only as O(replace) allows, under Codex's locks, atomically; check mode predicts exactly; the diff
        shows metadata only, one entry per instance). The result is then RV(runners), one per instance in the
        order given, with C(changed) and RV(pending) for the whole run; the other single-runner return values are
        not returned.
      - Before anything is written the whole list is refused, naming the instances and never a credential, when
        two instances have one name or one CODEX_HOME, a CODEX_HOME lies inside another's, a name is not 1 to 32
        characters V(a-z), V(0-9), V(_) and V(-) starting with a letter or digit, an O(runners[].owner) or
        O(runners[].group) does not exist on the host, a seed is missing or not a usable C(auth.json), or two
        instances' seeds hold the same refresh token (the first to refresh would break the other with
        C(refresh_token_reused)). Then each CODEX_HOME is checked as check mode would see it (a symlinked
        C(auth.json), an unusable lock, ...), and any refusal there also refuses the whole list before anything
        is written.
      - Should writing an instance fail nonetheless (a lock held too long, a full disk), the task fails naming
        it, with RV(runners) holding the instances before it, which were seeded; the ones after it are not
        touched.
      - Every other option applies to every instance; O(replace), O(allowed_auth_modes) and
        O(environment_files) are the defaults of the instances that do not set their own. O(fail_on_problems)
        fails the task when the state left (or, in check mode, predicted) for any instance has a problem,
        naming the instances.
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      name:
        description:
          - The instance's name, unique on the host. It names the instance's keepalive and its result row.
        type: str
        required: true
      codex_home:
        description:
          - The instance's CODEX_HOME, an absolute path; never a symlink.
        type: path
        required: true
      owner:
        description:
          - The runner user that must own this CODEX_HOME, as O(owner).
        type: str
      group:
        description:
          - Group for this CODEX_HOME, as O(group).
        type: str
      content:
        description:
          - This instance's seed, as O(content). Never returned, logged or shown in a message.
          - Mutually exclusive with O(runners[].src); one of them is required.
        type: raw
      src:
        description:
          - Path of this instance's seed file on the managed host, as O(src).
        type: path
      replace:
        description:
          - This instance's replace policy, as O(replace) (which is the default).
        type: str
        choices: [never, invalid, older, different, always]
      allowed_auth_modes:
        description:
          - Auth modes this instance's seed may have, as O(allowed_auth_modes) (which is the default).
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
  runner_environment:
    description:
      - Where the runner's jobs get CODEX_HOME from - the runner's own environment, %s
      - A spec that cannot be used (a relative or C(..) directory, a unit name with C(/) or not ending in
        C(.service), a CODEX_HOME with control characters) fails the task, naming the instance, before anything
        is written.
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
  replace:
    description:
      - When an existing C(auth.json) is replaced. Each policy includes the ones before it.
      - V(never) writes only when C(auth.json) is absent.
      - V(invalid) also replaces a file Codex cannot load or that fails O(allowed_auth_modes) /
        O(require_refresh_token).
      - V(older) also replaces a valid file whose C(last_refresh) is older than the seed's.
      - V(different) also replaces a valid file holding other credentials (another API key or access
        token, another ChatGPT account or user). A refreshed copy of the same ChatGPT login is the same
        credentials, so this never undoes a refresh.
      - V(always) replaces whenever the content differs.
      - A file that already holds exactly the seed is never rewritten.
    type: str
    choices: [never, invalid, older, different, always]
    default: never
  allowed_auth_modes:
    description:
      - Auth modes a seed may have (resolved as Codex resolves them when C(auth_mode) is absent). A seed
        of another mode fails the task.
    default: [chatgpt]
  config_settings:
    description:
      - Top-level C(config.toml) keys to set in the same run, exactly as M(codexops.runner.codex_config) sets
        them, for example C(cli_auth_credentials_store=file). A null value removes a key.
      - Provisions a runner in one module round trip instead of two; the returned RV(auth) summary then
        reflects the new configuration.
    type: dict
  owners_to_create:
    description:
      - Users an earlier task of the same run creates (the C(codex_auth) role's C(codex_auth_create_user)). Under
        check mode that task only predicted creating them, so an O(owner) (or O(runners[].owner)) in this list
        that does not exist yet is predicted as the run will find it - created, owning its CODEX_HOME - instead of
        refused. A CODEX_HOME in its home directory to be (C(~USER/...)) is predicted as created with the seed;
        any other is planned as it is, everything in it handed over to the new user. RV(auth) names the new user;
        such an instance's C(codex_home) in RV(runners) stays C(~USER/...) as given (where the new home directory
        will be is known only once the user exists).
      - Outside check mode it changes nothing, and an owner that does not exist is refused as always.
    type: list
    elements: str
    default: []
    version_added: 0.2.0
  backup:
    description:
      - Keep a replaced C(auth.json) beside it as a C(0600) timestamped copy (C(auth.json.<UTC time>.bak)).
    type: bool
    default: false
  backup_keep:
    description:
      - How many backups of C(auth.json) to keep when a new one is made; older ones are deleted, so an old
        credential does not live on in CODEX_HOME. V(0) keeps every backup.
    type: int
    default: 3
notes:
  - Run it with C(become) when O(owner) is another user, like M(ansible.posix.authorized_key).
  - The runner user is treated as untrusted. Inside a CODEX_HOME the runner controls, everything is done by a
    process that dropped to the runner's user and groups; root only creates or hands over a CODEX_HOME that
    sits in a directory only root controls. Links the runner planted on the path are refused, never followed.
  - A check-mode run reports exactly what a real run would do, including the resulting health summary.
seealso:
  - module: codexops.runner.codex_auth_verify
  - module: codexops.runner.codex_config
'''

EXAMPLES = r'''
- name: Seed auth.json only if the runner has none (the safe default), with the file store, in one round trip
  codexops.runner.codex_auth_seed:
    codex_home: /home/ci/.codex
    owner: ci
    content: "{{ lookup('ansible.builtin.file', 'codex_seeds/' ~ inventory_hostname ~ '.json') }}"
    config_settings:
      cli_auth_credentials_store: file
  become: true
  register: seeded

- name: Show the summary (never a token)
  ansible.builtin.debug:
    msg: "{{ seeded.action }}: healthy={{ seeded.auth.healthy }} mode={{ seeded.auth.auth_mode }}"

- name: Reseed a broken runner, keeping a backup of what was there
  codexops.runner.codex_auth_seed:
    codex_home: /home/ci/.codex
    owner: ci
    content: "{{ lookup('ansible.builtin.file', 'codex_seeds/' ~ inventory_hostname ~ '.json') }}"
    replace: invalid
    backup: true
  become: true

- name: Seed every runner instance of a host in one module run, each from its own seed
  codexops.runner.codex_auth_seed:
    runners:
      - name: gh-1
        codex_home: /home/ci/.codex-gh-1
        owner: ci
        content: "{{ lookup('ansible.builtin.file', 'codex_seeds/' ~ inventory_hostname ~ '/gh-1.json') }}"
      - name: gh-2
        codex_home: /home/ci/.codex-gh-2
        owner: ci
        content: "{{ lookup('ansible.builtin.file', 'codex_seeds/' ~ inventory_hostname ~ '/gh-2.json') }}"
    config_settings:
      cli_auth_credentials_store: file
  become: true
  register: seeded_instances

- name: One line per instance, never a token
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.action }}, healthy={{ item.auth.healthy }}"
  loop: "{{ seeded_instances.runners }}"
  loop_control:
    label: "{{ item.name }}"

- name: Rotate an API key on runners that use one
  codexops.runner.codex_auth_seed:
    codex_home: /home/ci/.codex
    owner: ci
    content:
      auth_mode: apikey
      OPENAI_API_KEY: "{{ vault_openai_api_key }}"
    allowed_auth_modes: [apikey]
    replace: different
  become: true
'''

RETURN = r'''
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
gitlab_pre_build_script:
  description:
    - With O(runners), when any instance names a GitLab slot (O(runners[].runner_environment.gitlab_concurrent_id)),
      the C(pre_build_script) for the GitLab Runner's C(config.toml) that points each slot's jobs at its instance's
      CODEX_HOME (a job in a slot no instance serves fails).
  returned: when an instance of O(runners) names a GitLab slot
  type: str
  version_added: 0.2.0
  sample: 'case "${CI_CONCURRENT_ID:-}" in 0) export CODEX_HOME=/srv/gitlab-codex/slot-0 ;; *) exit 1 ;; esac'
pending:
  description:
    - Whether the run has (or, in check mode, would have) anything to do - the module's own C(changed).
    - Roles that run the module in check mode as a plan and override C(changed) with C(changed_when) read this
      key instead of rebuilding the rule.
    - With O(runners), whether any instance has (or would have) anything to do.
  returned: success
  type: bool
  sample: false
action:
  description: What happened to C(auth.json).
  returned: success, when O(runners) is not given
  type: str
  choices: [created, replaced, kept]
  sample: kept
reason:
  description: Why, in words (never content).
  returned: success, when O(runners) is not given
  type: str
  sample: auth.json exists and replace is never (Codex may have refreshed it since)
backup_file:
  description: Path of the C(0600) backup of the replaced file, when O(backup=true) and a file was replaced.
  returned: success, when O(runners) is not given
  type: str
  sample: /home/ci/.codex/auth.json.20261121T102200.123456Z.bak
attributes_changed:
  description: Mode and ownership repairs made, such as V(codex_home_mode) or V(auth_owner).
  returned: success, when O(runners) is not given
  type: list
  elements: str
  sample: [auth_mode]
config_changed_keys:
  description: With O(config_settings), each changed config.toml key and what happened to it.
  returned: success, when O(runners) is not given
  type: dict
  sample: {cli_auth_credentials_store: added}
config_warnings:
  description: With O(config_settings), keys also found inside a table, where Codex ignores them.
  returned: success, when O(runners) is not given
  type: list
  elements: str
  sample: []
removed_temp_files:
  description: How many temp files left by an interrupted earlier run were removed.
  returned: success, when O(runners) is not given
  type: int
  sample: 0
auth:
  description:
    - Health summary of the resulting C(auth.json), exactly as M(codexops.runner.codex_auth_verify) returns it
      (in check mode, of the file a real run would leave).
  returned: success, when O(runners) is not given
  type: dict
  sample:
    healthy: true
    problems: []
    health_warnings: []
    auth_mode: chatgpt
    last_refresh: '2026-11-21T10:22:00Z'
    has_refresh_token: true
    refresh_token_fingerprint: 3f9a1c0e5b7d2a64
runner_environment:
  description:
    - With O(runner_environment) naming a runner directory or unit, what was (in check mode, would be) written - C(github_env) and C(systemd_dropin),
      each its C(path) and C(action) (V(created), V(updated) or V(kept)) - with C(changed), and C(daemon_reload) when a
      drop-in changed where systemd runs (run C(systemctl daemon-reload)). With O(runners), in each instance's result.
  returned: success, when O(runner_environment) names a runner directory or unit
  type: dict
  version_added: 0.2.0
  sample: {changed: true, daemon_reload: false, github_env: {path: /srv/actions-runner-1/.env, action: updated}}
runners:
  description:
    - With O(runners), one result per instance, in the order given - its C(name) and C(codex_home), and every other
      value this module returns for a single runner (C(changed), RV(pending), RV(action), RV(reason),
      RV(backup_file), RV(attributes_changed), RV(removed_temp_files), RV(config_changed_keys),
      RV(config_warnings), RV(auth)), with the same meaning.
  returned: success, when O(runners) is given
  type: list
  elements: dict
  version_added: 0.2.0
  sample:
    - name: gh-1
      codex_home: /srv/actions-runner-1/.codex
      changed: true
      pending: true
      action: created
      reason: auth.json was absent
      backup_file: null
      attributes_changed: [codex_home_created]
      removed_temp_files: 0
      config_changed_keys: {}
      config_warnings: []
      auth: {healthy: true, problems: [], health_warnings: [], auth_mode: chatgpt}
    - name: gh-2
      codex_home: /srv/actions-runner-2/.codex
      changed: false
      pending: false
      action: kept
      reason: auth.json exists and replace is never (Codex may have refreshed it since)
      backup_file: null
      attributes_changed: []
      removed_temp_files: 0
      config_changed_keys: {}
      config_warnings: []
      auth: {healthy: true, problems: [], health_warnings: [], auth_mode: chatgpt}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.codexops.runner.plugins.module_utils import _runner_environment
from ansible_collections.codexops.runner.plugins.module_utils import _runner_instances
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import module_common
from ansible_collections.codexops.runner.plugins.module_utils import safe_files
from ansible_collections.codexops.runner.plugins.module_utils import seeding


def main():
    argument_spec = module_common.base_argument_spec(ownership=True, verify=True, locks=True)
    argument_spec['codex_home']['required'] = False
    argument_spec.update(
        content=dict(type='raw', no_log=True),
        src=dict(type='path'),
        replace=dict(type='str', default='never', choices=list(seeding.REPLACE_POLICIES)),
        backup=dict(type='bool', default=False),
        backup_keep=dict(type='int', default=safe_files.DEFAULT_BACKUP_KEEP),
        config_settings=dict(type='dict'),
        owners_to_create=dict(type='list', elements='str', default=[]),
        runners=dict(type='list', elements='dict', options=dict(
            name=dict(type='str', required=True),
            codex_home=dict(type='path', required=True),
            owner=dict(type='str'),
            group=dict(type='str'),
            content=dict(type='raw', no_log=True),
            src=dict(type='path'),
            replace=dict(type='str', choices=list(seeding.REPLACE_POLICIES)),
            allowed_auth_modes=dict(type='list', elements='str', choices=list(auth_model.KNOWN_AUTH_MODES)),
            environment_files=dict(type='list', elements='path'),
            runner_environment=dict(type='dict', options=module_common.runner_environment_options()),
        ), mutually_exclusive=[('content', 'src')], required_one_of=[('content', 'src')]),
        runner_environment=dict(type='dict', options=module_common.runner_environment_options()),
    )
    argument_spec['allowed_auth_modes']['default'] = ['chatgpt']
    module = AnsibleModule(
        argument_spec=argument_spec,
        # Each instance has its own CODEX_HOME, owner, group and seed: one value for all would be wrong for all
        # but one (and one seed on two runners is the refresh_token_reused breakage).
        mutually_exclusive=[('content', 'src'), ('codex_home', 'runners'), ('owner', 'runners'), ('group', 'runners'),
                            ('content', 'runners'), ('src', 'runners'), ('runner_environment', 'runners')],
        required_one_of=[('content', 'src', 'runners'), ('codex_home', 'runners')],
        supports_check_mode=True,
    )
    params = module.params
    if isinstance(params['content'], dict) or any(isinstance(entry['content'], dict)
                                                  for entry in params['runners'] or []):
        # Every value of a no_log dict becomes a string Ansible masks wherever it appears: a dict
        # seed holding auth_mode "apikey" would return auth_mode VALUE_SPECIFIED_IN_NO_LOG_PARAMETER.
        # Auth mode names are not secrets.
        module.no_log_values.difference_update(auth_model.KNOWN_AUTH_MODES)
    if params['backup_keep'] < 0:
        module.fail_json(msg='backup_keep must be 0 (keep every backup) or more.')
    if params['runners'] is not None:
        _exit_instances(module, params)
    result = module_common.guarded(module, _seed, module, params)
    for warning in result['config_warnings']:
        module.warn(warning)
    diff = result.pop('diff')
    if module._diff:
        result['diff'] = diff
    module_common.add_environment_checks(result['auth'], params)
    module_common.exit_checked(module, result, result['auth'], predicted=module.check_mode)


def _seed_bytes(content):
    # The one rule for a seed's bytes, which the controller's shared-token check reads the same way. A string
    # with a lone surrogate becomes bytes that fail validation as "not UTF-8", instead of an exception.
    return _runner_instances.seed_bytes(content)


# The uid an owner that does not exist yet stands for in a check-mode plan (owners_to_create): (uid_t)-1, which no
# file can have and no account can get, so whatever is already there is predicted to be handed over to the new user,
# as the run does. Nothing is ever chowned to it: a plan writes nothing.
_NEW_OWNER_UID = 0xFFFFFFFF


def _to_create(module, params):
    """The owners this run predicts as created (owners_to_create): under check mode only. A real run comes after the
    task that created them, so an owner still unknown then is refused as always."""
    return frozenset(params['owners_to_create']) if module.check_mode else frozenset()


def _ids(owner, group, created):
    """(uid, gid) of `owner` and `group` (safe_files.resolve_ids, the one rule); an owner in `created` that does not
    exist yet is _NEW_OWNER_UID, in `group` when one is given (it must exist), else in its own group, unknown yet."""
    try:
        return safe_files.resolve_ids(owner, group)
    except safe_files.UnsafePathError as exc:
        if exc.code != 'owner_missing' or owner not in created:
            raise
    return _NEW_OWNER_UID, safe_files.resolve_ids(None, group)[1]


def _plan_or_run(run, owner, uid):
    """run.run(), or for an owner an earlier task creates (uid _NEW_OWNER_UID, check mode) the plan of a CODEX_HOME
    handed to that new user: one in its home directory to be (`~USER/...`, which cannot be expanded yet) is
    predicted as created from the seed alone, any other is planned as it is. The summary and the diff name the
    new user where the plan could only number it."""
    if uid != _NEW_OWNER_UID:
        return run.run()
    in_new_home = run.home_path == '~%s' % owner or run.home_path.startswith('~%s/' % owner)
    result = run.plan_in_new_home() if in_new_home else run.run()
    placeholder = safe_files.user_name(_NEW_OWNER_UID)
    for shown in (result['auth'], result['diff']['after']):
        if shown.get('owner') == placeholder:
            shown['owner'] = owner
    return result


def _seed(module, params):
    uid, gid = _ids(params['owner'], params['group'], _to_create(module, params))
    if params['content'] is not None:
        seed_data = _seed_bytes(params['content'])
    else:
        seed_data = module_common.read_seed_file(module, params['src'])
    seed = seeding.load_seed(seed_data, params['allowed_auth_modes'], params['require_refresh_token'])
    spec = params['runner_environment']
    found = _runner_environment.spec_problems(spec, params['codex_home'])
    if found:
        module.fail_json(msg='Refusing runner_environment before anything was written: %s.' % '; '.join(found),
                         error_code='runner_environment_invalid')
    # What a real run would refuse there (a .env that is a link, a missing runner directory) refuses the run
    # before auth.json is written.
    _runner_environment.apply(spec, params['codex_home'], uid, gid, check=True)
    result = _plan_or_run(_seed_run(module, params, params['codex_home'], seed_data, seed, uid, gid, module.check_mode),
                          params['owner'], uid)
    return _runner_environment.into_result(result, spec, params['codex_home'], uid, gid, module.check_mode)


def _seed_run(module, params, home, seed_data, seed, uid, gid, check_mode):
    return seeding.SeedRun(
        home, seed_data, seed, policy=params['replace'], uid=uid, gid=gid,
        backup=params['backup'], check_mode=check_mode,
        verify_options=module_common.verify_options(params), config_settings=params['config_settings'],
        lock_timeout=params['lock_timeout'], backup_keep=params['backup_keep'],
    )


def _exit_instances(module, params):
    """Every instance in this one run. The whole list is refused before anything is written: its layout and users,
    each seed, one refresh token on two instances, then each CODEX_HOME as a check-mode plan sees it."""
    if not params['runners']:
        module.fail_json(msg='runners is empty: give at least one instance, or codex_home.')
    instances = [_instance(params, entry) for entry in params['runners']]
    labels = _runner_instances.labels(instances)
    created = _to_create(module, params)
    found = module_common.instance_list_problems(instances, created)
    module_common.resolve_instance_ids(instances, labels, found, lambda user, group: _ids(user, group, created))
    for instance, label in zip(instances, labels):
        found.extend(_load_seed(module, instance, label))
    found.extend(_runner_instances.refresh_token_problems(
        instances, [instance['seed'].refresh_token_digest() if instance.get('seed') else None
                    for instance in instances]))
    if found:
        module_common.refuse_instances(module, found)
    summaries, failed = module_common.plan_then_run(
        module, instances, labels, lambda instance, check_mode: _run_instance(module, params, instance, check_mode))
    if failed:
        done = _public_summaries(instances, summaries)
        changed = any(summary['changed'] for summary in done)
        module.fail_json(msg='Seeding runner instance %s failed: %s (%s).' % (
            failed[0], failed[1],
            'the instances before it were seeded: %s; the ones after it were not touched'
            % ', '.join(summary['name'] for summary in done) if done else 'no instance was changed'),
            changed=changed, pending=changed, runners=done)
    _exit_summaries(module, params, instances, summaries)


def _instance(params, entry):
    """One entry with the module's options it does not set itself, and the module's options for it."""
    instance = dict(entry, user=entry['owner'])
    instance_params = dict(params, codex_home=entry['codex_home'], owner=entry['owner'], group=entry['group'],
                           runner_environment=entry.get('runner_environment'))
    for option in ('replace', 'allowed_auth_modes', 'environment_files'):
        if entry[option] is not None:
            instance_params[option] = entry[option]
    instance['params'] = instance_params
    return instance


def _load_seed(module, instance, label):
    """The instance's seed, validated as the single-runner mode validates it; the problems that refuse it."""
    params = instance['params']
    if instance['content'] is not None:
        data = _seed_bytes(instance['content'])
    else:
        try:
            data, warning = module_common.seed_file(instance['src'])
        except Exception as exc:  # pylint: disable=broad-except
            return [_runner_instances.problem('runner_instance_seed_unreadable', [label], '%s: %s'
                                              % (module_common.called(label), module_common.refusal(exc)[0].rstrip('.')))]
        if data is None:
            return [_runner_instances.problem('runner_instance_seed_missing', [label], '%s: src %s does not exist'
                                              % (module_common.called(label), instance['src']))]
        if warning:
            module.warn('%s: %s' % (module_common.called(label), warning))
    seed, faults = auth_model.judge(data, params['allowed_auth_modes'], params['require_refresh_token'])
    if faults:
        return [_runner_instances.problem('seed_invalid', [label], 'the seed of %s is not a usable auth.json (%s)'
                                          % (module_common.called(label), seeding.faults_text(faults)))]
    instance['data'], instance['seed'] = data, seed
    return []


def _run_instance(module, params, instance, check_mode):
    """One instance's result, as the single-runner mode returns it (its diff kept aside)."""
    uid, gid = instance['ids']
    instance_params = instance['params']
    result = _plan_or_run(_seed_run(module, instance_params, instance['codex_home'], instance['data'], instance['seed'],
                                    uid, gid, check_mode), instance['user'], uid)
    _runner_environment.into_result(result, instance['runner_environment'], instance['codex_home'], uid, gid,
                                    check_mode)
    module_common.add_environment_checks(result['auth'], instance_params)
    return result


def _public_summaries(instances, results):
    return [dict([('name', instance['name']), ('codex_home', instance['codex_home'])],
                 **dict((key, value) for key, value in result.items() if key != 'diff'))
            for instance, result in zip(instances, results)]


def _exit_summaries(module, params, instances, results):
    summaries = _public_summaries(instances, results)
    for summary in summaries:
        for warning in summary['config_warnings']:
            module.warn('instance %s: %s' % (summary['name'], warning))
    changed = any(summary['changed'] for summary in summaries)
    result = {'changed': changed, 'pending': changed, 'runners': summaries}
    slots = _runner_environment.gitlab_slots(instances)
    if slots:
        result['gitlab_slots'] = slots
        result['gitlab_pre_build_script'] = _runner_environment.gitlab_script(slots)
    if module._diff:
        result['diff'] = [item['diff'] for item in results]
    broken = [summary for summary in summaries if not summary['auth']['healthy']]
    if params['fail_on_problems'] and broken:
        module.fail_json(msg='Codex credentials of runner instances have problems: %s%s' % ('; '.join(
            '%s (%s)' % (summary['name'], ', '.join(item['code'] for item in summary['auth']['problems']))
            for summary in broken), ' (predicted; nothing was written)' if module.check_mode else ''), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
