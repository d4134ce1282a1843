# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""codex_fleet_report_write (action plugin): the bytes it writes, how (atomically, 0644, a 0755 directory),
check mode, and what it refuses. The plugin runs in-process; the integration tests
(tests/integration/test_fleet_report_write.py) run it through ansible-playbook against the tasks it replaced."""

import json
import os
import stat
from unittest import mock

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.filter.core import to_nice_json

from ansible_collections.codexops.runner.plugins.action import codex_fleet_report_write as plugin
from ansible_collections.codexops.runner.plugins.filter import fleet as fleet_filters


def health(fingerprint, healthy=True, problems=()):
    return {'healthy': healthy, 'problems': [{'code': code, 'message': 'm'} for code in problems],
            'health_warnings': [], 'auth_mode': 'chatgpt', 'last_refresh': '2026-11-21T11:11:52Z', 'age_days': 0.5,
            'credentials_store': 'file', 'refresh_token_fingerprint': fingerprint, 'stale': False}


def fleet_of(results):
    return fleet_filters.codex_fleet_report(results)


FLEET = fleet_of({'runner-1': health('aaaa'), 'runner-2': health('bbbb', False, ['auth_missing']),
                  'runner-3': None, 'runner-4': health('cccc'), 'runner-5': health('cccc'),
                  # A host supplies text: it must come out exactly as the filters make it (escaped in Markdown).
                  u'r\u00e9nner|6': health('dddd')})


def run(fleet, directory, name=None, check_mode=False):
    task = mock.MagicMock()
    task.args = {'fleet': fleet, 'dir': str(directory)}
    if name is not None:
        task.args['name'] = name
    task.async_val = 0
    task.check_mode = check_mode
    task.diff = False
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    action = plugin.ActionModule(task, connection, mock.MagicMock(), DataLoader(), mock.MagicMock(),
                                 mock.MagicMock())
    return action.run(task_vars={})


def mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def listing(directory):
    return sorted(os.listdir(str(directory)))


@pytest.fixture
def umask_077():
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def test_writes_the_bytes_the_copy_tasks_wrote(tmp_path, umask_077):
    directory = tmp_path / 'a' / 'b' / 'report'
    result = run(FLEET, directory)
    assert not result.get('failed') and result['changed'] is False and result['written'] is True
    assert (directory / 'fleet-report.json').read_bytes() == (to_nice_json(FLEET) + '\n').encode('utf-8')
    assert (directory / 'fleet-report.md').read_bytes() == fleet_filters.codex_fleet_markdown(FLEET).encode('utf-8')
    assert json.loads((directory / 'fleet-report.json').read_text()) == FLEET
    # 0644 files and 0755 directories (each missing parent too), whatever the umask.
    assert mode(directory / 'fleet-report.json') == mode(directory / 'fleet-report.md') == 0o644
    assert mode(directory) == mode(tmp_path / 'a' / 'b') == mode(tmp_path / 'a') == 0o755
    assert listing(directory) == ['fleet-report.json', 'fleet-report.md']  # no temporary file left
    assert result['json'] == str(directory / 'fleet-report.json')
    assert result['markdown'] == str(directory / 'fleet-report.md')
    assert result['ok'] is False and result['_ansible_verbose_always'] is True


def test_summary_names_broken_sharing_and_unknown_runners(tmp_path):
    result = run(FLEET, tmp_path, name='before-reseed')
    assert result['msg'] == (
        u'6 hosts: 2 healthy, 1 broken (runner-2), 2 sharing a refresh token (runner-4 + runner-5), 0 stale, '
        u'1 unknown (runner-3). Report: %s/before-reseed.md' % tmp_path)
    assert listing(tmp_path) == ['before-reseed.json', 'before-reseed.md']


def test_summary_counts_runners_on_hosts_with_instances(tmp_path):
    fleet = fleet_of({'runner-1/gh-1': dict(health('aaaa'), name='gh-1'),
                      'runner-1/gh-2': dict(health('bbbb'), name='gh-2')})
    result = run(fleet, tmp_path)
    assert result['ok'] is True
    assert result['msg'] == ('2 runners on 1 hosts: 2 healthy, 0 broken, 0 sharing a refresh token, 0 stale, '
                             '0 unknown. Report: %s/fleet-report.md' % tmp_path)


def test_replaces_the_old_report_atomically(tmp_path):
    (tmp_path / 'fleet-report.json').write_text('old')
    os.chmod(str(tmp_path / 'fleet-report.json'), 0o600)
    before = os.stat(str(tmp_path / 'fleet-report.json')).st_ino
    run(FLEET, tmp_path)
    # A new file renamed over the old one: another inode, the new bytes, 0644.
    assert os.stat(str(tmp_path / 'fleet-report.json')).st_ino != before
    assert json.loads((tmp_path / 'fleet-report.json').read_text()) == FLEET
    assert mode(tmp_path / 'fleet-report.json') == 0o644
    assert listing(tmp_path) == ['fleet-report.json', 'fleet-report.md']


def test_a_link_at_a_report_file_is_replaced_never_followed(tmp_path):
    target = tmp_path / 'elsewhere'
    target.write_text('not yours')
    directory = tmp_path / 'report'
    directory.mkdir()
    os.symlink(str(target), str(directory / 'fleet-report.md'))
    os.symlink(str(tmp_path / 'missing'), str(directory / 'fleet-report.json'))
    run(FLEET, directory)
    assert target.read_text() == 'not yours' and not (tmp_path / 'missing').exists()
    assert not os.path.islink(str(directory / 'fleet-report.md'))
    assert (directory / 'fleet-report.md').read_text() == fleet_filters.codex_fleet_markdown(FLEET)


def test_a_failed_write_keeps_the_old_report_and_leaves_no_temporary_file(tmp_path):
    (tmp_path / 'fleet-report.json').write_text('old')
    with mock.patch.object(plugin.os, 'replace', side_effect=OSError(28, 'No space left on device')):
        result = run(FLEET, tmp_path)
    assert result['failed'] is True and 'No space left on device' in result['msg'] and str(tmp_path) in result['msg']
    assert (tmp_path / 'fleet-report.json').read_text() == 'old'
    assert listing(tmp_path) == ['fleet-report.json']


def test_check_mode_writes_nothing_and_says_what_it_would_write(tmp_path):
    directory = tmp_path / 'report'
    result = run(FLEET, directory, check_mode=True)
    assert not result.get('failed') and result['changed'] is False and result['written'] is False
    assert not directory.exists()
    assert result['json'] == str(directory / 'fleet-report.json')
    assert 'Report (check mode, not written): %s/fleet-report.md' % directory in result['msg']
    (directory).mkdir()
    (directory / 'fleet-report.md').write_text('old')
    run(FLEET, directory, check_mode=True)
    assert listing(directory) == ['fleet-report.md'] and (directory / 'fleet-report.md').read_text() == 'old'


def test_an_existing_directory_is_used_as_it_is(tmp_path):
    directory = tmp_path / 'report'
    directory.mkdir(mode=0o700)
    os.chmod(str(directory), 0o700)
    run(FLEET, directory)
    assert mode(directory) == 0o700 and listing(directory) == ['fleet-report.json', 'fleet-report.md']
    # The controller is trusted: a link to a directory is used, as the file module did.
    real = tmp_path / 'real'
    real.mkdir()
    os.symlink(str(real), str(tmp_path / 'linked'))
    run(FLEET, tmp_path / 'linked')
    assert listing(real) == ['fleet-report.json', 'fleet-report.md']


@pytest.mark.parametrize('where', ['report', 'report/sub'])
def test_a_file_where_the_directory_should_be_is_refused(tmp_path, where):
    (tmp_path / 'report').write_text('a file')
    result = run(FLEET, tmp_path / where)
    assert result['failed'] is True and result['changed'] is False
    assert '%s exists and is not a directory' % (tmp_path / 'report') in result['msg']
    assert listing(tmp_path) == ['report'] and (tmp_path / 'report').read_text() == 'a file'


def test_a_directory_where_a_report_file_should_be_is_refused(tmp_path):
    (tmp_path / 'fleet-report.md').mkdir()
    result = run(FLEET, tmp_path)
    assert result['failed'] is True and 'fleet-report.md' in result['msg']
    assert listing(tmp_path) == ['fleet-report.json', 'fleet-report.md']
    assert (tmp_path / 'fleet-report.md').is_dir() and not os.listdir(str(tmp_path / 'fleet-report.md'))


@pytest.mark.parametrize('name', ['', '.', '..', 'a/b', '../fleet'])
def test_a_name_that_is_not_a_file_name_is_refused(tmp_path, name):
    result = run(FLEET, tmp_path / 'report', name=name)
    assert result['failed'] is True and 'name must be a file name' in result['msg']
    assert listing(tmp_path) == []


@pytest.mark.parametrize('fleet', [{}, {'ok': True}, {'totals': {}, 'ok': 'yes'}])
def test_a_fleet_that_is_not_a_report_is_refused(tmp_path, fleet):
    result = run(fleet, tmp_path / 'report')
    assert result['failed'] is True and 'codex_fleet_report' in result['msg']
    assert listing(tmp_path) == []
