# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runner instances: the several runners one host may carry, each with its own CODEX_HOME and credentials.

Private to this collection; standard library only, Python 3.9+ (the same rules are asked on the controller
and on the runner). A host lists its instances (`codex_auth_runners`: GitHub runner directories, GitLab
`concurrent` slots); a host without a list has one instance, `default`, described by the single-runner
variables (`codex_auth_user`, `codex_auth_home`, ...) exactly as before, so every existing inventory means
what it meant.

An instance is a dict of FIELDS. `normalise` fills each listed instance from the host's variables; `problems`
and `user_problems` find what must be refused before anything is written - a bad name, two instances with
one name or one CODEX_HOME, a CODEX_HOME inside another's (Codex would find one runner's files in the
other's home, and provisioning one would hand the other's over), a seed on two instances (the first to
refresh breaks the other with refresh_token_reused), a user the host does not have. Every message names
the instances and the field, never a value of a secret field. An instance's keepalive name is
keepalive_status.keepalive_name, the one rule (`keepalive_name` here only passes the instance to it).
"""

import json
import posixpath

from ansible_collections.codexops.runner.plugins.module_utils import _runner_environment
from ansible_collections.codexops.runner.plugins.module_utils import _store_contract
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import errors
from ansible_collections.codexops.runner.plugins.module_utils import keepalive_status

DEFAULT_INSTANCE = keepalive_status.DEFAULT_INSTANCE
METHODS = ('seed', 'access_token', 'api_key')
# What each instance carries once normalised. `group` empty means the user's primary group.
FIELDS = ('name', 'user', 'group', 'codex_home', 'method', 'seed_file', 'seed_content', 'seed_source', 'access_token',
          'api_key', 'replace', 'environment_files', 'runner_environment')
# The three places a seed comes from; an instance gives one (its content first, then a store, then a file).
SEED_FIELDS = ('seed_content', 'seed_source', 'seed_file')
# A seed source (a secret store read on the controller by the codexops.runner.codex_seed lookup): its kind, its
# secret (default: _store_contract.secret_name, the one naming rule) and the store's options that are not
# credentials. Credentials come from the controller's environment only (VAULT_TOKEN or an AppRole's
# ANSIBLE_HASHI_VAULT_ROLE_ID/_SECRET_ID; the AWS chain; the play's vault secrets for `file`), so an inventory
# never carries one into a variable the role templates.
SOURCE_OPTIONS = {
    'vault': ('url', 'mount_point', 'namespace', 'approle_mount_point', 'verify', 'timeout'),
    'aws_secretsmanager': ('region', 'profile', 'endpoint_url', 'connect_timeout', 'read_timeout', 'max_attempts'),
    'file': ('directory',),
}
SOURCE_CREDENTIALS = ('token', 'role_id', 'secret_id', 'secrets', 'encrypt_with', 'access_key_id',
                      'secret_access_key', 'session_token', 'aws_access_key_id', 'aws_secret_access_key',
                      'aws_session_token', 'password')
# Never shown, compared only for equality.
SECRET_FIELDS = ('seed_content', 'access_token', 'api_key')
# The spelling of codex_home; both at once is refused rather than guessed.
ALIASES = {'home': 'codex_home'}
# A listed instance without these takes the host's value. Never the seed: one seed on two instances is one
# refresh token on two runners. An API key does not rotate, so one may serve several; an access token is taken
# from the host for one instance, but two instances with one access token are refused (access_token_problems:
# rotating it means revoking it, which would cut off every runner that still holds it). Nor the
# runner_environment: a runner directory, a service or a GitLab slot is one runner's.
INHERITED = ('user', 'group', 'method', 'access_token', 'api_key', 'replace', 'environment_files')
# The single-runner variable behind each field of the default instance.
VARIABLES = {
    'user': 'codex_auth_user', 'group': 'codex_auth_group', 'codex_home': 'codex_auth_home',
    'method': 'codex_auth_method', 'seed_file': 'codex_auth_seed_file', 'seed_content': 'codex_auth_seed_content',
    'seed_source': 'codex_auth_seed_source',
    'access_token': 'codex_auth_access_token', 'api_key': 'codex_auth_api_key', 'replace': 'codex_auth_replace',
    'environment_files': 'codex_auth_environment_files',
    'runner_environment': 'codex_auth_runner_environment',
}
# Each instance is a module loop item and a report row; a longer list is a generated list gone wrong, and
# the pairwise checks below stay trivial under it.
MAX_INSTANCES = 100
# Characters that cannot be in a user name Codex could run as and would break the keepalive's script path or
# a report line; everything else is left to the host's user database (user_problems).
_USER_FORBIDDEN = frozenset('/:\0') | frozenset(chr(c) for c in range(33)) | {chr(127)}


class InstanceError(errors.CodexOpsError):
    """Runner instances that must not be provisioned; the message names them, never a secret."""

    default_code = 'runner_instances_invalid'

    def __init__(self, found):
        self.problems = found
        super(InstanceError, self).__init__(
            'Refusing the runner instances before anything was read or written: %s.'
            % '; '.join(item['message'] for item in found),
            found[0]['code'] if len(set(item['code'] for item in found)) == 1 else None)


def problem(code, names, message):
    return {'code': code, 'instances': list(names), 'message': message}


def _names(names):
    return ' and '.join(names)


def _blank(value):
    return value is None or value == ''


def default_instance(variables, host=None):
    """The one instance of a host without a list, from its single-runner variables (as the role sees them,
    templated): name `default`, CODEX_HOME `~USER/.codex` unless `codex_auth_home` says otherwise, and the
    seed content before the seed source before the seed file (the content as the role has always chosen)."""
    instance = dict((field, variables.get(VARIABLES[field])) for field in VARIABLES)
    instance['name'] = DEFAULT_INSTANCE
    instance['method'] = instance['method'] or 'seed'
    if _blank(instance['codex_home']) and isinstance(instance['user'], str) and instance['user']:
        instance['codex_home'] = '~%s/.codex' % instance['user']
    if _blank_source(instance['seed_source']):
        instance['seed_source'] = None
    if not _blank(instance['seed_content']):
        instance['seed_file'] = instance['seed_source'] = None
    elif instance['seed_source'] is not None:
        instance['seed_file'] = None
    return _complete_source(_filled(instance), host)


def _blank_source(source):
    return source is None or source == '' or source == {}


def secret_instance(instance):
    """The instance part of an instance's default secret name (_store_contract.secret_name): the user for the
    `default` instance (the single runner, as the codex_job_hooks role names it: codex_job_hooks_instance defaults
    to the user), the instance's name for any other."""
    return instance.get('user') if instance.get('name') == DEFAULT_INSTANCE else instance.get('name')


