# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Walking a path from / without letting anyone but root redirect it (trusted_path).

The tests run as root in pytest's tmp_path (root-owned, inside root-only directories); a
directory or link "made by the runner" is one chowned to nobody (65534), a third user is 4242
(no passwd entry needed).
"""

import os
import stat
import threading

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import trusted_path
from ansible_collections.codexops.runner.plugins.module_utils.trusted_path import UnsafePathError

NOBODY = 65534
OTHER = 4242


@pytest.fixture
def root(tmp_path):
    """tmp_path without any link on the way (walk results name the real path)."""
    return os.path.realpath(str(tmp_path))


def walk(path, **kwargs):
    """(controller, missing, path, parent_controller) of walk(path); the descriptor is checked and closed."""
    where = trusted_path.walk(path, **kwargs)
    try:
        st = os.fstat(where.fd)
        assert stat.S_ISDIR(st.st_mode)
        assert (st.st_dev, st.st_ino) == (os.stat(where.path).st_dev, os.stat(where.path).st_ino)
        return where.controller, where.missing, where.path, where.parent_controller
    finally:
        where.close()


def refused(path, **kwargs):
    with pytest.raises(UnsafePathError) as info:
        trusted_path.walk(path, **kwargs)
    return info.value


def mkdir(path, uid=0, mode=0o755):
    os.mkdir(path)
    os.chmod(path, mode)
    os.chown(path, uid, uid)
    return path


def fds():
    return sorted(os.listdir('/proc/self/fd'))


# -- walk -----------------------------------------------------------------------------------------

def test_existing_root_path(root):
    mkdir(os.path.join(root, 'a'))
    assert walk(os.path.join(root, 'a')) == (None, [], os.path.join(root, 'a'), None)
    assert walk('/') == (None, [], '/', None)
    # '.' and repeated slashes are no components.
    assert walk(root + '//./a/') == (None, [], os.path.join(root, 'a'), None)


def test_missing_components_are_reported(root):
    mkdir(os.path.join(root, 'a'))
    controller, missing, path, _parent = walk(os.path.join(root, 'a', 'b', 'c'))
    assert (controller, missing, path) == (None, ['b', 'c'], os.path.join(root, 'a'))
    assert walk(os.path.join(root, 'x'))[1:3] == (['x'], root)


def test_root_links_in_root_directories_are_followed(root):
    real = mkdir(os.path.join(root, 'real'))
    mkdir(os.path.join(real, 'x'))
    sub = mkdir(os.path.join(root, 'sub'))
    os.symlink('real', os.path.join(root, 'rel'))
    os.symlink(real, os.path.join(root, 'abs'))
    os.symlink('../real', os.path.join(sub, 'up'))
    os.symlink('../sub/./../real/', os.path.join(sub, 'winding'))
    for link in ('rel', 'abs', 'sub/up', 'sub/winding'):
        assert walk(os.path.join(root, link, 'x')) == (None, [], os.path.join(real, 'x'), None), link
        # Missing components below a followed link are reported against the real directory.
        assert walk(os.path.join(root, link, 'x', 'new'))[1:3] == (['new'], os.path.join(real, 'x')), link


def test_a_followed_link_is_judged_where_it_lands(root):
    """A root link to the runner's directory: the walk learns that the runner controls the place."""
    runner = mkdir(os.path.join(root, 'runner'), NOBODY)
    os.symlink(runner, os.path.join(root, 'to-runner'))
    controller, missing, path, _parent = walk(os.path.join(root, 'to-runner', '.codex'))
    assert (controller, missing, path) == (NOBODY, ['.codex'], runner)


def test_the_final_component_is_never_followed(root):
    real = mkdir(os.path.join(root, 'real'))
    os.symlink(real, os.path.join(root, 'link'))
    error = refused(os.path.join(root, 'link'))
    assert error.code == 'codex_home_symlink'
    assert os.path.join(root, 'link') in error.message


def test_runner_made_link_refused(root):
    real = mkdir(os.path.join(root, 'real'))
    mkdir(os.path.join(real, 'x'))
    link = os.path.join(root, 'link')
    os.symlink(real, link)
    os.lchown(link, NOBODY, NOBODY)
    error = refused(os.path.join(link, 'x'))
    assert error.code == 'codex_home_path_symlink'
    assert link in error.message
    assert refused(link).code == 'codex_home_symlink'


