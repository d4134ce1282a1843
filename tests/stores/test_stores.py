# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The write-back loop over both real stores: what it stores, what it leaves, each error's code,
nothing written on any error, and no credential in any result or message."""

import base64
import json

import pytest

from ansible_collections.codexops.runner.plugins.filter.writeback import codex_writeback_decision
from ansible_collections.codexops.runner.plugins.plugin_utils import _secret_store as contract
from ansible_collections.codexops.runner.plugins.plugin_utils._store_writeback import write_back
from store_harness import SECRETS, AwsHarness, FileHarness, VaultHarness, auth_file, new_name
from support import leaks


KINDS = ['file', 'vault', 'aws_secretsmanager']


def make_harness(request, kind):
    if kind == 'vault':
        return VaultHarness(request.getfixturevalue('openbao'))
    if kind == 'aws_secretsmanager':
        return AwsHarness(request.getfixturevalue('moto'))
    return FileHarness(request.getfixturevalue('tmp_path'))


@pytest.fixture(params=KINDS)
def harness(request):
    return make_harness(request, request.param)


@pytest.fixture(params=['vault', 'aws_secretsmanager'])
def server_harness(request):
    """The stores with a server: a credential can be allowed to read and not to write."""
    return make_harness(request, request.param)


def no_leak(*texts):
    found = leaks.find_leaks(SECRETS, [text if isinstance(text, str) else json.dumps(text, default=str)
                                       for text in texts])
    assert found == []


def test_a_newer_file_is_stored_as_a_new_version(harness):
    name = new_name()
    harness.seed(name, auth_file(180))
    before = harness.state(name)
    runner = auth_file(5)
    result = write_back(harness.store(), name, runner)
    assert result['action'] == 'store' and result['written'] and result['cas_lost'] == 0
    text, version = harness.raw(name)
    assert text.encode('utf-8') == runner, 'the store holds the runner\'s bytes exactly'
    assert version == result['version'] and harness.state(name) != before
    if harness.kind != 'file':
        assert harness.versions(name) == 2
    no_leak(result)


def test_the_same_bytes_make_no_new_version(harness):
    name = new_name()
    data = auth_file(30)
    harness.seed(name, data)
    before = harness.raw(name), harness.state(name)
    result = write_back(harness.store(), name, data)
    assert result['action'] == 'unchanged' and not result['written']
    assert (harness.raw(name), harness.state(name)) == before and result['version'] == before[0][1]


def test_an_older_file_is_refused(harness):
    name = new_name()
    newer = auth_file(10)
    harness.seed(name, newer)
    before = harness.state(name)
    result = write_back(harness.store(), name, auth_file(120))
    assert result['action'] == 'refuse' and not result['written']
    assert harness.raw(name)[0].encode('utf-8') == newer and harness.state(name) == before
    no_leak(result)


def test_a_store_copy_of_the_wrong_shape_is_store_copy_invalid(harness):
    name = new_name()
    harness.plant_wrong_shape(name)
    before = harness.state(name)
    with pytest.raises(contract.StoreCopyInvalid) as caught:
        write_back(harness.store(), name, auth_file(5))
    assert caught.value.code == 'store_copy_invalid'
    assert harness.state(name) == before
    no_leak(caught.value.message)


@pytest.mark.parametrize('broken', [b'{"tokens": ', b'not json at all\n', b'{}\n'])
def test_a_broken_auth_json_in_the_store_gets_the_decisions_verdict(harness, broken):
    """The store holds text that is not a usable auth.json: the loop does what codex_writeback_decision
    says for it (store_copy_invalid: refused, nothing written) - the rule lives there, not here."""
    name = new_name()
    harness.seed(name, broken)
    runner = auth_file(5)
    expected = codex_writeback_decision(base64.b64encode(runner).decode('ascii'), broken.decode('utf-8'))
    result = write_back(harness.store(), name, runner)
    assert result['action'] == expected['action'] and result['store'] == expected['store']
    assert result['written'] == (expected['action'] == 'store')
    assert result['action'] == 'refuse' and result['code'] == 'store_copy_invalid' and not result['written']
    stored = harness.raw(name)[0].encode('utf-8')
    assert stored == (runner if result['written'] else broken)


def test_a_missing_secret_is_store_secret_missing_and_is_not_created(harness):
    name = new_name('missing')
    with pytest.raises(contract.StoreSecretMissing) as caught:
        write_back(harness.store(), name, auth_file(5))
    assert caught.value.code == 'store_secret_missing'
    assert not harness.state(name)
    assert harness.store().read(name)[0] is None


def test_create_makes_the_first_copy(harness):
    name = new_name('create')
    runner = auth_file(5)
    result = write_back(harness.store(), name, runner, create=True)
    assert result['action'] == 'store' and result['written']
    assert harness.raw(name)[0].encode('utf-8') == runner


def test_a_stale_version_is_refused_by_the_server(harness):
    """The contract's check-and-set, without the loop: a write with the version read before someone
    else's write is refused and changes nothing; so is a create over an existing secret."""
    name = new_name()
    harness.seed(name, auth_file(60))
    store = harness.store()
    _data, version = store.read(name)
    other = auth_file(20)
    store.write(name, other, version)
    with pytest.raises(contract.StoreCasLost):
        store.write(name, auth_file(5), version)
    assert harness.raw(name)[0].encode('utf-8') == other
    absent = 0 if harness.kind == 'vault' else None  # the token `read` gives for no secret
    with pytest.raises(contract.StoreCasLost):
        store.write(name, auth_file(5), absent)
    assert harness.raw(name)[0].encode('utf-8') == other