def _complete_source(instance, host):
    """The instance with its seed source's `secret` filled by the one naming rule when it gives none (and the
    host, the name and the user allow one; otherwise problems() reports the missing secret)."""
    source = instance.get('seed_source')
    if isinstance(source, dict) and _blank(source.get('secret')) and host:
        try:
            secret = _store_contract.secret_name(str(host), secret_instance(instance))
        except _store_contract.StoreError:
            secret = None
        if secret is not None and (instance.get('name') == DEFAULT_INSTANCE
                                   or _valid_name(instance.get('name'))):
            instance['seed_source'] = dict(source, secret=secret)
    return instance


def _read_entries(items, what, found):
    """The readable entries of a list of instances, as (label, entry) with the field aliases resolved: the one reading
    of a list for normalise and keepalives. An entry that is not a dict or has unknown fields adds to `found` (key
    names only: a misspelt key's value may well be a secret) and is left out; a list that is not one, or is too long,
    raises InstanceError."""
    if not isinstance(items, list):
        raise InstanceError([problem('runner_instances_not_list', [], '%s (got a %s)' % (what, type(items).__name__))])
    if len(items) > MAX_INSTANCES:
        raise InstanceError([problem('runner_instances_too_many', [], 'a host may carry at most %d runner instances '
                                     '(got %d)' % (MAX_INSTANCES, len(items)))])
    readable = []
    for index, entry in enumerate(items):
        label = 'instance %d' % (index + 1)
        if not isinstance(entry, dict):
            found.append(problem('runner_instance_not_dict', [label], '%s is a %s, not a dict with name, user, '
                                 'codex_home, ...' % (label, type(entry).__name__)))
            continue
        entry = dict(entry)
        if _valid_name(entry.get('name')):
            label = entry['name']
        for alias, field in ALIASES.items():
            if alias in entry:
                if field in entry:
                    found.append(problem('runner_instance_field', [label], '%s sets both %s and %s; give one'
                                         % (label, alias, field)))
                entry[field] = entry.pop(alias)
        unknown = sorted(str(key) for key in entry if key not in FIELDS)
        if unknown:
            found.append(problem('runner_instance_field', [label], '%s has unknown fields %s (known: %s)'
                                 % (label, ', '.join(unknown), ', '.join(FIELDS))))
            continue
        readable.append((label, entry))
    return readable


