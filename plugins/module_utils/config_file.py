# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Applying top-level settings to CODEX_HOME/config.toml.

Private to this collection. config.toml can hold MCP server secrets, so results and diffs name
changed keys, never values; a new file is created 0600, an existing one keeps its mode and owner;
an invalid document is refused untouched, and the result is validated before it replaces the file.
"""

import os
import stat

from ansible_collections.codexops.runner.plugins.module_utils import auth_model
from ansible_collections.codexops.runner.plugins.module_utils import config_schema
from ansible_collections.codexops.runner.plugins.module_utils import constants
from ansible_collections.codexops.runner.plugins.module_utils import errors
from ansible_collections.codexops.runner.plugins.module_utils import toml_keys

# Values Codex accepts for the settings this collection cares about; anything else would make
# every Codex command fail, so it is refused here rather than discovered on the runner.
KNOWN_VALUES = {
    'cli_auth_credentials_store': constants.STORE_VALUES,
    'forced_login_method': constants.LOGIN_METHODS,
}


class ConfigError(errors.CodexOpsError):
    default_code = 'config_invalid'


def check_settings(settings):
    for key, value in settings.items():
        if not toml_keys.BARE_KEY.match(key):
            raise ConfigError('setting names must be bare TOML keys (letters, digits, _ and -); nested tables '
                              'are not top-level settings.')
        allowed = KNOWN_VALUES.get(key)
        if allowed and value is not None and value not in allowed:
            raise ConfigError('%s must be one of %s; Codex refuses to start with anything else.'
                              % (key, ', '.join(allowed)))
        if key == 'forced_chatgpt_workspace_id' and value is not None and not (
                isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            raise ConfigError('forced_chatgpt_workspace_id must be a string or a list of strings.')
        if isinstance(value, dict):
            raise ConfigError('%s: a table is not a top-level setting; give a string, number, boolean or list.'
                              % key)
        if auth_model.has_lone_surrogate(value):
            raise ConfigError('%s: the value is not valid Unicode text (it holds a lone UTF-16 surrogate).' % key)


def plan_settings(home, settings):
    """(changes {key: added|updated|removed}, warnings, resulting text, stat of the current file) for
    the open HomeDir `home` (None while CODEX_HOME is missing). Reads only."""
    check_settings(settings)
    path = os.path.join(home.path if home is not None else '', constants.CONFIG_FILE)
    data, st = (None, None) if home is None else home.read_regular(constants.CONFIG_FILE, 'config',
                                                                   constants.MAX_CONFIG_BYTES)
    try:
        text = '' if data is None else data.decode('utf-8')
    except UnicodeDecodeError:
        raise ConfigError('%s is not UTF-8 text; it was left untouched.' % path)
    reason = toml_keys.validate(text)
    if reason:
        raise ConfigError('%s is not valid TOML (%s); fix it first. It was left untouched.' % (path, reason))
    try:
        new_text, changes = toml_keys.set_top_level(text, settings)
    except toml_keys.TomlEditError as exc:
        raise ConfigError('%s could not be edited (%s); it was left untouched.' % (path, exc))
    reason = toml_keys.validate(new_text)
    if reason:
        raise ConfigError('editing %s would make it invalid TOML (%s); it was left untouched.' % (path, reason))
    # The verdict verify gives (health: config_invalid), from the same type table: a value of a key
    # Codex knows that Codex would refuse to load is refused here, before anything is written. Only the
    # keys being set: a wrong value elsewhere in the file is verify's to report, and this edit may be
    # the fix for it. The values are checked as given (they are what the edit writes), so this needs no
    # TOML parser and holds on Python 3.9 too.
    being_set = dict((key, value) for key, value in settings.items() if value is not None)
    refused = config_schema.config_type_problems(being_set)
    if refused:
        raise ConfigError('%s; Codex refuses to load a config.toml with %s. %s was left untouched.'
                          % ('; '.join('%s: %s' % item for item in refused[:5]),
                             'that value' if len(refused) == 1 else 'those values', path))
    warnings = []
    for key in settings:
        holders = toml_keys.tables_holding(new_text, key)
        if holders:
            warnings.append('%s also appears inside [%s] in %s, where Codex ignores it as a top-level setting.'
                            % (key, '], ['.join(holders), path))
    return changes, warnings, new_text, st


def write_settings(home, new_text, st, uid=None, gid=None):
    """Replace config.toml with `new_text`: a new file is 0600 (owned as asked), an existing one keeps
    its mode and owner."""
    data = new_text.encode('utf-8')
    if st is None:
        home.atomic_write(constants.CONFIG_FILE, data, uid, gid, constants.CONFIG_MODE)
    else:
        # Its permission bits only: never a setuid, setgid or sticky bit on the new file.
        home.atomic_write(constants.CONFIG_FILE, data, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode) & 0o777)


def apply_settings(context, settings, check_mode=False):
    """codex_config in one call, for a HomeContext (codex_home.act): returns (changes, CODEX_HOME
    changes, warnings, resulting text). Refuses before anything is written."""
    changes, warnings, new_text, st = plan_settings(context.home, settings)
    dir_changes = context.predicted_changes()
    if check_mode or not (changes or dir_changes):
        return changes, dir_changes, warnings, new_text
    dir_changes = context.ensure()
    if changes:
        context.as_owner(_write_planned, new_text, st)
    return changes, dir_changes, warnings, new_text


def _write_planned(context, new_text, st):
    uid, gid = context.file_ids
    write_settings(context.home, new_text, st, uid, gid)
