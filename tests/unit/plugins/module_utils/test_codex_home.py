# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Who acts inside a CODEX_HOME (codex_home.act), and what creating or repairing it changes.

Run as root. The runner user is nobody (65534); a third user is 4242, which has no passwd entry
(privsep.Identity handles that). pytest's tmp_path is root's, inside root-only directories, so it
stands for "a directory only root controls".
"""

import os
import stat

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import codex_home
from ansible_collections.codexops.runner.plugins.module_utils import safe_files
from ansible_collections.codexops.runner.plugins.module_utils.codex_home import Target
from ansible_collections.codexops.runner.plugins.module_utils.trusted_path import UnsafePathError

NOBODY = 65534
OTHER = 4242
BACKUP = 'auth.json.20260101T000000.000000Z.bak'


def mode_of(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def owner_of(path):
    st = os.lstat(str(path))
    return st.st_uid, st.st_gid


def mkdir(path, uid=0, mode=0o755):
    path.mkdir()
    os.chmod(str(path), mode)
    os.chown(str(path), uid, uid)
    return path


def write(path, data=b'{}', uid=0, mode=0o600):
    path.write_bytes(data)
    os.chmod(str(path), mode)
    os.chown(str(path), uid, uid)
    return path


@pytest.fixture
def root_dir(tmp_path):
    """A directory only root controls."""
    return mkdir(tmp_path / 'var')


@pytest.fixture
def runner_dir(tmp_path):
    """The runner's own directory (its home)."""
    os.chmod(str(tmp_path), 0o755)
    return mkdir(tmp_path / 'runner', NOBODY)


def act(path, target, func, *args):
    return codex_home.act(str(path), target, func, *args)


def whoami(context):
    return os.geteuid()


def identity(context):
    return {'resuid': list(os.getresuid()), 'resgid': list(os.getresgid()), 'groups': sorted(os.getgroups()),
            'actor': context.actor_uid}


def fds():
    return sorted(os.listdir('/proc/self/fd'))


# -- a missing CODEX_HOME -------------------------------------------------------------------------

def test_missing_home_in_root_parent_is_created_by_root_and_handed_over(root_dir):
    path = root_dir / 'lib' / 'codex'

    def provision(context):
        seen = {'euid': os.geteuid(), 'actor': context.actor_uid, 'exists': context.exists,
                'predicted': context.predicted_changes(), 'owner_after': context.owner_after()}
        seen['changes'] = context.ensure()
        seen['owner_euid'] = context.as_owner(whoami)
        return seen

    seen = act(path, Target(NOBODY, NOBODY), provision)
    assert seen == {'euid': 0, 'actor': 0, 'exists': False, 'predicted': ['created'], 'owner_after': NOBODY,
                    'changes': ['created'], 'owner_euid': NOBODY}
    assert owner_of(path) == (NOBODY, NOBODY) and mode_of(path) == 0o700
    # The missing parent in root's tree stays root's.
    assert owner_of(root_dir / 'lib') == (0, 0) and mode_of(root_dir / 'lib') == 0o755


def test_strict_umask_does_not_stop_the_hand_over(root_dir):
    old = os.umask(0o777)
    try:
        assert act(root_dir / 'codex', Target(NOBODY), lambda context: context.ensure()) == ['created']
    finally:
        os.umask(old)
    assert mode_of(root_dir / 'codex') == 0o700 and owner_of(root_dir / 'codex')[0] == NOBODY