def normalise(runners, variables, host=None):
    """The host's instances: `[default_instance(variables)]` when `runners` is empty or None, else each listed
    instance completed from the host's variables. A listed `default` is the default instance with what the
    entry sets changed. Any other takes INHERITED from the host, CODEX_HOME `~USER/.codex`, and, for a seed
    without `seed_file` or `seed_content`, `SEED_DIR/HOST/NAME.json` (`codex_auth_seed_dir`). Shapes that
    cannot be read raise InstanceError; what is wrong with readable instances is `problems`' to say."""
    if runners is None or runners == []:
        return [default_instance(variables, host)]
    found, result = [], []
    base = default_instance(variables)
    # A listed instance without a seed of its own reads the host's seed source when it has one, from the
    # instance's own secret (the naming rule): the store, never the secret, is inherited.
    host_source = variables.get('codex_auth_seed_source')
    host_source = None if _blank_source(host_source) or not isinstance(host_source, dict) \
        else dict((key, value) for key, value in host_source.items() if key != 'secret')
    for label, entry in _read_entries(runners, 'codex_auth_runners must be a list of instances', found):
        if entry.get('name') == DEFAULT_INSTANCE:
            instance = dict(base)
            if any(not _blank(entry.get(field)) and not (field == 'seed_source' and _blank_source(entry[field]))
                   for field in SEED_FIELDS):
                instance.update((field, None) for field in SEED_FIELDS)
            if not _blank(entry.get('user')) and _blank(entry.get('codex_home')) \
                    and instance['codex_home'] == '~%s/.codex' % instance['user']:
                # The host's home was the default one of the host's user: the entry's user has its own.
                instance['codex_home'] = None
        else:
            instance = dict((field, base[field]) for field in INHERITED)
            instance.update(name=None, codex_home=None, seed_file=None, seed_content=None, seed_source=None)
        instance.update((field, value) for field, value in entry.items() if value is not None)
        if _blank_source(instance['seed_source']):
            instance['seed_source'] = None
        if instance['method'] == 'seed' and instance['name'] != DEFAULT_INSTANCE and host_source is not None \
                and all(_blank(instance[field]) for field in SEED_FIELDS):
            instance['seed_source'] = dict(host_source)
        if _blank(instance['codex_home']) and isinstance(instance['user'], str) and instance['user']:
            instance['codex_home'] = '~%s/.codex' % instance['user']
        if instance['method'] == 'seed' and all(_blank(instance[field]) for field in SEED_FIELDS) \
                and instance['name'] != DEFAULT_INSTANCE and isinstance(instance['name'], str) \
                and not _blank(variables.get('codex_auth_seed_dir')) and host:
            instance['seed_file'] = posixpath.join(variables['codex_auth_seed_dir'], host, instance['name'] + '.json')
        result.append(_complete_source(_filled(instance), host))
    if found:
        raise InstanceError(found)
    return result


def _filled(instance):
    filled = dict((field, instance.get(field)) for field in FIELDS)
    if filled['environment_files'] is None:
        filled['environment_files'] = []
    if filled['runner_environment'] is None or filled['runner_environment'] == '':
        filled['runner_environment'] = {}
    return filled


