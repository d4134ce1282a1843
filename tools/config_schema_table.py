# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Regenerate the config.toml type table (plugins/module_utils/config_schema.py) from Codex's
published config JSON schema, and check the table against a real Codex CLI.

Maintainers, on a Codex upgrade (one command; the rest of the suite needs no network):

    python tools/config_schema_table.py SCHEMA.json --source 'openai/codex <tag> (<commit>)' \\
        --probe .cache/codex-<version>/node_modules/.bin/codex

SCHEMA.json is codex-rs/core/config.schema.json of the openai/codex release being pinned. The
table region of config_schema.py is rewritten; the checker code above it is kept. With --probe the
new table is then checked key by key against that Codex: for every key, a value of the wrong type
must make `codex login status` fail with `Error loading configuration`, a valid one must not,
enum values must be exactly the ones Codex lists, integer bounds must be Codex's. Every
disagreement is printed; fix it in SCHEMA_CORRECTIONS below (a schema fragment, with the reason)
and run again until the probe reports none. `--probe` alone (no SCHEMA.json) checks the table as
it is.
"""

import argparse
import concurrent.futures
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(REPO, 'plugins', 'module_utils', 'config_schema.py')
BEGIN = '# BEGIN GENERATED TABLE (tools/config_schema_table.py; do not edit by hand)\n'
END = '# END GENERATED TABLE\n'

# The table for Codex 0.169.0 was built from the schema at openai/codex tag rust-v0.149.0-alpha.2
# (commit ef5cde948dbd5d87c508e7386fcaf8709582415b), the newest release tag whose history was
# available when it was made; everything 0.169.0 does differently is corrected here, each entry
# confirmed by --probe against 0.169.0 itself. With the schema of the release being pinned most of
# these entries should become unnecessary: drop them and let the probe say which must stay.
#
# Where the schema and the Codex release differ, the release wins. Each entry replaces (or, with
# None, removes) the schema node at a JSON pointer before the table is built; the reason says
# what the probe saw. Keep the list short: an entry that the next schema makes true can go.
# Two markers of this tool's own: "x-codexops-refused" (Codex refuses the key whatever its value)
# and "x-codexops-closed" (Codex refuses keys it does not know in this table).
_ALLOW_DENY = {'enum': ['allow', 'deny'], 'type': 'string'}
_BROWSER_ORIGIN = {'properties': {'access': _ALLOW_DENY, 'downloads': _ALLOW_DENY, 'full_cdp_access': _ALLOW_DENY,
                                  'uploads': _ALLOW_DENY}, 'type': 'object'}
SCHEMA_CORRECTIONS = {
    # 0.169.0 lists `untrusted`, `on-failure`, `on-request`, `granular`, `never` and then refuses
    # "untrusted" at load ('approval_policy = "untrusted" is no longer supported'); a
    # [approval_policy.granular] table must be alone ("wanted exactly 1 element").
    '/definitions/AskForApproval': ({'oneOf': [
        {'enum': ['on-failure', 'on-request', 'never'], 'type': 'string'},
        {'properties': {'granular': {'$ref': '#/definitions/GranularApprovalConfig'}}, 'required': ['granular'],
         'additionalProperties': False, 'type': 'object'}]}, 'untrusted refused, on-failure accepted by 0.169.0'),
    # Unknown feature names are accepted, but only as booleans ("expected a boolean").
    '/properties/features/additionalProperties': ({'type': 'boolean'}, 'features is a map of booleans'),
    '/definitions/ConfigProfile/properties/features/additionalProperties': (
        {'type': 'boolean'}, 'features is a map of booleans'),
    '/definitions/ToolRegistryConfigToml/x-codexops-closed': (
        True, 'unknown field `x`, expected `error_on_tool_collisions` or `turn_metadata_includes_tool_info`'),
    # 0.169.0 accepts any value here: no longer a key it knows.
    '/definitions/WindowsToml/properties/sandbox_private_desktop': (None, 'wrong types accepted by 0.169.0'),
    # minimum 1 in the schema, but 0.169.0 accepts 0 (in profiles also for multi_agent_v2).
    '/definitions/MemoriesToml/properties/max_raw_memories_for_consolidation/minimum': (None, '0 accepted'),
    '/definitions/MemoriesToml/properties/max_rollouts_per_startup/minimum': (None, '0 accepted'),
    '/definitions/MultiAgentV2ConfigToml/properties/max_concurrent_threads_per_session/minimum': (
        None, '0 accepted in [profiles.x.features.multi_agent_v2] (refused at the top level: left unchecked)'),
    # An MCP server needs a transport: `command` (stdio) or `url` (streamable HTTP); neither is
    # "invalid transport".
    '/definitions/RawMcpServerConfig/x-codexops-one-of-required': (
        [['command'], ['url']], 'invalid transport without command or url'),
    # Top-level keys 0.169.0 has and rust-v0.149.0-alpha.2's schema has not. Types from the
    # newer upstream schema where it has them, else from 0.169.0's own "expected ..." messages.
    '/properties/allow_symlinked_codex_home': ({'type': 'boolean'}, 'expected a boolean'),
    '/properties/daybreak': ({'type': 'boolean'}, 'expected a boolean'),
    '/properties/include_environment_context_time': ({'type': 'boolean'}, 'expected a boolean'),
    '/definitions/ConfigProfile/properties/include_environment_context_time': ({'type': 'boolean'},
                                                                               'expected a boolean'),
    '/properties/js_repl_node_path': ({'type': 'string'}, 'expected path string'),
    '/definitions/ConfigProfile/properties/js_repl_node_path': ({'type': 'string'}, 'expected path string'),
    '/properties/js_repl_node_module_dirs': ({'items': {'type': 'string'}, 'type': 'array'},
                                             'expected a sequence of path strings'),
    '/definitions/ConfigProfile/properties/js_repl_node_module_dirs': (
        {'items': {'type': 'string'}, 'type': 'array'}, 'expected a sequence of path strings'),
    '/properties/mcp_optional_startup_grace_ms': ({'format': 'uint64', 'type': 'integer'}, 'expected u64'),
    '/properties/thread_unload_delay_secs': ({'format': 'uint64', 'type': 'integer'}, 'expected u64'),
    '/properties/model_post_turn_compact_threshold_percent': (
        {'format': 'uint8', 'minimum': 0, 'maximum': 100, 'type': 'integer'}, 'expected u8, between 0 and 100'),
    '/properties/experimental_thread_store_endpoint': (
        {'x-codexops-refused': True}, '`experimental_thread_store_endpoint` is no longer supported'),
    '/properties/profile': ({'x-codexops-refused': True}, 'legacy `profile = "x"` config is no longer supported'),
    '/properties/mcp_enterprise_managed_auth': (
        {'properties': {'idp': {'type': 'object', 'additionalProperties': True}}, 'x-codexops-closed': True,
         'type': 'object'}, 'unknown field, expected `idp`; idp: expected struct McpServerIdpOAuthConfig'),
    '/properties/browser_use': ({'properties': {
        'allow_history_access': {'type': 'boolean'}, 'default_origin_policy': _BROWSER_ORIGIN,
        'origins': {'additionalProperties': _BROWSER_ORIGIN, 'type': 'object'}}, 'type': 'object'},
        'expected struct BrowserUseConfigToml'),
    '/properties/computer_use': ({'properties': {
        'default_app_access': _ALLOW_DENY,
        'macos': {'properties': {'bundle_ids': {'additionalProperties': _ALLOW_DENY, 'type': 'object'}},
                  'type': 'object'},
        'windows': {'properties': {
            'aumids': {'additionalProperties': _ALLOW_DENY, 'type': 'object'},
            'exes': {'items': {'properties': {
                'access': _ALLOW_DENY, 'binary_name': {'type': 'string'}, 'product_name': {'type': 'string'},
                'publisher_name': {'type': 'string'}}, 'required': ['access', 'product_name', 'publisher_name'],
                'type': 'object'}, 'type': 'array'}}, 'type': 'object'}}, 'type': 'object'},
        'expected struct ComputerUseConfigToml'),
    '/properties/mcp_enterprise_managed_auth/required': (['idp'], 'missing field `idp`'),
    '/properties/mcp_enterprise_managed_auth/properties/idp': ({
        'properties': {'issuer': {'type': 'string'}, 'client_id': {'type': 'string'},
                       'client_secret': {'type': 'string'},
                       'token_endpoint_auth_method': {'enum': ['client_secret_basic', 'client_secret_post']}},
        'required': ['client_id', 'issuer'], 'x-codexops-closed': True, 'type': 'object'},
        'unknown field, expected one of `issuer`, `client_id`, `client_secret`, `token_endpoint_auth_method`'),
    # Enum values 0.169.0 lists in "unknown variant" messages beyond the schema's.
    '/definitions/RealtimeVoice': ({'enum': [
        'alloy', 'arbor', 'ash', 'aube', 'ballad', 'breeze', 'bubbie', 'cedar', 'coral', 'cove', 'echo', 'ember',
        'haetsal', 'hanul', 'himari', 'juniper', 'leher', 'maple', 'marin', 'miko', 'neer', 'porto', 'rindo', 'rio',
        'rivage', 'sage', 'selva', 'shimmer', 'sol', 'sonna', 'spruce', 'tinta', 'vale', 'verse', 'viola'],
        'type': 'string'}, 'expected one of ... (0.169.0)'),
    '/definitions/NotificationMethod': ({'enum': ['auto', 'osc9', 'osc777', 'bel'], 'type': 'string'},
                                        'expected one of `auto`, `osc9`, `osc777`, `bel`'),
    '/definitions/WindowsSandboxModeToml': ({'enum': ['elevated', 'unelevated', 'mxc'], 'type': 'string'},
                                            'expected one of `elevated`, `unelevated`, `mxc`'),
    '/definitions/McpServerAuth': ({'enum': ['oauth', 'chatgpt', 'ema_auth'], 'type': 'string'},
                                   'expected one of `oauth`, `chatgpt`, `ema_auth`'),
    '/definitions/McpServerEnvVar/anyOf/1/properties/source': (
        {'enum': ['local', 'remote'], 'type': 'string'}, 'unsupported env_vars source; expected `local` or `remote`'),
    # Each named permissions profile is a table ("expected struct PermissionProfileToml").
    '/definitions/PermissionsToml/additionalProperties': ({'type': 'object'}, 'expected struct'),
    '/definitions/GuardianV2TranscriptConfigToml/x-codexops-closed': (
        True, 'an unknown key makes the feature table match no variant'),
    # Schema bounds 0.169.0 does not enforce (values beyond them load).
    '/definitions/RolloutBudgetConfigToml/properties/limit_tokens/minimum': (None, 'below accepted'),
    '/definitions/RolloutBudgetConfigToml/properties/prefill_token_weight/minimum': (None, 'below accepted'),
    '/definitions/RolloutBudgetConfigToml/properties/sampling_token_weight/minimum': (None, 'below accepted'),
    '/definitions/TokenBudgetConfigToml/properties/auto_compact_fallback_buffer_tokens/minimum': (
        None, 'below accepted'),
    '/definitions/TokenBudgetConfigToml/properties/reminder_threshold_tokens/minimum': (None, 'below accepted'),
    '/definitions/MemoriesToml/properties/max_raw_memories_for_consolidation/maximum': (None, 'above accepted'),
    '/definitions/MemoriesToml/properties/max_rollouts_per_startup/maximum': (None, 'above accepted'),
    '/definitions/MemoriesToml/properties/min_rate_limit_remaining_percent/minimum': (None, 'below accepted'),
    '/definitions/MemoriesToml/properties/min_rate_limit_remaining_percent/maximum': (None, 'above accepted'),
    # Enforced for [features] but not for [profiles.x.features]; one definition serves both.
    '/definitions/MultiAgentV2ConfigToml/properties/default_wait_timeout_ms/minimum': (None, 'profiles: accepted'),
    '/definitions/MultiAgentV2ConfigToml/properties/default_wait_timeout_ms/maximum': (None, 'profiles: accepted'),
    '/definitions/MultiAgentV2ConfigToml/properties/max_wait_timeout_ms/minimum': (None, 'profiles: accepted'),
    '/definitions/MultiAgentV2ConfigToml/properties/max_wait_timeout_ms/maximum': (None, 'profiles: accepted'),
    '/definitions/MultiAgentV2ConfigToml/properties/min_wait_timeout_ms/minimum': (None, 'profiles: accepted'),
    '/definitions/MultiAgentV2ConfigToml/properties/min_wait_timeout_ms/maximum': (None, 'profiles: accepted'),
    '/properties/cloud': ({'properties': {'skills': {'properties': {'enabled': {'type': 'boolean'}},
                                                     'type': 'object'}}, 'type': 'object'},
                          'expected struct CloudToml; skills: expected struct FeatureToggleToml'),
}

# Integer formats schemars writes, and the range serde enforces for each.
INTEGER_FORMATS = {
    'int8': (-2 ** 7, 2 ** 7 - 1), 'int16': (-2 ** 15, 2 ** 15 - 1), 'int32': (-2 ** 31, 2 ** 31 - 1),
    'int64': (None, None), 'int': (None, None),
    'uint8': (0, 2 ** 8 - 1), 'uint16': (0, 2 ** 16 - 1), 'uint32': (0, 2 ** 32 - 1),
    'uint64': (0, None), 'uint': (0, None),
}


# ---------------------------------------------------------------------------------------------
# Schema -> table


def apply_corrections(schema, corrections):
    schema = copy.deepcopy(schema)
    for pointer, (fragment, _reason) in sorted(corrections.items()):
        parts = [p.replace('~1', '/').replace('~0', '~') for p in pointer.strip('/').split('/')]
        node = schema
        for part in parts[:-1]:
            node = node.setdefault(part, {}) if isinstance(node, dict) else node[int(part)]
        if fragment is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = copy.deepcopy(fragment)
    return schema


class Builder:
    """Turns JSON-schema nodes into specs (see config_schema.py's docstring for the grammar)."""

    def __init__(self, schema):
        self.schema = schema
        self.definitions = schema.get('definitions', {})
        self.converted = {}   # definition name -> spec
        self.uses = {}        # definition name -> how often the table refers to it
        self.active = set()
        self.recursive = set()

    def ref_name(self, ref):
        prefix = '#/definitions/'
        if not ref.startswith(prefix):
            raise ValueError('unsupported $ref %s' % ref)
        return ref[len(prefix):]

    def definition(self, name):
        self.uses[name] = self.uses.get(name, 0) + 1
        if name in self.active:
            self.recursive.add(name)
            return name
        if name not in self.converted:
            self.active.add(name)
            self.converted[name] = self.convert(self.definitions[name])
            self.active.discard(name)
        return name

    def convert(self, node):
        if node is True or node == {}:
            return 'any'
        if node.get('x-codexops-refused'):
            return 'refused'
        alternatives = node.get('x-codexops-one-of-required')
        if alternatives:
            rest = dict((k, v) for k, v in node.items() if k != 'x-codexops-one-of-required')
            return self.union([self.convert(dict(rest, required=keys)) for keys in alternatives])
        if '$ref' in node:
            return self.definition(self.ref_name(node['$ref']))
        all_of = [part for part in node.get('allOf', ()) if set(part) != {'not'}]
        if all_of:
            rest = dict((k, v) for k, v in node.items() if k != 'allOf')
            if len(all_of) == 1 and not _has_type_keys(rest):
                return self.convert(all_of[0])
            if not _has_type_keys(rest) or len(all_of) > 1:
                raise ValueError('unsupported allOf: %s' % json.dumps(node)[:200])
            return self.convert(rest)
        for key in ('anyOf', 'oneOf'):
            if key in node:
                return self.union([self.convert(self.closed_variant(alt)) for alt in node[key]])
        if 'enum' in node:
            values = tuple(v for v in node['enum'] if v is not None)
            if not all(isinstance(v, str) for v in values):
                raise ValueError('non-string enum: %s' % json.dumps(node)[:200])
            return ('enum', values)
        types = node.get('type')
        if types is None:
            if 'properties' in node or 'additionalProperties' in node:
                types = 'object'
            else:
                return 'any'
        if isinstance(types, list):
            types = [t for t in types if t != 'null']
            if len(types) != 1:
                return self.union([self.convert(dict(node, type=t)) for t in types])
            types = types[0]
        if types == 'string':
            return 'string'
        if types == 'boolean':
            return 'boolean'
        if types == 'number':
            low, high = _bound(node.get('minimum'), None, max), _bound(node.get('maximum'), None, min)
            return 'number' if low is None and high is None else ('number', low, high)
        if types == 'integer':
            # The format's range (serde enforces it) narrowed by the schema's minimum and maximum
            # (Codex checks those after loading; the probe confirms each).
            low, high = INTEGER_FORMATS.get(node.get('format', 'int64'), (None, None))
            low, high = _bound(node.get('minimum'), low, max), _bound(node.get('maximum'), high, min)
            return 'integer' if low is None and high is None else ('integer', low, high)
        if types == 'array':
            return ('array', self.convert(node.get('items', {})))
        if types == 'object':
            properties = node.get('properties', {})
            extra = node.get('additionalProperties', True)
            extra_spec = None if extra is False else self.convert(extra)
            if not properties and extra is not False:
                return ('map', extra_spec)
            fields = dict((key, self.convert(sub)) for key, sub in sorted(properties.items()))
            if node.get('x-codexops-closed'):
                extra, extra_spec = False, False
            required = tuple(sorted(node.get('required', ())))
            # Keys beyond the known ones: ignored unless the schema types them (a map with a few
            # reserved keys, like [apps] with `_default`).
            if extra is True or extra_spec == 'any':
                extra_spec = None
            elif extra is False:
                extra_spec = False if node.get('x-codexops-closed') else None
            spec = ('table', fields)
            if required or extra_spec is not None:
                spec += (required,)
            if extra_spec is not None:
                spec += (extra_spec,)
            return spec
        raise ValueError('unsupported type %r' % (types,))

    def closed_variant(self, alt):
        """A table variant of one of Codex's enums refuses keys it does not know: serde tries the
        next variant (untagged) or wants exactly one key (externally tagged)."""
        target = alt
        if '$ref' in alt:
            target = self.definitions[self.ref_name(alt['$ref'])]
        if target.get('type') == 'object' and target.get('additionalProperties') is False and target.get(
                'properties'):
            return dict(target, **{'x-codexops-closed': True})
        return alt

    def union(self, alternatives):
        flat = []
        for alt in alternatives:
            if not isinstance(alt, str) and alt[0] == 'union':
                flat.extend(alt[1])
            else:
                flat.append(alt)
        if 'any' in flat:
            return 'any'
        # String variants of one enum (schemars writes each with its description) become one enum.
        enums = [alt for alt in flat if not isinstance(alt, str) and alt[0] == 'enum']
        others = [alt for alt in flat if isinstance(alt, str) or alt[0] != 'enum']
        merged = []
        if enums:
            values = []
            for alt in enums:
                values.extend(v for v in alt[1] if v not in values)
            merged.append(('enum', tuple(values)))
        unique = []
        for alt in merged + others:
            if alt not in unique:
                unique.append(alt)
        if 'string' in unique:
            unique = [alt for alt in unique if isinstance(alt, str) or alt[0] != 'enum']
        return unique[0] if len(unique) == 1 else ('union', tuple(unique))

    def build(self):
        root = self.convert(dict((k, v) for k, v in self.schema.items() if k != 'definitions'))
        # Inline a definition used once (unless recursive); share the others by name.
        keep = set(name for name, count in self.uses.items()
                   if count > 1 and not _is_small(self.converted[name]) or name in self.recursive)

        def inline(spec):
            if isinstance(spec, str) and spec in self.converted and spec not in keep:
                return inline(self.converted[spec])
            return _rebuild(spec, inline)

        definitions = dict((name, inline(self.converted[name])) for name in sorted(keep))
        return inline_single_use(*share_repeats(definitions, inline(root)))


def inline_single_use(definitions, root):
    """(definitions, root) with every definition that is not recursive and is referenced once written
    where it is used, and every one the root cannot reach dropped. Sharing a repeated table can leave
    a definition used once that was used twice before."""
    while True:
        definitions = _reachable(definitions, root)
        uses = dict.fromkeys(definitions, 0)
        for spec in [root] + list(definitions.values()):
            for name in _references(spec):
                uses[name] += 1
        single = set(name for name, count in uses.items()
                     if count == 1 and name not in _references(definitions[name], definitions))
        if not single:
            return definitions, root

        def inline(spec):
            if isinstance(spec, str) and spec in single:
                return inline(definitions[spec])
            return _rebuild(spec, inline)

        definitions = dict((name, inline(spec)) for name, spec in definitions.items() if name not in single)
        root = inline(root)


def _references(spec, definitions=None):
    """The definition names `spec` refers to: directly, or (given `definitions`) through them too."""
    found, stack = [], [spec]
    while stack:
        current = stack.pop()
        if isinstance(current, str):
            if current[:1].isupper() and (definitions is None or current not in found):
                found.append(current)
                if definitions is not None:
                    stack.append(definitions[current])
            continue
        stack.extend(sub for _key, sub in _children(current, None))
    return found


def _reachable(definitions, root):
    names = set(_references(root, definitions))
    return dict((name, spec) for name, spec in definitions.items() if name in names)


# A table of at least this many keys that the schema spells out in two places (config.toml's
# `features` at the top level and in every profile) becomes one shared definition.
MIN_SHARED_KEYS = 8


def share_repeats(definitions, root):
    """(definitions, root) with every large table that stands in more than one place replaced by a
    reference to one definition, named after the key it stands under (`features` -> `Features`)."""
    seen = {}
    for key, spec in _large_tables(definitions, root):
        seen.setdefault(_canonical(spec), (spec, []))[1].append(key)
    shared = {}
    for canonical, (_spec, keys) in sorted(seen.items(), key=lambda item: repr(item[0])):
        if len(keys) > 1:
            name = ''.join(part.capitalize() for part in (keys[0] or 'table').split('_'))
            while name in definitions or name in shared.values():
                name += 'Table'
            shared[canonical] = name

    def replace(spec):
        return shared.get(_canonical(spec)) or _rebuild(spec, replace)

    shared_definitions = dict((name, _rebuild(seen[canonical][0], replace)) for canonical, name in shared.items())
    shared_definitions.update((name, _rebuild(spec, replace)) for name, spec in definitions.items())
    return shared_definitions, replace(root)


def _large_tables(definitions, root):
    """(key it stands under, spec) for every table of MIN_SHARED_KEYS keys or more, innermost first."""
    found = []

    def collect(spec, key):
        for sub_key, sub in _children(spec, key):
            collect(sub, sub_key)
        if _is_table(spec) and len(spec[1]) >= MIN_SHARED_KEYS:
            found.append((key, spec))

    collect(root, None)
    for name in sorted(definitions):
        collect(definitions[name], None)
    return found


def _canonical(spec):
    """A hashable form of a spec in which two tables with the same keys compare equal."""
    if not isinstance(spec, tuple):
        return spec
    if spec[0] == 'table' and isinstance(spec[1], dict):
        # REQUIRED (spec[2]) is a tuple of names; EXTRA (spec[3]) is a spec.
        fields = tuple((k, _canonical(v)) for k, v in sorted(spec[1].items()))
        return ('table', fields) + spec[2:3] + tuple(_canonical(part) for part in spec[3:])
    return tuple(_canonical(part) if isinstance(part, tuple) else part for part in spec)


def _is_table(spec):
    return isinstance(spec, tuple) and spec[0] == 'table'


def _children(spec, key):
    """(key, sub-spec) pairs below `spec`; array, map and union members stand under its own key."""
    if not isinstance(spec, tuple):
        return []
    if spec[0] in ('array', 'map'):
        return [(key, spec[1])]
    if spec[0] == 'union':
        return [(key, alt) for alt in spec[1]]
    if spec[0] == 'table':
        found = sorted(spec[1].items())
        if len(spec) > 3:
            found.append((key, spec[3]))
        return found
    return []


def _rebuild(spec, func):
    """`spec` with func applied to each direct sub-spec."""
    if not isinstance(spec, tuple):
        return spec
    if spec[0] in ('array', 'map'):
        return (spec[0], func(spec[1]))
    if spec[0] == 'union':
        return ('union', tuple(func(alt) for alt in spec[1]))
    if spec[0] == 'table':
        out = (spec[0], dict((k, func(v)) for k, v in spec[1].items())) + spec[2:3]
        if len(spec) > 3:
            out += (func(spec[3]),)
        return out
    return spec


def _bound(value, current, pick):
    if value is None:
        return current
    value = int(value) if float(value).is_integer() else value
    return value if current is None else pick(value, current)


def _has_type_keys(node):
    return any(key in node for key in ('type', 'properties', 'additionalProperties', 'items', 'enum', '$ref',
                                       'anyOf', 'oneOf'))


def _is_small(spec):
    return isinstance(spec, str) or spec[0] == 'integer' or spec[0] == 'enum' and len(spec[1]) <= 3


def render(definitions, root, source):
    shared = _shared_fields(definitions, root)
    lines = [BEGIN, 'SOURCE = %r\n' % source, '\n']
    # Field sets that several tables share (an MCP server's, whichever of command or url it
    # requires): written once, the tables hold the same dict.
    for name, fields in sorted(shared.values(), key=lambda item: item[0]):
        lines.append('%s = %s\n\n' % (name, _render_fields(fields, 0, {})))
    lines.append('DEFINITIONS = {\n')
    for name, spec in sorted(definitions.items()):
        lines.append(_render_entry(name, spec, 1, shared))
    lines.append('}\n\n')
    body = _render(root, 0, shared)
    lines.append('ROOT = %s\n' % body)
    lines.append(END)
    return ''.join(lines)


def _shared_fields(definitions, root):
    """{canonical fields: (variable name, fields)} for the large field sets that stand in more than
    one table."""
    found = {}
    for _key, spec in _large_tables(definitions, root):
        found.setdefault(_canonical(('table', spec[1])), []).append(spec[1])
    repeated = sorted((key for key, places in found.items() if len(places) > 1), key=repr)
    return dict((key, ('_SHARED_FIELDS_%d' % index, found[key][0])) for index, key in enumerate(repeated, 1))


def _render_entry(key, spec, level, shared):
    pad = '    ' * level
    return '%s%r: %s,\n' % (pad, key, _render(spec, level, shared))


def _render_fields(fields, level, shared):
    inner = ''.join(_render_entry(k, v, level + 1, shared) for k, v in sorted(fields.items()))
    return '{\n%s%s}' % (inner, '    ' * level) if fields else '{}'


def _render(spec, level, shared):
    """Tables one key a line, long enums wrapped at 120 columns, everything else on one line."""
    if _is_table(spec):
        name = shared.get(_canonical(('table', spec[1])), (None,))[0]
        head = "('table', %s" % (name or _render_fields(spec[1], level, shared))
        tail = ''.join(', ' + repr(part) for part in spec[2:3])  # REQUIRED, when given
        tail += ''.join(', ' + _render(part, level, shared) for part in spec[3:])  # EXTRA
        return head + tail + ')'
    if isinstance(spec, tuple) and spec[0] in ('array', 'map'):
        return "('%s', %s)" % (spec[0], _render(spec[1], level, shared))
    if isinstance(spec, tuple) and spec[0] == 'union':
        parts = [_render(alt, level, shared) for alt in spec[1]]
        return "('union', (%s%s))" % (', '.join(parts), ',' if len(parts) == 1 else '')
    if isinstance(spec, tuple) and spec[0] == 'enum':
        values = [repr(value) for value in spec[1]]
        one_line = "('enum', (%s%s))" % (', '.join(values), ',' if len(values) == 1 else '')
        if len(one_line) + 4 * level + 40 <= 120:
            return one_line
        # A hanging indent, one line per ~100 columns of values.
        pad = '    ' * (level + 1)
        lines, line = [], ''
        for value in values:
            if line and len(pad) + len(line) + len(value) + 2 > 118:
                lines.append(line.rstrip())  # ends with a comma
                line = ''
            line += value + ', '
        lines.append(line.rstrip(', '))
        return "('enum', (\n%s))" % '\n'.join(pad + part for part in lines)
    return repr(spec)


def write_module(table_text, path=MODULE):
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(text[:start] + table_text + text[end:])


def generate(schema_path, source, output=MODULE):
    with open(schema_path, encoding='utf-8') as handle:
        schema = json.load(handle)
    definitions, root = Builder(apply_corrections(schema, SCHEMA_CORRECTIONS)).build()
    write_module(render(definitions, root, source), output)
    return definitions, root


# ---------------------------------------------------------------------------------------------
# Probe: the table against a real Codex


def load_checker(path=MODULE):
    namespace = {}
    with open(path, encoding='utf-8') as handle:
        exec(compile(handle.read(), path, 'exec'), namespace)  # pylint: disable=exec-used
    return namespace


def toml_value(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return '[%s]' % ', '.join(toml_value(v) for v in value)
    return '{%s}' % ', '.join('%s = %s' % (toml_key(k), toml_value(v)) for k, v in value.items())


def toml_key(key):
    return key if re.match(r'^[A-Za-z0-9_-]+$', key) else json.dumps(key)


def toml_document(document):
    """One top-level key a line, nested tables inline: a mismatch is reported on its own line."""
    return ''.join('%s = %s\n' % (toml_key(k), toml_value(v)) for k, v in document.items())


# Valid strings for keys whose values Codex also checks for meaning (a key name, a provider it
# knows), and keys a table needs before Codex looks further: so that "valid" samples are valid.
PROBE_STRINGS = (
    (r'^(profiles\.probe\.)?tui\.keymap\.', 'f1'),
    (r'^(profiles\.probe\.)?model_provider$', 'openai'),
    (r'^default_permissions$', ':read-only'),
)
PROBE_BASES = (
    (r'^model_providers\.probe$', {'name': 'probe'}),
)
# Codex's messages for a value of the wrong type (what this table models); any other refusal of a
# value the table accepts is a check of meaning, reported but not counted as a disagreement.
TYPE_ERRORS = ('invalid type', 'unknown variant', 'missing field', 'invalid value', 'did not match any variant',
               'unknown field', 'wanted exactly', 'expected', 'no longer supported', 'invalid transport')


class Prober:
    """Builds, for every key of the table, documents the checker refuses or accepts; Codex must
    agree with each."""

    UNKNOWN = 'zz_probe_unknown_key'
    MAP_KEY = 'probe'

    def __init__(self, checker):
        self.c = checker
        self.cases = []

    def resolve(self, spec):
        return self.c['_resolve'](spec)

    def problems(self, document):
        return self.c['config_type_problems'](document)

    def sample(self, spec, label=''):
        spec = self.resolve(spec)
        if isinstance(spec, str):
            if spec == 'string':
                for pattern, value in PROBE_STRINGS:
                    if re.search(pattern, label):
                        return value
            return {'string': 'probe', 'boolean': True, 'number': 0.5, 'integer': 1, 'any': 'probe',
                    'refused': 'probe'}[spec]
        kind = spec[0]
        if kind in ('integer', 'number'):
            low, high = spec[1], spec[2]
            value = max(low, 1) if low is not None else 1
            return min(value, high) if high is not None else value
        if kind == 'enum':
            return spec[1][-1]
        if kind == 'array':
            return []
        if kind == 'map':
            return {}
        if kind == 'table':
            required = spec[2] if len(spec) > 2 else ()
            base = dict((key, self.sample(spec[1][key], _join(label, key))) for key in required)
            for pattern, extra in PROBE_BASES:
                if re.search(pattern, label):
                    base.update(extra)
            return base
        # Prefer a scalar variant: it needs no required keys.
        scalars = [alt for alt in spec[1] if isinstance(self.resolve(alt), str) or self.resolve(alt)[0] in
                   ('integer', 'number', 'enum')]
        return self.sample(scalars[0] if scalars else spec[1][0], label)

    def add(self, label, document, detail):
        self.cases.append({'label': label, 'document': document, 'detail': detail,
                           'refused': bool(self.problems(document))})

    def walk(self, spec, wrap, path, stack=()):
        name = spec if isinstance(spec, str) and spec[:1].isupper() else None
        if name in stack:
            return
        stack = stack + ((name,) if name else ())
        spec = self.resolve(spec)
        label = self.c['format_path'](path)
        if path:
            for candidate in (5, 'zz-probe-bogus', True, 1.5, [5], {self.UNKNOWN: 5}):
                # One wrong value per key keeps the probe small: the first kind no variant takes.
                if self.problems(wrap(candidate)):
                    self.add(label, wrap(candidate), 'wrong type')
                    break
            if spec != 'refused':
                self.add(label, wrap(self.sample(spec, label)), 'valid sample')
        if isinstance(spec, str):
            return
        kind = spec[0]
        if kind in ('integer', 'number'):
            step = 1 if kind == 'integer' else 0.5
            low, high = spec[1], spec[2]
            if low is not None and low > -2 ** 63:
                self.add(label, wrap(low - step), 'below %s' % low)
                self.add(label, wrap(low), 'at %s' % low)
            if high is not None and high < 2 ** 63 - 1:
                self.add(label, wrap(high + step), 'above %s' % high)
                self.add(label, wrap(high), 'at %s' % high)
        elif kind == 'enum':
            self.add(label, wrap('zz-probe-bogus'), 'enum %s' % '|'.join(spec[1]))
            for value in spec[1]:
                self.add(label, wrap(value), 'enum value %s' % value)
        elif kind == 'array':
            self.walk(spec[1], lambda v: wrap([v]), path + (0,), stack)
        elif kind == 'map':
            self.walk(spec[1], lambda v: wrap({self.MAP_KEY: v}), path + (self.MAP_KEY,), stack)
        elif kind == 'table':
            base = self.sample(spec, label)
            if len(spec) < 4 or spec[3] is None or spec[3] is False:
                self.add(label, wrap(dict(base, **{self.UNKNOWN: 5})), 'unknown key')
            for key in (spec[2] if len(spec) > 2 else ()):
                self.add(label, wrap(dict((k, v) for k, v in base.items() if k != key)), 'required %s' % key)
            for key, sub in sorted(spec[1].items()):
                self.walk(sub, lambda v, key=key: wrap(dict(base, **{key: v})), path + (key,), stack)
            if len(spec) > 3 and spec[3]:
                self.walk(spec[3], lambda v: wrap(dict(base, **{self.MAP_KEY: v})), path + (self.MAP_KEY,), stack)
        else:
            for alt in spec[1]:
                resolved = self.resolve(alt)
                if not isinstance(resolved, str) and resolved[0] in ('array', 'map', 'table'):
                    self.walk(alt, wrap, path, stack)


def _join(label, key):
    return '%s.%s' % (label, key) if label else key


def run_codex(codex, home, document):
    with open(os.path.join(home, 'config.toml'), 'w', encoding='utf-8') as handle:
        handle.write(toml_document(document))
    env = {'CODEX_HOME': home, 'HOME': home, 'PATH': '/usr/bin:/bin', 'LANG': 'C.UTF-8'}
    proc = subprocess.run([codex, 'login', 'status'], env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
    err = proc.stderr.decode('utf-8', 'replace')
    refused = proc.returncode != 0 and 'Error loading configuration' in err
    message = [line for line in err.splitlines() if 'Error loading configuration' in line]
    if not message:
        message = err.strip().splitlines()[-1:] or ['']
    return refused, message[0]


def merge_into(target, document):
    """Deep-merge document into target; False (target unchanged) where a value would differ."""
    trial = copy.deepcopy(target)
    for key, value in document.items():
        if key not in trial:
            trial[key] = copy.deepcopy(value)
        elif isinstance(trial[key], dict) and isinstance(value, dict):
            merged = merge_into(trial[key], value)
            if merged is False:
                return False
            trial[key] = merged
        elif trial[key] != value or type(trial[key]) is not type(value):
            return False
    return trial


def merged_document(documents):
    out = {}
    for document in documents:
        out = merge_into(out, document)
    return out


def merge_batches(indexes, cases, size=200):
    batches = []  # [(merged document, [case indexes])]
    for index in indexes:
        for position, (document, members) in enumerate(batches):
            if len(members) < size:
                merged = merge_into(document, cases[index]['document'])
                if merged is not False:
                    batches[position] = (merged, members + [index])
                    break
        else:
            batches.append((copy.deepcopy(cases[index]['document']), [index]))
    return [members for _document, members in batches]


def probe(codex, module=MODULE, jobs=8, only=None):
    checker = load_checker(module)
    prober = Prober(checker)
    prober.walk(checker['ROOT'], lambda v: v, ())
    cases = [case for case in prober.cases if only is None or case['label'].startswith(only)]
    homes = [tempfile.mkdtemp(prefix='codex-probe-') for _job in range(jobs)]
    for home in homes:
        with open(os.path.join(home, 'auth.json'), 'w', encoding='utf-8') as handle:
            handle.write('{"OPENAI_API_KEY": "sk-test-123", "auth_mode": "apikey"}')
    # A document Codex must refuse needs a run of its own (Codex stops at the first error);
    # documents it must accept are merged into a few large ones, split only when one is refused.
    refused_cases = [i for i, case in enumerate(cases) if case['refused']]
    batches = merge_batches([i for i, case in enumerate(cases) if not case['refused']], cases)
    queue = [[i] for i in refused_cases] + batches
    pool = concurrent.futures.ThreadPoolExecutor(jobs)
    free = list(homes)

    def run(batch):
        home = free.pop()
        try:
            return batch, run_codex(codex, home, merged_document([cases[i]['document'] for i in batch]))
        finally:
            free.append(home)

    pending = set(pool.submit(run, batch) for batch in queue)
    while pending:
        done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in done:
            batch, (refused, message) = future.result()
            if refused and len(batch) > 1:
                half = len(batch) // 2
                pending.add(pool.submit(run, batch[:half]))
                pending.add(pool.submit(run, batch[half:]))
                continue
            for index in batch:
                cases[index]['codex_refused'] = refused
                cases[index]['codex_message'] = message
    pool.shutdown()
    for home in homes:
        shutil.rmtree(home, ignore_errors=True)
    disagreements = []
    for case in cases:
        message = case['codex_message']
        if case['codex_refused'] and not case['refused']:
            # Codex stricter than the table: a miss if it is about the type, else a check of meaning.
            case['kind'] = 'type' if any(text in message for text in TYPE_ERRORS) else 'meaning'
            if case['kind'] == 'type':
                disagreements.append(case)
        elif case['refused'] and not case['codex_refused']:
            case['kind'] = 'table stricter than Codex'
            disagreements.append(case)
        elif case['detail'].startswith('enum ') and '|' in case['detail'] and 'expected' in message:
            # "expected one of `a`, `b`" or "expected `a` or `b`"; a one-value enum is a variant's tag.
            listed = re.findall(r'`([^`]*)`', message.split('expected', 1)[1])
            if listed != case['detail'][5:].split('|'):
                case['codex_variants'] = listed
                disagreements.append(case)
    return cases, disagreements


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('schema', nargs='?', help="Codex's config.schema.json")
    parser.add_argument('--source', default='', help='where the schema came from (repository, tag, commit)')
    parser.add_argument('--output', default=MODULE, help='the module whose table region is rewritten')
    parser.add_argument('--probe', metavar='CODEX', help='check the table against this Codex binary')
    parser.add_argument('--only', help='probe only key paths starting with this')
    parser.add_argument('--jobs', type=int, default=8)
    parser.add_argument('--report', help='write every probe case and Codex answer to this JSON file')
    args = parser.parse_args(argv)
    if not args.schema and not args.probe:
        parser.error('give a schema, --probe CODEX, or both')
    if args.schema:
        definitions, _root = generate(args.schema, args.source or args.schema, args.output)
        print('wrote %s (%d shared definitions)' % (args.output, len(definitions)))
    if args.probe:
        cases, disagreements = probe(args.probe, args.output, args.jobs, args.only)
        if args.report:
            with open(args.report, 'w', encoding='utf-8') as handle:
                json.dump(cases, handle, indent=1, default=str)
        for case in disagreements:
            print('DISAGREE %s [%s] table %s, codex %s: %s\n    %s' % (
                case['label'], case['detail'], 'refuses' if case['refused'] else 'accepts',
                'refused' if case['codex_refused'] else 'accepted',
                case.get('codex_variants') or case['codex_message'], toml_document(case['document']).strip()))
        meaning = [case for case in cases if case.get('kind') == 'meaning']
        print('%d cases (%d refused by both, %d accepted by both), %d disagreements, %d values of the right '
              'type that Codex refuses for their meaning (not modelled)' % (
                  len(cases), sum(1 for c in cases if c['refused'] and c['codex_refused']),
                  sum(1 for c in cases if not c['refused'] and not c['codex_refused']),
                  len(disagreements), len(meaning)))
        return 1 if disagreements else 0
    return 0


if __name__ == '__main__':
    sys.exit(main())
