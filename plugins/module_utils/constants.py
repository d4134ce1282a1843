# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a provisioned CODEX_HOME looks like: file names, modes, limits and the values Codex takes.

Private to this collection. One place for the facts every helper needs, so that none of them imports
health.py (or any other helper) only for a file name.
"""

# A time a runner wrote (a keepalive's finish time, auth.json's last_refresh) may lie this far in the
# future for clock skew; further, it is forged or broken, and neither verify nor a store believes it.
CLOCK_SKEW_TOLERANCE_SECONDS = 300

# The one user every rule about who controls a directory trusts.
ROOT_UID = 0
AUTH_FILE = 'auth.json'
CONFIG_FILE = 'config.toml'
# Codex refuses to save credentials a group or others can read; it creates both with these modes.
HOME_MODE = 0o700
AUTH_MODE = 0o600
# A config.toml provisioning creates (an existing one keeps its mode): it may hold MCP server secrets.
CONFIG_MODE = 0o600
# A missing directory above CODEX_HOME is created like a home directory: traversable, not writable.
PARENT_MODE = 0o755
# config.toml is read whole before it is parsed; Codex's own files are a few KiB.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
# The values Codex accepts for the two settings provisioning writes or checks.
STORE_VALUES = ('file', 'keyring', 'auto', 'ephemeral')
LOGIN_METHODS = ('chatgpt', 'api')