def home_key(home, expand=None):
    """CODEX_HOME as a tuple of components, for comparison only (the instance keeps the path as given: the
    default keepalive name hashes it as given). `~USER` stays a root of its own unless `expand` (a callable
    taking `~USER` and returning the home directory, or None when unknown) resolves it; on the controller
    `~ci/.codex` and `/home/ci/.codex` are then two homes, and the runner, which expands them, tells.
    None for a path that is neither absolute nor `~`-rooted, or that climbs with `..` (trusted_path refuses
    `..` on the runner; refusing it here keeps a nested home from hiding behind it). No link is resolved."""
    if not isinstance(home, str) or not home or '\0' in home:
        return None
    parts = home.split('/')
    if parts[0].startswith('~'):
        root = parts[0]
        if expand is not None:
            expanded = expand(root)
            if isinstance(expanded, str) and expanded.startswith('/'):
                return home_key(posixpath.join(expanded, *parts[1:]))
        rest = parts[1:]
    elif parts[0] == '':
        root, rest = '', parts[1:]
    else:
        return None
    if '..' in rest:
        return None
    return (root,) + tuple(part for part in rest if part not in ('', '.'))


def _is_inside(inner, outer):
    return len(inner) > len(outer) and inner[:len(outer)] == outer


def problems(instances, expand=None):
    """Everything wrong with a host's normalised instances that is known without asking the host, as
    [{code, instances, message}] (empty when they may be provisioned). `expand`: see home_key."""
    labels = _labels(instances)
    found = []
    for instance, label in zip(instances, labels):
        found.extend(_own_problems(instance, label))
    found.extend(layout_problems(instances, expand, own=False))
    # One verdict with codex_auth_seed: seeds whose content can be read are compared by their refresh tokens
    # (refresh_token_problems, the rule the module asks), so an API key seed (no refresh token) may serve several
    # instances and one refresh token in two differently written seeds is still found. Only a seed that cannot be
    # read here (a file on the controller not read yet, content that is not an auth.json) is compared as given:
    # the same content, or the same file.
    tokens, fallback = [], []
    for instance in instances:
        token, key = _seed_identity(instance)
        tokens.append(token)
        fallback.append(key)
    found.extend(refresh_token_problems(instances, tokens))
    found.extend(access_token_problems(instances))
    for field in ('seed_file', 'seed_content', 'seed_source'):
        values = [key[1] if key is not None and key[0] == field else None for key in fallback]
        for _value, indexes in _groups(values):
            found.append(_shared('runner_instance_seed_shared', labels, indexes, 'instances %%s have the same %s: '
                                 'one refresh token on two runners, and the first to refresh breaks the other with '
                                 'refresh_token_reused; give each its own seed' % field))
    return found


def seed_bytes(content):
    """A seed's content as the bytes codex_auth_seed writes: a dict (Ansible may turn JSON into one) as JSON."""
    if isinstance(content, dict):
        return json.dumps(content, indent=2).encode('utf-8')
    return str(content).encode('utf-8', 'surrogatepass')


def _seed_identity(instance):
    """(refresh-token digest, None) for a seed whose content is an auth.json (the digest None when it has no
    refresh token), else (None, (field, value)) to compare as given, or (None, None) for no seed."""
    if instance.get('method') != 'seed':
        return None, None
    content = instance.get('seed_content')
    if not _blank(content):
        try:
            return auth_model.AuthFile(seed_bytes(content)).refresh_token_digest(), None
        except (auth_model.AuthFileError, ValueError, TypeError):
            return None, ('seed_content', _hashable(content))
    source = instance.get('seed_source')
    if isinstance(source, dict):
        # Not read yet: the same secret of the same store is the same seed (its options, not how they are written).
        return None, ('seed_source', _hashable(dict((key, value) for key, value in source.items()
                                                    if key in ('store', 'secret') + _LOCATION)))
    if not _blank(instance.get('seed_file')):
        return None, ('seed_file', _hashable(instance['seed_file']))
    return None, None