def test_files_written_before_the_hand_over_become_the_runners(root_dir):
    """Root works in its own CODEX_HOME, then hands the managed files and the directory over."""
    home = mkdir(root_dir / 'codex', 0, 0o755)
    write(home / 'auth.json')
    write(home / 'config.toml', b'a = 1\n', mode=0o644)
    write(home / 'auth.lock', b'')
    write(home / BACKUP, mode=0o644)
    write(home / 'notes.txt', b'not ours')

    def provision(context):
        uid, gid = context.file_ids
        context.home.atomic_write('auth.json.lock', b'', uid, gid)  # written by root, for the runner
        changes = context.ensure()
        return changes, dict(context.handed_over), context.as_owner(whoami)

    changes, handed_over, owner_euid = act(home, Target(NOBODY, NOBODY), provision)
    assert changes == ['mode', 'owner']
    assert handed_over == {'auth.json': ['owner'], 'config.toml': ['owner'], 'auth.lock': ['owner'],
                           'auth.json.lock': []}
    assert owner_euid == NOBODY
    for name in ('auth.json', 'config.toml', 'auth.lock', 'auth.json.lock', BACKUP):
        assert owner_of(home / name) == (NOBODY, NOBODY), name
    assert mode_of(home / 'config.toml') == 0o644  # kept: only the owner was handed over
    assert mode_of(home / BACKUP) == 0o600
    assert owner_of(home / 'notes.txt') == (0, 0)  # not a file this collection manages
    assert owner_of(home) == (NOBODY, NOBODY) and mode_of(home) == 0o700


def test_hand_over_stops_at_a_hard_linked_file(root_dir, tmp_path):
    home = mkdir(root_dir / 'codex', 0, 0o700)
    precious = write(tmp_path / 'shadow', b'root only')
    os.link(str(precious), str(home / 'config.toml'))
    with pytest.raises(UnsafePathError) as info:
        act(home, Target(NOBODY), lambda context: context.ensure())
    assert info.value.code == 'config_hardlink'
    assert owner_of(precious) == (0, 0)
    assert owner_of(home) == (0, 0)  # the directory is handed over last, so not at all


def test_missing_home_in_runner_parent_is_created_by_the_runner(runner_dir):
    path = runner_dir / 'a' / 'b' / '.codex'

    def create(context):
        return context.ensure(), os.geteuid(), context.actor_uid

    assert act(path, Target(NOBODY), create) == [['created'], NOBODY, NOBODY]
    for directory, mode in ((runner_dir / 'a', 0o755), (runner_dir / 'a' / 'b', 0o755), (path, 0o700)):
        assert owner_of(directory)[0] == NOBODY, directory  # never a root-owned directory in its tree
        assert mode_of(directory) == mode, directory


def test_missing_home_in_runner_parent_without_target(runner_dir):
    path = runner_dir / 'x' / '.codex'
    assert act(path, Target(), lambda context: (context.ensure(), os.geteuid())) == [['created'], NOBODY]
    assert owner_of(runner_dir / 'x')[0] == NOBODY and owner_of(path)[0] == NOBODY


def test_missing_home_in_a_third_users_directory_refused(tmp_path):
    parent = mkdir(tmp_path / 'other', OTHER)
    with pytest.raises(UnsafePathError) as info:
        act(parent / '.codex', Target(NOBODY), lambda context: context.ensure())
    assert info.value.code == 'codex_home_parent_owner'
    assert '4242' in info.value.message and 'nobody' in info.value.message
    assert os.listdir(str(parent)) == []


# -- an existing CODEX_HOME -----------------------------------------------------------------------

@pytest.mark.parametrize('where', ['root_dir', 'runner_dir'])
def test_runner_home_is_worked_in_by_the_runner(request, where):
    home = mkdir(request.getfixturevalue(where) / '.codex', NOBODY, 0o700)
    groups = sorted(set(os.getgrouplist('nobody', NOBODY)))
    expected = {'resuid': [NOBODY] * 3, 'resgid': [NOBODY] * 3, 'groups': groups, 'actor': NOBODY}
    assert act(home, Target(NOBODY), identity) == expected
    assert act(home, Target(), identity) == expected


def test_root_home_in_runner_directory_refused(runner_dir):
    home = mkdir(runner_dir / '.codex', 0, 0o755)
    write(home / 'auth.json', mode=0o644)
    with pytest.raises(UnsafePathError) as info:
        act(home, Target(NOBODY), lambda context: context.ensure())
    assert info.value.code == 'codex_home_owner'
    assert 'owned by root' in info.value.message and 'nobody controls' in info.value.message
    assert owner_of(home) == (0, 0) and mode_of(home) == 0o755
    assert owner_of(home / 'auth.json') == (0, 0) and mode_of(home / 'auth.json') == 0o644


