# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The trust boundary of the job-time round trip (issue 21): what a job can do with its own runner's store
credential, given exactly the policy the codex_job_hooks role renders.

Vault / OpenBao enforce policies for real: the RENDERED policies of two runner instances of one host (the
role's default secret names, `codexops/runners/<host>/<instance>`) go into OpenBao, each instance gets a token
with only its policy (plus OpenBao's `default`, as any token has), and:
- the hooks with instance A's token restore and write back A's secret;
- pointed at B's secret they are refused with store_permission_denied, exit 1, nothing written, nothing lost;
- the token itself - what a job holding it can do without the command - cannot read or write B, list the
  secrets, delete, undelete or destroy a version, delete or change the metadata, patch, or create a secret;
- metadata read is what keeps the code clear when A's latest version was deleted (store_secret_missing).

moto does NOT enforce IAM resource ARNs (it authorises secretsmanager calls against resource `*`, and it has no
SimulatePrincipalPolicy / SimulateCustomPolicy), so for AWS the RENDERED statement is evaluated here with IAM's
matching rules (actions case-insensitive, `*` and `?` wildcards) against the real ARNs moto gave two instances'
secrets and their neighbours; moto does enforce the actions, so the denied actions are also tried for real.
"""

import json
import os
import re
import uuid

import pytest

from job_hooks_support import AwsSide, render, role_defaults, role_var
from job_hooks_support import layout  # noqa: F401 pylint: disable=unused-import
from store_harness import SECRETS, AwsHarness, VaultHarness, auth_file
from support import leaks

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER_STORES = os.path.join(os.path.dirname(os.path.dirname(HERE)), 'plugins', 'module_utils', '_runner_stores.py')
MOUNT = 'secret'


def rendered_secret(host, instance):
    """The role's default secret name of an instance (defaults/main.yml, rendered, never restated here)."""
    return render_text(role_defaults()['codex_job_hooks_secret'], inventory_hostname=host,
                       codex_job_hooks_instance=instance)


def render_text(text, **variables):
    """A role default rendered as Ansible renders it, the collection's own filters (the secret naming rule) by their
    FQCN."""
    import jinja2
    from ansible_collections.codexops.runner.plugins.filter import stores
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters.update(('codexops.runner.%s' % name, function)
                       for name, function in stores.FilterModule().filters().items())
    return env.from_string(text).render(**variables)


def vault_policy(host, instance):
    return render('vault-policy.hcl.j2', inventory_hostname=host, codex_job_hooks_instance=instance,
                  codex_job_hooks_secret=rendered_secret(host, instance), codex_job_hooks_store_options={},
                  __codex_job_hooks_mount=role_var('__codex_job_hooks_mount', codex_job_hooks_store_options={}))


def no_leak(*completed):
    outputs = []
    for item in completed:
        outputs.extend([item.stdout.decode('utf-8', 'replace'), item.stderr.decode('utf-8', 'replace')])
    assert leaks.find_leaks(SECRETS, outputs) == []


# --- Vault / OpenBao: the rendered policy, enforced by the real server ---------------------------------------

class Instance(object):
    def __init__(self, vault, host, name):
        self.name = name
        self.secret = rendered_secret(host, name)
        self.policy_text = vault_policy(host, name)
        self.policy = 'codexops-scope-%s-%s' % (name, uuid.uuid4().hex[:8])
        vault.root.sys.create_or_update_policy(name=self.policy, policy=self.policy_text)
        # A token as an operator mints one: this policy, and OpenBao's default policy every token has.
        self.token = vault.root.auth.token.create(policies=[self.policy], ttl='30m')['auth']['client_token']
        SECRETS.append(self.token)


def snapshot(vault, name):
    """Everything a job could spoil: every version's data and metadata (deletion, destruction), as root."""
    metadata = vault.root.secrets.kv.v2.read_secret_metadata(path=name, mount_point=MOUNT)['data']
    versions = {}
    for number, info in sorted(metadata['versions'].items()):
        data = None
        if not info['deletion_time'] and not info['destroyed']:
            data = vault.root.secrets.kv.v2.read_secret_version(path=name, version=int(number), mount_point=MOUNT,
                                                                raise_on_deleted_version=True)['data']['data']
        versions[number] = (info['deletion_time'], info['destroyed'], json.dumps(data, sort_keys=True))
    return (metadata['current_version'], metadata['max_versions'], metadata['cas_required'],
            metadata['delete_version_after'], json.dumps(metadata.get('custom_metadata'), sort_keys=True), versions)


def status_as(openbao, token, method, path, payload=None):
    """The HTTP status of one request with `token`, as a job holding it would send it (no client library)."""
    import requests
    headers = {'X-Vault-Token': token}
    if method == 'PATCH':
        headers['Content-Type'] = 'application/merge-patch+json'  # (anything else is a 415 before the policy)
    answer = requests.request(method, '%s/v1/%s' % (openbao.url, path), headers=headers,
                              data=None if payload is None else json.dumps(payload), timeout=10)
    return answer.status_code


@pytest.fixture
def two_instances(openbao):
    vault = VaultHarness(openbao)
    host = 'scope-%s' % uuid.uuid4().hex[:8]
    first, second = Instance(vault, host, 'gh-1'), Instance(vault, host, 'gh-2')
    vault.seed(first.secret, auth_file(90))
    vault.seed(second.secret, auth_file(60, account='acct-fake-other-runner'))
    return vault, host, first, second


def test_the_rendered_vault_policy_names_exactly_the_instances_secret(two_instances):
    _vault, host, first, second = two_instances
    assert first.secret == 'codexops/runners/%s/gh-1' % host, 'the default naming rule of the role'
    paths = dict(re.findall(r'^path "([^"]+)" \{\s*capabilities = (\[[^\]]*\])', first.policy_text, re.M))
    assert {path: json.loads(caps) for path, caps in paths.items()} == {
        '%s/data/%s' % (MOUNT, first.secret): ['read', 'update'],
        '%s/metadata/%s' % (MOUNT, first.secret): ['read']}
    assert not re.search(r'[*+]', ''.join(paths)), 'no glob or segment wildcard: no other secret matches'
    assert second.secret not in first.policy_text


def test_the_token_has_exactly_the_capabilities_the_round_trip_needs(openbao, two_instances):
    vault, host, first, second = two_instances
    client = openbao.client(first.token)
    own, other = first.secret, second.secret
    expected = {
        '%s/data/%s' % (MOUNT, own): ['read', 'update'],
        '%s/metadata/%s' % (MOUNT, own): ['read'],
        '%s/data/%s' % (MOUNT, other): ['deny'],
        '%s/metadata/%s' % (MOUNT, other): ['deny'],
        '%s/delete/%s' % (MOUNT, own): ['deny'],
        '%s/undelete/%s' % (MOUNT, own): ['deny'],
        '%s/destroy/%s' % (MOUNT, own): ['deny'],
        '%s/subkeys/%s' % (MOUNT, own): ['deny'],
        '%s/metadata/codexops/runners/%s/' % (MOUNT, host): ['deny'],
        '%s/metadata/' % MOUNT: ['deny'],
        '%s/data/%s-x' % (MOUNT, own): ['deny'],
        '%s/data/%s/x' % (MOUNT, own): ['deny'],
        'sys/policies/acl/%s' % first.policy: ['deny'],
        'sys/mounts/%s' % MOUNT: ['deny'],
    }
    answer = client.adapter.post('/v1/sys/capabilities-self', json={'paths': sorted(expected)})
    answer = answer.json() if hasattr(answer, 'json') else answer
    found = dict((path, sorted(answer[path])) for path in expected)
    assert found == dict((path, sorted(caps)) for path, caps in expected.items())


def test_the_hooks_round_trip_their_own_secret_and_are_refused_anothers(layout, openbao, two_instances):  # noqa: F811
    vault, _host, first, second = two_instances
    runner = layout.runner('scope-a-%s' % uuid.uuid4().hex[:6], 'vault', first.secret,
                           {'url': openbao.url, 'token': first.token})
    # Its own secret: restore before the job, write back after it.
    restored = runner.github_hook('started')
    assert restored.returncode == 0 and restored.result['action'] == 'restored', restored.stdout
    refreshed = auth_file(1)
    runner.put_auth(refreshed)
    stored = runner.github_hook('completed')
    assert stored.returncode == 0 and stored.result['action'] == 'stored', stored.stdout
    assert vault.raw(first.secret)[0].encode('utf-8') == refreshed

    # The same runner's config pointed at B's secret (a job can edit nothing else: the config is its own).
    before_a, before_b = snapshot(vault, first.secret), snapshot(vault, second.secret)
    config = json.load(open(runner.config_path))
    config['secret'] = second.secret
    runner.write_config(config)
    denied_restore = runner.github_hook('started')
    assert (denied_restore.returncode, denied_restore.result['code']) == (1, 'store_permission_denied'), \
        denied_restore.stdout
    assert runner.auth() == refreshed, "a refused restore leaves the runner's auth.json as it was"
    runner.put_auth(auth_file(0))  # newest of all: only the scope can stop it
    denied_writeback = runner.command('writeback')
    assert (denied_writeback.returncode, denied_writeback.result['code']) == (1, 'store_permission_denied'), \
        denied_writeback.stdout
    assert snapshot(vault, second.secret) == before_b, "nothing written into B's secret, nothing lost"
    assert snapshot(vault, first.secret) == before_a
    no_leak(restored, stored, denied_restore, denied_writeback)


def test_the_token_cannot_list_delete_destroy_or_reach_another_secret(openbao, two_instances):
    """What a job can do with the credential directly, without the command: no more than the command does."""
    vault, host, first, second = two_instances
    vault.seed(first.secret, auth_file(45))  # two versions, so deleting an older one would be a loss
    before_a, before_b = snapshot(vault, first.secret), snapshot(vault, second.secret)
    token, own, other = first.token, first.secret, second.secret
    attempts = {
        'list the runners of the host': ('LIST', 'metadata/codexops/runners/%s' % host, None),
        'list the mount': ('LIST', 'metadata', None),
        "read B's data": ('GET', 'data/%s' % other, None),
        "read B's metadata": ('GET', 'metadata/%s' % other, None),
        "write B's data": ('POST', 'data/%s' % other, {'data': {'auth_json': 'x'}}),
        "delete A's latest version": ('DELETE', 'data/%s' % own, None),
        "delete A's versions": ('POST', 'delete/%s' % own, {'versions': [1]}),
        "undelete A's versions": ('POST', 'undelete/%s' % own, {'versions': [1]}),
        "destroy A's versions": ('POST', 'destroy/%s' % own, {'versions': [1, 2]}),
        "delete A's metadata and every version": ('DELETE', 'metadata/%s' % own, None),
        "shrink A's history (max_versions)": ('POST', 'metadata/%s' % own, {'max_versions': 1}),
        "patch A's data": ('PATCH', 'data/%s' % own, {'data': {'auth_json': 'x'}}),
        "read A's subkeys": ('GET', 'subkeys/%s' % own, None),
        'create a secret beside A': ('POST', 'data/%s-x' % own, {'options': {'cas': 0}, 'data': {'auth_json': 'x'}}),
        'create a secret below A': ('POST', 'data/%s/x' % own, {'options': {'cas': 0}, 'data': {'auth_json': 'x'}}),
    }
    statuses = dict((what, status_as(openbao, token, method, '%s/%s' % (MOUNT, path), payload))
                    for what, (method, path, payload) in attempts.items())
    assert statuses == dict((what, 403) for what in attempts), statuses
    assert snapshot(vault, first.secret) == before_a and snapshot(vault, second.secret) == before_b
    for made in ('%s-x' % own, '%s/x' % own):
        assert vault.versions(made) == 0, '%s was created' % made
    # The same token reads its own secret: the 403s above are the policy's, not a broken token.
    assert status_as(openbao, token, 'GET', '%s/data/%s' % (MOUNT, own)) == 200


def test_a_secret_it_cannot_create_and_a_deleted_version_keep_their_codes(layout, openbao):  # noqa: F811
    """No `create`: a missing secret stays missing (store_secret_missing, never made by the runner's token);
    `read` on the metadata: a deleted latest version is store_secret_missing too, not a permission error."""
    vault = VaultHarness(openbao)
    host = 'scope-%s' % uuid.uuid4().hex[:8]
    instance = Instance(vault, host, 'gl-0')
    runner = layout.runner('scope-m-%s' % uuid.uuid4().hex[:6], 'vault', instance.secret,
                           {'url': openbao.url, 'token': instance.token})
    missing = runner.command('restore')
    assert (missing.returncode, missing.result['code']) == (1, 'store_secret_missing'), missing.stdout
    runner.put_auth(auth_file(1))
    not_created = runner.command('writeback')
    assert (not_created.returncode, not_created.result['code']) == (1, 'store_secret_missing'), not_created.stdout
    assert status_as(openbao, instance.token, 'POST', '%s/data/%s' % (MOUNT, instance.secret),
                     {'options': {'cas': 0}, 'data': {'auth_json': 'x'}}) == 403
    assert vault.versions(instance.secret) == 0

    vault.seed(instance.secret, auth_file(30))
    vault.root.secrets.kv.v2.delete_latest_version_of_secret(path=instance.secret, mount_point=MOUNT)
    deleted = runner.command('restore')
    assert (deleted.returncode, deleted.result['code']) == (1, 'store_secret_missing'), deleted.stdout
    kept = runner.command('writeback')
    assert (kept.returncode, kept.result['code']) == (1, 'store_secret_missing'), kept.stdout
    assert vault.versions(instance.secret) == 1
    no_leak(missing, not_created, deleted, kept)


# --- AWS Secrets Manager: the rendered IAM statement, evaluated (moto does not enforce resources) -------------

def iam_match(pattern, value, case_sensitive=True):
    """IAM's wildcard matching of an Action or Resource element: `*` any run of characters (also none, also
    across `:` and `/`), `?` exactly one character; everything else literally."""
    expression = ''.join('.*' if char == '*' else '.' if char == '?' else re.escape(char) for char in pattern)
    return re.fullmatch(expression, value, 0 if case_sensitive else re.IGNORECASE) is not None


def allowed(document, action, resource):
    """Whether an identity policy of Allow statements allows `action` on `resource` (no Deny, no NotAction,
    no Condition in what the role renders: asserted by the caller)."""
    for statement in document['Statement']:
        actions = statement['Action'] if isinstance(statement['Action'], list) else [statement['Action']]
        resources = statement['Resource'] if isinstance(statement['Resource'], list) else [statement['Resource']]
        if statement['Effect'] == 'Allow' and any(iam_match(item, action, False) for item in actions) and \
                any(iam_match(item, resource) for item in resources):
            return True
    return False


def iam_statement(name, region, account='*'):
    variables = dict(role_defaults(), codex_job_hooks_secret=name, codex_job_hooks_aws_account_id=account,
                     codex_job_hooks_store_options={'region': region}, codex_job_hooks_aws_secret_arn='')
    arn = role_var('__codex_job_hooks_aws_arn', **variables)
    return json.loads(render('iam-policy.json.j2', __codex_job_hooks_aws_arn=arn))


def runner_actions():
    """The Secrets Manager actions the runner's command calls (read from its client, not restated)."""
    with open(RUNNER_STORES) as handle:
        client = handle.read().split('class AwsSecretsManagerStore', 1)[1]
    return sorted(set('secretsmanager:%s' % name for name in re.findall(r"_call\('([A-Za-z]+)'", client)))


DENIED_ACTIONS = (
    'CreateSecret', 'DeleteSecret', 'RestoreSecret', 'UpdateSecret', 'ListSecrets', 'ListSecretVersionIds',
    'BatchGetSecretValue', 'GetResourcePolicy', 'PutResourcePolicy', 'DeleteResourcePolicy', 'ValidateResourcePolicy',
    'RotateSecret', 'CancelRotateSecret', 'TagResource', 'UntagResource', 'ReplicateSecretToRegions',
    'RemoveRegionsFromReplication', 'StopReplicationToReplica', 'GetRandomPassword')


def test_the_rendered_iam_statement_allows_exactly_the_instances_secret(moto):
    aws = AwsHarness(moto)
    host = 'scope-%s' % uuid.uuid4().hex[:8]
    first = rendered_secret(host, 'gh-1')
    # Its neighbours: the other instance, names that share a prefix or extend it, the host's prefix.
    others = [rendered_secret(host, name) for name in ('gh-2', 'gh-1-b', 'gh-1x', 'gh', 'gh-10', 'gh-1-abcdef')]
    others += ['%s/x' % first, 'codexops/runners/%s' % host, 'x' + first]
    arns = {}
    for name in [first] + others:
        arns[name] = aws.admin.create_secret(Name=name, SecretString=auth_file(10).decode('utf-8'))['ARN']
    assert re.fullmatch(r'arn:aws:secretsmanager:%s:\d{12}:secret:%s-[A-Za-z0-9]{6}' % (moto.region, re.escape(first)),
                        arns[first]), 'moto names secrets as AWS does: <name>-<6 characters>'

    for account in ('*', arns[first].split(':')[4]):
        document = iam_statement(first, moto.region, account)
        statement, = document['Statement']
        assert set(statement) == {'Sid', 'Effect', 'Action', 'Resource'}, 'no NotAction, Condition or Principal'
        assert statement['Effect'] == 'Allow' and isinstance(statement['Resource'], str)
        assert sorted(statement['Action']) == runner_actions(), 'exactly the actions the command calls'
        assert not any(set('*?') & set(action) for action in statement['Action'])
        resource = statement['Resource']
        assert '*' not in resource.split(':secret:', 1)[1] and resource.endswith(':secret:%s-??????' % first)
        for action in statement['Action']:
            assert allowed(document, action, arns[first])
            for name in others:
                assert not allowed(document, action, arns[name]), (action, name)
            # The same name in another account or region is not another instance's secret; with the account
            # given, another account's is not allowed either.
            assert allowed(document, action, arns[first].replace(':%s:' % moto.region, ':eu-west-1:')) is False
            if account != '*':
                assert not allowed(document, action, arns[first].replace(':%s:' % account, ':210987654321:'))
        for action in DENIED_ACTIONS:
            assert not allowed(document, 'secretsmanager:%s' % action, arns[first]), action
            assert not allowed(document, 'secretsmanager:%s' % action, '*'), action


def test_moto_refuses_the_actions_the_statement_leaves_out(moto):
    """moto does enforce actions: a key with exactly the rendered actions cannot delete, list, reshape or
    re-policy a secret (the resource scope is the evaluator's above, not moto's)."""
    aws = AwsHarness(moto)
    name = rendered_secret('scope-%s' % uuid.uuid4().hex[:8], 'gh-1')
    aws.seed(name, auth_file(20))
    before = aws.state(name)
    section = AwsSide(moto).section(name)
    client = moto.client('secretsmanager', {'AccessKeyId': section['access_key_id'],
                                            'SecretAccessKey': section['secret_access_key']})
    calls = {
        'DeleteSecret': lambda: client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True),
        'ListSecrets': client.list_secrets,
        'ListSecretVersionIds': lambda: client.list_secret_version_ids(SecretId=name),
        'UpdateSecret': lambda: client.update_secret(SecretId=name, Description='x'),
        'PutResourcePolicy': lambda: client.put_resource_policy(SecretId=name, ResourcePolicy='{}'),
        'CreateSecret': lambda: client.create_secret(Name=name + '-x', SecretString='x'),
        'TagResource': lambda: client.tag_resource(SecretId=name, Tags=[{'Key': 'k', 'Value': 'v'}]),
    }
    codes = {}
    for action, call in calls.items():
        try:
            call()
            codes[action] = 'allowed'
        except client.exceptions.ClientError as exc:
            # (moto answers an action the key may not call with HTTP 403 and an AccessDenied body)
            codes[action] = exc.response['ResponseMetadata']['HTTPStatusCode']
    assert codes == dict((action, 403) for action in calls), codes
    assert aws.state(name) == before and aws.versions(name + '-x') == 0
    assert client.get_secret_value(SecretId=name, VersionStage='AWSCURRENT')['SecretString']