# The options that say which store (not how to talk to it): two sources with the same values read one secret.
_LOCATION = ('url', 'mount_point', 'namespace', 'region', 'profile', 'endpoint_url', 'directory')


def source_problems(source, label):
    """What is wrong with an instance's seed source (a dict: store, secret, the store's options), naming the
    instance and the keys, never a value: an unknown store, an unknown key, a credential (they come from the
    controller's environment), a secret name the stores refuse."""
    if not isinstance(source, dict):
        return [problem('runner_instance_seed_source_invalid', [label], '%s: seed_source must be a dict {store, '
                        'secret, and the store\'s options} (got a %s)' % (label, type(source).__name__))]
    store = source.get('store')
    if store not in SOURCE_OPTIONS:
        return [problem('runner_instance_seed_source_invalid', [label], '%s: seed_source.store must be one of %s'
                        % (label, ', '.join(sorted(SOURCE_OPTIONS))))]
    found = []
    credentials = sorted(str(key) for key in source if key in SOURCE_CREDENTIALS)
    if credentials:
        found.append(problem('runner_instance_seed_source_credential', [label], '%s: seed_source holds %s: a store '
                             'credential never goes into a variable; the controller\'s environment gives it '
                             '(VAULT_TOKEN, or ANSIBLE_HASHI_VAULT_ROLE_ID and ANSIBLE_HASHI_VAULT_SECRET_ID; the AWS '
                             'credential chain; the play\'s vault secrets for the file store)'
                             % (label, ', '.join(credentials))))
    unknown = sorted(str(key) for key in source
                     if key not in ('store', 'secret') + SOURCE_OPTIONS[store] and key not in SOURCE_CREDENTIALS)
    if unknown:
        found.append(problem('runner_instance_seed_source_invalid', [label], '%s: seed_source has unknown keys %s '
                             '(a %s source takes store, secret, %s)' % (label, ', '.join(unknown), store,
                                                                        ', '.join(SOURCE_OPTIONS[store]))))
    try:
        _store_contract.check_name(source.get('secret'))
    except _store_contract.StoreError:
        found.append(problem('runner_instance_seed_source_invalid', [label], '%s: seed_source.secret must be a '
                             'secret name (text without blanks around, control characters, or an empty, "." or '
                             '".." segment); without one, the default name needs a valid instance name and user'
                             % label))
    if store == 'file' and (not isinstance(source.get('directory'), str) or not source['directory'].startswith('/')):
        found.append(problem('runner_instance_seed_source_invalid', [label], '%s: a file seed_source needs an '
                             'absolute directory on the controller' % label))
    return found


def layout_problems(instances, expand=None, own=True):
    """What is wrong with the names and CODEX_HOMEs alone (dicts with `name` and `codex_home`, as a module
    that only reads gets them): an invalid name or CODEX_HOME (with `own`), one name or one CODEX_HOME on two
    instances, a CODEX_HOME inside another's."""
    labels = _labels(instances)
    found = []
    if own:
        for instance, label in zip(instances, labels):
            found.extend(_layout_own(instance, label))
    # Valid names only: an invalid one is reported above and never repeated back.
    names = [instance['name'] if _valid_name(instance['name']) else None for instance in instances]
    for name, indexes in _groups(names):
        found.append(_shared('runner_instance_name_duplicate', labels, indexes, 'instances %%s have the same name '
                             '%s; each needs its own (it names its keepalive and report row)' % name))
    keys = [home_key(instance['codex_home'], expand) for instance in instances]
    for _key, indexes in _groups(keys):
        found.append(_shared('runner_instance_home_duplicate', labels, indexes, 'instances %s have the same '
                             'CODEX_HOME; each runner needs its own, or the first to refresh breaks the others'))
    for field in _runner_environment.FIELDS:
        places = [_environment_place(instance, field) for instance in instances]
        for _place, indexes in _groups(places):
            found.append(_shared('runner_instance_environment_shared', labels, indexes, 'instances %%s have the same '
                                 'runner_environment.%s; one runner environment sets one CODEX_HOME, so give each '
                                 'instance its own' % field))
    for i, outer in enumerate(keys):
        for j, inner in enumerate(keys):
            if outer is not None and inner is not None and _is_inside(inner, outer):
                found.append(problem('runner_instance_home_nested', [labels[j], labels[i]],
                                     'the CODEX_HOME of instance %s lies inside that of instance %s; give each a '
                                     'directory of its own, side by side' % (labels[j], labels[i])))
    return found


