# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""codex_fleet_report_write: write the fleet report (JSON and Markdown) on the controller, and say what it found.

The codex_auth role's `report` entry point runs it once per play (run_once) with the fleet its
`codex_fleet_report` filter aggregated (the `codex_auth_fleet` fact). No module runs: the files are
written by this process, the controller, where the role wrote them before with `file` and a `copy` loop
delegated to localhost (five module runs per play, about two seconds).

The bytes are the ones those tasks wrote: the JSON is Ansible's own `to_nice_json` of the fleet plus a
line break, the Markdown is `codex_fleet_markdown`'s (the filter function itself, never a copy of it).
Each file is written to a temporary file in the report directory and renamed over the old one (mode
0644), so a reader never sees half a report and a link at the file's name is replaced, never followed.
A missing directory is created (0755, and its missing parents). The controller is trusted: an existing
report directory is used as it is, a link to a directory included, as the `file` module did.

Never `changed` (a controller artifact, not a change to a runner). In check mode nothing is written: it
returns the paths it would write, with `written: false`, as the `file`/`copy` tasks did under --check.
"""

import os
import tempfile

from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.action import ActionBase
from ansible.plugins.filter.core import to_nice_json

from ansible_collections.codexops.runner.plugins.filter.fleet import codex_fleet_markdown

FILE_MODE = 0o644
DIR_MODE = 0o755
# (extension, how the fleet becomes the file's text), in the order they are written.
FORMATS = (
    ('json', lambda fleet: to_nice_json(fleet) + '\n'),
    ('md', codex_fleet_markdown),
)


class ReportError(Exception):
    pass


def _count(totals, name):
    value = totals.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _names(fleet, key):
    value = fleet.get(key)
    return [str(item) for item in value] if isinstance(value, list) else []


def summary(fleet, markdown_path, written=True):
    """The one-line summary of a fleet report (what the role's debug task printed, on one line)."""
    totals = fleet.get('totals') if isinstance(fleet.get('totals'), dict) else {}
    runners, hosts = _count(totals, 'runners'), _count(totals, 'hosts')
    counted = '%d runners on %d hosts' % (runners, hosts) if runners != hosts else '%d hosts' % hosts
    broken, unknown = _names(fleet, 'broken'), _names(fleet, 'unknown')
    shared = fleet.get('shared_fingerprints') if isinstance(fleet.get('shared_fingerprints'), dict) else {}
    groups = [' + '.join(str(name) for name in (sharing if isinstance(sharing, list) else [sharing]))
              for sharing in shared.values()]
    return '%s: %d healthy, %d broken%s, %d sharing a refresh token%s, %d stale, %d unknown%s. %s: %s' % (
        counted, _count(totals, 'healthy'), _count(totals, 'broken'),
        ' (%s)' % ', '.join(broken) if broken else '',
        _count(totals, 'sharing'), ' (%s)' % '; '.join(groups) if groups else '',
        _count(totals, 'stale'), _count(totals, 'unknown'),
        ' (%s)' % ', '.join(unknown) if unknown else '',
        'Report' if written else 'Report (check mode, not written)', markdown_path)


def report_paths(directory, name):
    """{extension: path} of the report's files; refuses a name that is not a plain file name."""
    if not name or name in ('.', '..') or '/' in name or '\x00' in name:
        raise ReportError('name must be a file name without a directory or an extension (e.g. fleet-report), '
                          'not %r' % name[:60])
    return dict((ext, os.path.join(directory, '%s.%s' % (name, ext))) for ext, _render in FORMATS)


def make_directory(directory):
    """Create the report directory and its missing parents, each 0755 whatever the umask; an existing one
    is used as it is. Refuses a path that exists and is not a directory."""
    missing = []
    path = directory
    while not os.path.isdir(path):
        if os.path.lexists(path):
            raise ReportError('%s exists and is not a directory' % path)
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            if not os.path.isdir(path):
                raise ReportError('%s exists and is not a directory' % path)
            continue
        os.chmod(path, DIR_MODE)


def temp_file(path, text):
    """A temporary file beside path (same directory, so the rename is atomic) holding text, mode 0644."""
    directory, filename = os.path.split(path)
    fd, temp = tempfile.mkstemp(prefix='.%s.' % filename, suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(to_bytes(text, errors='surrogate_or_strict'))
            handle.flush()
            os.fchmod(handle.fileno(), FILE_MODE)
            os.fsync(handle.fileno())
    except BaseException:
        _unlink(temp)
        raise
    return temp


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def write_files(texts):
    """Write each (path, text) atomically: every temporary file first, then each renamed over its path. A link
    at path is replaced, never followed; a directory there is refused by the rename. Nothing is left behind."""
    temps = []
    try:
        for path, text in texts:
            temps.append((temp_file(path, text), path))
        while temps:
            os.replace(temps[0][0], temps[0][1])
            temps.pop(0)
    finally:
        for temp, _path in temps:
            _unlink(temp)


def write_report(fleet, directory, name, check_mode=False):
    """Render both files, then (unless check_mode) create the directory and write them: (paths, written)."""
    paths = report_paths(directory, name)
    texts = [(paths[ext], render(fleet)) for ext, render in FORMATS]  # rendered before anything is written
    if check_mode:
        return paths, False
    try:
        make_directory(directory)
        write_files(texts)
    except OSError as exc:
        raise ReportError('%s: %s' % (to_native(exc.filename or directory), to_native(exc.strerror or exc)))
    return paths, True


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars or {})
        del tmp  # nothing runs on a host

        _validation, args = self.validate_argument_spec(argument_spec=dict(
            fleet=dict(type='dict', required=True),
            dir=dict(type='path', required=True),
            name=dict(type='str', default='fleet-report'),
        ))
        fleet = args['fleet']
        if not isinstance(fleet.get('totals'), dict) or not isinstance(fleet.get('ok'), bool):
            return dict(result, failed=True, changed=False,
                        msg='fleet must be the dict the codexops.runner.codex_fleet_report filter returns '
                            '(with ok and totals)')
        directory = os.path.abspath(args['dir'])
        try:
            paths, written = write_report(fleet, directory, args['name'], check_mode=self._task.check_mode)
        except ReportError as exc:
            return dict(result, failed=True, changed=False,
                        msg='Cannot write the fleet report in %s: %s' % (directory, exc))
        result.update(changed=False, ok=fleet['ok'], written=written, json=paths['json'], markdown=paths['md'],
                      msg=summary(fleet, paths['md'], written))
        # Shown without -v, as the debug task it replaces was: the summary is the point of the task.
        result['_ansible_verbose_always'] = True
        return result