@pytest.mark.parametrize('where', ['root_dir', 'runner_dir'])
def test_third_users_home_refused(request, where):
    home = mkdir(request.getfixturevalue(where) / '.codex', OTHER, 0o755)
    with pytest.raises(UnsafePathError) as info:
        act(home, Target(NOBODY), lambda context: context.ensure())
    assert info.value.code == 'codex_home_owner'
    assert owner_of(home) == (OTHER, OTHER) and mode_of(home) == 0o755


def test_third_users_home_in_root_directory_names_both_users(root_dir):
    home = mkdir(root_dir / '.codex', OTHER, 0o700)
    with pytest.raises(UnsafePathError) as info:
        act(home, Target(NOBODY), whoami)
    assert info.value.code == 'codex_home_owner'
    assert '4242' in info.value.message and 'nobody' in info.value.message


@pytest.mark.parametrize('uid', [0, NOBODY, OTHER])
def test_no_target_acts_as_the_current_owner(root_dir, uid):
    home = mkdir(root_dir / '.codex', uid, 0o700)
    seen = act(home, Target(), identity)
    assert seen['resuid'] == [uid] * 3 and seen['actor'] == uid
    if uid == OTHER:  # no passwd entry: its own uid as group, nothing else
        assert seen['resgid'] == [OTHER] * 3 and seen['groups'] == [OTHER]


def test_shared_parent_refused(tmp_path):
    shared = mkdir(tmp_path / 'shared', 0, 0o777)
    for path in (shared / 'missing', mkdir(shared / 'existing', NOBODY, 0o700)):
        with pytest.raises(UnsafePathError) as info:
            act(path, Target(NOBODY), lambda context: context.ensure())
        assert info.value.code == 'codex_home_path_shared'
    assert not (shared / 'missing').exists()
    assert mode_of(shared / 'existing') == 0o700


def test_errors_in_the_runner_child_come_back(runner_dir, tmp_path):
    home = mkdir(runner_dir / '.codex', NOBODY, 0o700)
    secret = write(tmp_path / 'secret', b'root only')
    os.symlink(str(secret), str(home / 'auth.json'))
    with pytest.raises(UnsafePathError) as info:
        act(home, Target(NOBODY), lambda context: context.home.read_regular('auth.json', 'auth', 1024))
    assert info.value.code == 'auth_symlink'
    # What the runner could not do itself, the child cannot do either.
    with pytest.raises(PermissionError):
        act(home, Target(NOBODY), lambda context: open(str(secret), 'rb').read())


def test_act_closes_its_descriptors(root_dir, runner_dir):
    mkdir(root_dir / 'root-home', 0, 0o700)
    mkdir(runner_dir / '.codex', NOBODY, 0o700)
    mkdir(root_dir / 'other', OTHER, 0o700)

    def fail(context):
        raise ValueError('boom')

    before = fds()
    act(root_dir / 'root-home', Target(), lambda context: context.ensure())
    act(root_dir / 'new-home', Target(NOBODY), lambda context: context.ensure())
    act(runner_dir / '.codex', Target(NOBODY), lambda context: context.ensure())
    with pytest.raises(UnsafePathError):
        act(root_dir / 'other', Target(NOBODY), whoami)
    with pytest.raises(ValueError):
        act(root_dir / 'root-home', Target(), fail)
    with pytest.raises(UnsafePathError):
        act(str(root_dir / 'root-home') + '/..', Target(), whoami)
    assert fds() == before


# -- check mode predicts exactly ------------------------------------------------------------------

def _missing_root(root_dir, runner_dir):
    return root_dir / 'lib' / 'codex'


def _missing_runner(root_dir, runner_dir):
    return runner_dir / 'x' / '.codex'


def _root_home(mode):
    def make(root_dir, runner_dir):
        return mkdir(root_dir / 'codex', 0, mode)
    return make


