# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""config_schema: the type checker on its own (fast, no Codex), and the table generator.

tests/integration/test_config_schema.py checks the same table against the real Codex CLI.
"""

import json
import os
import sys
import tomllib

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import config_schema

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
sys.path.insert(0, os.path.join(REPO, 'tools'))
import config_schema_table  # noqa: E402  pylint: disable=wrong-import-position


def problems(text):
    return config_schema.config_type_problems(tomllib.loads(text))


def paths(text):
    return [path for path, _message in problems(text)]


@pytest.mark.parametrize('text,path,message', [
    # the four of issue 13
    ('[profile.x]\nmodel = "o3"\n', 'profile', 'Codex no longer supports this key'),
    ('model = 5\n', 'model', 'expected a string, found an integer'),
    ('sandbox_mode = "bogus"\n', 'sandbox_mode',
     'expected one of "read-only", "workspace-write", "danger-full-access", found another string'),
    ('forced_chatgpt_workspace_id = 5\n', 'forced_chatgpt_workspace_id',
     'expected a string or an array, found an integer'),
    ('forced_chatgpt_workspace_id = ["a", true]\n', 'forced_chatgpt_workspace_id[1]',
     'expected a string, found a boolean'),
    ('cli_auth_credentials_store = 1\n', 'cli_auth_credentials_store', 'found an integer'),
    ('[profiles.ci]\nmodel_verbosity = "loud"\n', 'profiles.ci.model_verbosity', 'expected one of "low"'),
    ('[mcp_servers.gh]\ncommand = "npx"\nargs = "x"\n', 'mcp_servers.gh.args', 'expected an array, found a string'),
    ('[mcp_servers.gh]\nenabled = true\n', 'mcp_servers.gh',
     'expected a table with command or a table with url, found a table'),
    ('[approval_policy.granular]\nrules = true\n', 'approval_policy.granular.sandbox_approval',
     'missing; Codex requires this key here'),
    ('[history]\nmax_bytes = -5\n', 'history.max_bytes', 'expected an integer >= 0, found a value out of range'),
    ('mcp_oauth_callback_port = 65536\n', 'mcp_oauth_callback_port', 'expected an integer from 0 to 65535'),
    ('model_context_window = true\n', 'model_context_window', 'expected an integer, found a boolean'),
    ('model_context_window = 2.0\n', 'model_context_window', 'expected an integer, found a float'),
    ('[tui]\nnotifications = 1979-05-27T07:32:00Z\n', 'tui.notifications', 'found a date-time'),
    ('[features]\nnew_thing = 1\n', 'features.new_thing', 'expected a boolean, found an integer'),
    ('[features.code_mode]\nbogus = 1\n', 'features.code_mode.bogus', 'not a key Codex accepts in this table'),
    ('[projects."/srv/a b"]\ntrust_level = 1\n', 'projects."/srv/a b".trust_level', 'expected one of'),
    ('[[hooks.Stop]]\nhooks = [{ type = "command", command = 5 }]\n', 'hooks.Stop[0].hooks[0].command',
     'expected a string, found an integer'),
    ('experimental_thread_store_endpoint = "x"\n', 'experimental_thread_store_endpoint', 'remove it'),
])
def test_mismatch_named_with_expected_type(text, path, message):
    found = problems(text)
    assert path in [p for p, _m in found], found
    assert message in dict(found)[path]


@pytest.mark.parametrize('text', [
    '',
    'cli_auth_credentials_store = "file"\nforced_login_method = "chatgpt"\n',
    'forced_chatgpt_workspace_id = ["a", "b"]\n',
    'unknown_key = { a = 1 }\nanother = [1, "x"]\n',
    '[tui]\ncli_auth_credentials_store = 5\n',   # inside [tui]: a key Codex does not know there
    '[profiles.ci]\nmodel = "o3"\nunknown = 1\n',
    '[mcp_servers.gh]\ncommand = "npx"\nargs = ["-y"]\nenv = { A = "b" }\n',
    '[mcp_servers.web]\nurl = "https://example.invalid"\n',
    '[approval_policy.granular]\nsandbox_approval = true\nrules = true\nmcp_elicitations = false\n',
    'approval_policy = "never"\n',
    '[features]\nanything_new = true\n[features.code_mode]\nenabled = false\n',
    'model_context_window = 128000\ndesktop = { any = ["thing", 1] }\n',
])
def test_valid_documents_have_no_problems(text):
    assert problems(text) == []


def test_messages_never_carry_values():
    secret = 'sk-proj-SECRETSECRET'
    text = ('model = ["%s"]\nsandbox_mode = "%s"\n[mcp_servers.gh]\ncommand = "x"\nenv = { T = ["%s"] }\n'
            '[profiles.p]\nmodel = { k = "%s" }\n' % ((secret,) * 4))
    found = problems(text)
    assert len(found) == 4
    assert secret not in repr(found)


def test_not_a_table():
    assert config_schema.config_type_problems([]) == [('', 'expected a table, found an array')]


def test_text_problems_and_parser_absence(monkeypatch):
    assert config_schema.has_type_check()
    assert config_schema.config_text_problems('model = 5\n') == [('model', 'expected a string, found an integer')]
    assert config_schema.config_text_problems('model = \n') == []  # not TOML: toml_keys.validate reports it
    monkeypatch.setattr(config_schema, '_toml', None)
    assert not config_schema.has_type_check()
    assert config_schema.config_text_problems('model = 5\n') == []


def test_deep_documents_are_bounded():
    doc = {'desktop': {}}
    node = doc['desktop']
    for _level in range(500):
        node['x'] = {}
        node = node['x']
    assert config_schema.config_type_problems(doc) == []  # `desktop` is free-form: not descended


def _walk(spec, seen):
    """Every spec in the table follows the grammar of the module docstring. Returns how many specs
    it holds, each shared definition counted once (where it is first used)."""
    if isinstance(spec, str):
        if spec[:1].isupper():
            assert spec in config_schema.DEFINITIONS, spec
            if spec not in seen:
                seen.add(spec)
                return _walk(config_schema.DEFINITIONS[spec], seen)
        else:
            assert spec in ('string', 'boolean', 'integer', 'number', 'any', 'refused'), spec
        return 1
    kind = spec[0]
    if kind in ('integer', 'number'):
        assert len(spec) == 3 and (spec[1] is not None or spec[2] is not None)
        return 1
    if kind == 'enum':
        assert spec[1] and all(isinstance(v, str) for v in spec[1])
        return 1
    if kind in ('array', 'map'):
        return _walk(spec[1], seen)
    if kind == 'union':
        assert len(spec[1]) > 1
        return sum(_walk(alt, seen) for alt in spec[1])
    assert kind == 'table' and 2 <= len(spec) <= 4, spec
    for key in (spec[2] if len(spec) > 2 else ()):
        assert key in spec[1]
    if len(spec) > 3 and spec[3] is not False:
        _walk(spec[3], seen)
    return 1 + sum(_walk(sub, seen) for sub in spec[1].values())


def test_table_is_well_formed_and_covers_codex_keys():
    seen = set()
    assert _walk(config_schema.ROOT, seen) > 700
    assert seen == set(config_schema.DEFINITIONS)  # no dead definitions
    top = config_schema.ROOT[1]
    for key in ('model', 'profile', 'profiles', 'mcp_servers', 'tui', 'sandbox_workspace_write', 'history',
                'shell_environment_policy', 'cli_auth_credentials_store', 'forced_login_method',
                'forced_chatgpt_workspace_id', 'features', 'model_providers', 'otel', 'hooks'):
        assert key in top
    assert config_schema.SOURCE.startswith('openai/codex ')


# -- tools/config_schema_table.py: the generator -----------------------------------------------

SCHEMA = {
    'additionalProperties': False,
    'definitions': {
        'Mode': {'oneOf': [{'enum': ['a'], 'type': 'string'}, {'enum': ['b'], 'type': 'string'}]},
        'Ids': {'anyOf': [{'type': 'string'}, {'items': {'type': 'string'}, 'type': 'array'}]},
        'Sub': {'additionalProperties': False, 'required': ['n'], 'type': 'object',
                'properties': {'n': {'format': 'uint16', 'type': 'integer'}, 'm': {'$ref': '#/definitions/Mode'}}},
        'Toggle': {'anyOf': [{'type': 'boolean'}, {'$ref': '#/definitions/Sub'}]},
    },
    'properties': {
        'mode': {'allOf': [{'$ref': '#/definitions/Mode'}], 'description': 'x'},
        'other_mode': {'$ref': '#/definitions/Mode'},
        'ids': {'$ref': '#/definitions/Ids'},
        'ratio': {'format': 'double', 'minimum': 0.0, 'maximum': 1.0, 'type': 'number'},
        'count': {'format': 'int64', 'type': ['integer', 'null']},
        'servers': {'additionalProperties': {'$ref': '#/definitions/Sub'}, 'type': 'object'},
        'toggle': {'$ref': '#/definitions/Toggle'},
        'free': {'additionalProperties': True, 'type': 'object'},
        'opaque': True,
    },
    'type': 'object',
}


def test_generator_resolves_definitions():
    definitions, root = config_schema_table.Builder(SCHEMA).build()
    assert definitions == {}  # Mode is small and the rest are used once: all inlined
    assert root == ('table', {
        'count': 'integer',
        'free': ('map', 'any'),
        'ids': ('union', ('string', ('array', 'string'))),
        'mode': ('enum', ('a', 'b')),
        'opaque': 'any',
        'other_mode': ('enum', ('a', 'b')),
        'ratio': ('number', 0, 1),
        'servers': ('map', ('table', {'m': ('enum', ('a', 'b')), 'n': ('integer', 0, 65535)}, ('n',))),
        # a table variant of an untagged enum refuses unknown keys
        'toggle': ('union', ('boolean', ('table', {'m': ('enum', ('a', 'b')), 'n': ('integer', 0, 65535)},
                                         ('n',), False))),
    })


def test_generator_corrections_and_rendering(tmp_path):
    corrections = {'/properties/count': ({'x-codexops-refused': True}, 'removed'),
                   '/properties/ratio/maximum': (None, 'not enforced'),
                   '/definitions/Sub/required': (None, 'has a default')}
    schema = config_schema_table.apply_corrections(SCHEMA, corrections)
    assert 'maximum' in SCHEMA['properties']['ratio']  # the input is not changed
    definitions, root = config_schema_table.Builder(schema).build()
    assert root[1]['count'] == 'refused'
    assert root[1]['ratio'] == ('number', 0, None)
    assert root[1]['servers'] == ('map', ('table', {'m': ('enum', ('a', 'b')), 'n': ('integer', 0, 65535)}))
    module = tmp_path / 'module.py'
    module.write_text('HEAD = 1\n' + config_schema_table.BEGIN + 'old\n' + config_schema_table.END + 'TAIL = 2\n')
    config_schema_table.write_module(config_schema_table.render(definitions, root, 'test schema'), str(module))
    namespace = {}
    exec(module.read_text(), namespace)  # pylint: disable=exec-used
    assert namespace['HEAD'] == 1 and namespace['TAIL'] == 2
    assert namespace['ROOT'] == root and namespace['DEFINITIONS'] == definitions
    assert namespace['SOURCE'] == 'test schema'


def test_committed_table_renders_as_generated():
    """The table region is exactly what render() writes for it (hand edits would show here)."""
    with open(config_schema.__file__, encoding='utf-8') as handle:
        text = handle.read()
    region = text[text.index(config_schema_table.BEGIN):text.index(config_schema_table.END) +
                  len(config_schema_table.END)]
    assert region == config_schema_table.render(config_schema.DEFINITIONS, config_schema.ROOT, config_schema.SOURCE)


def test_probe_documents_round_trip_through_toml():
    checker = config_schema_table.load_checker()
    prober = config_schema_table.Prober(checker)
    prober.walk(checker['ROOT'], lambda v: v, ())
    assert len(prober.cases) > 3000
    for case in prober.cases[::50]:
        assert tomllib.loads(config_schema_table.toml_document(case['document'])) == case['document']
    refused = [case for case in prober.cases if case['refused']]
    assert refused and len(refused) < len(prober.cases)
    assert json.dumps(prober.cases[0]['document'])


def test_the_generator_shares_a_large_table_spelled_out_twice():
    features = ('table', dict(('flag_%d' % index, 'boolean') for index in range(config_schema_table.MIN_SHARED_KEYS)))
    small = ('table', {'a': 'string'})
    root = ('table', {'features': features, 'small': small, 'again': small,
                      'profiles': ('map', ('table', {'features': features}))})
    definitions, shared_root = config_schema_table.share_repeats({}, root)
    assert definitions == {'Features': features}
    assert shared_root[1]['features'] == 'Features'
    assert shared_root[1]['profiles'] == ('map', ('table', {'features': 'Features'}))
    assert shared_root[1]['small'] == small and shared_root[1]['again'] == small  # too small to share


def test_the_generator_writes_a_shared_field_set_once():
    fields = dict(('key_%d' % index, 'string') for index in range(config_schema_table.MIN_SHARED_KEYS))
    root = ('table', {'servers': ('map', ('union', (('table', dict(fields), ('key_0',)),
                                                    ('table', dict(fields), ('key_1',)))))})
    text = config_schema_table.render({}, root, 'test schema')
    assert text.count("'key_5': 'string'") == 1 and text.count('_SHARED_FIELDS_1') == 3
    namespace = {}
    exec(text, namespace)  # pylint: disable=exec-used
    assert namespace['ROOT'] == root


def test_the_generator_inlines_what_sharing_left_used_once():
    # `Flag` was used twice only because the large table holding it was spelled out twice.
    features = ('table', dict(('flag_%d' % index, 'Flag' if index == 0 else 'boolean')
                              for index in range(config_schema_table.MIN_SHARED_KEYS)))
    flag = ('union', ('boolean', ('table', {'enabled': 'boolean'})))
    recursive = ('table', {'child': 'Node'})
    root = ('table', {'features': features, 'profile': ('table', {'features': features}), 'tree': 'Node'})
    definitions, shared_root = config_schema_table.inline_single_use(
        *config_schema_table.share_repeats({'Flag': flag, 'Node': recursive, 'Unused': 'string'}, root))
    assert sorted(definitions) == ['Features', 'Node']
    assert definitions['Features'][1]['flag_0'] == flag  # used once now: written in place
    assert shared_root[1]['tree'] == 'Node'  # recursive: stays a reference
