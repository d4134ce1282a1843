# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Who acts inside a CODEX_HOME, and the handle they act through.

Private to this collection; docs/architecture.md ("Privilege model") is the long form. The rule:
whoever controls CODEX_HOME acts inside it.

- The path is walked from / (trusted_path): no link a non-root user could have made is followed,
  and the walk learns who controls the directory that holds CODEX_HOME: root alone, or one user.
- CODEX_HOME in a directory only root controls (e.g. /var/lib/codex/NAME): root may create it,
  and while CODEX_HOME itself is root's, root works inside it (nobody else can change its
  entries) and hands it over to the runner user by chown, files first, the directory last.
- CODEX_HOME owned by the runner user, or to be created in a directory the runner controls (its
  home): everything, creating it included, is done by a child that dropped to the runner's
  uid/gid/groups (privsep), so the runner's links and swaps reach only what it could reach itself.
- Anything else (CODEX_HOME or a directory above it controlled by a third user; a root-owned
  CODEX_HOME in the runner's directory, which the runner could have swapped in) is refused.

`act(path, target, func)` calls func(context) as the right user; the context carries the HomeDir
(None while CODEX_HOME is missing) and what creating or repairing it changes or would change.
"""

import os
import stat

from ansible_collections.codexops.runner.plugins.module_utils import constants
from ansible_collections.codexops.runner.plugins.module_utils import privsep
from ansible_collections.codexops.runner.plugins.module_utils import safe_files
from ansible_collections.codexops.runner.plugins.module_utils import trusted_path

UnsafePathError = trusted_path.UnsafePathError
# The files root takes over (chown to the runner) when it hands a root-owned CODEX_HOME over.
MANAGED_FILES = (constants.AUTH_FILE, constants.CONFIG_FILE) + safe_files.LOCK_FILES


class Target(object):
    """Who must own CODEX_HOME (uid None: whoever owns it now) and with which group; for a reader
    (`read_only`), `expected` is the runner it is meant to belong to: a CODEX_HOME of anyone else
    (but root's own, in root's tree) is not read at all."""

    def __init__(self, uid=None, gid=None, read_only=False, expected=None):
        self.uid = uid
        self.gid = gid
        self.read_only = read_only
        self.expected = expected


def reader(expected=None):
    """The Target of a module that only reads (verify, export)."""
    return Target(read_only=True, expected=expected)


class HomeContext(object):
    """What an actor gets: the path (for messages), the open home (None while missing), the
    ownership asked for, and whether it acts as root on the runner's behalf."""

    def __init__(self, path, walk, home_fd, target, actor_uid):
        self.path = path
        self._walk = walk
        self.home = None if home_fd is None else safe_files.HomeDir(home_fd, path)
        self.uid = target.uid
        self.gid = target.gid
        self.actor_uid = actor_uid
        # name -> the changes made to it while root handed CODEX_HOME over (e.g. ['owner']).
        self.handed_over = {}

    @property
    def exists(self):
        return self.home is not None

    @property
    def file_ids(self):
        """(uid, gid) to give new files: none needed when the actor already is the owner."""
        if self.actor_uid == self.uid or self.uid is None:
            return None, self.gid
        return self.uid, self.gid

    def stat(self):
        return None if self.home is None else self.home.stat()

    def predicted_changes(self):
        """What ensure() would change: ['created'] or a subset of ['mode', 'owner']."""
        if self.home is None:
            return ['created']
        return safe_files.mode_changes(self.home.stat(), self.uid, self.gid, constants.HOME_MODE)

    def predicted_auth_repairs(self):
        """What repair_auth() would change on auth.json: a subset of ['mode', 'owner']."""
        st = None if self.home is None else self.home.check_regular(constants.AUTH_FILE, 'auth')
        return [] if st is None else safe_files.mode_changes(st, self.uid, self.gid, constants.AUTH_MODE)

    def repair_auth(self):
        """Give an existing auth.json mode 0600 and the target's ownership. Returns what changed,
        counting what handing CODEX_HOME over already changed, so a run reports what check mode
        predicted (predicted_auth_repairs) whoever did the work."""
        if self.home.check_regular(constants.AUTH_FILE, 'auth') is None:
            return []
        changed = set(self.handed_over.get(constants.AUTH_FILE, ()))
        changed.update(self.home.repair(constants.AUTH_FILE, self.uid, self.gid, constants.AUTH_MODE))
        return [change for change in ('mode', 'owner') if change in changed]

    def owner_after(self):
        """The uid CODEX_HOME belongs to once ensure() has run."""
        if self.uid is not None:
            return self.uid
        return self.actor_uid if self.home is None else self.home.stat().st_uid

    def ensure(self):
        """Create CODEX_HOME (and missing parents) or repair its mode and owner. Root hands a home it
        works in over last: managed files first, then the directory."""
        created = self.home is None
        if created:
            self._create()
        repairs = self.predicted_changes()
        if 'mode' in repairs:
            os.fchmod(self.home.fd, constants.HOME_MODE)
        if 'owner' in repairs:
            self._hand_over()
        return ['created'] if created else repairs

    def _create(self):
        fd, missing = self._walk.fd, list(self._walk.missing)
        owned_fd = None
        try:
            while missing:
                name = missing.pop(0)
                mode = constants.HOME_MODE if not missing else constants.PARENT_MODE
                try:
                    os.mkdir(name, mode, dir_fd=fd)
                    made = True
                except FileExistsError:
                    made = False  # made meanwhile: adopted only if it is the actor's own
                child = trusted_path.open_dir(name, fd)
                creator = os.fstat(child).st_uid
                if not made and creator != os.geteuid():
                    os.close(child)
                    if owned_fd is not None:
                        os.close(owned_fd)
                    raise UnsafePathError('codex_home_owner', '%s was created by %s while this run was creating '
                                          'it; check it, remove it, and run again.'
                                          % (self.path, safe_files.user_name(creator)))
                if owned_fd is not None:
                    os.close(owned_fd)
                owned_fd = fd = child
        except OSError as exc:
            if owned_fd is not None:
                os.close(owned_fd)
            raise UnsafePathError('codex_home_uncreatable', 'cannot create %s: %s.' % (self.path, exc.strerror))
        # ensure() sets the mode (the umask may have narrowed it) and the owner next.
        self.home = safe_files.HomeDir(owned_fd, self.path)

    def _hand_over(self):
        if self.actor_uid != constants.ROOT_UID:
            # The runner can give its own files to a group it belongs to, nothing more.
            os.fchown(self.home.fd, -1, -1 if self.gid is None else self.gid)
            return
        for name in MANAGED_FILES:
            st = self.home.lstat(name)
            if st is not None and st.st_uid not in (constants.ROOT_UID, self.uid):
                # Made by a third user (a CODEX_HOME others could write): never give it to the runner.
                raise UnsafePathError('%s_owner' % _code_of(name), '%s belongs to %s; root hands over only what '
                                      'root made. Check it and remove it.'
                                      % (self.home.shown(name), safe_files.user_name(st.st_uid)))
            if st is not None and stat.S_ISREG(st.st_mode):
                self.handed_over[name] = self.home.repair(name, self.uid, self.gid, stat.S_IMODE(st.st_mode),
                                                          code=_code_of(name))
        for name in self.home.backups(constants.AUTH_FILE):
            self.home.repair(name, self.uid, self.gid, constants.AUTH_MODE)
        os.fchown(self.home.fd, -1 if self.uid is None else self.uid, -1 if self.gid is None else self.gid)

    def as_owner(self, func, *args):
        """Run func(self) as the user CODEX_HOME now belongs to (after ensure()). Root must not go
        on working in a directory it has just handed to the runner."""
        owner = self.home.stat().st_uid
        if self.actor_uid != constants.ROOT_UID or owner == constants.ROOT_UID:
            return func(self, *args)
        self.actor_uid = owner
        # The runner's own groups only: a `group` it is not in is refused by the kernel at chown.
        return privsep.run_as(privsep.Identity(owner), func, self, *args)


def _code_of(name):
    return {constants.AUTH_FILE: 'auth', constants.CONFIG_FILE: 'config'}.get(name, 'lock')


def act(path, target, func, *args, **options):
    """func(HomeContext, *args) as whoever controls CODEX_HOME; see the module docstring.
    `child_timeout` (seconds) bounds a runner-user child longer than privsep's default, for a func
    that itself waits on something bounded (the keepalive probe)."""
    run_options = {}
    if options.get('child_timeout'):
        run_options['child_timeout'] = options['child_timeout']
    where = trusted_path.walk(path)
    context, home_fd = None, None
    try:
        parent_controller = where.controller
        if not where.missing:
            home_fd, where.fd = where.fd, None
            parent_controller = where.parent_controller
        if parent_controller == 'many':
            raise UnsafePathError('codex_home_path_shared', 'the directory holding %s can be changed by more than '
                                  'one user; put CODEX_HOME where only root and the runner control the path.' % path)
        actor = _choose_actor(path, home_fd, parent_controller, where, target)
        context = HomeContext(path, where, home_fd, target, actor)
        if actor == os.geteuid():
            return func(context, *args)
        return privsep.run_as(privsep.Identity(actor), func, context, *args, **run_options)
    finally:
        where.close()
        if context is not None and context.home is not None:
            os.close(context.home.fd)
        elif context is None and home_fd is not None:
            os.close(home_fd)


def _choose_actor(path, home_fd, parent_controller, where, target):
    wanted = target.uid
    if parent_controller == trusted_path.ANYONE:
        return _actor_in_shared_dir(path, home_fd, target)
    if home_fd is None:
        # Missing: created by root in root's tree, by the runner in the runner's.
        creator = constants.ROOT_UID if parent_controller is None else parent_controller
        if wanted is not None and creator not in (constants.ROOT_UID, wanted):
            raise UnsafePathError('codex_home_parent_owner', '%s is controlled by %s, not by root or %s; put '
                                  'CODEX_HOME where nobody else can redirect it.'
                                  % (where.path, safe_files.user_name(creator), safe_files.user_name(wanted)))
        return creator
    st = os.fstat(home_fd)
    owner = st.st_uid
    if owner == constants.ROOT_UID and parent_controller is not None:
        # Also for readers (Target(None)): the runner could have renamed any root directory here.
        raise UnsafePathError('codex_home_owner', '%s is owned by root but sits in a directory %s controls, '
                              'who could have moved any root directory there; check it and chown it to the '
                              'runner yourself.' % (path, safe_files.user_name(parent_controller)))
    if owner == constants.ROOT_UID and stat.S_IMODE(st.st_mode) & 0o022:
        raise UnsafePathError('codex_home_path_shared', '%s is root\'s but others can write it; check what is in '
                              'it, then make it 0700.' % path)
    if wanted is not None and parent_controller not in (None, wanted):
        raise UnsafePathError('codex_home_parent_owner', 'the directory holding %s is controlled by %s, who could '
                              'swap it; put CODEX_HOME in the home of %s or in a root-owned directory.'
                              % (path, safe_files.user_name(parent_controller), safe_files.user_name(wanted)))
    if target.read_only and target.expected is not None and owner != target.expected and not (
            owner == constants.ROOT_UID and parent_controller is None):
        raise UnsafePathError('codex_home_owner', '%s is owned by %s, not by the runner %s; it was not read. Check '
                              'who made it, then remove it or chown it to the runner.'
                              % (path, safe_files.user_name(owner), safe_files.user_name(target.expected)))
    if wanted is None or owner == wanted:
        return owner  # root's own CODEX_HOME included: root works through the descriptor it holds
    if owner == constants.ROOT_UID and parent_controller is None:
        return constants.ROOT_UID  # root's, in root's tree: root works in it, then hands it over
    raise UnsafePathError('codex_home_owner', '%s is owned by %s, not %s; root does not take over another '
                          "user's directory. chown it after checking it, or choose another codex_home."
                          % (path, safe_files.user_name(owner), safe_files.user_name(wanted)))


def _actor_in_shared_dir(path, home_fd, target):
    """CODEX_HOME directly in a directory anyone can add entries to (a sticky /tmp): only the runner
    acts there, and only in its own directory. Root creates nothing there, and a root-owned or third
    user's directory there is nobody's to take over: any user could have made the name first."""
    owner = None if home_fd is None else os.fstat(home_fd).st_uid
    runner = target.uid if target.uid is not None else target.expected
    if owner is None:
        if target.read_only:
            return os.geteuid()  # nothing to read, nothing is created
        if runner is None or runner == constants.ROOT_UID:
            raise UnsafePathError('codex_home_path_shared', '%s would be created in a directory any user can add '
                                  'entries to; root creates nothing there. Set owner to the runner user (it '
                                  'creates its own CODEX_HOME), or put CODEX_HOME in its home.' % path)
        return runner
    if owner == constants.ROOT_UID or (runner is not None and owner != runner):
        raise UnsafePathError('codex_home_path_shared' if owner == constants.ROOT_UID else 'codex_home_owner',
                              '%s is owned by %s in a directory any user can add entries to, where anyone could '
                              'have made it; it is not used. Remove it, or put CODEX_HOME in the runner\'s home.'
                              % (path, safe_files.user_name(owner)))
    return owner