def _runner_home(mode):
    def make(root_dir, runner_dir):
        return mkdir(runner_dir / '.codex', NOBODY, mode)
    return make


@pytest.mark.parametrize('make, target, expected', [
    (_missing_root, Target(NOBODY, NOBODY), ['created']),
    (_missing_root, Target(), ['created']),
    (_missing_runner, Target(NOBODY), ['created']),
    (_root_home(0o755), Target(NOBODY), ['mode', 'owner']),
    (_root_home(0o700), Target(NOBODY, NOBODY), ['owner']),
    (_root_home(0o700), Target(None, NOBODY), ['owner']),
    (_root_home(0o755), Target(), ['mode']),
    (_root_home(0o700), Target(0), []),
    (_runner_home(0o750), Target(NOBODY), ['mode']),
    (_runner_home(0o000), Target(NOBODY), ['mode']),
    (_runner_home(0o700), Target(NOBODY, NOBODY), []),
], ids=['missing-root', 'missing-root-no-target', 'missing-runner', 'root-0755', 'root-owner', 'root-group',
        'root-0755-no-target', 'root-ok', 'runner-0750', 'runner-0000', 'runner-ok'])
def test_predicted_changes_match_ensure(root_dir, runner_dir, make, target, expected):
    path = make(root_dir, runner_dir)
    before = os.lstat(str(path)) if path.exists() else None
    predicted = act(path, target, lambda context: context.predicted_changes())
    # Predicting wrote nothing.
    if before is None:
        assert not path.exists()
    else:
        after = os.lstat(str(path))
        assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, before.st_uid, before.st_gid)
    owner_after = act(path, target, lambda context: context.owner_after()) if before is None else None
    assert predicted == expected
    assert act(path, target, lambda context: context.ensure()) == expected
    assert mode_of(path) == 0o700
    if target.uid is not None:
        assert owner_of(path)[0] == target.uid
    if target.gid is not None:
        assert owner_of(path)[1] == target.gid
    if owner_after is not None:
        assert owner_of(path)[0] == owner_after
    # Once ensured, nothing is left to predict or do.
    assert act(path, target, lambda context: context.predicted_changes()) == []
    assert act(path, target, lambda context: context.ensure()) == []


def test_owner_after(root_dir, runner_dir):
    assert act(root_dir / 'a', Target(), lambda context: context.owner_after()) == 0
    assert act(root_dir / 'a', Target(NOBODY), lambda context: context.owner_after()) == NOBODY
    assert act(runner_dir / 'a', Target(), lambda context: context.owner_after()) == NOBODY
    mkdir(root_dir / 'b', NOBODY, 0o700)
    assert act(root_dir / 'b', Target(), lambda context: context.owner_after()) == NOBODY


def test_file_ids(root_dir):
    mkdir(root_dir / 'mine', 0, 0o700)
    # Root acting for the runner gives new files to the runner; the owner itself needs no chown.
    assert act(root_dir / 'mine', Target(NOBODY, NOBODY), lambda context: context.file_ids) == (NOBODY, NOBODY)
    assert act(root_dir / 'mine', Target(), lambda context: context.file_ids) == (None, None)
    mkdir(root_dir / 'theirs', NOBODY, 0o700)
    assert act(root_dir / 'theirs', Target(NOBODY, NOBODY), lambda context: context.file_ids) == [None, NOBODY]


def test_as_owner_after_hand_over_writes_as_the_runner(root_dir):
    path = root_dir / 'codex'

    def provision(context):
        context.ensure()
        return context.as_owner(lambda ctx: ctx.home.atomic_write('auth.json', b'{}', *ctx.file_ids))

    act(path, Target(NOBODY, NOBODY), provision)
    assert owner_of(path / 'auth.json') == (NOBODY, NOBODY)
    assert mode_of(path / 'auth.json') == 0o600
    # A root-owned home root keeps: as_owner stays in this process.
    mkdir(root_dir / 'roots', 0, 0o700)
    marker = object()
    assert act(root_dir / 'roots', Target(), lambda context: context.as_owner(lambda ctx: marker)) is marker