def test_a_credential_that_may_not_read_is_store_permission_denied(harness):
    name = new_name()
    seeded = auth_file(60)
    harness.seed(name, seeded)
    before = harness.state(name)
    with pytest.raises(contract.StorePermissionDenied) as caught:
        write_back(harness.scoped_store(name, []), name, auth_file(5))
    assert caught.value.code == 'store_permission_denied'
    assert harness.raw(name)[0].encode('utf-8') == seeded and harness.state(name) == before
    no_leak(caught.value.message)


def test_a_read_only_credential_is_store_permission_denied_and_writes_nothing(server_harness):
    harness = server_harness
    name = new_name()
    seeded = auth_file(60)
    harness.seed(name, seeded)
    before = harness.state(name)
    with pytest.raises(contract.StorePermissionDenied) as caught:
        write_back(harness.scoped_store(name, ['read']), name, auth_file(5))
    assert caught.value.code == 'store_permission_denied'
    assert harness.raw(name)[0].encode('utf-8') == seeded and harness.state(name) == before
    no_leak(caught.value.message)


def test_a_runner_scoped_credential_writes_its_own_secret(server_harness):
    harness = server_harness
    name = new_name()
    harness.seed(name, auth_file(60))
    runner = auth_file(5)
    result = write_back(harness.scoped_store(name, ['read', 'update']), name, runner)
    assert result['written'] and harness.raw(name)[0].encode('utf-8') == runner


def test_a_vault_token_scoped_to_one_runner_cannot_touch_another(openbao):
    """The trust boundary: runner A's credential may read and update A's secret only. (moto does not
    check resource ARNs in IAM policies, so the AWS side of this needs real IAM.)"""
    harness = VaultHarness(openbao)
    mine, theirs = new_name('a'), new_name('b')
    harness.seed(mine, auth_file(60))
    theirs_data = auth_file(60)
    harness.seed(theirs, theirs_data)
    store = harness.scoped_store(mine, ['read', 'update'])
    with pytest.raises(contract.StorePermissionDenied):
        write_back(store, theirs, auth_file(5))
    assert harness.raw(theirs)[0].encode('utf-8') == theirs_data and harness.versions(theirs) == 1