def test_root_link_in_runner_directory_refused(root):
    """Root owns the link, but the runner could have renamed it into place."""
    real = mkdir(os.path.join(root, 'real'))
    mkdir(os.path.join(real, 'x'))
    runner = mkdir(os.path.join(root, 'runner'), NOBODY)
    os.symlink(real, os.path.join(runner, 'link'))
    assert os.lstat(os.path.join(runner, 'link')).st_uid == 0
    assert refused(os.path.join(runner, 'link', 'x')).code == 'codex_home_path_symlink'


def test_code_prefixes_the_problem_codes(root):
    link = os.path.join(root, 'link')
    os.symlink(root, link)
    os.lchown(link, NOBODY, NOBODY)
    assert refused(os.path.join(link, 'x'), code='seed_file').code == 'seed_file_path_symlink'
    assert refused(link, code='seed_file').code == 'seed_file_symlink'


def test_runner_directory_makes_the_runner_the_controller(root):
    runner = mkdir(os.path.join(root, 'runner'), NOBODY)
    assert walk(runner) == (NOBODY, [], runner, None)
    # A root directory inside the runner's stays the runner's: it could rename it away.
    inner = mkdir(os.path.join(runner, 'inner'))
    assert walk(inner) == (NOBODY, [], inner, NOBODY)
    codex = mkdir(os.path.join(inner, '.codex'), NOBODY, 0o700)
    assert walk(codex) == (NOBODY, [], codex, NOBODY)


def test_two_users_on_the_path_are_shared(root):
    runner = mkdir(os.path.join(root, 'runner'), NOBODY)
    other = mkdir(os.path.join(runner, 'other'), OTHER)
    assert walk(other)[0] == 'many'
    error = refused(os.path.join(other, 'x'))
    assert error.code == 'codex_home_path_shared'
    assert other in error.message


@pytest.mark.parametrize('mode', [0o775, 0o757, 0o777])
def test_group_or_world_writable_directory_is_shared(root, mode):
    shared = mkdir(os.path.join(root, 'shared'), 0, mode)
    mkdir(os.path.join(shared, 'x'))
    assert walk(shared)[0] == 'many'  # the walk may end there; nothing below it is trusted
    assert refused(os.path.join(shared, 'x')).code == 'codex_home_path_shared'
    assert refused(os.path.join(shared, 'missing', 'deeper')).code == 'codex_home_path_shared'


def test_sticky_world_writable_directory_is_anyones(root):
    """Anyone may add a name to a sticky /tmp (so root creates nothing there), but each entry is its
    owner's: a root directory in it is root's alone again."""
    sticky = mkdir(os.path.join(root, 'tmp'), 0, 0o1777)
    assert walk(os.path.join(sticky, 'y')) == (trusted_path.ANYONE, ['y'], sticky, None)
    inside = mkdir(os.path.join(sticky, 'x'))
    assert walk(os.path.join(inside, 'y')) == (None, ['y'], inside, trusted_path.ANYONE)
    # A user's own directory in it is that user's.
    own = mkdir(os.path.join(sticky, 'own'), NOBODY)
    assert walk(own)[0] == NOBODY


def test_file_in_the_middle_is_not_a_directory(root):
    path = os.path.join(root, 'file')
    with open(path, 'w') as handle:
        handle.write('x')
    error = refused(os.path.join(path, 'x'))
    assert error.code == 'codex_home_not_dir'
    assert path in error.message
    assert refused(path).code == 'codex_home_not_dir'


@pytest.mark.parametrize('tail', ['..', 'a/..', '../a', 'a/../a'])
def test_dot_dot_refused(root, tail):
    mkdir(os.path.join(root, 'a'))
    error = refused(root + '/' + tail)
    assert error.code == 'codex_home_not_dir'
    assert '..' in error.message


def test_nul_byte_refused(root):
    error = refused(root + '/a\0b')
    assert error.code == 'codex_home_not_dir'
    assert 'NUL' in error.message


@pytest.mark.parametrize('path', ['relative', '', './x', None, b'/bytes'])
def test_relative_refused(path):
    assert refused(path).code == 'codex_home_relative'


def test_symlink_loops_are_bounded(root):
    os.symlink('b', os.path.join(root, 'a'))
    os.symlink('a', os.path.join(root, 'b'))
    os.symlink('self', os.path.join(root, 'self'))
    before = fds()
    for name in ('a', 'self'):
        error = refused(os.path.join(root, name, 'x'))
        assert error.code == 'codex_home_path_symlink'
        assert 'too many symlinks' in error.message
    assert fds() == before