def test_managed_files_include_the_lock_files():
    assert set(safe_files.LOCK_FILES) <= set(codex_home.MANAGED_FILES)
    assert {'auth.json', 'config.toml'} <= set(codex_home.MANAGED_FILES)


# -- a directory anyone can add entries to (a sticky /tmp) is never root's -------------------------

@pytest.fixture
def sticky_dir(tmp_path):
    """A /tmp of its own: root's, 1777, reachable through root-only directories."""
    return mkdir(tmp_path / 'tmp', 0, 0o1777)


def test_sticky_dir_missing_home_is_created_by_the_runner_not_root(sticky_dir):
    home = sticky_dir / '.codex'
    assert act(home, Target(NOBODY, NOBODY), lambda context: (context.ensure(), os.geteuid())[1]) == NOBODY
    assert owner_of(home) == (NOBODY, NOBODY) and mode_of(home) == 0o700


@pytest.mark.parametrize('target', [Target(), Target(0, 0)], ids=['no-owner', 'root'])
def test_sticky_dir_missing_home_without_a_runner_is_refused(sticky_dir, target):
    with pytest.raises(UnsafePathError) as info:
        act(sticky_dir / '.codex', target, lambda context: context.ensure())
    assert info.value.code == 'codex_home_path_shared'
    assert not (sticky_dir / '.codex').exists()


def test_sticky_dir_missing_home_for_a_reader_reads_nothing(sticky_dir):
    """verify of a missing home in /tmp: nothing to read and nothing created, whoever it is for."""
    for target in (codex_home.reader(), codex_home.reader(NOBODY)):
        assert act(sticky_dir / '.codex', target, lambda context: context.exists) is False
    assert not (sticky_dir / '.codex').exists()


@pytest.mark.parametrize('target', [Target(NOBODY, NOBODY), Target(), codex_home.reader(), codex_home.reader(NOBODY)])
def test_sticky_dir_root_owned_home_is_nobodys(sticky_dir, target):
    """A root directory directly in /tmp: anyone could have taken the name first (and root makes none
    there), so neither a writer nor a reader uses it."""
    mkdir(sticky_dir / '.codex', 0, 0o700)
    with pytest.raises(UnsafePathError) as info:
        act(sticky_dir / '.codex', target, whoami)
    assert info.value.code == 'codex_home_path_shared'


def test_sticky_dir_runner_home_is_the_runners(sticky_dir):
    mkdir(sticky_dir / '.codex', NOBODY, 0o700)
    for target in (Target(NOBODY, NOBODY), Target(), codex_home.reader(), codex_home.reader(NOBODY)):
        assert act(sticky_dir / '.codex', target, whoami) == NOBODY


def test_sticky_dir_home_of_another_user_is_refused_for_the_runner(sticky_dir):
    """A second local user plants the home of a runner whose own is missing: not read, not used."""
    mkdir(sticky_dir / '.codex', OTHER, 0o700)
    for target in (Target(NOBODY, NOBODY), codex_home.reader(NOBODY)):
        with pytest.raises(UnsafePathError) as info:
            act(sticky_dir / '.codex', target, whoami)
        assert info.value.code == 'codex_home_owner'


def test_reader_for_a_runner_does_not_read_another_users_home(runner_dir, root_dir):
    """verify/export with owner: a CODEX_HOME that belongs to someone else is refused unread; root's
    own, in root's tree, is still read (to report its owner)."""
    mkdir(runner_dir / '.codex', NOBODY, 0o700)
    with pytest.raises(UnsafePathError) as info:
        act(runner_dir / '.codex', codex_home.reader(OTHER), whoami)
    assert info.value.code == 'codex_home_owner' and 'not read' in info.value.message
    assert act(runner_dir / '.codex', codex_home.reader(NOBODY), whoami) == NOBODY
    mkdir(root_dir / 'codex', 0, 0o700)
    assert act(root_dir / 'codex', codex_home.reader(NOBODY), whoami) == 0
