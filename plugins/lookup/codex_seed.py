# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: codex_seed
author:
  - codexops maintainers (@codexops)
short_description: Read a runner instance's seed (auth.json text) from a secret store
description:
  - Reads one runner instance's auth.json from a secret store (the same stores and store options as the
    write-back, C(vault), C(aws_secretsmanager), C(file)) and returns its text, for codex_auth's seed C(content).
  - Refuses with the stores' own error codes (C(store_unreachable), C(store_secret_missing),
    C(store_permission_denied), C(store_copy_invalid), ...) when the store cannot give a usable auth.json.
  - Store credentials come from the usual places of each backend (VAULT_ADDR/VAULT_TOKEN, AppRole; the AWS
    credential chain); no message names a credential or the secret's content.
  - The R(codexops.runner.codex_auth,ansible_collections.codexops.runner.codex_auth_role) role reads
    C(codex_auth_seed_source) and each instance's C(seed_source) with it (terms given as seed sources, dicts).
  - The C(file) store decrypts with the play's own vault secrets.
options:
  _terms:
    description:
      - The secret's name (a KV v2 path under the mount, a Secrets Manager name, or a file store name), read with
        O(store) and O(store_options).
      - Or a seed source, a dict C({store, secret, ...the store's options}) as the codex_auth role takes it; then
        O(store) and O(store_options) are not used for it.
    type: list
    elements: raw
    required: true
  store:
    description: The store kind, for terms that are names.
    type: str
    choices: [vault, aws_secretsmanager, file]
  store_options:
    description: The store's options, as the write-back takes them (community.hashi_vault / AWS conventions).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: A runner's seed from OpenBao (VAULT_ADDR and VAULT_TOKEN from the controller's environment), from the secret
    named by the collection's one rule, codexops/runners/<host>/<user>
  ansible.builtin.set_fact:
    codex_seed_text: "{{ lookup('codexops.runner.codex_seed', inventory_hostname | codexops.runner.codex_secret_name('ci'),
                                store='vault', store_options={'url': 'https://bao.example:8200'}) }}"
  no_log: true

- name: The same as a seed source, the way the codex_auth role reads codex_auth_seed_source
  ansible.builtin.set_fact:
    codex_seed_text: "{{ lookup('codexops.runner.codex_seed', {'store': 'aws_secretsmanager', 'region': 'eu-west-1',
                                'secret': inventory_hostname | codexops.runner.codex_secret_name('ci')}) }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description: The stored auth.json text, one per term.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.codexops.runner.plugins.action.codex_auth_writeback import play_secrets
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.plugin_utils import _secret_store as store


def read_seed(kind, name, options=None):
    """The stored auth.json text of `name`, refused (StoreError with the store's code) unless usable."""
    return read_seed_from(store.open_store(kind, options or {}), name)


def read_seed_from(secret_store, name):
    """read_seed on an open store."""
    store.check_name(name)
    data, _version = secret_store.read(name)
    if data is None:
        raise store.StoreSecretMissing('the %s does not exist (or has no current value). Nothing was written.'
                                       % secret_store.describe(name))
    data = store.check_copy(secret_store, name, data)
    _parsed, problems = auth_model.judge(data)
    if problems:
        codes = ', '.join(sorted(set(str(p.get('code')) for p in problems if isinstance(p, dict))))
        raise store.StoreCopyInvalid('the %s is not a usable auth.json (%s). Nothing was written.'
                                     % (secret_store.describe(name), codes or 'invalid'))
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        raise store.StoreCopyInvalid('the %s is not UTF-8 text; it is not an auth.json. Nothing was written.'
                                     % secret_store.describe(name))


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        results = []
        for term in terms:
            if isinstance(term, dict):
                source = dict(term)
                kind, name = source.pop('store', None), source.pop('secret', None)
                options = source
            else:
                kind, name = self.get_option('store'), term
                options = dict(self.get_option('store_options') or {})
            if kind == 'file' and not options.get('secrets'):
                options['secrets'] = play_secrets(self._loader)
            try:
                if kind is None:
                    raise store.StoreOptionsInvalid('no store kind: give store=, or a seed source with store')
                results.append(read_seed(kind, name, options))
            except store.StoreError as exc:
                # The code first, so a play's output says which refusal it is; the message names the store and
                # the secret, never a credential or the content.
                code = getattr(exc, 'code', None) or 'store_error'
                raise AnsibleLookupError('codex_seed refused (%s): %s' % (code, exc.message))
        return results
