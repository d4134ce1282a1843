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
  - PREVIEW, the role variables C(codex_auth_seed_source) and per-instance C(seed_source) are not wired yet.
options:
  _terms:
    description: The secret's name (a KV v2 path under the mount, a Secrets Manager name, or a file store name).
    type: list
    elements: str
    required: true
  store:
    description: The store kind.
    type: str
    required: true
    choices: [vault, aws_secretsmanager, file]
  store_options:
    description: The store's options, as the write-back takes them (community.hashi_vault / AWS conventions).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: A runner's seed from OpenBao
  ansible.builtin.set_fact:
    codex_seed_text: "{{ lookup('codexops.runner.codex_seed', 'codexops/runners/' ~ inventory_hostname ~ '/default',
                                store='vault', store_options={'url': 'https://bao.example:8200'}) }}"
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
        kind = self.get_option('store')
        options = self.get_option('store_options') or {}
        results = []
        for name in terms:
            try:
                results.append(read_seed(kind, name, options))
            except store.StoreError as exc:
                raise AnsibleLookupError('codex_seed refused (%s): %s' % (getattr(exc, 'code', 'store_error'), exc))
        return results
