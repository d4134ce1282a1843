"""Bounded parsing through the real modules: the pathological config.toml and auth.json shapes, at
the largest size each file may have (config.toml 4 MiB, auth.json 1 MiB), verified by
codex_auth_verify in a fresh Python process as Ansible runs it on a host (tomllib), by the same
evaluation on Python 3.9 (this collection's own TOML reader), and through ansible-playbook with a
Python 3.9 target. Every run must end in a problem code (or a healthy result, for the worst files
that are within the limits), without a traceback, in well under 5 s. The figures are printed and
kept in tests/output/hardening-figures.json.

Before the limits, a 64 KiB dotted key took tomllib 16 to 30 s (4 MiB: hours), JSON nested 450 deep
in a field Codex reads raised RecursionError, and forced_chatgpt_workspace_id = 5 raised TypeError.

The limits that mirror Codex's own (80 dotted parts, 80 nested arrays and inline tables) are
checked against the real Codex CLI: it accepts a file at the limit and refuses one past it.
"""

import json
import os
import subprocess
import time

import pytest

from hardening_support import (COLLECTIONS, TRACEBACK, codex_binary, python39, report_figures, run_module_process,
                               runner_ids, runner_owner)
from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import constants
from ansible_collections.codexops.runner.plugins.module_utils import health
from ansible_collections.codexops.runner.plugins.module_utils import toml_keys
from support import fake_credentials

STORE = 'cli_auth_credentials_store = "file"\n'
CONFIG_BYTES = constants.MAX_CONFIG_BYTES
AUTH_BYTES = auth_model.MAX_AUTH_BYTES
PARTS, DEPTH, LINE, ITEMS = (toml_keys.MAX_KEY_PARTS, toml_keys.MAX_NESTING, toml_keys.MAX_LINE_CHARS,
                             toml_keys.MAX_SYNTAX_ITEMS)
# The brief for every run: seconds. The figures show how far below it they stay.
LIMIT_SECONDS = 5.0
# A module run that takes this long has hung (the old code took hours); it fails the case.
TIMEOUT = 60


def fill(unit, size, head='', tail=''):
    """head + unit repeated + tail, as close to `size` characters as whole units allow."""
    return head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail


def lines_of(line, size, head=STORE):
    return head + line * ((size - len(head)) // len(line))


def jwt(payload_text):
    return '%s.%s.%s' % (fake_credentials.b64url(b'{"alg":"none"}'), fake_credentials.b64url(payload_text.encode()),
                         fake_credentials.b64url(b'sig'))


def nested(depth):
    return '[' * depth + ']' * depth


# config.toml shapes -> the codes verify must report. Over a limit: config_invalid. Within the
# limits (the most expensive files allowed): healthy, with the store found.
def config_cases():
    body = 'a' * (LINE - 20)
    size = CONFIG_BYTES
    return {
        'dotted key, one line': (STORE + fill('.a', size - 50, 'a', ' = 1\n'), 'config_invalid'),
        'dotted keys of 81 parts': (lines_of('%s = 1\n' % '.'.join(['a'] * (PARTS + 1)), size), 'config_invalid'),
        'dotted table names': (lines_of('[%s]\n' % '.'.join(['a'] * (PARTS + 1)), size), 'config_invalid'),
        'quoted dotted key': (STORE + fill('."a"', size - 50, 'a', ' = 1\n'), 'config_invalid'),
        'deep arrays, one line': (STORE + 'x = ' + nested((size - 50) // 2) + '\n', 'config_invalid'),
        'deep arrays over lines': (STORE + 'x = ' + '[\n' * ((size - 50) // 4) + ']\n' * ((size - 50) // 4),
                                   'config_invalid'),
        'deep inline tables': (STORE + 'x = ' + '{a=' * ((size - 50) // 4) + '1' + '}' * ((size - 50) // 4) + '\n',
                               'config_invalid'),
        'deep [[ headers': (STORE + fill('[', size - 50), 'config_invalid'),
        'many tables': (STORE + ''.join('[t%d]\n' % index for index in range(size // 11)), 'config_invalid'),
        'many array tables': (lines_of('[[a]]\n', size), 'config_invalid'),
        'many keys': (STORE + ''.join('k%d = 1\n' % index for index in range(size // 13)), 'config_invalid'),
        'huge array, one line': (STORE + fill('1,', size - 50, 'x = [', ']\n'), 'config_invalid'),
        'huge array over lines': (STORE + fill('1,\n', size - 50, 'x = [', ']\n'), 'config_invalid'),
        'long string line': (STORE + 'x = "' + 'a' * (size - 50) + '"\n', 'config_invalid'),
        'escapes': (STORE + 'x = """' + ('\\n' * 1000 + '\n') * (size // 2001) + '"""\n', 'config_invalid'),
        'quotes in a string': (STORE + "x = '''" + ("a'" * 30000 + '\n') * (size // 60001) + "'''\n",
                               'config_invalid'),
        'unterminated string': (STORE + 'x = """' + ('a"' * 50 + '\n') * (size // 101), 'config_invalid'),
        'workspace id 5': (STORE + 'forced_chatgpt_workspace_id = 5\n', 'config_invalid'),
        'store a table': ('[cli_auth_credentials_store]\nx = 1\n', 'config_invalid'),
        # The worst files within the limits: parsed, in full, quickly.
        'within: most key parts': (STORE + ''.join('%s.k%d = 1\n' % ('.'.join(['a'] * (PARTS - 1)), index)
                                                   for index in range(ITEMS // (PARTS + 1) - 2)), None),
        'within: deepest nesting': (STORE + ''.join('x%d = %s\n' % (index, nested(DEPTH))
                                                    for index in range(ITEMS // (2 * DEPTH + 2) - 2)), None),
        'within: most keys': (STORE + ''.join('k%d = 1\n' % index for index in range(ITEMS // 2 - 20)), None),
        'within: longest lines, 4 MiB': (STORE + ''.join('k%d = "%s"\n' % (index, body)
                                                         for index in range(size // LINE - 1)), None),
        'within: multi-line string, 4 MiB': (STORE + 'x = """\n' + '\n'.join([body] * (size // LINE - 1)) + '"""\n',
                                             None),
    }


def auth_cases():
    size = AUTH_BYTES
    doc, _secrets = fake_credentials.chatgpt_seed(tag='bounded')

    def padded(text):
        return text[:-1] + ',"zz":"' + 'p' * (size - len(text) - 10) + '"}'

    def with_tokens(**tokens):
        copy = json.loads(json.dumps(doc))
        copy['tokens'].update(tokens)
        return json.dumps(copy)

    half = (size - 100) // 2
    wide_claims = '{"a":[' + ','.join(['{}'] * ((size * 3 // 4 - 2000) // 3)) + ']}'
    return {
        'deep at the top': (nested(half), 'auth_not_json'),
        'deep objects at the top': ('{"a":' * (half // 3) + '1' + '}' * (half // 3), 'auth_not_json'),
        'deep unknown field': ('{"x":' + nested(half - 10) + '}', 'auth_not_json'),
        'last_refresh 500 deep': (padded('{"last_refresh":%s}' % nested(500)), 'auth_not_json'),
        'tokens.account_id 500 deep': (padded('{"tokens":{"access_token":"x","account_id":%s}}' % nested(500)),
                                       'auth_not_json'),
        'OPENAI_API_KEY 990 deep': (padded('{"OPENAI_API_KEY":%s}' % nested(990)), 'auth_not_json'),
        'id_token claims 500 deep': (padded(with_tokens(id_token=jwt('{"a":%s}' % nested(500)))), 'id_token_invalid'),
        'access_token claims 500 deep': (padded(with_tokens(access_token=jwt('{"a":%s}' % nested(500)))), None),
        'unclosed brackets': ('{"x":' + '[' * (size - 10), 'auth_not_json'),
        'wide id_token claims': (with_tokens(id_token=jwt(wide_claims)), None),
        'many objects': (json.dumps(doc)[:-1] + ',"zz":[' + ','.join(['{}'] * ((size - 3000) // 3)) + ']}', None),
        'long number': (json.dumps(doc)[:-1] + ',"zz":' + '9' * (size - 3000) + '}', 'auth_not_json'),
        'escapes': (json.dumps(doc)[:-1] + ',"zz":"' + '\\"' * ((size - 3000) // 2) + '"}', None),
    }


class Homes:
    """CODEX_HOMEs the runner user owns, one per case, as provisioning leaves them."""

    def __init__(self, root):
        self.root = root
        self.uid, self.gid = runner_ids()
        self.seed = json.dumps(fake_credentials.chatgpt_seed(tag='bounded-config')[0]).encode()
        self.count = 0

    def make(self, auth=None, config=STORE):
        self.count += 1
        home = self.root / ('home-%d' % self.count) / '.codex'
        home.parent.mkdir()
        home.mkdir(mode=0o700)
        os.chown(str(home), self.uid, self.gid)
        for name, data in (('auth.json', self.seed if auth is None else auth), ('config.toml', config)):
            path = home / name
            path.write_bytes(data.encode('utf-8') if isinstance(data, str) else data)
            os.chmod(str(path), 0o600)
            os.chown(str(path), self.uid, self.gid)
        return home


def all_cases(homes):
    """[(kind, name, home, size, expected code or None)]"""
    cases = []
    for name, (text, code) in config_cases().items():
        assert len(text.encode()) <= CONFIG_BYTES, name
        cases.append(('config.toml', name, homes.make(config=text), len(text.encode()), code))
    for name, (text, code) in auth_cases().items():
        assert len(text.encode()) <= AUTH_BYTES, name
        cases.append(('auth.json', name, homes.make(auth=text), len(text.encode()), code))
    return cases


def check_result(label, result, code):
    codes = [item['code'] for item in result['problems']]
    assert all(item in health.PROBLEM_CODES for item in codes), (label, codes)
    if code is None:
        assert result['healthy'], '%s: expected healthy, got %s' % (label, result['problems'])
    else:
        assert codes == [code], '%s: expected [%s], got %s' % (label, code, result['problems'])
    return codes


@pytest.fixture(scope='module')
def homes(tmp_path_factory):
    root = tmp_path_factory.mktemp('bounded')
    os.chmod(str(root), 0o755)
    return Homes(root)


@pytest.fixture(scope='module')
def cases(homes):
    return all_cases(homes)


def test_verify_module_on_pathological_files(cases):
    """The real module, a fresh Python process per run (as Ansible runs it), tomllib there."""
    figures, slow = {}, []
    for kind, name, home, size, code in cases:
        label = '%s: %s' % (kind, name)
        started = time.monotonic()
        rc, result, out, err = run_module_process('codex_auth_verify', {'codex_home': str(home), 'owner': runner_owner()},
                                                  timeout=TIMEOUT)
        elapsed = time.monotonic() - started
        assert rc == 0 and result is not None, '%s: rc %s\n%s%s' % (label, rc, out[-2000:], err[-2000:])
        assert not TRACEBACK.search(out + err), '%s: traceback\n%s' % (label, (out + err)[-3000:])
        codes = check_result(label, result, code)
        figures[label] = {'bytes': size, 'seconds': round(elapsed, 3), 'problems': codes}
        if elapsed >= LIMIT_SECONDS:
            slow.append('%s took %.2f s' % (label, elapsed))
    figures['max seconds'] = max(item['seconds'] for item in figures.values())
    report_figures('bounded_parsing_module_py3', figures)
    assert not slow, slow


# Runs on the target Python: only module_utils (standard library), as the module would call them.
PY39_EVALUATE = r'''
import json, sys, time
from ansible_collections.codexops.runner.plugins.module_utils import health, toml_keys
assert not toml_keys.has_full_validation(), 'expected a Python without tomllib'
for home in sys.argv[1:]:
    started = time.perf_counter()
    try:
        result = health.evaluate(health.snapshot_path(str(home)))
        outcome = {'problems': result['problems'], 'healthy': result['healthy']}
    except BaseException as exc:  # reported, and the test fails on it
        outcome = {'crash': '%s: %s' % (type(exc).__name__, str(exc)[:200])}
    outcome.update(home=home, seconds=time.perf_counter() - started)
    print(json.dumps(outcome))
'''


def test_evaluation_on_python39_without_tomllib(cases):
    interpreter = python39()  # skips without one (a failure under CI)
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.run([interpreter, '-c', PY39_EVALUATE] + [str(home) for _k, _n, home, _s, _c in cases],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=TIMEOUT * len(cases),
                          check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    outcomes = dict((item['home'], item) for item in map(json.loads, proc.stdout.decode().splitlines()))
    figures, slow = {}, []
    for kind, name, home, size, code in cases:
        label = '%s: %s' % (kind, name)
        outcome = outcomes[str(home)]
        assert 'crash' not in outcome, '%s: %s' % (label, outcome['crash'])
        codes = check_result(label, outcome, code)
        figures[label] = {'bytes': size, 'seconds': round(outcome['seconds'], 3), 'problems': codes}
        if outcome['seconds'] >= LIMIT_SECONDS:
            slow.append('%s took %.2f s' % (label, outcome['seconds']))
    figures['max seconds'] = max(item['seconds'] for item in figures.values())
    report_figures('bounded_parsing_evaluate_py39', figures)
    assert not slow, slow


def test_verify_through_ansible_playbook_on_python39(cases, workspace):
    """The same files through ansible-playbook, a Python 3.9 target, one task per case."""
    interpreter = python39()  # skips without one (a failure under CI)
    tasks, checks = [], []
    for index, (kind, name, home, _size, code) in enumerate(cases):
        register = 'r_%d' % index
        tasks.append({'name': '%s: %s' % (kind, name), 'codexops.runner.codex_auth_verify': {
            'codex_home': str(home), 'owner': runner_owner()}, 'register': register})
        checks.append((register, '%s: %s' % (kind, name), code))
    results = workspace.root / 'results.json'
    tasks.append({'name': 'Keep the results', 'ansible.builtin.copy': {
        'dest': str(results), 'mode': '0600',
        'content': '{{ {%s} | to_json }}' % ', '.join("'%s': %s" % (reg, reg) for reg, _l, _c in checks)}})
    playbook = workspace.root / 'bounded.yml'
    playbook.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]))
    inventory = workspace.root / 'bounded.ini'
    inventory.write_text('localhost ansible_connection=local ansible_python_interpreter=%s\n' % interpreter)
    started = time.monotonic()
    output = workspace.playbook(str(playbook), str(inventory), {}, label='bounded', verbose=False)
    elapsed = time.monotonic() - started
    assert not TRACEBACK.search(output), output[-4000:]
    recorded = json.loads(results.read_text())
    for register, label, code in checks:
        check_result(label, recorded[register], code)
    report_figures('bounded_parsing_playbook_py39', {'tasks': len(checks), 'seconds': round(elapsed, 1),
                                                     'seconds per task': round(elapsed / len(checks), 2)})
    assert elapsed < LIMIT_SECONDS * len(checks)


# -- the limits Codex has too ------------------------------------------------------------------------

def codex_loads(home, root):
    proc = subprocess.run([codex_binary(), 'login', 'status'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env={'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(root),
                               'CODEX_HOME': str(home)}, timeout=60, check=False, cwd=str(root))
    output = proc.stdout.decode('utf-8', 'replace')
    return proc.returncode == 0, output.strip()[-300:]


ORACLE_CASES = {
    # name: (config.toml, verify accepts it)
    'key of 80 parts': (STORE + '%s = 1\n' % '.'.join(['a'] * PARTS), True),
    'key of 81 parts': (STORE + '%s = 1\n' % '.'.join(['a'] * (PARTS + 1)), False),
    'table name of 80 parts': (STORE + '[%s]\n' % '.'.join(['a'] * PARTS), True),
    'table name of 81 parts': (STORE + '[%s]\n' % '.'.join(['a'] * (PARTS + 1)), False),
    'arrays 80 deep': (STORE + 'x = %s\n' % nested(DEPTH), True),
    'arrays 81 deep': (STORE + 'x = %s\n' % nested(DEPTH + 1), False),
    'inline tables 80 deep': (STORE + 'x = %s1%s\n' % ('{a=' * DEPTH, '}' * DEPTH), True),
    'inline tables 81 deep': (STORE + 'x = %s1%s\n' % ('{a=' * (DEPTH + 1), '}' * (DEPTH + 1)), False),
    'mixed 80 deep': (STORE + 'x = %s1%s\n' % ('[{a=' * (DEPTH // 2), '}]' * (DEPTH // 2)), True),
    'mixed 82 deep': (STORE + 'x = %s1%s\n' % ('[{a=' * (DEPTH // 2 + 1), '}]' * (DEPTH // 2 + 1)), False),
    'store 5': ('cli_auth_credentials_store = 5\n', False),
    'store a table': ('[cli_auth_credentials_store]\nx = 1\n', False),
    'store an array': ('cli_auth_credentials_store = ["file"]\n', False),
    'forced_login_method 5': (STORE + 'forced_login_method = 5\n', False),
    'forced_login_method an array': (STORE + 'forced_login_method = ["api"]\n', False),
    'workspace id 5': (STORE + 'forced_chatgpt_workspace_id = 5\n', False),
    'workspace ids of integers': (STORE + 'forced_chatgpt_workspace_id = [1, 2]\n', False),
    'workspace id a table': (STORE + 'forced_chatgpt_workspace_id = { a = "x" }\n', False),
}


def test_the_codex_limits_are_codex_s_own(homes):
    """A file at Codex's limit loads in Codex and in verify; one past it fails in both. Codex refuses
    each wrong-typed setting verify calls config_invalid."""
    apikey = json.dumps({'OPENAI_API_KEY': 'sk-test-bounded-parsing'})
    disagreements = []
    for name, (config, accepted) in ORACLE_CASES.items():
        home = homes.make(auth=apikey, config=config)
        loads, verdict = codex_loads(home, home.parent)
        result = health.evaluate(health.snapshot_path(str(home)))
        verify_accepts = 'config_invalid' not in [item['code'] for item in result['problems']]
        if not (loads == accepted == verify_accepts):
            disagreements.append('%s: Codex loads=%s (%s), verify accepts=%s, expected %s'
                                 % (name, loads, verdict, verify_accepts, accepted))
    assert not disagreements, '\n'.join(disagreements)


def test_the_old_failures_are_gone(homes):
    """The three reported failures, in process: each is a problem code now."""
    apikey = json.dumps({'OPENAI_API_KEY': 'sk-test-bounded-parsing'})
    deep_field = '{"OPENAI_API_KEY":"sk-x","last_refresh":%s}' % nested(450)
    deep_claims = json.dumps({'tokens': {'id_token': jwt('{"a":%s}' % nested(450)), 'access_token': 'x',
                                         'refresh_token': 'r'}})
    for auth, config, code in ((apikey, STORE + 'forced_chatgpt_workspace_id = 5\n', 'config_invalid'),
                               (deep_field, STORE, 'auth_not_json'), (deep_claims, STORE, 'id_token_invalid'),
                               (apikey, STORE + '%s = 1\n' % '.'.join(['a'] * 20000), 'config_invalid')):
        started = time.monotonic()
        result = health.evaluate(health.snapshot_path(str(homes.make(auth=auth, config=config))))
        assert [item['code'] for item in result['problems']] == [code]
        assert time.monotonic() - started < LIMIT_SECONDS


def test_the_cases_are_as_large_as_the_files_may_be():
    assert max(len(text.encode()) for text, _code in config_cases().values()) > CONFIG_BYTES - 4096
    assert max(len(text.encode()) for text, _code in auth_cases().values()) > AUTH_BYTES - 4096
