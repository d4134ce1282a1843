#!/usr/bin/python
# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# The documentation of the codex_auth_writeback action plugin (plugins/action/codex_auth_writeback.py),
# which does all the work on the controller; there is no module code.

DOCUMENTATION = r'''
module: codex_auth_writeback
short_description: Write a runner's refreshed auth.json back into the seed store, vault-encrypted with the play's secret
version_added: 0.2.0
description:
  - For ephemeral runners - reads C(CODEX_HOME/auth.json) on the host with M(codexops.runner.codex_auth_export)
    and writes it into the controller's seed store file O(dest) only when
    P(codexops.runner.codex_writeback_decision#filter) says V(store) - the file is valid, its C(last_refresh)
    is newer than the store's copy and not in the future (beyond 5 minutes of clock skew), and it is for the
    same account and user as the store's copy. An identical file, an older one, a broken one, a future-dated one
    and another account's are never written; RV(code) names the refusal. This is what the
    C(codexops.runner.codex_writeback) role runs.
  - The file is vault-encrypted with a vault secret the play was given - C(--vault-password-file),
    C(--ask-vault-pass), C(--vault-id label@source), or C(ANSIBLE_VAULT_PASSWORD_FILE) and the other vault
    settings of C(ansible.cfg) - the same secrets Ansible decrypts the store's copy with. The one labelled
    O(vault_id) when that is set; else the one labelled by Ansible's C(vault_encrypt_identity) setting when
    that is set; else the first one (with a warning when the play has several labels). The store file's header
    names that label (C($ANSIBLE_VAULT;1.2;AES256;label), or the plain 1.1 header for the C(default) label).
  - The secret is looked for B(before) anything is read from the runner - a play without one fails at once,
    naming the fix. So does a missing store directory, and a store copy that none of the play's secrets
    decrypts.
  - The store file is written through a temporary file in the same directory (mode 0600), flushed to disk
    and renamed over the old one, so a reader sees the old file or the new one, never a part of either.
  - The result holds the decision and the facts of both files, never their content. The content of the
    runner's file is not returned, not kept in a variable and never shown in a diff. Use C(no_log=true) on
    the task anyway, as the role does.
  - Runs on the controller (an action plugin); only the read runs on the host, as the user that owns
    CODEX_HOME (with C(become) when the connecting user cannot read the runner user's files).
  - With O(runners), every runner instance of the host in this one task - one M(codexops.runner.codex_auth_export)
    run reads all their files - each decided by the same rule and stored into its own O(runners[].dest). The result
    is then RV(runners), one entry per instance named C(host/instance).
author:
  - codexops maintainers (@codexops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - codexops.runner.codex_home
options:
  codex_home:
    description:
      - The runner user's Codex home directory (what C(CODEX_HOME) points to), usually C(~runner/.codex).
      - Must be an absolute path. A symlinked CODEX_HOME is refused, so credentials cannot be redirected.
      - Required unless O(runners) is given; mutually exclusive with it.
    required: false
  runners:
    description:
      - Several runner instances of this host, each with its own CODEX_HOME and its own store file, instead of
        O(codex_home), O(owner) and O(dest). The C(codexops.runner.codex_writeback) role passes the instances of
        C(codex_auth_runners) that read their seed from a file, each with that file as its O(runners[].dest)
        (P(codexops.runner.codex_runner_args#filter) with V(codex_auth_writeback) gives them).
      - Before anything is read from the host or written, the list is refused as a whole, naming the instances
        C(host/instance), when two instances have one name, one CODEX_HOME or one O(runners[].dest) (the same file,
        however it is spelled), a CODEX_HOME lies inside another's, a name is not 1 to 32 characters V(a-z), V(0-9),
        V(_) and V(-) starting with a letter or digit, a O(runners[].dest) is relative or its directory is missing, or
        a store copy cannot be read (C(store_undecryptable), ...). The play's vault secret is found first, once.
      - Then one M(codexops.runner.codex_auth_export) run reads every instance's file, and each instance is decided
        and stored on its own, exactly as one runner is. A refused instance (C(action=refuse) in RV(runners)) does not
        keep the others from being stored, and does not fail the task (as for one runner; the role fails the host
        afterwards with C(codex_writeback_fail_on_refusal)). An instance whose file cannot be read or stored
        (C(action=error) in RV(runners)) does not stop the others either, but fails the task.
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      name:
        description:
          - The instance's name, unique on the host.
        type: str
        required: true
      codex_home:
        description:
          - The instance's CODEX_HOME, as O(codex_home).
        type: str
        required: true
      owner:
        description:
          - The runner user this CODEX_HOME must belong to, as O(owner).
        type: str
      dest:
        description:
          - The instance's file in the store, on the controller, as O(dest) - for the role, the seed file the
            C(codexops.runner.codex_auth) role reads for the instance (C(codex_seeds/<host>/<name>.json) or its
            C(seed_file)).
        type: path
        required: true
  owner:
    description:
      - The runner user CODEX_HOME must belong to; passed to M(codexops.runner.codex_auth_export), which refuses
        (C(codex_home_owner)) a CODEX_HOME of anyone else without reading it - another local user could plant one
        where the runner's own is missing. The role passes C(codex_writeback_user).
      - Mutually exclusive with O(runners) (each instance has its own).
    type: str
  allow_identity_change:
    description:
      - Store a runner file for another account or user than the store's copy (an intended move). Without it such
        a file is refused with RV(code=runner_identity_changed), so a CI job cannot swap another account's
        credentials into this runner's secret.
    type: bool
    default: false
  dest:
    description:
      - The runner's file in the store, on the controller - for the role, C(codex_seeds/<inventory_hostname>.json)
        beside the inventory. An absolute path; its directory must exist.
      - Required with O(codex_home); mutually exclusive with O(runners) (each instance has its own).
    type: path
  encrypt:
    description:
      - Write the store file vault-encrypted. With V(false) it is written in the clear (still 0600) and the
        play needs no vault secret, unless the store's copy is encrypted.
    type: bool
    default: true
  vault_id:
    description:
      - The label of the play's vault secret to encrypt with (the C(label) of C(--vault-id label@source);
        C(--vault-password-file) and C(--ask-vault-pass) give the label C(default)). The play must have a
        secret with this label; there is no fallback to another.
      - When omitted, Ansible's C(vault_encrypt_identity) setting, else the first secret of the play.
    type: str
  vault_password_file:
    description:
      - Encrypt with the secret in this file instead of the play's (a password file or a vault password
        script, as for C(--vault-password-file)), under the label O(vault_id) or C(default).
      - Deprecated - run the play with the secret instead. Removed in 0.3.0.
    type: path
  allowed_auth_modes:
    description:
      - Auth modes the runner's file may have to be stored.
    type: list
    elements: str
    default: [chatgpt]
  fingerprint_salt:
    description:
      - Salt for the refresh-token fingerprints in the result; use the fleet's C(fingerprint_salt).
    type: str
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details:
      - Reads both files and decides; reports a change when it would store, and writes nothing. With O(runners), the
        same for each instance.
  diff_mode:
    support: none
    details:
      - The files are credentials; no diff is ever shown.
  platform:
    platforms: posix
notes:
  - The role variable C(codex_writeback_vault_password_file) (this module's O(vault_password_file)) was the only
    way to give the role a secret before 0.2.0; the play's own secret is used now.
seealso:
  - module: codexops.runner.codex_auth_export
  - plugin: codexops.runner.codex_writeback_decision
    plugin_type: filter
'''

