# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runner instances for the codex_auth role, on the controller: the rules are module_utils/_runner_instances.py's,
asked here and nowhere else (which instances a host has, what refuses them, which seed each reads).

The role reads the seed files itself (`query('ansible.builtin.file', ...)` decrypts vault-encrypted ones), in the
order codex_runner_seed_files gives them, and the seeds of instances with a `seed_source` from their secret stores
(`query('codexops.runner.codex_seed', ...)` over codex_runner_seed_sources), and hands both lists of texts to
codex_runner_args, which completes the
instances, refuses them as _runner_instances.problems does (one refresh token on two instances included, the
module's own verdict), and returns the `runners` option of one module run for the whole host. No message names a
secret."""

import posixpath

from ansible.errors import AnsibleFilterError

from ansible_collections.codexops.runner.plugins.module_utils import _runner_environment
from ansible_collections.codexops.runner.plugins.module_utils import _runner_instances

_MODULES = ('codex_auth_seed', 'codex_access_token_login', 'codex_auth_verify', 'codex_auth_writeback', 'user')
# The auth modes each method may leave, as the role's single-runner path allows them (vars/main.yml).
_ALLOWED_MODES = {'seed': ['chatgpt'], 'api_key': ['apikey'], 'access_token': ['personalAccessToken', 'agentIdentity']}
# Which module writes an instance of each method: codex_auth_seed writes seeds and API keys, codex_access_token_login
# logs access-token instances in (Codex itself checks the token and writes auth.json).
_WRITER = {'seed': 'codex_auth_seed', 'api_key': 'codex_auth_seed', 'access_token': 'codex_access_token_login'}


def _refuse(found):
    raise AnsibleFilterError(_runner_instances.InstanceError(found).message)


def codex_runner_instances(runners, variables, host):
    """The host's normalised instances (_runner_instances.normalise): `runners` completed from the single-runner
    variables in `variables` (codex_auth_user, codex_auth_home, codex_auth_seed_dir, ...)."""
    if not isinstance(variables, dict):
        raise AnsibleFilterError('codex_runner_instances: the role variables must be a dict (got a %s)'
                                 % type(variables).__name__)
    try:
        return _runner_instances.normalise(runners, variables, host=str(host))
    except _runner_instances.InstanceError as exc:
        raise AnsibleFilterError(exc.message)


def _blank(value):
    return value is None or value == ''


def _reads_file(instance):
    # As _runner_instances.normalise leaves a seed instance: its content, else its file.
    return instance.get('method') == 'seed' and _blank(instance.get('seed_content')) \
        and not _blank(instance.get('seed_file'))


def _reads_source(instance):
    return instance.get('method') == 'seed' and _blank(instance.get('seed_content')) \
        and isinstance(instance.get('seed_source'), dict) and bool(instance['seed_source'])


# What must be refused before any store is asked: the sources themselves, and one secret on two instances.
_SOURCE_CODES = ('runner_instance_seed_source_invalid', 'runner_instance_seed_source_credential',
                 'runner_instance_seed_shared', 'runner_instance_field')


def codex_runner_seed_sources(instances):
    """The seed sources the instances read on the controller, in order (one per instance whose seed comes from a
    secret store), each a term of the codexops.runner.codex_seed lookup ({store, secret, the store's options},
    the secret named by the one rule when the inventory gives none); the texts go back to codex_runner_args
    (`source_texts`) in the same order. Refuses, before any store is asked, a source that is not one, one that
    holds a credential, and one secret (or seed) on two instances."""
    instances = _instances(instances)
    found = [item for item in _runner_instances.problems(instances) if item['code'] in _SOURCE_CODES]
    if found:
        _refuse(found)
    return [dict(instance['seed_source']) for instance in instances if _reads_source(instance)]


def codex_runner_seed_files(instances):
    """The seed files the instances read on the controller, in order (one per instance that has no seed
    content); the texts go back to codex_runner_args in the same order."""
    return [instance['seed_file'] for instance in _instances(instances) if _reads_file(instance)]


def _instances(instances):
    if not isinstance(instances, list) or not all(isinstance(item, dict) for item in instances):
        raise AnsibleFilterError('expected the instances codex_runner_instances returns (a list of dicts)')
    return instances


def codex_runner_writers(instances, only=None):
    """The modules that write the host's instances (codex_auth_seed for seed and api_key instances,
    codex_access_token_login for access_token ones), in that order, each once: the role runs only these. `only` as
    for codex_runner_args (the instances of a reseed)."""
    writers = []
    for instance in _instances(instances):
        if only not in (None, {}, '') and isinstance(only, dict) and instance.get('name') not in only:
            continue
        writer = _WRITER.get(instance.get('method'))
        if writer is not None and writer not in writers:
            writers.append(writer)
    return sorted(writers, key=list(_WRITER.values()).index)


def codex_runner_args(instances, module, seed_texts=None, only=None, probe_dir=None, source_texts=None):
    """The `runners` option of one run of `module` (codex_auth_seed, codex_access_token_login, codex_auth_verify,
    codex_auth_writeback) for the instances of the host it handles, or the users to create (`user`: [{name,
    group}]). codex_auth_seed writes the seed and api_key instances, codex_access_token_login the access_token ones
    (each with its `access_token`), codex_auth_verify reads them all. For codex_auth_seed (and for `user`, when
    given), `seed_texts` are the texts of codex_runner_seed_files, in order. Refuses, naming the instances and never
    a secret, everything _runner_instances.problems finds (with the seeds' contents read: one refresh token on two
    instances, or one access token on two, is the module's own verdict); codex_access_token_login reads no seed and
    leaves the seeds' verdict to the seed run, which the role runs first on the whole list. Each writer writes its own instances' runner_environment.

    `only` ({instance: replace}, as codex_reseed_targets gives a host's instances): the whole list is refused as
    above, but only these instances are returned, each with this replace mode (the reseed playbook). None or
    empty: every instance.

    `codex_auth_writeback`: the `runners` option of the codex_auth_writeback action plugin, [{name, codex_home, owner,
    dest}] for each instance that reads its seed from a file, `dest` being that file (the others, a seed given as
    content or another method, have no file to write back into).

    `source_texts`: the texts of codex_runner_seed_sources (the codexops.runner.codex_seed lookup), in order; required
    with codex_auth_seed when an instance has a seed_source.

    `probe_dir` (codex_auth_verify): the directory of the instances' keepalive scripts (codex_keepalive_script_dir);
    each entry then carries its own `probe_command`, the script the codex_keepalive role installs for the instance
    (its name by the one rule, from the instance's CODEX_HOME as given, not as the runner expands it)."""
    if module not in _MODULES:
        raise AnsibleFilterError('codex_runner_args: module must be one of %s' % ', '.join(_MODULES))
    instances = instances_all = [dict(instance) for instance in _instances(instances)]
    labels = _runner_instances.labels(instances)
    # The users are created just before the seed run: given the seed texts, they are refused as the seeds are, so
    # nothing at all is done for a list the seed run would refuse.
    if module == 'codex_auth_seed' or (module == 'user' and seed_texts is not None):
        texts = list(seed_texts or [])
        readers = [instance for instance in instances if _reads_file(instance)]
        if len(texts) != len(readers):
            raise AnsibleFilterError('codex_runner_args: %d seed texts for %d seed files (give the texts of '
                                     'codex_runner_seed_files, in order)' % (len(texts), len(readers)))
        for instance, text in zip(readers, texts):
            # Read: the content decides now (the refresh-token rule), as it does in the module.
            instance.update(seed_content=text, seed_file=None)
        sources = [instance for instance in instances if _reads_source(instance)]
        if source_texts is not None or (module == 'codex_auth_seed' and sources):
            read = list(source_texts or [])
            if len(read) != len(sources):
                raise AnsibleFilterError('codex_runner_args: %d source texts for %d seed sources (give the texts of '
                                         'codex_runner_seed_sources, in order)' % (len(read), len(sources)))
            for instance, text in zip(sources, read):
                instance.update(seed_content=text, seed_source=None)
        found = _runner_instances.problems(instances)
    elif module == 'codex_access_token_login':
        # The login writes the access-token instances only: their tokens must be right, the seeds are not read again
        # (the seed run of the same play judged the whole list with them first; a rotation has no business with
        # them), so a seed file or store that cannot be read does not hold up a token's login or rotation.
        tokens = set(label for instance, label in zip(instances, labels) if instance.get('method') == 'access_token')
        found = [item for item in _runner_instances.problems(instances)
                 if item['code'] != 'runner_instance_seed_shared'
                 and (item['code'] != 'runner_instance_credential_missing' or tokens & set(item['instances']))]
    else:
        # Reading or creating users needs no credential: the layout and the users are what must be right. (Write-back
        # refuses one seed file on two instances itself, naming them host/instance, before anything is read.)
        found = [item for item in _runner_instances.problems(instances)
                 if item['code'] not in ('runner_instance_credential_missing', 'runner_instance_seed_shared',
                                         'runner_instance_access_token_shared')]
    if found:
        _refuse(found)
    if module == 'codex_auth_writeback':
        # Only an instance that reads its seed from a file has one to write back into: that file (the seed file the
        # codex_auth role reads, by the one rule), never one named here.
        return [{'name': instance['name'], 'codex_home': instance['codex_home'], 'owner': instance['user'],
                 'dest': instance['seed_file']} for instance in instances if _reads_file(instance)]
    if module == 'user':
        users = []
        for instance in instances:
            entry = {'name': instance['user'], 'group': instance['group'] or None}
            if entry not in users:
                users.append(entry)
        return users
    if module in ('codex_auth_seed', 'codex_access_token_login'):
        # Each writer its own instances; `only` may name the other's (a reseed of both kinds on one host).
        instances = [instance for instance in instances if _WRITER.get(instance['method']) == module]
    entries = [_entry(instance, module) for instance in instances]
    if module == 'codex_auth_verify' and not _blank(probe_dir):
        for entry, instance in zip(entries, instances):
            entry['probe_command'] = posixpath.join(str(probe_dir), _runner_instances.keepalive_name(instance))
    if only is None or only == {} or only == '':
        return entries
    if not isinstance(only, dict) or not all(mode in ('always', 'invalid', 'different', 'never')
                                             for mode in only.values()):
        raise AnsibleFilterError('codex_runner_args: only must map instance names to a replace mode')
    names = [instance['name'] for instance in instances_all]
    unknown = sorted(str(name) for name in only if name not in names)
    if unknown:
        raise AnsibleFilterError('codex_runner_args: no runner instance named %s on this host' % ', '.join(unknown))
    chosen = [entry for entry in entries if entry['name'] in only]
    if module == 'codex_auth_seed':
        for entry in chosen:
            entry['replace'] = only[entry['name']]
    return chosen


def _entry(instance, module):
    entry = {'name': instance['name'], 'codex_home': instance['codex_home'], 'owner': instance['user'],
             'allowed_auth_modes': list(_ALLOWED_MODES[instance['method']]),
             'environment_files': list(instance['environment_files'])}
    if instance.get('runner_environment'):
        entry['runner_environment'] = dict(instance['runner_environment'])
    if module == 'codex_auth_verify':
        return entry
    if instance['group']:
        entry['group'] = instance['group']
    if instance['method'] == 'access_token':
        # As the single-runner path: no login call when the same token is already stored, a new one replaces it.
        entry['access_token'] = instance['access_token']
    elif instance['method'] == 'api_key':
        # As the single-runner api_key path: a new key replaces the old one, the same key is left alone.
        entry.update(content={'auth_mode': 'apikey', 'OPENAI_API_KEY': instance['api_key']}, replace='different')
    else:
        entry.update(content=instance['seed_content'], replace=instance['replace'] or 'never')
    return entry


def codex_runner_health(result, previous=None):
    """One row per instance from a codex_auth_seed or codex_auth_verify result with `runners`: the instance's
    `name` and `codex_home` with its health summary (the fields codex_auth_verify returns for one runner).

    `previous` (the rows recorded earlier in the play): an instance the result does not hold keeps its row, in
    its place (a reseed that replaced some instances leaves the others' verified health)."""
    rows = _result_rows(result)
    if not isinstance(previous, list) or not previous:
        return rows
    fresh = dict((row['name'], row) for row in rows)
    merged = [fresh.pop(row.get('name'), row) for row in previous if isinstance(row, dict)]
    return merged + [row for row in rows if row['name'] in fresh]


def _result_rows(result):
    if not isinstance(result, dict) or not isinstance(result.get('runners'), list):
        return []
    rows = []
    for item in result['runners']:
        if not isinstance(item, dict):
            continue
        summary = item.get('auth') if isinstance(item.get('auth'), dict) else item
        row = dict((key, value) for key, value in summary.items() if key not in ('name', 'codex_home'))
        row.update(name=item.get('name'), codex_home=item.get('codex_home'))
        rows.append(row)
    return rows


def codex_runner_gitlab_script(results, default=''):
    """One GitLab `pre_build_script` for a host whose slots two writers serve: the RV(gitlab_slots) of every
    result in `results` (codex_auth_seed's and codex_access_token_login's; a skipped or missing one is ignored)
    joined into _runner_environment.gitlab_script, the modules' own rule. `default` when no result names a slot (a
    run that did not touch the slots, as a narrowed reseed: the fact recorded before stays)."""
    if isinstance(results, dict) or results is None:
        results = [results]
    if not isinstance(results, (list, tuple)):
        raise AnsibleFilterError('codex_runner_gitlab_script takes a list of module results')
    slots = {}
    for result in results:
        if not isinstance(result, dict) or not isinstance(result.get('gitlab_slots'), list):
            continue
        for pair in result['gitlab_slots']:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[0], int) \
                    or isinstance(pair[0], bool) or not isinstance(pair[1], str):
                raise AnsibleFilterError('codex_runner_gitlab_script: gitlab_slots holds [slot, CODEX_HOME] pairs')
            if slots.get(pair[0], pair[1]) != pair[1]:
                raise AnsibleFilterError('codex_runner_gitlab_script: GitLab slot %d is served by two CODEX_HOMEs'
                                         % pair[0])
            slots[pair[0]] = pair[1]
    if not slots:
        return default
    return _runner_environment.gitlab_script(sorted(slots.items()))


def codex_runner_daemon_reload(result):
    """Whether a codex_auth_seed or codex_access_token_login result (one runner's, or with `runners`) changed a
    systemd drop-in where systemd runs: the role's daemon-reload handler asks this."""
    if not isinstance(result, dict):
        return False
    items = result['runners'] if isinstance(result.get('runners'), list) else [result]
    return any(isinstance(item, dict) and isinstance(item.get('runner_environment'), dict)
               and bool(item['runner_environment'].get('daemon_reload')) for item in items)


class FilterModule(object):

    def filters(self):
        return {
            'codex_runner_instances': codex_runner_instances,
            'codex_runner_seed_files': codex_runner_seed_files,
            'codex_runner_seed_sources': codex_runner_seed_sources,
            'codex_runner_args': codex_runner_args,
            'codex_runner_writers': codex_runner_writers,
            'codex_runner_health': codex_runner_health,
            'codex_runner_daemon_reload': codex_runner_daemon_reload,
            'codex_runner_gitlab_script': codex_runner_gitlab_script,
        }
