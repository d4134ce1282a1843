# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_filesystems: the filesystem of CODEX_HOME from its descriptor and mountinfo (bounded, never quoted
beyond the type), and verify's codex_home_network_fs."""

import os

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import _filesystems as filesystems
from ansible_collections.codexops.runner.plugins.module_utils import health
from support import fake_credentials as fc

MOUNTINFO = (
    '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n'
    '40 22 0:45 / /home rw,relatime shared:20 - nfs4 filer:/export/home rw,vers=4.2\n'
    '41 22 0:46 / /mnt/gpfs rw - gpfs gpfs0 rw\n'
    '42 22 0:47 / /mnt/ssh rw,nosuid shared:3 master:2 - fuse.sshfs ci@host:/ rw\n'
    '43 22 0:48 / /mnt/share rw - cifs //srv/share rw\n'
    '44 22 0:49 / /run/user rw - tmpfs tmpfs rw\n'
    '45 22 0:50 / /data rw - fuse.gocryptfs /x rw\n'
    'garbage line\n'
    '46 22 0:51 / /odd rw no-separator-here ext4\n'
)


@pytest.mark.parametrize('device, fstype, network', [
    ((8, 1), 'ext4', False), ((0, 45), 'nfs4', True), ((0, 46), 'gpfs', True), ((0, 47), 'fuse.sshfs', True),
    ((0, 48), 'cifs', True), ((0, 49), 'tmpfs', False), ((0, 50), 'fuse.gocryptfs', False),
    ((0, 51), None, False), ((9, 9), None, False),
])
def test_type_of_a_device(device, fstype, network):
    found = filesystems.filesystem_type_of_device(device[0], device[1], MOUNTINFO)
    assert found == fstype and filesystems.is_network_type(found) is network


@pytest.mark.parametrize('fstype', ['nfs', 'nfs4', 'cifs', 'smb3', 'gpfs', 'lustre', 'ceph', 'glusterfs',
                                    'fuse.glusterfs', 'fuse.ceph', 'fuse.s3fs', 'fuse.rclone'])
def test_network_types(fstype):
    assert filesystems.is_network_type(fstype)


@pytest.mark.parametrize('fstype', ['ext4', 'xfs', 'btrfs', 'zfs', 'tmpfs', 'overlay', 'fuse', 'fuse.', None, 5,
                                    'nfsd', 'fuse.sshfsx'])
def test_local_types(fstype):
    assert not filesystems.is_network_type(fstype)


def test_a_later_mount_on_the_same_device_wins():
    text = '1 0 0:60 / /a rw - ext4 x rw\n2 0 0:60 / /b rw - nfs y rw\n'
    assert filesystems.filesystem_type_of_device(0, 60, text) == 'nfs'


def test_huge_or_hostile_mountinfo_is_bounded(tmp_path):
    path = tmp_path / 'mountinfo'
    path.write_bytes(b'x' * (filesystems.MAX_MOUNTINFO_BYTES + 10))
    assert len(filesystems.read_mountinfo(str(path))) == filesystems.MAX_MOUNTINFO_BYTES
    long_type = '1 0 0:61 / /a rw - %s x rw\n' % ('n' * 1000)
    assert filesystems.filesystem_type_of_device(0, 61, long_type) is None
    assert filesystems.read_mountinfo(str(tmp_path / 'missing')) == ''


def test_this_hosts_tmp_is_found(tmp_path):
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        found = filesystems.filesystem_type(fd)
    finally:
        os.close(fd)
    assert found is None or isinstance(found, str)


@pytest.mark.parametrize('fstype, problem', [('nfs4', True), ('fuse.sshfs', True), ('ext4', False), (None, False)])
def test_verify_reports_a_network_codex_home(codex_home, fstype, problem):
    doc, _secrets = fc.chatgpt_seed()
    home = codex_home(auth=doc)
    snap = health.snapshot_path(str(home))
    snap['home']['filesystem'] = fstype
    result = health.evaluate(snap, owner_uid=os.geteuid())
    codes = [item['code'] for item in result['problems']]
    assert ('codex_home_network_fs' in codes) is problem
    if problem:
        assert fstype in result['problems'][codes.index('codex_home_network_fs')]['message']