EXAMPLES = r'''
# ansible-playbook writeback.yml --vault-id ci@~/.vault-ci  (or --vault-password-file / --ask-vault-pass)
- name: Write the runner's refreshed auth.json back into the store when it is newer
  codexops.runner.codex_auth_writeback:
    codex_home: /home/ci/.codex
    owner: ci
    dest: "{{ playbook_dir }}/codex_seeds/{{ inventory_hostname }}.json"
    fingerprint_salt: "{{ vault_codex_fingerprint_salt }}"
  register: writeback
  no_log: true
  become: true

- name: Say what it decided (facts only, never a token)
  ansible.builtin.debug:
    msg: "{{ writeback.action }}: {{ writeback.reason }} (vault ID {{ writeback.vault_id }})"

# Every runner instance of the host in one task (one read of the host), each into its own store file. The
# codexops.runner.codex_writeback role builds this list from codex_auth_runners with
# codexops.runner.codex_runner_args('codex_auth_writeback'): each instance's dest is its seed file.
- name: Write each runner instance's refreshed auth.json back into its own store file when it is newer
  codexops.runner.codex_auth_writeback:
    runners:
      - name: gh-1
        codex_home: /home/ci/.codex
        owner: ci
        dest: "{{ playbook_dir }}/codex_seeds/{{ inventory_hostname }}/gh-1.json"
    fingerprint_salt: "{{ vault_codex_fingerprint_salt }}"
  register: writeback_instances
  no_log: true
  become: true

- name: Say what it decided for each instance, by host/instance (facts only, never a token)
  ansible.builtin.debug:
    msg: "{{ item.label }}: {{ item.action }} ({{ item.code }}): {{ item.reason }}"
  loop: "{{ writeback_instances.runners }}"
  loop_control:
    label: "{{ item.label }}"
'''

