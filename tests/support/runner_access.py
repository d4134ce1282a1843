"""Can the runner user reach a path? The tests run the Codex CLI (and whatever Codex reads) as an
unprivileged runner user (`nobody` when they run as root), and a clone under /root or a `mktemp -d` has
a 0700 directory on the way that this user cannot traverse. Asked as the user itself (a shell forked
with its uid, gid and no supplementary groups), not worked out from mode bits, so ACLs, mount options
and LSMs count too; the mode bits only explain the answer.

    python3 tests/support/runner_access.py USER execute|read|traverse PATH   # exit 1 with the reason
"""

import os
import pwd
import stat
import subprocess
import sys

TESTS = {'execute': '-f "$1" && test -x "$1"', 'read': '-f "$1" && test -r "$1"', 'traverse': '-d "$1" && test -x "$1"'}


def _as_user(user, test, path):
    entry = pwd.getpwnam(user)
    kwargs = {}
    if os.geteuid() != entry.pw_uid:
        kwargs = {'user': entry.pw_uid, 'group': entry.pw_gid, 'extra_groups': []}
    return subprocess.run(['/bin/sh', '-c', 'test ' + test, 'sh', path], cwd='/', env={'PATH': '/usr/bin:/bin'},
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          check=False, **kwargs).returncode == 0


def _describe(path):
    try:
        st = os.stat(path)
    except OSError as error:
        return '%s (%s)' % (path, error.strerror)
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    return '%s (%s, owner %s)' % (path, stat.filemode(st.st_mode), owner)


def problem(user, need, path):
    """None when `user` can `need` (execute, read, traverse) `path`; otherwise why not, in one sentence."""
    path = os.path.abspath(path)
    if _as_user(user, TESTS[need], path):
        return None
    # The first directory on the way there (as written, then with links resolved) the user cannot pass.
    for route in (path, os.path.realpath(path)):
        parts = route.split(os.sep)[1:]
        for depth in range(1, len(parts)):
            directory = os.sep + os.sep.join(parts[:depth])
            if not _as_user(user, TESTS['traverse'], directory):
                return ('the runner user %s cannot %s %s: it cannot traverse %s on the way'
                        % (user, need, path, _describe(directory)))
    return 'the runner user %s cannot %s %s, which is %s' % (user, need, path, _describe(os.path.realpath(path)))


def runner_owner():
    """A user other than the one running the tests when we are root, so ownership is tested."""
    return 'nobody' if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def second_runner_account():
    """A second non-root account besides runner_owner(), to run a second runner (instance) as another user: an
    existing system account, so nothing is created on the machine. None when there is none."""
    mine = pwd.getpwnam(runner_owner()).pw_uid
    for name in ('daemon', 'bin', 'sys', 'games', 'man'):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid not in (0, mine):
            return entry
    return None


_RUNNER_PROBLEMS = {}


def runner_problem(need, path):
    """Why the tests' runner user cannot `need` (execute, read, traverse) `path`, or None; asked once per path."""
    if os.geteuid() != 0:
        return None  # the runner user is the user running the tests
    key = (need, os.path.abspath(path))
    if key not in _RUNNER_PROBLEMS:
        _RUNNER_PROBLEMS[key] = problem(runner_owner(), need, path)
    return _RUNNER_PROBLEMS[key]


def main(argv):
    if len(argv) != 3 or argv[1] not in TESTS:
        sys.stderr.write('usage: runner_access.py USER execute|read|traverse PATH\n')
        return 2
    reason = problem(*argv)
    if reason:
        print(reason)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
