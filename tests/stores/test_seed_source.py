# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The codex_seed lookup's reader over the real stores: the stored text as it is, each refusal's code,
nothing written, no secret in a message. (The provisioning end-to-end tests are not written yet.)"""

import pytest

from ansible_collections.codexops.runner.plugins.lookup.codex_seed import read_seed_from
from ansible_collections.codexops.runner.plugins.plugin_utils import _secret_store as contract
from store_harness import SECRETS, AwsHarness, FileHarness, VaultHarness, auth_file, new_name
from support import leaks


def make_harness(request, kind):
    if kind == 'vault':
        return VaultHarness(request.getfixturevalue('openbao'))
    if kind == 'aws_secretsmanager':
        return AwsHarness(request.getfixturevalue('moto'))
    return FileHarness(request.getfixturevalue('tmp_path'))


@pytest.fixture(params=['file', 'vault', 'aws_secretsmanager'])
def harness(request):
    return make_harness(request, request.param)


def test_the_stored_seed_is_returned_as_text(harness):
    name = new_name('seed')
    data = auth_file(30)
    harness.seed(name, data)
    before = harness.state(name)
    assert read_seed_from(harness.store(), name).encode('utf-8') == data
    assert harness.state(name) == before


def test_a_missing_seed_is_store_secret_missing(harness):
    name = new_name('missing')
    with pytest.raises(contract.StoreSecretMissing) as caught:
        read_seed_from(harness.store(), name)
    assert caught.value.code == 'store_secret_missing'
    assert not harness.state(name)


@pytest.mark.parametrize('broken', [b'{"tokens": ', b'not json at all\n', b'{}\n'])
def test_a_stored_copy_that_is_not_a_usable_auth_json_is_store_copy_invalid(harness, broken):
    name = new_name('broken')
    harness.seed(name, broken)
    before = harness.state(name)
    with pytest.raises(contract.StoreCopyInvalid) as caught:
        read_seed_from(harness.store(), name)
    assert caught.value.code == 'store_copy_invalid'
    assert harness.state(name) == before
    assert leaks.find_leaks(SECRETS, [caught.value.message]) == []


def test_an_unreachable_store_is_store_unreachable(harness):
    with pytest.raises(contract.StoreError) as caught:
        read_seed_from(harness.unreachable_store(), new_name('gone'))
    assert caught.value.code == 'store_unreachable'


def test_the_lookup_reads_a_seed_source_term_and_the_file_store_decrypts_with_the_plays_vault_secrets(tmp_path):
    """A term may be a seed source (the codex_auth role's shape); a `file` source gets the play's vault secrets from
    the loader, and a refusal carries its code."""
    from ansible.errors import AnsibleLookupError
    from ansible.parsing.dataloader import DataLoader
    from ansible_collections.codexops.runner.plugins.lookup.codex_seed import LookupModule

    files = FileHarness(tmp_path)
    data = auth_file(20)
    files.seed('runner-1', data)
    loader = DataLoader()
    loader.set_vault_secrets([files.secret])
    lookup = LookupModule(loader=loader)
    source = {'store': 'file', 'directory': files.directory, 'secret': 'runner-1'}
    assert lookup.run([source], variables={}) == [data.decode('utf-8')]
    with pytest.raises(AnsibleLookupError, match=r'^codex_seed refused \(store_secret_missing\)'):
        lookup.run([dict(source, secret='runner-2')], variables={})
    without = LookupModule(loader=DataLoader())
    with pytest.raises(AnsibleLookupError, match=r'^codex_seed refused \(store_permission_denied\)') as caught:
        without.run([source], variables={})
    assert leaks.find_leaks(SECRETS, [str(caught.value)]) == []
