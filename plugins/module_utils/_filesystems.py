# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which filesystem CODEX_HOME lives on, and whether Codex's locks work there.

Private to this collection. Codex serialises every auth.json write with flock(2) on auth.lock and
auth.json.lock and replaces the file by rename; on a network filesystem (NFS, CIFS/SMB, GPFS, Lustre,
CephFS, GlusterFS, FUSE network mounts) flock is emulated, local to one client or missing, and helper
files vanish (openai/codex #38150, #44361): two Codex processes can then refresh at once and burn a
rotating refresh token. The filesystem is found from the open CODEX_HOME descriptor (its st_dev) in
/proc/self/mountinfo, never from a path, read under bounds. Stdlib only, Python 3.9+.
"""

import os

MOUNTINFO = '/proc/self/mountinfo'
# A host with thousands of mounts has a mountinfo of a few hundred KiB; read no further than this.
MAX_MOUNTINFO_BYTES = 4 * 1024 * 1024
MAX_FIELD_CHARS = 256

# Kernel filesystem types (mountinfo's fstype field) that are shared over a network.
NETWORK_TYPES = frozenset((
    'nfs', 'nfs4', 'cifs', 'smb3', 'smbfs', 'ncpfs', 'gpfs', 'lustre', 'ceph', 'glusterfs', 'afs', 'coda',
    'beegfs', 'orangefs', 'pvfs2', 'fhgfs', 'davfs', 'ncp', '9p', 'vboxsf',
))
# FUSE filesystems carry their driver as a subtype (fuse.NAME); these are network clients.
NETWORK_FUSE_SUBTYPES = frozenset((
    'sshfs', 'glusterfs', 'ceph', 'cephfs', 's3fs', 'gcsfuse', 'rclone', 'juicefs', 'davfs2', 'goofys',
    'lizardfs', 'moosefs', 'mfs', 'seaweedfs', 'weka', 'objectivefs', 'blobfuse', 'blobfuse2', 'cvmfs',
    'smbnetfs', 'curlftpfs', 'gvfsd-fuse', 'geesefs', 'mountpoint-s3',
))


def is_network_type(fstype):
    """Whether a mountinfo fstype is a network filesystem (`nfs4`, `fuse.sshfs`, ...)."""
    if not isinstance(fstype, str):
        return False
    if fstype in NETWORK_TYPES:
        return True
    main, _dot, sub = fstype.partition('.')
    return main in ('fuse', 'fuseblk') and sub in NETWORK_FUSE_SUBTYPES


def filesystem_type(fd, mountinfo=MOUNTINFO):
    """The fstype of the mount holding the open directory `fd` ('ext4', 'nfs4', 'fuse.sshfs'), or None
    when it cannot be told (no /proc, no matching line). Never raises for what the file holds."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return filesystem_type_of_device(os.major(st.st_dev), os.minor(st.st_dev), read_mountinfo(mountinfo))


def read_mountinfo(path=MOUNTINFO):
    """The text of mountinfo, at most MAX_MOUNTINFO_BYTES of it ('' when unreadable)."""
    try:
        with open(path, 'rb') as handle:
            return handle.read(MAX_MOUNTINFO_BYTES).decode('utf-8', 'replace')
    except OSError:
        return ''


def filesystem_type_of_device(major, minor, text):
    """The fstype mountinfo `text` gives for device major:minor; None when no line names it. Lines are
    `ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS`; the
    last line for the device wins (a later mount hides an earlier one)."""
    wanted = '%d:%d' % (major, minor)
    found = None
    for line in text.split('\n'):
        fields = line.split(' ')
        if len(fields) < 7 or fields[2] != wanted:
            continue
        try:
            separator = fields.index('-', 6)
        except ValueError:
            continue
        if separator + 1 < len(fields):
            fstype = fields[separator + 1]
            if fstype and len(fstype) <= MAX_FIELD_CHARS:
                found = fstype
    return found
