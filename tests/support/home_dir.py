"""Tests that inspect or prepare a CODEX_HOME by path use the module's own descriptor-based HomeDir."""

import contextlib
import os

from ansible_collections.codexops.runner.plugins.module_utils import safe_files


@contextlib.contextmanager
def opened(path):
    """A HomeDir on `path` (a directory the test made), closed afterwards."""
    fd = os.open(str(path), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        yield safe_files.HomeDir(fd, str(path))
    finally:
        os.close(fd)


def atomic_write(path, data, uid=None, gid=None, mode=0o600):
    """Put `data` at `path` the way the modules write (temp file, fsync, rename)."""
    with opened(os.path.dirname(str(path))) as home:
        home.atomic_write(os.path.basename(str(path)), data, uid, gid, mode)


def leftover_temp_files(path):
    """Full paths of the collection's temp files left in the CODEX_HOME at `path`."""
    with opened(path) as home:
        return [os.path.join(str(path), name) for name in home.leftover_temp_files()]