def _environment_place(instance, field):
    spec = instance.get('runner_environment')
    value = spec.get(field) if isinstance(spec, dict) else None
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def refresh_token_problems(instances, tokens):
    """The shared-refresh-token rule for seeds read where they are written (a module given several instances'
    seeds): `tokens` holds, for each instance in order, a digest of its seed's refresh token, or None (no seed,
    or one without a refresh token: an API key does not rotate). Two instances with one refresh token are
    refused, naming the instances, never the token."""
    labels = _labels(instances)
    return [_shared('runner_instance_seed_shared', labels, indexes, 'instances %s have seeds with the same refresh '
                    'token: one refresh token on two runners, and the first to refresh breaks the other with '
                    'refresh_token_reused; give each its own seed')
            for _token, indexes in _groups(list(tokens))]


def access_token_text(instance):
    """The access token an `access_token` instance logs in with, as Codex reads it from stdin (trimmed), or None
    (another method, or no usable token: _own_problems says so)."""
    token = instance.get('access_token') if instance.get('method') == 'access_token' else None
    if not isinstance(token, str) or not token.strip():
        return None
    return token.strip()


def access_token_problems(instances):
    """One access token on two `access_token` instances, refused naming the instances, never the token: it is
    rotated by revoking it (revocation is immediate), which would cut off every runner still holding it, and one
    runner's token must be revocable alone. A token that is only white space is no token (Codex trims it)."""
    labels = _labels(instances)
    found = [problem('runner_instance_credential_missing', [label], '%s uses the access_token method but its '
                     'access_token is empty' % label)
             for instance, label in zip(instances, labels)
             if instance.get('method') == 'access_token' and isinstance(instance.get('access_token'), str)
             and instance['access_token'] and not instance['access_token'].strip()]
    found.extend(_shared('runner_instance_access_token_shared', labels, indexes, 'instances %s have the same '
                         'access_token: rotating it revokes it for all of them at once; give each its own token')
                 for _token, indexes in _groups([access_token_text(instance) for instance in instances]))
    return found


def labels(instances):
    """How each instance is named in messages (see _labels), for a module that names an instance in its own."""
    return _labels(instances)


def _hashable(value):
    # A seed given as a dict (Ansible may turn JSON into one) compares by content.
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=repr)


def _valid_name(name):
    return isinstance(name, str) and keepalive_status.INSTANCE_NAME.fullmatch(name) is not None


def _valid_user(user):
    return isinstance(user, str) and bool(user) and user not in ('.', '..') and not user.startswith('-') \
        and not any(char in _USER_FORBIDDEN for char in user)


def _labels(instances):
    """How each instance is named in messages: its name, with its position when several share it, or only
    its position when the name is not one (an invalid name is not repeated back)."""
    names = [instance.get('name') if _valid_name(instance.get('name')) else None for instance in instances]
    return [('instance %d' % (index + 1)) if name is None
            else name if names.count(name) == 1 else '%s (instance %d)' % (name, index + 1)
            for index, name in enumerate(names)]


def _groups(values):
    """(value, [indexes]) for each value other than None that several positions share, in order."""
    groups = {}
    for index, value in enumerate(values):
        if value is not None:
            groups.setdefault(value, []).append(index)
    return [(value, indexes) for value, indexes in groups.items() if len(indexes) > 1]


def _shared(code, labels, indexes, message):
    names = [labels[index] for index in indexes]
    return problem(code, names, message % _names(names))


