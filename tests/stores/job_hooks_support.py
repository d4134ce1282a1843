# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The runner side of the job-time round trip, laid out as roles/codex_job_hooks lays it out: the
module_utils files the role's vars name, copied as they are under a lib directory with the package
__init__.py files, the entry script and the hook scripts rendered from the role's own templates, one
config per runner instance (0600, the runner user's, in a root-owned directory), and the hooks run the
way the CI runners call them, as the runner user (`nobody` when the tests run as root)."""

import json
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import uuid

import jinja2
import pytest
import yaml

from store_harness import SECRETS, AwsHarness, VaultHarness
from support.home_dir import atomic_write
from support.runner_access import runner_owner

_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(_HERE))
ROLE = os.path.join(ROOT, 'roles', 'codex_job_hooks')
MODULE_UTILS = os.path.join(ROOT, 'plugins', 'module_utils')
PYTHON = '/usr/bin/python3'
HOOK_TIMEOUT = 120


def role_vars():
    with open(os.path.join(ROLE, 'vars', 'main.yml')) as handle:
        return yaml.safe_load(handle)


def role_defaults():
    with open(os.path.join(ROLE, 'defaults', 'main.yml')) as handle:
        return yaml.safe_load(handle)


def role_var(name, **variables):
    """One of the role's internal variables (vars/main.yml) rendered with `variables`, as the role renders it
    (its expression is read from the role, never restated in a test)."""
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(role_vars()[name]).render(**variables)


def _environment():
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             loader=jinja2.FileSystemLoader(os.path.join(ROLE, 'templates')))
    # The three Ansible filters the templates use, with Ansible's meaning.
    env.filters['quote'] = lambda value: shlex.quote(str(value))
    env.filters['to_json'] = json.dumps
    env.filters['to_nice_json'] = lambda value, indent=4: json.dumps(value, indent=indent, sort_keys=True)
    return env


def render(template, **variables):
    return _environment().get_template(template).render(**variables)


class Runner(object):
    """One runner instance: its user, CODEX_HOME, config and hook scripts, all under `base`."""

    def __init__(self, layout, instance, store, secret, store_section, **extra):
        self.layout = layout
        self.instance = instance
        self.user = layout.user
        self.home = os.path.join(layout.homes, instance, '.codex')
        os.makedirs(os.path.dirname(self.home), exist_ok=True)
        entry = pwd.getpwnam(self.user)
        os.chown(os.path.dirname(self.home), entry.pw_uid, entry.pw_gid)
        self.directory = os.path.join(layout.prefix, 'runners', instance)
        os.makedirs(self.directory, mode=0o755)
        self.config_path = os.path.join(self.directory, 'job-credential.json')
        config = dict(codex_home=self.home, store=store, secret=secret, allowed_auth_modes=['chatgpt'],
                      allow_identity_change=False, lock_timeout=10)
        config['vault' if store == 'vault' else 'aws'] = store_section
        config.update(extra)
        self.write_config(config)
        variables = dict(layout.variables, codex_job_hooks_instance=instance, codex_job_hooks_user=self.user,
                         codex_job_hooks_codex_home=self.home, codex_job_hooks_ci='github',
                         __codex_job_hooks_config=self.config_path)
        self.started = os.path.join(self.directory, 'job-started.sh')
        self.completed = os.path.join(self.directory, 'job-completed.sh')
        for path, action, event in ((self.started, 'restore', 'job started'),
                                    (self.completed, 'writeback', 'job completed')):
            with open(path, 'w') as handle:
                handle.write(render('job-hook.sh.j2', __codex_job_hooks_hook_action=action,
                                    __codex_job_hooks_hook_event=event, **variables))
            os.chmod(path, 0o755)

    def write_config(self, config, mode=0o600):
        entry = pwd.getpwnam(self.user)
        if os.path.exists(self.config_path):
            os.unlink(self.config_path)
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as handle:
            json.dump(config, handle)
        os.chown(self.config_path, entry.pw_uid, entry.pw_gid)
        os.chmod(self.config_path, mode)

    def put_auth(self, data):
        """What Codex leaves after a refresh: auth.json of the runner user, 0600, written atomically."""
        entry = pwd.getpwnam(self.user)
        if not os.path.isdir(self.home):
            os.mkdir(self.home, 0o700)
            os.chown(self.home, entry.pw_uid, entry.pw_gid)
        atomic_write(os.path.join(self.home, 'auth.json'), data, entry.pw_uid, entry.pw_gid)

    def put_config_toml(self, data):
        """The runner image's CODEX_HOME: 0700 with its config.toml (no auth.json)."""
        entry = pwd.getpwnam(self.user)
        if not os.path.isdir(self.home):
            os.mkdir(self.home, 0o700)
            os.chown(self.home, entry.pw_uid, entry.pw_gid)
        atomic_write(os.path.join(self.home, 'config.toml'), data, entry.pw_uid, entry.pw_gid)

    def auth(self):
        try:
            with open(os.path.join(self.home, 'auth.json'), 'rb') as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def github_env(self, job='build'):
        """The environment a GitHub Actions runner gives its job hooks (the runner's own plus GITHUB_*)."""
        home = os.path.dirname(self.home)
        return {'PATH': '/usr/local/bin:/usr/bin:/bin', 'HOME': home, 'USER': self.user, 'LANG': 'C.UTF-8',
                'CI': 'true', 'GITHUB_ACTIONS': 'true', 'GITHUB_JOB': job, 'GITHUB_RUN_ID': '4242',
                'GITHUB_RUN_ATTEMPT': '1', 'GITHUB_REPOSITORY': 'example/codexops-test',
                'GITHUB_WORKSPACE': os.path.join(home, 'work'), 'GITHUB_EVENT_NAME': 'push',
                'RUNNER_NAME': self.instance, 'RUNNER_OS': 'Linux', 'RUNNER_TEMP': os.path.join(home, 'tmp')}

    def github_hook(self, which, env=None):
        """Run a hook the way the GitHub runner does: `bash -e {path}` as the runner's service user."""
        script = self.started if which == 'started' else self.completed
        return self.run_as_runner(['/bin/bash', '-e', script], env or self.github_env())

    def gitlab_job(self, job_script='true', env=None):
        """A GitLab shell-executor job: pre_build_script, the job's script and post_build_script in one
        `bash -e -o pipefail` as the runner user, with CI_* variables (GitLab runs them in one shell)."""
        home = os.path.dirname(self.home)
        env = env or {'PATH': '/usr/local/bin:/usr/bin:/bin', 'HOME': home, 'USER': self.user, 'CI': 'true',
                      'GITLAB_CI': 'true', 'CI_JOB_ID': '777', 'CI_PIPELINE_ID': '77', 'CI_CONCURRENT_ID': '0',
                      'CI_PROJECT_PATH': 'example/codexops-test', 'CI_RUNNER_DESCRIPTION': self.instance,
                      'CI_BUILDS_DIR': os.path.join(home, 'builds')}
        toml = render('gitlab-runner.toml.j2', **dict(
            self.layout.variables, codex_job_hooks_instance=self.instance, codex_job_hooks_user=self.user,
            __codex_job_hooks_started=self.started, __codex_job_hooks_completed=self.completed))
        hooks = dict(line.split(' = ', 1) for line in toml.splitlines() if ' = ' in line and not line.startswith('#'))
        script = '\n'.join([json.loads(hooks['pre_build_script']), job_script, json.loads(hooks['post_build_script'])])
        return self.run_as_runner(['/bin/bash', '-e', '-o', 'pipefail', '-c', script], env)

    def command(self, action, env=None):
        return self.run_as_runner([self.layout.command, action, '--config', self.config_path],
                                  env or self.github_env())

    def run_as_runner(self, argv, env):
        entry = pwd.getpwnam(self.user)
        kwargs = {}
        if os.geteuid() != entry.pw_uid:
            kwargs = {'user': entry.pw_uid, 'group': entry.pw_gid, 'extra_groups': []}
        completed = subprocess.run(argv, env=env, cwd='/', stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=HOOK_TIMEOUT, check=False, **kwargs)
        lines = [line for line in completed.stdout.decode('utf-8', 'replace').splitlines() if line.startswith('{')]
        completed.result = json.loads(lines[-1]) if lines else None
        return completed


class Layout(object):
    """The command installed as the role installs it, under a root-owned 0755 prefix in /tmp (the runner
    user cannot traverse pytest's 0700 tmp_path)."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix='codexops-job-hooks-')
        os.chmod(self.base, 0o755)
        self.user = runner_owner()
        self.prefix = os.path.join(self.base, 'prefix')
        self.homes = os.path.join(self.base, 'homes')
        os.makedirs(self.homes, mode=0o755)
        internal = role_vars()
        lib = os.path.join(self.prefix, 'lib')
        self.command = os.path.join(self.prefix, 'bin', 'codex-job-credential')
        defaults = role_defaults()
        self.variables = dict(
            codex_job_hooks_prefix=self.prefix, codex_job_hooks_python=PYTHON,
            codex_job_hooks_fail_job_on_restore_error=defaults['codex_job_hooks_fail_job_on_restore_error'],
            codex_job_hooks_fail_job_on_writeback_error=defaults['codex_job_hooks_fail_job_on_writeback_error'],
            __codex_job_hooks_lib=lib, __codex_job_hooks_command=self.command)
        for package in internal['__codex_job_hooks_packages']:
            os.makedirs(os.path.join(lib, package), exist_ok=True)
            open(os.path.join(lib, package, '__init__.py'), 'w').close()
        target = os.path.join(lib, internal['__codex_job_hooks_packages'][-1])
        for name in internal['__codex_job_hooks_module_utils']:
            shutil.copyfile(os.path.join(MODULE_UTILS, name), os.path.join(target, name))
        os.makedirs(os.path.dirname(self.command))
        with open(self.command, 'w') as handle:
            handle.write(render('codex-job-credential.j2', **self.variables))
        os.chmod(self.command, 0o755)
        for directory, _dirs, files in os.walk(self.prefix):
            os.chmod(directory, 0o755)
            for name in files:
                if not name.endswith('.json'):
                    os.chmod(os.path.join(directory, name), 0o755 if directory.endswith('bin') else 0o644)

    def runner(self, instance, store, secret, store_section, **extra):
        return Runner(self, instance, store, secret, store_section, **extra)

    def remove(self):
        shutil.rmtree(self.base, ignore_errors=True)


class VaultSide(object):
    kind = 'vault'

    def __init__(self, bao):
        self.harness = VaultHarness(bao)
        self.bao = bao

    def section(self, name):
        """A token whose only policy is the one the role renders for this secret."""
        options = {'mount_point': 'secret'}
        policy_text = render('vault-policy.hcl.j2', codex_job_hooks_instance='test', inventory_hostname='test',
                             codex_job_hooks_secret=name, codex_job_hooks_store_options=options,
                             __codex_job_hooks_mount=role_var('__codex_job_hooks_mount',
                                                              codex_job_hooks_store_options=options))
        policy = 'codexops-job-%s' % uuid.uuid4().hex[:12]
        self.harness.root.sys.create_or_update_policy(name=policy, policy=policy_text)
        token = self.harness.root.auth.token.create(policies=[policy], ttl='30m')['auth']['client_token']
        SECRETS.append(token)
        return {'url': self.bao.url, 'token': token}


class AwsSide(object):
    kind = 'aws_secretsmanager'

    def __init__(self, moto):
        self.harness = AwsHarness(moto)
        self.moto = moto

    def section(self, name):
        """An IAM user with exactly the statement the role renders (moto enforces its actions)."""
        document = json.loads(render('iam-policy.json.j2', __codex_job_hooks_aws_arn='arn:aws:secretsmanager:%s:'
                                     '123456789012:secret:%s-??????' % (self.moto.region, name)))
        statement = document['Statement'][0]
        assert statement['Resource'].endswith(':secret:%s-??????' % name)
        key = self.moto.user_with_policy('codexops-job-%s' % uuid.uuid4().hex[:12], statement['Action'])
        SECRETS.append(key['SecretAccessKey'])
        return {'region': self.moto.region, 'endpoint_url': self.moto.url, 'access_key_id': key['AccessKeyId'],
                'secret_access_key': key['SecretAccessKey']}


# The fixtures of every job-hook test file (imported there by name, as pytest finds fixtures).
@pytest.fixture(scope='module')
def layout():
    installed = Layout()
    try:
        yield installed
    finally:
        installed.remove()


@pytest.fixture(params=['vault', 'aws_secretsmanager'])
def side(request):
    if request.param == 'vault':
        return VaultSide(request.getfixturevalue('openbao'))
    return AwsSide(request.getfixturevalue('moto'))
