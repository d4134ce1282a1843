"""--check with codex_auth_create_user and runner users that do not exist yet, for real: check mode predicts the
runners (a single runner and two runner instances) as created and creates no account and no file; the real run then
creates the users, seeds every CODEX_HOME and leaves exactly what check mode predicted; the next run changes
nothing. Without codex_auth_create_user an unknown instance user is still refused, before anything is written.

The accounts this test creates (with the role, in the real run) are removed with their home directories when it ends,
whatever happened: the machine is left as it was found.
"""

import json
import os
import pwd
import subprocess
import sys

import pytest

from support import fake_credentials
from support.local_fleet import changed_by_host
from support.private_files import write_private
from support.require import required

_needs_root = required(os.geteuid() == 0, 'creates runner users (and removes them): run as root')

SINGLE = 'runner-0'
HOST = 'runner-1'
PLAYBOOK = '''---
- name: Provision runners whose users the role creates
  hosts: codex_runners
  gather_facts: false
  tasks:
    - name: Provision
      ansible.builtin.include_role:
        name: codexops.runner.codex_auth

    - name: Keep every runner's (and instance's) health for the test (on the controller)
      ansible.builtin.copy:
        content: "{{ (codex_auth_runners_health if codex_auth_runners | default([]) else [codex_auth_health]) | to_json }}"
        dest: "{{ health_dir }}/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
      check_mode: false
      changed_when: false
'''
# What may differ between a prediction and the run a moment later.
VOLATILE = ('age_days',)


def getent(user):
    proc = subprocess.run(['getent', 'passwd', user], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    return proc.stdout.decode('utf-8', 'replace').strip()


def remove_user(user):
    if getent(user):
        subprocess.run(['userdel', '--remove', user], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)


class NewUsers(object):

    def __init__(self, space):
        self.space = space
        tag = os.getpid() % 100000
        # Users this machine does not have: one for a single runner, one for two runner instances.
        self.single_user, self.instance_user = 'cxo-new-s%d' % tag, 'cxo-new-i%d' % tag
        for user in (self.single_user, self.instance_user):
            assert not getent(user), 'user %s exists already; remove it or run the test again' % user
        seed_dir = space.root / 'codex_seeds'
        (seed_dir / HOST).mkdir(mode=0o700, parents=True)
        for path, tag_ in ((seed_dir / ('%s.json' % SINGLE), SINGLE), (seed_dir / HOST / 'a.json', 'a'),
                           (seed_dir / HOST / 'b.json', 'b')):
            doc, secrets = fake_credentials.chatgpt_seed(account_id='acct-new-%s' % tag_)
            space.remember(secrets)
            write_private(path, fake_credentials.dumps(doc))
        self.health_dir = space.root / 'health'
        self.health_dir.mkdir()
        self.playbook = space.root / 'new-users.yml'
        self.playbook.write_text(PLAYBOOK)
        (space.root / 'runners').mkdir()
        # The single runner and instance b in a directory of their own; instance a in its user's home to be
        # (~USER/.codex, the default), which only the run creates.
        self.homes = {SINGLE: space.root / 'runners' / 'single' / '.codex',
                      'b': space.root / 'runners' / 'b' / '.codex'}
        common = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                  'codex_auth_seed_dir': str(seed_dir), 'health_dir': str(self.health_dir)}
        inventory = {'codex_runners': {'hosts': {
            SINGLE: {'codex_auth_user': self.single_user, 'codex_auth_home': str(self.homes[SINGLE])},
            HOST: {'codex_auth_user': self.instance_user,
                   'codex_auth_runners': [{'name': 'a'}, {'name': 'b', 'codex_home': str(self.homes['b'])}]}},
            'vars': common}}
        self.inventory = write_private(space.root / 'inventory.json', json.dumps(inventory))

    def run(self, check=False, expect_failure=False, **variables):
        return self.space.playbook(str(self.playbook), self.inventory, variables, check=check,
                                   expect_failure=expect_failure, label='new-users')

    def health(self):
        rows = {}
        for host in (SINGLE, HOST):
            for row in json.loads((self.health_dir / ('%s.json' % host)).read_text()):
                rows['%s/%s' % (host, row.get('name', 'default'))] = dict(
                    (key, value) for key, value in row.items() if key not in VOLATILE)
        return rows

    def nothing_written(self):
        assert not getent(self.single_user) and not getent(self.instance_user), 'check mode created an account'
        assert os.listdir(str(self.space.root / 'runners')) == [], 'check mode created a CODEX_HOME'
        for user in (self.single_user, self.instance_user):
            assert not os.path.exists('/home/%s' % user), 'check mode created a home directory'


@pytest.fixture
def new_users(workspace):
    users = NewUsers(workspace)
    try:
        yield users
    finally:
        for user in (users.single_user, users.instance_user):
            remove_user(user)
        assert not getent(users.single_user) and not getent(users.instance_user), 'a test user was left behind'


def test_check_mode_predicts_the_users_it_would_create_and_the_run_agrees(new_users):
    output = new_users.run(check=True, codex_auth_create_user=True)
    assert changed_by_host(output) == {SINGLE: 2, HOST: 2}, output[-3000:]  # the user, then the seed
    new_users.nothing_written()
    predicted = new_users.health()
    assert sorted(predicted) == sorted(['%s/a' % HOST, '%s/b' % HOST, '%s/default' % SINGLE])
    for key, row in predicted.items():
        assert row['healthy'], (key, row)
        assert row['owner'] == (new_users.single_user if key.startswith(SINGLE) else new_users.instance_user), row

    output = new_users.run(codex_auth_create_user=True)
    assert changed_by_host(output) == {SINGLE: 2, HOST: 2}, output[-3000:]
    found = new_users.health()
    instance = pwd.getpwnam(new_users.instance_user)
    # The one thing check mode cannot know: where the new user's home directory will be. It keeps ~USER as given.
    assert predicted['%s/a' % HOST]['codex_home'] == '~%s/.codex' % new_users.instance_user
    assert found['%s/a' % HOST]['codex_home'] == os.path.join(instance.pw_dir, '.codex')
    predicted['%s/a' % HOST]['codex_home'] = found['%s/a' % HOST]['codex_home']
    assert found == predicted, dict((key, sorted((field, predicted[key].get(field), row.get(field)) for field in row
                                                 if predicted[key].get(field) != row.get(field)))
                                    for key, row in found.items())
    single = pwd.getpwnam(new_users.single_user)
    for home, entry in ((new_users.homes[SINGLE], single), (new_users.homes['b'], instance),
                        (os.path.join(instance.pw_dir, '.codex'), instance)):
        info = os.stat(os.path.join(str(home), 'auth.json'))
        assert (info.st_uid, info.st_mode & 0o777) == (entry.pw_uid, 0o600), home
    assert changed_by_host(new_users.run(codex_auth_create_user=True)) == {SINGLE: 0, HOST: 0}
    assert changed_by_host(new_users.run(check=True, codex_auth_create_user=True)) == {SINGLE: 0, HOST: 0}
    assert new_users.space.leaks() == []


def test_without_create_user_an_unknown_instance_user_is_still_refused(new_users):
    for check in (True, False):
        output = new_users.run(check=check, expect_failure=True)
        assert 'runner_instance_user_unknown' in output and 'instances a and b run as user %s, which does not exist' \
            % new_users.instance_user in output, output[-3000:]
        new_users.nothing_written()