def _layout_own(instance, label):
    found = []
    if not _valid_name(instance['name']):
        found.append(problem('runner_instance_name_invalid', [label], '%s needs a name of 1 to 32 characters a-z, '
                             '0-9, _ and -, starting with a letter or digit (it names its keepalive, systemd units and '
                             'report row)' % label))
    if home_key(instance['codex_home']) is None:
        found.append(problem('runner_instance_home_invalid', [label], '%s needs an absolute CODEX_HOME (or ~USER/...) '
                             'without ..' % label))
    for message in _runner_environment.spec_problems(instance.get('runner_environment'), instance.get('codex_home')):
        found.append(problem('runner_instance_environment_invalid', [label], '%s: %s' % (label, message)))
    return found


def _own_problems(instance, label):
    found = _layout_own(instance, label)
    if not _valid_user(instance['user']):
        found.append(problem('runner_instance_user_invalid', [label], '%s needs a runner user (codex_auth_user or '
                             'user): a name without /, :, spaces or control characters' % label))
    if not isinstance(instance['group'], (str, type(None))):
        found.append(problem('runner_instance_field', [label], '%s: group must be a string' % label))
    method = instance['method']
    if method not in METHODS:
        found.append(problem('runner_instance_method_invalid', [label], '%s: method must be one of %s'
                             % (label, ', '.join(METHODS))))
    elif method == 'seed':
        given = [field for field in SEED_FIELDS if not _blank(instance.get(field))]
        if len(given) > 1:
            found.append(problem('runner_instance_field', [label], '%s sets %s; give one'
                                 % (label, ' and '.join(given))))
        elif not given:
            found.append(problem('runner_instance_credential_missing', [label], '%s uses the seed method but has '
                                 'no seed_file, seed_content or seed_source' % label))
        elif given == ['seed_source']:
            found.extend(source_problems(instance['seed_source'], label))
    elif _blank(instance[method]) or not isinstance(instance[method], str):
        found.append(problem('runner_instance_credential_missing', [label], '%s uses the %s method but has no %s'
                             % (label, method, method)))
    files = instance['environment_files']
    if not isinstance(files, list) or not all(isinstance(path, str) and path for path in files):
        found.append(problem('runner_instance_field', [label], '%s: environment_files must be a list of paths'
                             % label))
    return found


def user_problems(instances, lookup):
    """The instances whose user the host does not have (an instance without a `user`, or whose user is None, has
    nothing to look up). `lookup(user)` returns the user's entry (pwd.getpwnam,
    or a stand-in), and raises KeyError (or returns None) for an unknown one. A numeric user is looked up as
    given too: the lookup decides whether it means a uid."""
    unknown = {}
    labels = _labels(instances)
    for index, instance in enumerate(instances):
        user = instance.get('user')
        if not _valid_user(user):
            # problems() reports it; a name with control characters is not repeated back.
            continue
        try:
            known = lookup(user) is not None
        except (KeyError, ValueError, OverflowError):
            known = False
        if not known:
            unknown.setdefault(user, []).append(labels[index])
    return [problem('runner_instance_user_unknown', names, 'instances %s run as user %s, which does not exist on '
                    'this host; create it first (codex_auth_create_user)' % (_names(names), user))
            if len(names) > 1 else
            problem('runner_instance_user_unknown', names, 'instance %s runs as user %s, which does not exist on this '
                    'host; create it first (codex_auth_create_user)' % (names[0], user))
            for user, names in unknown.items()]


def check(instances, lookup=None, expand=None):
    """Raise InstanceError naming every problem; with `lookup`, unknown users too. The instances, when none."""
    found = problems(instances, expand)
    if lookup is not None:
        found.extend(user_problems(instances, lookup))
    if found:
        raise InstanceError(found)
    return instances


def keepalive_name(instance):
    """The keepalive name of a normalised instance: keepalive_status.keepalive_name, the one rule, asked with
    the instance (the default instance keeps the single-runner name)."""
    return keepalive_status.keepalive_name(instance['user'], instance['codex_home'], instance['name'])


def public(instance):
    """The instance without its secret fields (for a report or a message): which ones are set, not what."""
    shown = dict((field, value) for field, value in instance.items() if field not in SECRET_FIELDS)
    shown.update(('has_%s' % field, not _blank(instance.get(field))) for field in SECRET_FIELDS)
    return shown


