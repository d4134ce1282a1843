"""Hostile input through every module: a corpus of broken, oversized, malicious or impossible
auth.json files, config.toml files, paths, users, file types, file systems and option values.

Each case runs the real modules as Ansible runs them on a host (a fresh Python process per
module run, arguments from a file; no AnsiballZ), and the auth.json cases also in-process and
against the real Codex CLI. For every module run:
- it ends with a clear message (a failure `msg`, or a verify problem code), in JSON, within a
  time limit, and neither stdout nor stderr holds `Traceback` or a secret of the case;
- nothing is written: the case's whole tree (CODEX_HOME and everything beside it, such as the
  target of a planted symlink) is identical before and after, and so are /etc/passwd, /etc/group
  and the root directory (where a relative codex_home would land). The only exceptions are named
  per case (Codex's empty 0600 lock files, when a seed run keeps an existing file; the fix a
  codex_config run is asked to make).
"""

import json
import os
import re
import socket
import stat
import subprocess
import sys
import time

import pytest

from hardening_support import (TRACEBACK, SeedWorker, codex_binary, module_env, report_figures, run_module_forked,
                               run_module_process, runner_ids, runner_owner, snapshot_diff, tree_snapshot)
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import health
from support import fake_credentials
from support.private_files import write_private
from support.require import require

STORE = 'cli_auth_credentials_store = "file"\n'
FOLLOW = ('/etc/passwd', '/etc/group')
LOCKS = ('auth.lock', 'auth.json.lock')
# What Codex itself leaves in CODEX_HOME when the login module does run it (0700 / 0600, no token).
CODEX_LOGIN_LOG = ('log', 'codex-login.log')
BIG = 50 * 1024 * 1024
RELATIVE = 'codexops-relative-home/.codex'