def test_walk_closes_what_it_opened(root):
    mkdir(os.path.join(root, 'a'))
    with open(os.path.join(root, 'file'), 'w'):
        pass
    before = fds()
    walk(os.path.join(root, 'a', 'b'))
    refused(os.path.join(root, 'file', 'x'))
    refused(os.path.join(root, 'a', '..'))
    assert fds() == before


# -- read_file ------------------------------------------------------------------------------------

def write(path, data=b'KEY=value\n', uid=0, mode=0o644):
    with open(path, 'wb') as handle:
        handle.write(data)
    os.chmod(path, mode)
    os.chown(path, uid, uid)
    return path


def read_refused(path, code='environment_file', max_bytes=1024):
    with pytest.raises(UnsafePathError) as info:
        trusted_path.read_file(path, code, max_bytes)
    return info.value


def test_read_root_file(root):
    path = write(os.path.join(root, 'env'), b'A=1\n', mode=0o600)
    data, st = trusted_path.read_file(path, 'environment_file', 1024)
    assert data == b'A=1\n'
    assert st.st_ino == os.lstat(path).st_ino
    assert trusted_path.read_file(os.path.join(root, 'absent'), 'environment_file', 1024) == (None, None)
    assert trusted_path.read_file(os.path.join(root, 'no', 'such', 'file'), 'environment_file', 1024) == (None, None)


def test_read_follows_root_links_in_root_directories(root):
    real = mkdir(os.path.join(root, 'etc'))
    write(os.path.join(real, 'environment'), b'B=2\n')
    os.symlink('etc/environment', os.path.join(root, 'relative'))
    os.symlink(os.path.join(real, 'environment'), os.path.join(root, 'absolute'))
    os.symlink('relative', os.path.join(root, 'chain'))
    for name in ('relative', 'absolute', 'chain'):
        assert trusted_path.read_file(os.path.join(root, name), 'environment_file', 1024)[0] == b'B=2\n', name


def test_read_follows_a_root_link_to_the_files_directory(root):
    """A root link in a root directory is followed wherever it is on the way, including when it is
    the directory holding the file (/var/run -> /run, /lib -> usr/lib), not only deeper up."""
    real = mkdir(os.path.join(root, 'real'))
    mkdir(os.path.join(real, 'sub'))
    write(os.path.join(real, 'env'), b'E=5\n')
    write(os.path.join(real, 'sub', 'env'), b'F=6\n')
    os.symlink('real', os.path.join(root, 'link'))
    assert trusted_path.read_file(os.path.join(root, 'link', 'sub', 'env'), 'environment_file', 1024)[0] == b'F=6\n'
    assert trusted_path.read_file(os.path.join(root, 'link', 'env'), 'environment_file', 1024)[0] == b'E=5\n'


def test_read_runner_made_link_refused(root):
    secret = write(os.path.join(root, 'shadow'), b'root secret\n', mode=0o600)
    link = os.path.join(root, 'env')
    os.symlink(secret, link)
    os.lchown(link, NOBODY, NOBODY)
    error = read_refused(link)
    assert error.code == 'environment_file_symlink'
    assert 'root secret' not in error.message
    assert read_refused(link, code='seed').code == 'seed_symlink'


def test_read_root_link_in_runner_directory_refused(root):
    secret = write(os.path.join(root, 'shadow'), b'root secret\n', mode=0o600)
    runner = mkdir(os.path.join(root, 'runner'), NOBODY)
    os.symlink(secret, os.path.join(runner, '.env'))
    assert read_refused(os.path.join(runner, '.env')).code == 'environment_file_symlink'


def test_read_link_loop_bounded(root):
    os.symlink('b', os.path.join(root, 'a'))
    os.symlink('a', os.path.join(root, 'b'))
    error = read_refused(os.path.join(root, 'a'))
    assert error.code == 'environment_file_symlink'


def test_read_hard_link_in_runner_directory_refused(root):
    secret = write(os.path.join(root, 'shadow'), b'root secret\n', mode=0o600)
    runner = mkdir(os.path.join(root, 'runner'), NOBODY)
    os.link(secret, os.path.join(runner, '.env'))
    error = read_refused(os.path.join(runner, '.env'))
    assert error.code == 'environment_file_hardlink'
    assert '2 hard links' in error.message
    assert 'root secret' not in error.message
    # The runner's own file there is read.
    write(os.path.join(runner, 'own.env'), b'C=3\n', uid=NOBODY)
    assert trusted_path.read_file(os.path.join(runner, 'own.env'), 'environment_file', 1024)[0] == b'C=3\n'


