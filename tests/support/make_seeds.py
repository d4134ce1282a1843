"""Write one obviously fake ChatGPT seed per host: make_seeds.py DIR HOST [HOST ...]

Files are created 0600 in a 0700 directory, like a real seed store (vault-encrypt real ones).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support import fake_credentials  # noqa: E402


def write_seed(directory, host):
    doc, _secrets = fake_credentials.chatgpt_seed(account_id='acct-%s' % host)
    path = directory / ('%s.json' % host)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as handle:
        handle.write(fake_credentials.dumps(doc))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    directory = Path(argv[0])
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for host in argv[1:]:
        write_seed(directory, host)


if __name__ == '__main__':
    main(sys.argv[1:])