class Ctx:
    """One case's directory: CODEX_HOME at <dir>/home/.codex, anything else beside it."""

    def __init__(self, root, name, backend):
        self.dir = root / name
        self.dir.mkdir()
        self.home = self.dir / 'home' / '.codex'
        self.home.parent.mkdir()
        self.uid, self.gid = runner_ids()
        doc, secrets = fake_credentials.chatgpt_seed(tag='hostile')
        self.doc = doc
        self.valid = fake_credentials.dumps(doc).encode()
        other, other_secrets = fake_credentials.chatgpt_seed(tag='hostile-new', account_id='acct-new')
        self.new_seed = fake_credentials.dumps(other).encode()  # what a seed run would write
        self.secrets = list(secrets) + list(other_secrets)
        self.token = fake_credentials.personal_access_token()
        backend.allow_access_token(self.token)
        self.secrets.append(self.token)
        self.backend = backend
        self.cleanups = []

    def private(self, path, data, owner=True):
        write_private(path, data)
        if owner:
            os.chown(str(path), self.uid, self.gid)
        return str(path)

    def make_home(self, auth=None, config=STORE, mode=0o700, home=None):
        home = home or self.home
        home.mkdir(mode=mode, exist_ok=True)
        os.chmod(str(home), mode)
        os.chown(str(home), self.uid, self.gid)
        if auth is not None:
            self.private(home / 'auth.json', auth)
        if config is not None:
            self.private(home / 'config.toml', config.encode() if isinstance(config, str) else config)
        return home

    def seed_file(self, data, name='seed.json'):
        return self.private(self.dir / name, data, owner=False)

    def readonly_home(self, auth):
        mount = self.dir / 'ro'
        mount.mkdir()
        proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=8m,mode=0755', 'tmpfs', str(mount)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        require(proc.returncode == 0, 'cannot mount a tmpfs here (root with CAP_SYS_ADMIN needed, as in CI): %s'
                % proc.stdout.decode(errors='replace').strip())
        self.cleanups.append(lambda: subprocess.run(['umount', '-l', str(mount)], check=False))
        self.home = mount / '.codex'
        self.make_home(auth=auth)
        subprocess.run(['mount', '-o', 'remount,ro', str(mount)], check=True)

    def immutable(self, path):
        proc = subprocess.run(['chattr', '+i', str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              check=False)
        require(proc.returncode == 0, 'cannot make a file immutable here (root needed, as in CI): %s'
                % proc.stdout.decode(errors='replace').strip())
        self.cleanups.append(lambda: subprocess.run(['chattr', '-i', str(path)], check=False))

    # -- module arguments --------------------------------------------------------------------------
    def verify(self, **extra):
        args = {'codex_home': str(self.home), 'owner': runner_owner()}
        args.update(extra)
        return 'codex_auth_verify', args

    def seed(self, replace='always', content=None, **extra):
        args = {'codex_home': str(self.home), 'owner': runner_owner(), 'replace': replace}
        data = self.new_seed if content is None else content
        try:
            text = data.decode('utf-8')
            usable_as_option = True
        except UnicodeDecodeError:
            usable_as_option = False
        if 'src' not in extra:
            if usable_as_option:
                args['content'] = text
            else:
                args['src'] = self.seed_file(data)
        args.update(extra)
        return 'codex_auth_seed', args

    def config(self, settings=None, **extra):
        args = {'codex_home': str(self.home), 'owner': runner_owner(),
                'settings': settings or {'cli_auth_credentials_store': 'file', 'model': 'o3'}}
        args.update(extra)
        return 'codex_config', args

    def login(self, check=False, **extra):
        args = {'codex_home': str(self.home), 'owner': runner_owner(), 'access_token': self.token,
                'codex_path': codex_binary(), '_ansible_check_mode': check}
        args.update(extra)
        return 'codex_access_token_login', args


# -- expectations ---------------------------------------------------------------------------------

def fails(pattern):
    def check(rc, result):
        assert rc != 0 and result.get('failed'), 'expected a failure, got %r' % result
        assert re.search(pattern, result['msg']), 'message %r does not match %r' % (result['msg'], pattern)
    check.describe = 'fails: %s' % pattern
    return check


def problem(code, warning=None):
    def check(rc, result):
        assert rc == 0, result
        codes = [item['code'] for item in result['problems']]
        assert code in codes, 'expected problem %s, got %s' % (code, codes)
        assert all(item['message'] for item in result['problems'])
        if warning:
            assert warning in [item['code'] for item in result['health_warnings']], result['health_warnings']
    check.describe = 'problem: %s' % code
    return check


def kept(code):
    def check(rc, result):
        assert rc == 0 and result['action'] == 'kept', result
        assert code in [item['code'] for item in result['auth']['problems']], result['auth']['problems']
    check.describe = 'kept, reporting %s' % code
    return check


def predicted():
    def check(rc, result):
        assert rc == 0 and result['changed'] and result['logged_in'], result
    check.describe = 'check mode predicts a login'
    return check


def succeeds(warning=None):
    def check(rc, result):
        assert rc == 0 and not result.get('failed'), result
        if warning:
            assert re.search(warning, json.dumps(result.get('warnings', []))), result.get('warnings')
    check.describe = 'succeeds'
    return check


# -- the corpus -----------------------------------------------------------------------------------

def mutate(ctx, change):
    doc = json.loads(json.dumps(ctx.doc))
    change(doc)
    return json.dumps(doc, indent=2).encode()


def _set(path, value):
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _delete(path):
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


# auth.json contents: name -> (bytes from ctx, verify problem code)
AUTH_CONTENTS = {
    'truncated_json': (lambda c: c.valid[:len(c.valid) // 2], 'auth_not_json'),
    'empty_file': (lambda c: b'', 'auth_not_json'),
    'whitespace_only': (lambda c: b' \n\t\n', 'auth_not_json'),
    'non_utf8_bytes': (lambda c: b'{"auth_mode": "chatgpt", "x": "\xff\xfe\xc0"}', 'auth_not_json'),
    'utf8_bom': (lambda c: b'\xef\xbb\xbf' + c.valid, 'auth_not_json'),
    'json_array': (lambda c: b'[' + c.valid + b']', 'auth_not_json'),
    'json_string': (lambda c: json.dumps(c.valid.decode()).encode(), 'auth_not_json'),
    'json_null': (lambda c: b'null', 'auth_not_json'),
    'nan_literal': (lambda c: b'{"x": NaN, ' + c.valid.lstrip()[1:], 'auth_not_json'),
    'trailing_garbage': (lambda c: c.valid + b'}}', 'auth_not_json'),
    'nested_100k_deep': (lambda c: b'{"x": ' + b'[' * 100000 + b']' * 100000 + b', ' + c.valid.lstrip()[1:],
                         'auth_not_json'),
    'content_50mb': (lambda c: c.valid[:-2] + b', "padding": "' + b'A' * BIG + b'"}', 'auth_too_large'),
    'auth_mode_api_key': (lambda c: mutate(c, _set(['auth_mode'], 'api_key')), 'auth_mode_invalid'),
    'auth_mode_unknown': (lambda c: mutate(c, _set(['auth_mode'], 'chatgpt-enterprise')), 'auth_mode_invalid'),
    'auth_mode_number': (lambda c: mutate(c, _set(['auth_mode'], 1)), 'auth_mode_invalid'),
    'apikey_without_key': (lambda c: b'{"auth_mode": "apikey", "OPENAI_API_KEY": ""}', 'credential_missing'),
    'api_key_not_string': (lambda c: mutate(c, _set(['OPENAI_API_KEY'], ['sk-x'])), 'auth_invalid'),
    'refresh_token_empty': (lambda c: mutate(c, _set(['tokens', 'refresh_token'], '')), 'refresh_token_missing'),
    'refresh_token_missing': (lambda c: mutate(c, _delete(['tokens', 'refresh_token'])), 'refresh_token_missing'),
    'refresh_token_null': (lambda c: mutate(c, _set(['tokens', 'refresh_token'], None)), 'auth_invalid'),
    'refresh_token_number': (lambda c: mutate(c, _set(['tokens', 'refresh_token'], 12345)), 'auth_invalid'),
    'tokens_null': (lambda c: mutate(c, _set(['tokens'], None)), 'refresh_token_missing'),
    'tokens_not_object': (lambda c: mutate(c, _set(['tokens'], 'rt-FAKE-flat')), 'auth_invalid'),
    'tokens_without_access_token': (lambda c: mutate(c, _delete(['tokens', 'access_token'])), 'auth_invalid'),
    'account_id_number': (lambda c: mutate(c, _set(['tokens', 'account_id'], 7)), 'auth_invalid'),
    'id_token_not_jwt': (lambda c: mutate(c, _set(['tokens', 'id_token'], 'not-a-jwt')), 'id_token_invalid'),
    'id_token_two_parts': (lambda c: mutate(c, _set(['tokens', 'id_token'], 'eyJhbGciOiJub25lIn0.eyJ9')),
                           'id_token_invalid'),
    'id_token_payload_not_json': (lambda c: mutate(c, _set(['tokens', 'id_token'], 'eyJh.bm90LWpzb24.c2ln')),
                                  'id_token_invalid'),
    'id_token_payload_array': (lambda c: mutate(c, _set(['tokens', 'id_token'], 'eyJh.WzFd.c2ln')),
                               'id_token_invalid'),
    'id_token_missing': (lambda c: mutate(c, _delete(['tokens', 'id_token'])), 'id_token_invalid'),
    'id_token_lone_surrogate_claim': (
        lambda c: mutate(c, _set(['tokens', 'id_token'], fake_credentials.make_jwt({}).split('.', maxsplit=1)[0] + '.'
                                 + fake_credentials.b64url(b'{"email": "\\ud800"}') + '.c2ln')), 'id_token_invalid'),
    'last_refresh_without_zone': (lambda c: mutate(c, _set(['last_refresh'], '2025-01-01 10:00:00')),
                                  'last_refresh_invalid'),
    'last_refresh_number': (lambda c: mutate(c, _set(['last_refresh'], 1700000000)), 'last_refresh_invalid'),
    'last_refresh_feb_30': (lambda c: mutate(c, _set(['last_refresh'], '2026-02-30T10:00:00Z')),
                            'last_refresh_invalid'),
    'last_refresh_offset_99h': (lambda c: mutate(c, _set(['last_refresh'], '2026-01-01T00:00:00+99:00')),
                                'last_refresh_invalid'),
    'last_refresh_offset_99min': (lambda c: mutate(c, _set(['last_refresh'], '2026-01-01T00:00:00+00:99')),
                                  'last_refresh_invalid'),
    'duplicate_tokens_field': (lambda c: b'{"tokens": {}, ' + c.valid.lstrip()[1:], 'auth_invalid'),
    'duplicate_refresh_token': (lambda c: c.valid.replace(b'"refresh_token"',
                                                          b'"refresh_token": "rt-x", "refresh_token"', 1),
                                'auth_invalid'),
    'lone_surrogate_refresh_token': (lambda c: c.valid.replace(b'"refresh_token": "', b'"refresh_token": "\\ud800', 1),
                                     'auth_not_json'),
    'personal_access_token_empty': (lambda c: b'{"OPENAI_API_KEY": null, "personal_access_token": ""}',
                                    'credential_missing'),
}

# Where Codex's own verdict (`codex login status` exits 0 or not) and the model's (the file loads
# or not) differ on purpose:
ORACLE_EXCEPTIONS = {
    # refused by size before anything is parsed; Codex would read it
    'content_50mb',
    # Python's parser stops at ~1000 levels; Codex skips an unknown field of any depth (a real
    # auth.json nests three levels)
    'nested_100k_deep',
    # Codex loads these and then fails (`API key auth is missing a key`, an online check of an
    # empty token); the model loads them and reports credential_missing
    'apikey_without_key', 'personal_access_token_empty',
    # Codex refuses a file without tokens.refresh_token at load; the model loads it and reports
    # refresh_token_missing (a documented problem code the reseed playbook acts on)
    'refresh_token_missing',
}


def content_case(name):
    make, code = AUTH_CONTENTS[name]

    def build(ctx):
        data = make(ctx)
        ctx.make_home(auth=data)
        seed_code = code if code not in ('credential_missing',) else 'auth_mode_unexpected|credential_missing'
        existing = [(ctx.seed(replace='never'), kept(code), LOCKS), (ctx.login(check=True), predicted(), ())]
        if code == 'auth_too_large':
            # Not read at all beyond the limit: the seed run and the login refuse to judge it.
            existing = [(ctx.seed(replace='never'), fails(r'auth.json is larger than'), LOCKS),
                        (ctx.login(check=True), fails(r'auth.json is larger than'), ())]
        return [
            (ctx.verify(), problem(code), ()),
            (ctx.seed(content=data),
             fails(r'^the seed is not a usable auth.json \((%s)\b.*Nothing was written' % seed_code), ()),
        ] + existing
    return build


def _auth_symlink(target):
    def build(ctx):
        home = ctx.make_home()
        if target == 'passwd':
            os.symlink('/etc/passwd', str(home / 'auth.json'))
        elif target == 'dangling':
            os.symlink(str(ctx.dir / 'nowhere.json'), str(home / 'auth.json'))
        return [
            (ctx.verify(), problem('auth_symlink'), ()),
            (ctx.seed(), fails(r'auth.json is a symlink; remove it'), ()),
            (ctx.seed(replace='never'), fails(r'auth.json is a symlink'), ()),
            (ctx.login(), fails(r'auth.json is a symlink'), ()),
        ]
    return build


def every_module_refuses(ctx, code, pattern, seed_pattern=None):
    """verify reports `code`; seed, config and login fail saying `pattern` (seed: `seed_pattern`)."""
    return [
        (ctx.verify(), problem(code), ()),
        (ctx.seed(), fails(seed_pattern or pattern), ()),
        (ctx.config(), fails(pattern), ()),
        (ctx.login(), fails(pattern), ()),
    ]


def _home_symlink(ctx):
    real = ctx.make_home(auth=ctx.valid, home=ctx.dir / 'real-codex')
    os.symlink(str(real), str(ctx.home))
    return every_module_refuses(ctx, 'codex_home_symlink', r'is a symlink; point codex_home',
                                seed_pattern=r'is a symlink; point codex_home at the real directory')


def _home_is_file(ctx):
    ctx.private(ctx.home, ctx.valid)
    return every_module_refuses(ctx, 'codex_home_not_dir', r'not a directory',
                                seed_pattern=r'exists but is a regular file, not a directory')


def _hard_link(ctx):
    home = ctx.make_home(auth=ctx.valid)
    os.link(str(home / 'auth.json'), str(ctx.dir / 'other-copy.json'))
    return [
        (ctx.verify(), problem('auth_hardlink'), ()),
        (ctx.seed(), fails(r'has 2 hard links'), ()),
        (ctx.login(), fails(r'has 2 hard links'), ()),
    ]


def _special(kind):
    def build(ctx):
        home = ctx.make_home()
        path = str(home / 'auth.json')
        if kind == 'fifo':
            os.mkfifo(path, 0o600)
        elif kind == 'directory':
            os.mkdir(path, 0o700)
        else:
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(path)
            sock.close()
        word = {'fifo': 'FIFO', 'directory': 'directory', 'socket': 'socket'}[kind]
        return [
            (ctx.verify(), problem('auth_not_regular'), ()),
            (ctx.seed(), fails(r'is a %s, not a regular file' % word), ()),
            (ctx.login(), fails(r'is a %s, not a regular file' % word), ()),
        ]
    return build


def _no_such_account(ctx, option, kind, modules):
    """`option` names a user or group (`kind`) this host lacks: the first of `modules` fails naming
    it, the others saying it does not exist on this host."""
    ctx.make_home(auth=ctx.valid)
    name = 'codexops-no-such-%s' % kind
    args = {option: name}
    first = getattr(ctx, modules[0])
    return [(first(**args), fails(r"%s '%s' does not exist" % (kind, name)), ())] + [
        (getattr(ctx, module)(**args), fails(r'does not exist on this host'), ()) for module in modules[1:]]


def _missing_owner(ctx):
    return _no_such_account(ctx, 'owner', 'user', ('verify', 'seed', 'config', 'login'))


def _missing_group(ctx):
    return _no_such_account(ctx, 'group', 'group', ('seed', 'config', 'login'))


def _relative_home(ctx):
    ctx.home = type(ctx.home)(RELATIVE)
    return every_module_refuses(ctx, 'codex_home_relative', r'must be an absolute path')


def _nul_in_home(ctx):
    ctx.make_home(auth=ctx.valid)
    ctx.home = type(ctx.home)(str(ctx.home) + '\x00evil')
    return every_module_refuses(ctx, 'codex_home_not_dir', r'NUL byte')


def _read_only_fs(ctx):
    ctx.readonly_home(ctx.valid)
    return [
        (ctx.verify(), succeeds(), ()),
        (ctx.seed(), fails(r'Read-only file system'), ()),
        (ctx.config(), fails(r'Read-only file system'), ()),
        (ctx.login(), fails(r'codex login --with-access-token failed|Read-only file system'), ()),
    ]


def _immutable_auth(ctx):
    home = ctx.make_home(auth=ctx.valid)
    ctx.immutable(home / 'auth.json')
    return [
        (ctx.verify(), succeeds(), ()),
        (ctx.seed(), fails(r'Operation not permitted'), LOCKS),
        (ctx.login(), fails(r'codex login --with-access-token failed'), LOCKS + CODEX_LOGIN_LOG),
    ]


def _config(text, verify_code, config_pattern):
    def build(ctx):
        data = text if isinstance(text, bytes) else text.encode()
        ctx.make_home(auth=ctx.valid, config=data)
        if config_pattern is None:
            # A value Codex rejects, in a document that parses: codex_config asked to set the key
            # repairs it (the one file it was asked to change).
            return [(ctx.verify(), problem(verify_code), ()),
                    (ctx.config({'cli_auth_credentials_store': 'file'}), succeeds(), ('config.toml',))]
        return [
            (ctx.verify(), problem(verify_code), ()),
            (ctx.config(), fails(config_pattern), ()),
            (ctx.seed(config_settings={'cli_auth_credentials_store': 'file'}), fails(config_pattern), ()),
        ]
    return build


def _config_special(kind):
    def build(ctx):
        home = ctx.make_home(auth=ctx.valid, config=None)
        path = str(home / 'config.toml')
        if kind == 'symlink':
            os.symlink('/etc/passwd', path)
            pattern = r'config.toml is a symlink'
        elif kind == 'fifo':
            os.mkfifo(path, 0o600)
            pattern = r'is a FIFO, not a regular file'
        else:
            ctx.private(path, STORE.encode() + b'# ' + b'x' * BIG + b'\n')
            pattern = r'is larger than'
        return [
            (ctx.verify(), problem('config_invalid'), ()),
            (ctx.config(), fails(pattern), ()),
            (ctx.seed(config_settings={'cli_auth_credentials_store': 'file'}), fails(pattern), ()),
        ]
    return build


def _store_key_in_table(ctx):
    ctx.make_home(auth=ctx.valid, config='[profiles.ci]\ncli_auth_credentials_store = "file"\n')
    return [
        (ctx.verify(), problem('store_not_file', 'store_key_in_table'), ()),
        # Asked to set the key, codex_config puts it at the top level and warns about the other.
        (ctx.config({'cli_auth_credentials_store': 'file'}), succeeds(r'also appears inside \[profiles.ci\]'),
         ('config.toml',)),
    ]


def _home_0755_invalid_config(ctx):
    ctx.make_home(auth=ctx.valid, config='model = \n', mode=0o755)
    return [
        (ctx.seed(config_settings={'cli_auth_credentials_store': 'file'}), fails(r'is not valid TOML'), ()),
        (ctx.config(), fails(r'is not valid TOML'), ()),
    ]


def _settings(settings, pattern):
    def build(ctx):
        ctx.make_home(auth=ctx.valid)
        return [
            (ctx.config(settings), fails(pattern), ()),
            (ctx.seed(config_settings=settings), fails(pattern), ()),
        ]
    return build


def _token(token, pattern):
    def build(ctx):
        ctx.make_home(auth=ctx.valid)
        return [
            (ctx.login(access_token=token), fails(pattern), ()),
            (ctx.login(access_token=token, check=True), fails(pattern), ()),
        ]
    return build


def _codex_path(path, pattern):
    def build(ctx):
        ctx.make_home(auth=ctx.valid)
        return [(ctx.login(codex_path=path), fails(pattern), ())]
    return build


def _src(kind):
    def build(ctx):
        ctx.make_home(auth=ctx.valid)
        src = ctx.dir / 'seed.json'
        if kind == 'fifo':
            os.mkfifo(str(src), 0o600)
            pattern = r'is a FIFO, not a regular file'
        elif kind == 'symlink':
            # A link the runner user could have made (root's own links in root's directories are followed).
            os.symlink('/etc/passwd', str(src))
            os.lchown(str(src), 65534, 65534)
            pattern = r'seed.json is a symlink a non-root user could have made'
        elif kind == 'big':
            ctx.private(src, ctx.valid[:-2] + b', "padding": "' + b'A' * BIG + b'"}', owner=False)
            pattern = r'is larger than'
        elif kind == 'missing':
            pattern = r'does not exist\. Nothing was written'
        else:
            ctx.private(src, b'\xff\xfe\x00{', owner=False)
            pattern = r'auth_not_json: auth.json is not UTF-8 text'
        return [(ctx.seed(src=str(src)), fails(pattern), ())]
    return build


def _content_option(value, pattern):
    def build(ctx):
        ctx.make_home(auth=ctx.valid)
        module, args = ctx.seed()
        args['content'] = value
        return [((module, args), fails(pattern), ())]
    return build


def _env_file(kind):
    def build(ctx):
        ctx.make_home(auth=ctx.valid)
        if kind == 'fifo':
            path = str(ctx.dir / 'runner.env')
            os.mkfifo(path, 0o600)
        else:
            path = str(ctx.dir / 'runner.env') + '\x00.env'
        return [(ctx.verify(environment_files=[path]), _env_warning(), ())]
    return build


def _env_warning():
    def check(rc, result):
        assert rc == 0 and 'environment_file_unreadable' in [w['code'] for w in result['health_warnings']], result
    check.describe = 'warns environment_file_unreadable'
    return check


PATH_CASES = {
    'auth_symlink_to_etc_passwd': _auth_symlink('passwd'),
    'auth_dangling_symlink': _auth_symlink('dangling'),
    'codex_home_symlink': _home_symlink,
    'codex_home_is_a_file': _home_is_file,
    'codex_home_relative': _relative_home,
    'codex_home_nul_byte': _nul_in_home,
    'auth_hard_link': _hard_link,
    'auth_fifo': _special('fifo'),
    'auth_directory': _special('directory'),
    'auth_socket': _special('socket'),
    'owner_missing': _missing_owner,
    'group_missing': _missing_group,
    'read_only_filesystem': _read_only_fs,
    'auth_immutable': _immutable_auth,
    'config_invalid_toml': _config('model = "o3"\n[profiles\n', 'config_invalid', r'is not valid TOML'),
    'config_non_utf8': _config(b'model = "\xff"\n', 'config_invalid', r'is not UTF-8 text'),
    'config_duplicate_key': _config(STORE + STORE, 'config_invalid', r'is not valid TOML'),
    'config_bogus_store': _config('cli_auth_credentials_store = "bogus"\n', 'config_invalid', None),
    'config_symlink_to_etc_passwd': _config_special('symlink'),
    'config_fifo': _config_special('fifo'),
    'config_50mb': _config_special('big'),
    'store_key_under_a_table': _store_key_in_table,
    'home_0755_with_invalid_config': _home_0755_invalid_config,
    'settings_bogus_store': _settings({'cli_auth_credentials_store': 'bogus'}, r'must be one of file, keyring'),
    'settings_table_value': _settings({'model': {'a': 1}}, r'a table is not a top-level setting'),
    'settings_dotted_key': _settings({'profiles.ci.model': 'o3'}, r'must be bare TOML keys'),
    'settings_lone_surrogate': _settings({'model': 'o3\ud800'}, r'not valid Unicode text'),
    'access_token_empty': _token('', r'access_token is empty'),
    'access_token_whitespace': _token(' \n\t ', r'access_token is empty'),
    'access_token_lone_surrogate': _token('at-\ud800', r'not valid Unicode text'),
    'codex_path_missing': _codex_path('/nonexistent/codex', r'cannot run /nonexistent/codex'),
    'codex_path_nul_byte': _codex_path('/usr/bin/codex\x00', r'not a valid file name'),
    'src_fifo': _src('fifo'),
    'src_symlink_to_etc_passwd': _src('symlink'),
    'src_50mb': _src('big'),
    'src_missing': _src('missing'),
    'src_non_utf8': _src('non_utf8'),
    'content_option_lone_surrogate': _content_option('{"auth_mode": "\ud800"}', r'auth_not_json'),
    'content_option_list': _content_option(['x1y2z3'], r'auth_not_json'),
    'environment_file_fifo': _env_file('fifo'),
    'environment_file_nul_byte': _env_file('nul'),
}

CASES = dict([(name, content_case(name)) for name in AUTH_CONTENTS] + list(PATH_CASES.items()))


@pytest.fixture(scope='module')
def corpus_figures():
    figures = {'cases': 0, 'module_runs': 0, 'fresh_python_runs': 0, 'forked_runs': 0, 'by_module': {},
               'seconds': 0.0}
    yield figures
    report_figures('hostile_corpus', figures)


@pytest.fixture(scope='module')
def module_forker(backend):
    worker = SeedWorker(env=_env(backend))
    yield worker
    worker.close()


@pytest.mark.parametrize('name', sorted(CASES))
def test_hostile_case(name, scratch, backend, corpus_figures, module_forker):
    """Path, file-type, file-system, user and option cases run each module in a fresh Python;
    the auth.json content cases (the same code path each time) in a fork of a warm one."""
    ctx = Ctx(scratch, name, backend)
    started = time.monotonic()
    try:
        runs = CASES[name](ctx)
        for (module, args), expect, allowed in runs:
            before = tree_snapshot(ctx.dir, FOLLOW)
            root_before = sorted(os.listdir('/'))
            if name in AUTH_CONTENTS:
                rc, result, out, err = run_module_forked(module_forker, module, args, timeout=120)
                corpus_figures['forked_runs'] += 1
            else:
                rc, result, out, err = run_module_process(module, args, timeout=120, env=_env(backend))
                corpus_figures['fresh_python_runs'] += 1
            label = '%s / %s (%s)' % (name, module, getattr(expect, 'describe', ''))
            assert not TRACEBACK.search(out + err), '%s: traceback:\n%s' % (label, (out + err)[-3000:])
            assert result is not None, '%s: no JSON result (rc %s):\n%s' % (label, rc, (out + err)[-2000:])
            for secret in ctx.secrets:
                assert secret not in out + err, '%s: a secret in the module output' % label
            expect(rc, result)
            after = tree_snapshot(ctx.dir, FOLLOW)
            changes = [line for line in snapshot_diff(before, after)
                       if os.path.basename(line.split(':')[0]) not in allowed]
            assert changes == [], '%s: wrote %s' % (label, changes)
            for path in set(after) - set(before):
                # What a run may add (lock files, Codex's login log) is private; lock files are empty.
                st = os.lstat(path)
                if stat.S_ISDIR(st.st_mode):
                    assert stat.S_IMODE(st.st_mode) & 0o022 == 0, path  # Codex makes log/ 0755 in a 0700 home
                else:
                    assert stat.S_IMODE(st.st_mode) == 0o600, path
                    assert st.st_size == 0 or os.path.basename(path) not in LOCKS, path
            assert sorted(os.listdir('/')) == root_before, '%s: wrote outside its tree' % label
            corpus_figures['module_runs'] += 1
            corpus_figures['by_module'][module] = corpus_figures['by_module'].get(module, 0) + 1
        corpus_figures['cases'] += 1
    finally:
        for cleanup in reversed(ctx.cleanups):
            cleanup()
        corpus_figures['seconds'] = round(corpus_figures['seconds'] + time.monotonic() - started, 1)


def _env(backend):
    env = module_env()
    env['CODEX_AUTHAPI_BASE_URL'] = backend.base_url
    return env


# -- the auth.json contents against the model in-process and against Codex itself ------------------

@pytest.mark.parametrize('name', sorted(AUTH_CONTENTS))
def test_auth_content_matches_codex(name, scratch, backend):
    """The model's verdict (can Codex load this file at all?) is Codex's own, and evaluating the
    snapshot in-process never raises anything but the documented refusal."""
    ctx = Ctx(scratch, name, backend)
    make, code = AUTH_CONTENTS[name]
    data = make(ctx)
    home = ctx.make_home(auth=data)
    summary = health.evaluate(health.snapshot_path(str(home)), owner_uid=ctx.uid)
    assert code in [item['code'] for item in summary['problems']]
    assert not any(secret in json.dumps(summary) for secret in ctx.secrets)
    try:
        auth_model.AuthFile(data)
        loads = True
    except auth_model.AuthFileError:
        loads = False
    if name in ORACLE_EXCEPTIONS:
        return
    proc = subprocess.run([codex_binary(), 'login', 'status'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env={'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(ctx.dir),
                               'CODEX_HOME': str(home)}, timeout=60, check=False, cwd=str(ctx.dir))
    verdict = proc.stdout.decode('utf-8', 'replace')
    assert (proc.returncode == 0) == loads, '%s: Codex says %r (rc %d), the model says loads=%s' % (
        name, verdict.strip()[-300:], proc.returncode, loads)


# -- a few cases through real ansible-playbook at -vvvv --------------------------------------------

PLAY_CASES = ['auth_symlink_to_etc_passwd', 'auth_fifo', 'codex_home_symlink', 'owner_missing', 'truncated_json',
              'config_invalid_toml', 'read_only_filesystem', 'last_refresh_offset_99h']


def test_hostile_cases_through_ansible_playbook(scratch, backend, workspace):
    """The same refusals through ansible-playbook -vvvv --diff: each task fails (or verifies) with
    the message the module gives, no traceback in the output, and the secrets stay out of it."""
    tasks, checks, cleanups = [], [], []
    for name in PLAY_CASES:
        ctx = Ctx(scratch, name, backend)
        workspace.remember(ctx.secrets)
        runs = CASES[name](ctx)
        for index, ((module, args), expect, allowed) in enumerate(runs):
            if args.pop('_ansible_check_mode', False):
                continue
            register = 'r_%s_%d' % (name, index)
            tasks.append({'name': '%s %s' % (name, module), 'codexops.runner.%s' % module: args,
                          'register': register, 'ignore_errors': True})
            checks.append((register, expect, name))
        cleanups.extend(ctx.cleanups)
    results = workspace.root / 'results.json'
    tasks.append({'name': 'Keep the results', 'ansible.builtin.copy': {
        'dest': str(results), 'mode': '0600',
        'content': '{{ {%s} | to_json }}' % ', '.join("'%s': %s" % (reg, reg) for reg, _e, _n in checks)}})
    playbook = workspace.root / 'hostile.yml'  # holds seeds: private, like every file holding one
    write_private(playbook, json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]))
    inventory = workspace.root / 'hostile.ini'
    inventory.write_text('localhost ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
    try:
        output = workspace.playbook(str(playbook), str(inventory), {}, label='hostile')
    finally:
        for cleanup in reversed(cleanups):
            cleanup()
    assert not TRACEBACK.search(output), output[-4000:]
    recorded = json.loads(results.read_text())
    for register, expect, name in checks:
        result = recorded[register]
        expect(1 if result.get('failed') else 0, result)