RETURN = r'''
action:
  description: What was decided for the runner's file.
  returned: success, without O(runners)
  type: str
  choices: [store, unchanged, refuse]
  sample: store
code:
  description: Why the runner's file was refused (C(runner_file_invalid), C(runner_last_refresh_missing), C(runner_older),
    C(runner_from_future), C(runner_identity_changed)); V(null) unless RV(action=refuse).
  returned: success, without O(runners)
  type: str
  sample: runner_from_future
reason:
  description: Why, in words.
  returned: success, without O(runners)
  type: str
  sample: the runner's file is newer (runner 2026-11-21T10:22:00Z, store 2026-11-14T09:00:00Z)
runner:
  description: Facts of the runner's file - C(valid), C(problems) (codes), C(auth_mode), C(last_refresh),
    C(account_id), C(refresh_token_fingerprint).
  returned: success, without O(runners)
  type: dict
store:
  description: The same facts of the store's copy (as it was before this run); V(null) when the store had none.
  returned: success, without O(runners)
  type: dict
dest:
  description: The store file.
  returned: success, without O(runners)
  type: str
  sample: /srv/ci/inventory/codex_seeds/runner-1.json
encrypted:
  description: Whether the store file is (or, for V(unchanged) and V(refuse), would have been) written vault-encrypted.
  returned: success
  type: bool
vault_id:
  description: The label of the vault secret used; V(null) with O(encrypt=false).
  returned: success
  type: str
  sample: default
runners:
  description:
    - With O(runners), one entry per instance, in the order given - its C(name), its C(label) (C(host/instance)), its
      C(dest), C(changed) (stored, or in check mode would be), and RV(action), RV(code), RV(reason), RV(runner) and
      RV(store) with the same meaning as for one runner. Never a file's content.
    - An instance whose file could not be read or stored has C(action=error), its error code in C(code) (for example
      C(codex_home_missing), C(store_write_failed)) and the message in C(reason); the task then fails, after the
      other instances were stored.
  returned: success or failure, with O(runners), once the list was accepted
  type: list
  elements: dict
  version_added: 0.2.0
  sample:
    - name: gh-1
      label: runner-1/gh-1
      dest: /srv/ci/inventory/codex_seeds/runner-1/gh-1.json
      changed: true
      action: store
      code: null
      reason: the runner's file is newer (runner 2026-11-21T10:22:00Z, store 2026-11-14T09:00:00Z)
      runner: {valid: true, problems: [], auth_mode: chatgpt, last_refresh: '2026-11-21T10:22:00Z'}
      store: {valid: true, problems: [], auth_mode: chatgpt, last_refresh: '2026-11-14T09:00:00Z'}
    - name: gh-2
      label: runner-1/gh-2
      dest: /srv/ci/inventory/codex_seeds/runner-1/gh-2.json
      changed: false
      action: refuse
      code: runner_older
      reason: the runner's file is older than the store's
      runner: {valid: true, problems: [], auth_mode: chatgpt, last_refresh: '2026-11-01T08:00:00Z'}
      store: {valid: true, problems: [], auth_mode: chatgpt, last_refresh: '2026-11-14T09:00:00Z'}
msg:
  description: With O(runners), how many instances were stored, unchanged, refused and failed; on failure, which
    instances failed (C(host/instance)), with their codes.
  returned: with O(runners)
  type: str
  sample: 'runner-1: 3 runner instances: 1 stored, 1 unchanged, 1 refused, 0 failed'
error_code:
  description: On failure, a stable code for it (C(vault_secret_missing), C(vault_id_unknown),
    C(store_undecryptable), C(store_dir_missing), ...; see the troubleshooting page). With O(runners) also
    C(runner_instance_dest_duplicate) (two instances with one dest), the codes of a refused list
    (C(runner_instance_name_duplicate), ...), and C(runner_instances_failed) when instances failed with different codes.
  returned: failure
  type: str
  sample: vault_secret_missing
'''
