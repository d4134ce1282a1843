"""The one way the tests write a file that holds a secret: created exclusively (O_EXCL, so never
through a link or over a file someone else put there), private from its first byte."""

import os


def write_private(path, data, mode=0o600):
    """Create `path` (it must not exist) with `mode` (0600 unless told) and write `data` (str or
    bytes) to it. Returns the path as a str. Ownership and a mode beyond the umask are the caller's."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, 'wb' if isinstance(data, bytes) else 'w') as handle:
        handle.write(data)
    return str(path)