def test_read_hard_link_in_root_directory_is_root_made(root):
    first = write(os.path.join(root, 'first'), b'D=4\n')
    os.link(first, os.path.join(root, 'second'))
    assert trusted_path.read_file(os.path.join(root, 'second'), 'environment_file', 1024)[0] == b'D=4\n'


def test_read_fifo_does_not_block(root):
    fifo = os.path.join(root, 'fifo')
    os.mkfifo(fifo)
    outcome = {}

    def read():
        try:
            trusted_path.read_file(fifo, 'environment_file', 1024)
        except UnsafePathError as exc:
            outcome['code'] = exc.code

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail('read_file blocked on a FIFO')
    assert outcome == {'code': 'environment_file_not_regular'}


def test_read_directory_and_non_file_names(root):
    mkdir(os.path.join(root, 'dir'))
    assert read_refused(os.path.join(root, 'dir')).code == 'environment_file_not_regular'
    assert read_refused(root + '/').code == 'environment_file_not_regular'
    assert read_refused('/').code == 'environment_file_not_regular'


def test_read_size_cap(root):
    path = write(os.path.join(root, 'big'), b'x' * 1025)
    error = read_refused(path, max_bytes=1024)
    assert error.code == 'environment_file_too_large'
    assert '1024 bytes' in error.message
    write(path, b'x' * 1024)
    assert len(trusted_path.read_file(path, 'environment_file', 1024)[0]) == 1024
    write(path, b'y' * 300000)
    assert read_refused(path, max_bytes=200000).code == 'environment_file_too_large'
    assert len(trusted_path.read_file(path, 'environment_file', 300000)[0]) == 300000


def test_read_through_unsafe_parent_refused(root):
    shared = mkdir(os.path.join(root, 'shared'), 0, 0o777)
    mkdir(os.path.join(shared, 'x'))
    write(os.path.join(shared, 'x', 'env'))
    assert read_refused(os.path.join(shared, 'x', 'env')).code == 'environment_file_path_shared'
    link = os.path.join(root, 'link')
    os.symlink(root, link)
    os.lchown(link, NOBODY, NOBODY)
    write(os.path.join(root, 'env'))
    assert read_refused(os.path.join(link, 'env')).code == 'environment_file_symlink'
    assert read_refused(os.path.join(link, 'x', 'env')).code == 'environment_file_path_symlink'


def test_relative_and_nul_codes_carry_the_prefix(root):
    """Like every other refusal, the ones split() makes are named after the caller's `code`: a relative
    seed src is seed_relative, not codex_home_relative."""
    assert read_refused('relative/env', code='seed').code == 'seed_relative'
    assert read_refused(root + '/a\0b/env', code='seed').code == 'seed_not_dir'
    assert refused('relative', code='seed').code == 'seed_relative'


def test_read_closes_what_it_opened(root):
    path = write(os.path.join(root, 'env'))
    big = write(os.path.join(root, 'big'), b'x' * 2048)
    before = fds()
    trusted_path.read_file(path, 'environment_file', 1024)
    read_refused(big)
    read_refused(os.path.join(root, 'env', 'x'))
    assert fds() == before


def test_a_hard_link_in_a_directory_anyone_can_add_to_is_refused(tmp_path):
    # /tmp is root's and sticky, yet any user may put a name in it: a hard link there could be planted.
    shared = tmp_path / 'shared'
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / 'real').write_bytes(b'OPENAI_API_KEY=x\n')
    os.link(str(shared / 'real'), str(shared / 'seed'))
    with pytest.raises(trusted_path.UnsafePathError) as info:
        trusted_path.read_file(str(shared / 'seed'), 'seed', 1024)
    assert info.value.code == 'seed_hardlink'


def test_a_fifo_is_refused_before_it_is_opened(tmp_path):
    os.mkfifo(str(tmp_path / 'seed'), 0o600)
    with pytest.raises(trusted_path.UnsafePathError) as info:
        trusted_path.read_file(str(tmp_path / 'seed'), 'seed', 1024)
    assert info.value.code == 'seed_not_regular' and 'FIFO' in info.value.message
