"""The one leak scanner: no test secret in any output, and a file holding one is exactly 0600.

A secret counts as leaked when it shows up whole or as the part of a JWT that identifies it
(payload, signature): a printed payload is as bad as a printed token. A file holding a secret
must be exactly 0600: 0640 leaks it, 0400 would break Codex's own save.
"""

import stat
from pathlib import Path


def secret_needles(secrets):
    """Each secret, and the parts of a JWT that identify it (payload, signature). The JWT header is
    shared by every fake token and is not secret."""
    needles = set()
    for secret in secrets:
        if not secret:
            continue
        needles.add(secret)
        parts = secret.split('.')
        if len(parts) == 3:
            needles.update(part for part in parts[1:] if len(part) >= 16)
    return sorted(needles)


def find_leaks(secrets, outputs, root=None):
    """Every place one of `secrets` shows up where it must not: in one of `outputs` (texts), or in
    a file under `root` (links not followed; None: outputs only) whose mode is not exactly 0600."""
    needles = secret_needles(secrets)
    found = []
    for index, output in enumerate(outputs):
        for needle in needles:
            if needle in output:
                found.append('output %d contains a secret (%s...)' % (index + 1, needle[:12]))
    for path in Path(root).rglob('*') if root is not None else ():
        if path.is_symlink() or not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if any(needle.encode() in data for needle in needles):
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode != 0o600:
                found.append('%s holds a secret and is mode %04o' % (path, mode))
    return found