# What the codex_keepalive role takes from an instance; an instance may carry the rest of FIELDS (the normalised
# instances of the codex_auth role), which it ignores.
KEEPALIVE_FIELDS = ('name', 'user', 'codex_home')


def keepalives(instances):
    """The keepalives of a host's runner instances, for the codex_keepalive role: one per instance whose method
    refreshes auth.json (`seed`; an instance without `method` counts as one), as [{name, user, codex_home,
    keepalive_name, cron_name, unit_name, replaces}] in the order given (cron_name and unit_name: keepalive_status's
    cron_file_name and unit_name of keepalive_name; replaces: the single-runner keepalive names of the same user and
    CODEX_HOME, which the instance's keepalive replaces). `api_key` and `access_token` instances have nothing to refresh.
    `home` is accepted for `codex_home`. Raises InstanceError, naming the instances and field names (never a value of a
    secret field), for a list that cannot be read, an invalid name, user or CODEX_HOME, one name or one CODEX_HOME
    on two instances, a CODEX_HOME inside another's, or two keepalives that would get one name."""
    if not isinstance(instances, list) or not instances:
        raise InstanceError([problem('runner_instances_not_list', [], 'the runner instances must be a non-empty list '
                                     'of {name, user, codex_home} (got a %s)' % type(instances).__name__)])
    found, entries = [], []
    for _label, item in _read_entries(instances, 'the runner instances must be a list', found):
        entries.append(dict((field, item.get(field)) for field in KEEPALIVE_FIELDS + ('method',)))
    if found:
        raise InstanceError(found)
    labels = _labels(entries)
    for entry, label in zip(entries, labels):
        if not _valid_user(entry['user']):
            found.append(problem('runner_instance_user_invalid', [label], '%s needs a runner user: a name without /, '
                                 ':, spaces or control characters' % label))
        if entry['method'] is not None and entry['method'] not in METHODS:
            found.append(problem('runner_instance_method_invalid', [label], '%s: method must be one of %s'
                                 % (label, ', '.join(METHODS))))
    found.extend(layout_problems(entries))
    if found:
        raise InstanceError(found)
    result = [dict((field, entry[field]) for field in KEEPALIVE_FIELDS) for entry in entries
              if entry['method'] in (None, 'seed')]
    for item in result:
        item['keepalive_name'] = keepalive_name(item)
        # The one rule for each (keepalive_status.cron_file_name, unit_name): cron silently skips /etc/cron.d files
        # with other characters in their names (a user `ci.runner`), systemd refuses such unit names.
        item['cron_name'] = keepalive_status.cron_file_name(item['keepalive_name'])
        item['unit_name'] = keepalive_status.unit_name(item['keepalive_name'])
    # What each instance keepalive replaces (README: moving to runner instances): the keepalive the single-runner
    # variables gave the same user and CODEX_HOME (keepalive_status.keepalive_name without an instance), and the one
    # every keepalive of the user had before names carried a hash (codex-keepalive-USER, the default CODEX_HOME's),
    # never a keepalive this list installs itself. The role removes one only when its script proves it: ours, not
    # an instance's, for this user and this CODEX_HOME (the detect task of the role's tasks/main.yml).
    installed = set(item['keepalive_name'] for item in result)
    for item in result:
        single = (keepalive_status.keepalive_name(item['user'], item['codex_home']),
                  keepalive_status.keepalive_name(item['user'], '~%s/.codex' % item['user']))
        item['replaces'] = [name for index, name in enumerate(single)
                            if name not in installed and name not in single[:index]]
    # The name rule keeps the instances' names apart (the hash of user and instance); a default instance named from
    # its CODEX_HOME is checked too, and so are the cron file and unit names, so no two keepalives of the host are one.
    shown = [item['name'] for item in result]
    for field in ('keepalive_name', 'cron_name', 'unit_name'):
        for name, indexes in _groups([item[field] for item in result]):
            found.append(_shared('runner_instance_keepalive_duplicate', shown, indexes,
                                 'instances %%s would get one keepalive, %s; rename one' % name))
    if found:
        raise InstanceError(found)
    return result