def test_an_unreachable_store_is_store_unreachable(harness):
    with pytest.raises(contract.StoreUnreachable) as caught:
        write_back(harness.unreachable_store(), new_name(), auth_file(5))
    assert caught.value.code == 'store_unreachable'
    no_leak(caught.value.message)


class BusyStore(object):
    """A store where another writer slips in a fresh copy after every read (older than the runner's,
    so the decision keeps saying `store`): every check-and-set is lost."""

    def __init__(self, store, harness, name):
        self.store, self.harness, self.name = store, harness, name
        self.kind = store.kind
        self.slipped = []

    def describe(self, name):
        return self.store.describe(name)

    def read(self, name):
        answer = self.store.read(name)
        other = self.harness.store()
        copy = auth_file(100 - len(self.slipped))
        other.write(name, copy, other.read(name)[1])
        self.slipped.append(copy)
        return answer

    def write(self, name, data, expected_version):
        return self.store.write(name, data, expected_version)


def test_check_and_set_lost_twice_is_store_cas_lost(harness):
    name = new_name()
    harness.seed(name, auth_file(180))
    busy = BusyStore(harness.store(), harness, name)
    runner = auth_file(5)
    with pytest.raises(contract.StoreCasLost) as caught:
        write_back(busy, name, runner)
    assert caught.value.code == 'store_cas_lost' and len(busy.slipped) == 2
    assert harness.raw(name)[0].encode('utf-8') == busy.slipped[-1], 'the other writer\'s copy stays'
    if harness.kind == 'vault':
        assert harness.versions(name) == 3
    # (AWS keeps the two refused versions, never current, labelled at most CODEXOPS_WRITEBACK.)
    no_leak(caught.value.message)


def test_the_decision_options_are_passed_on(harness):
    """allowed_auth_modes (and whatever keyword the decision gains) go to codex_writeback_decision as given."""
    name = new_name()
    harness.seed(name, auth_file(60))
    result = write_back(harness.store(), name, auth_file(5), allowed_auth_modes=['apikey'])
    assert result['action'] == 'refuse' and not result['written']


def test_vault_a_deleted_latest_version_counts_as_no_copy(openbao):
    """KV v2 keeps the metadata of a soft-deleted version: the store reads no copy, a write-back refuses
    (store_secret_missing), and the operator's create writes over it with cas = the current version."""
    harness = VaultHarness(openbao)
    name = new_name('deleted')
    harness.seed(name, auth_file(60))
    harness.root.secrets.kv.v2.delete_latest_version_of_secret(path=name, mount_point=harness.mount)
    store = harness.store()
    assert store.read(name) == (None, 1)
    with pytest.raises(contract.StoreSecretMissing):
        write_back(store, name, auth_file(5))
    runner = auth_file(5)
    result = write_back(store, name, runner, create=True)
    assert result['written'] and result['version'] == 2 and harness.raw(name)[0].encode('utf-8') == runner


def test_aws_a_secret_without_a_value_is_missing_until_created(moto):
    """The operator may create the secret (and its policy) before the first seed: no AWSCURRENT yet."""
    harness = AwsHarness(moto)
    name = new_name('empty')
    harness.admin.create_secret(Name=name)
    store = harness.store()
    assert store.read(name) == (None, '')
    with pytest.raises(contract.StoreSecretMissing):
        write_back(store, name, auth_file(5))
    runner = auth_file(5)
    result = write_back(store, name, runner, create=True)
    assert result['written'] and harness.raw(name) == (runner.decode('utf-8'), result['version'])


def test_aws_a_secret_scheduled_for_deletion_is_missing_even_to_create(moto):
    harness = AwsHarness(moto)
    name = new_name('deleting')
    harness.seed(name, auth_file(60))
    harness.admin.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    with pytest.raises(contract.StoreSecretMissing):
        write_back(harness.store(), name, auth_file(5))
    with pytest.raises(contract.StoreSecretMissing):
        write_back(harness.store(), name, auth_file(5), create=True)
