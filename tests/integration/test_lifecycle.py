"""A runner's life with the real Codex CLI refreshing against the loopback backend: write-back for
ephemeral runners, access-token rotation, keep-fresh, and the shared-token incident.

Seeds carry an access token that expires within Codex's 5-minute refresh window, so the next
`codex exec` refreshes (rotating the refresh token at the backend) and then fails at the model
call: there is no model API offline, and none is needed to prove the credential cycle. The backend
issues hour-long tokens, as the real one does: tokens born inside the refresh window make Codex
refresh before every request (seen here: about 3,000 refreshes in two minutes). To stand for a
runner left idle, a test ages the access token in place (`expire_access_token`).
"""

import datetime
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from support import fake_credentials
from support.codex import codex_binary
from support.local_fleet import LocalFleet, changed_by_host, file_identity, ran_on
from support.private_files import write_private
from support.runner_access import runner_owner
from support.workspace import OUTPUT

SHORT = datetime.timedelta(minutes=1)
CI_STEP_SECONDS = 45
# timeout(1) around Codex in the keepalive the lifecycle installs. Every run here either refreshes or is refused
# by the token endpoint in Codex's first seconds; what follows is the unreachable model, which no assertion reads.
KEEPALIVE_SECONDS = 60


@pytest.fixture(autouse=True)
def backend_log(request, backend):
    """Keep what the backend saw during each scenario (fingerprints, never tokens)."""
    start = len(backend.log_lines())
    yield
    path = OUTPUT / 'logs' / ('%s-backend.log' % request.node.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(backend.log_lines()[start:]) + '\n')


def expire_access_token(path):
    """Stand for time passing: the file's access token is now expired (nothing else changes)."""
    doc = json.loads(path.read_text())
    doc['tokens']['access_token'] = fake_credentials.make_jwt({'exp': 1, 'canary': 'FAKE-EXPIRED'})
    with open(str(path), 'w') as handle:  # same inode, owner and mode
        handle.write(json.dumps(doc))


def remember_file(space, path):
    tokens = json.loads(path.read_text())['tokens']
    space.remember([tokens[name] for name in ('id_token', 'access_token', 'refresh_token')])


def refresh_env(backend):
    return {'CODEX_REFRESH_TOKEN_URL_OVERRIDE': backend.base_url + '/oauth/token'}


def loopback_model(backend):
    """Point Codex's ChatGPT backend at the loopback server too (it answers 404), so a test run
    sends nothing off this machine; the model call fails either way."""
    return ['-c', 'chatgpt_base_url="%s/backend-api/"' % backend.base_url]


def ci_job(fleet, host, backend):
    """What a pipeline step does: run `codex exec` as the runner user, within a step's time limit
    (the refresh comes first; the model call after it cannot succeed offline). Returns Codex's output."""
    _rc, output = fleet.codex(host, ['exec', '--skip-git-repo-check'] + loopback_model(backend) + ['say hi'],
                              env=refresh_env(backend), deadline=CI_STEP_SECONDS)
    return output


def vault_password(space, name='vault-password'):
    path = space.root / name
    password = 'vault-' + secrets.token_hex(12)
    space.remember([password])
    return write_private(path, password)


def vault_view(path, password_file, vault_id=None):
    """The store file decrypted by ansible-vault itself (with `--vault-id LABEL@FILE` when a label is given)."""
    ansible_vault = os.path.join(os.path.dirname(sys.executable), 'ansible-vault')
    source = ['--vault-id', '%s@%s' % (vault_id, password_file)] if vault_id else ['--vault-password-file', password_file]
    return subprocess.run([ansible_vault, 'view'] + source + [str(path)], stdout=subprocess.PIPE,
                          check=True).stdout.decode()


def assert_private_store(store, header, refreshed, password_file, vault_id=None):
    """The store file: vault-encrypted under this header, 0600, and it decrypts to the runner's file."""
    assert store.read_text().split('\n', 1)[0] == header
    assert oct(os.stat(str(store)).st_mode & 0o777) == '0o600'
    assert vault_view(store, password_file, vault_id).strip() == refreshed.strip()
    assert not [path.name for path in store.parent.iterdir() if path.name.endswith('.tmp')], 'a temp file was left'


def provision_a_short_login(fleet, backend, host):
    """Seed `host` with a new login whose access token expires within a minute and provision it;
    returns the seed."""
    doc, tokens = backend.login(access_ttl=SHORT)
    fleet.space.remember(tokens)
    fleet.seed(host, doc)
    fleet.run('provision')
    return doc


def refresh_once(backend, refresh, *args):
    """Run `refresh(*args)`, which must rotate the refresh token at the backend exactly once."""
    before = backend.count('/oauth/token', 'rotated')
    result = refresh(*args)
    assert backend.count('/oauth/token', 'rotated') == before + 1
    return result


def refreshed_runner(workspace, backend):
    """A provisioned runner whose CI job has just refreshed its login: (fleet, host, seed doc, its auth.json)."""
    fleet = LocalFleet(workspace, 1)
    host = 'runner-1'
    doc = provision_a_short_login(fleet, backend, host)
    refresh_once(backend, ci_job, fleet, host, backend)
    remember_file(workspace, fleet.auth(host))
    assert fleet.auth_doc(host)['tokens']['refresh_token'] != doc['tokens']['refresh_token']
    return fleet, host, doc, fleet.auth(host).read_text()


def test_writeback_stores_newer_refuses_older_and_broken_and_restores(workspace, backend):
    # README: `ansible-playbook codexops.runner.writeback -i inventory/ --vault-password-file FILE`, nothing more.
    fleet, host, doc, refreshed = refreshed_runner(workspace, backend)
    password_file = vault_password(workspace)
    vault = ['--vault-password-file', password_file]

    store = fleet.seed_dir / ('%s.json' % host)
    output = fleet.run('writeback', extra_args=vault)
    assert "store: the runner's file is newer" in output and ran_on(output, host)
    assert_private_store(store, '$ANSIBLE_VAULT;1.1;AES256', refreshed, password_file)

    stored = file_identity(store)
    again = fleet.run('writeback', extra_args=vault)
    assert 'unchanged: ' in again and changed_by_host(again)[host] == 0 and file_identity(store) == stored

    # A runner restored from an old image carries the original seed: older than the store.
    fleet.auth(host).write_text(json.dumps(doc))
    older = fleet.run('writeback', expect_failure=True, extra_args=vault)
    assert "older than the store's" in older and file_identity(store) == stored
    fleet.auth(host).write_text('{"tokens": {')
    broken = fleet.run('writeback', expect_failure=True, extra_args=vault)
    assert 'is not usable (auth_not_json)' in broken and file_identity(store) == stored

    # A CI job forges a file that says it was refreshed in 9999: it would pin the store (every genuine
    # refresh after it would look older). And one of another account, newer: it would swap accounts.
    forged = json.loads(refreshed)
    forged['last_refresh'] = '9999-12-31T23:59:59Z'
    fleet.auth(host).write_text(json.dumps(forged))
    future = fleet.run('writeback', expect_failure=True, extra_args=vault)
    assert '(runner_from_future)' in future and file_identity(store) == stored
    foreign, foreign_secrets = fake_credentials.chatgpt_seed(tag='FOREIGN', account_id='acct-FOREIGN-1',
                                                             user_id='user-FOREIGN-1')
    workspace.remember(foreign_secrets)
    fleet.auth(host).write_text(json.dumps(foreign))
    other = fleet.run('writeback', expect_failure=True, extra_args=vault)
    assert '(runner_identity_changed)' in other and file_identity(store) == stored
    # The operator moves that runner to the other account on purpose: allowed for that run only.
    kept = store.read_bytes()
    moved = fleet.run('writeback', extra_args=vault, codex_writeback_allow_identity_change=True)
    assert "store: the runner's file is newer" in moved and file_identity(store) != stored
    assert vault_view(store, password_file).strip() == json.dumps(foreign).strip()
    # (back to the runner's real login for the rest of the test, as the operator would restore it)
    store.write_bytes(kept)
    os.chmod(str(store), 0o600)
    fleet.auth(host).write_text(refreshed)

    # The ephemeral runner is gone; a fresh one is provisioned from the store and, once its
    # access token is due, refreshes with the stored refresh token: it was the live one.
    shutil.rmtree(str(fleet.home(host)))
    fleet.run('provision', extra_args=vault)
    assert fleet.auth(host).read_text().strip() == refreshed.strip()
    expire_access_token(fleet.auth(host))
    rotated, reused = backend.count('/oauth/token', 'rotated'), backend.count('/oauth/token', 'refresh_token_reused')
    ci_job(fleet, host, backend)
    assert backend.count('/oauth/token', 'rotated') == rotated + 1
    assert backend.count('/oauth/token', 'refresh_token_reused') == reused
    remember_file(workspace, fleet.auth(host))


def test_writeback_encrypts_with_the_vault_secret_of_ask_vault_pass_and_vault_id(workspace, backend):
    fleet, host, _doc, refreshed = refreshed_runner(workspace, backend)
    password_file = vault_password(workspace)
    with open(password_file) as handle:
        password = handle.read()
    store = fleet.seed_dir / ('%s.json' % host)

    # --ask-vault-pass: ansible-playbook asks on its terminal (getpass reads /dev/tty); typed, not echoed.
    asked = fleet.run('writeback', extra_args=['--ask-vault-pass'], tty_answers=[('Vault password: ', password)])
    assert "store: the runner's file is newer" in asked
    assert_private_store(store, '$ANSIBLE_VAULT;1.1;AES256', refreshed, password_file)

    # --vault-id LABEL@FILE: encrypted with that secret, and the file's header names the label.
    store.unlink()
    labelled = ['--vault-id', 'ci@%s' % password_file]
    output = fleet.run('writeback', extra_args=labelled)
    assert 'store: the store had no file for this runner' in output
    assert_private_store(store, '$ANSIBLE_VAULT;1.2;AES256;ci', refreshed, password_file, vault_id='ci')
    stored = file_identity(store)
    again = fleet.run('writeback', extra_args=labelled)
    assert 'unchanged: ' in again and changed_by_host(again)[host] == 0 and file_identity(store) == stored

    # Several secrets: codex_writeback_vault_id picks one by its label; a label the play lacks is refused
    # before the runner is read.
    other = vault_password(workspace, 'vault-password-other')
    store.unlink()
    fleet.run('writeback', extra_args=['--vault-id', 'other@%s' % other] + labelled, codex_writeback_vault_id='ci')
    assert_private_store(store, '$ANSIBLE_VAULT;1.2;AES256;ci', refreshed, password_file, vault_id='ci')
    stored = file_identity(store)
    unknown = fleet.run('writeback', expect_failure=True, extra_args=labelled, codex_writeback_vault_id='prod')
    assert 'no vault secret labelled prod (it has: ci)' in unknown and 'vault_id_unknown' in unknown
    assert not ran_on(unknown, host) and file_identity(store) == stored

    # Deprecated, for one release: a password file given to the role, with no secret in the play.
    store.unlink()
    fleet.run('writeback', codex_writeback_vault_password_file=password_file, codex_writeback_vault_id='legacy')
    assert_private_store(store, '$ANSIBLE_VAULT;1.2;AES256;legacy', refreshed, password_file, vault_id='legacy')


def test_writeback_without_a_vault_secret_fails_before_reading_the_runner(workspace, backend):
    fleet = LocalFleet(workspace, 1)
    host = 'runner-1'
    fleet.seed(host)
    fleet.run('provision')
    store = fleet.seed_dir / ('%s.json' % host)
    stored = file_identity(store)

    failed = fleet.run('writeback', expect_failure=True)
    assert ('This play has no vault secret to encrypt %s with: run ansible-playbook with --vault-password-file, '
            '--ask-vault-pass or --vault-id, or set codex_writeback_encrypt: false' % store) in failed
    assert 'Nothing was read from the runner. (vault_secret_missing)' in failed
    # Nothing ran on the runner at all: no command, no codex_auth_export (-vvvv logs each of them).
    assert not ran_on(failed, host) and 'AnsiballZ_' not in failed
    assert file_identity(store) == stored

    # Stored in the clear on request, and then the play needs no secret.
    plain = fleet.run('writeback', codex_writeback_encrypt=False)
    assert ran_on(plain, host) and not store.read_text().startswith('$ANSIBLE_VAULT')


def test_rotation_switches_on_a_good_token_and_keeps_the_old_login_on_a_bad_one(workspace, backend):
    old, new, bad = (fake_credentials.personal_access_token() for _unused in range(3))
    workspace.remember([old, new, bad])
    for token in (old, new):
        backend.allow_access_token(token)
    fleet = LocalFleet(workspace, 2, codex_auth_method='access_token', codex_auth_codex_path=codex_binary())
    fleet.run('provision', codex_auth_access_token=old)
    assert all(old in fleet.auth(host).read_text() for host in fleet.hosts)

    output = fleet.run('rotate_access_token', codex_new_access_token=new)
    assert 'It is now safe to revoke the old token' in output
    for host in fleet.hosts:
        assert new in fleet.auth(host).read_text()
        rc, status = fleet.codex(host, ['login', 'status'])
        assert rc == 0 and 'Logged in using personal access token' in status

    before = dict((host, fleet.auth(host).read_bytes()) for host in fleet.hosts)
    failed = fleet.run('rotate_access_token', expect_failure=True, codex_new_access_token=bad)
    assert 'Do NOT revoke the old access token yet: runner-1, runner-2' in failed
    assert '401 Unauthorized' in failed
    for host in fleet.hosts:
        assert fleet.auth(host).read_bytes() == before[host]
        rc, status = fleet.codex(host, ['login', 'status'])
        assert rc == 0 and 'Logged in using personal access token' in status


def keepalive_fleet(workspace, backend, size):
    """A local fleet whose provisioning also installs the keepalive (units written under the
    workspace and checked with systemd-analyze; nothing is enabled on this machine)."""
    for number in range(1, size + 1):
        (workspace.root / 'systemd' / ('runner-%d' % number)).mkdir(parents=True)  # /etc/systemd/system
    return LocalFleet(workspace, size, codexops_keepalive=True, codex_keepalive_scheduler='systemd',
                      codex_keepalive_codex_path=codex_binary(),
                      codex_keepalive_script_dir=str(workspace.root / 'libexec' / '{{ inventory_hostname }}'),
                      codex_keepalive_systemd_dir=str(workspace.root / 'systemd' / '{{ inventory_hostname }}'),
                      codex_keepalive_environment=refresh_env(backend),
                      # Offline, Codex retries the unreachable model for minutes after a refresh: stop it.
                      codex_keepalive_timeout='%ds' % KEEPALIVE_SECONDS,
                      codex_keepalive_extra_args=['--skip-git-repo-check', '--sandbox', 'read-only', '--ephemeral']
                      + loopback_model(backend))


def run_keepalive(fleet, host):
    """Exactly what the timer runs: the unit's ExecStart, as the unit's User=."""
    # One keepalive per CODEX_HOME; its name carries a hash of the path (codex_keepalive_name).
    (unit,) = (fleet.space.root / 'systemd' / host).glob('codex-keepalive-%s*.service' % runner_owner())
    settings = dict(line.split('=', 1) for line in unit.read_text().splitlines() if '=' in line)
    entry = pwd.getpwnam(settings['User'])
    kwargs = {'user': entry.pw_uid, 'group': entry.pw_gid, 'extra_groups': []} if os.geteuid() == 0 else {}
    proc = subprocess.run([settings['ExecStart']], env={'PATH': '/usr/bin:/bin'}, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300, check=False, **kwargs)
    output = proc.stdout.decode('utf-8', 'replace')
    fleet.space.outputs.append(output)
    return output


def test_keepalive_refresh_is_kept_by_provision_and_verified_healthy(workspace, backend):
    fleet = keepalive_fleet(workspace, backend, 1)
    host = 'runner-1'
    doc = provision_a_short_login(fleet, backend, host)

    refresh_once(backend, run_keepalive, fleet, host)
    refreshed = fleet.auth_doc(host)
    remember_file(workspace, fleet.auth(host))
    assert refreshed['tokens']['refresh_token'] == backend.current_refresh_token(doc['tokens']['refresh_token'])
    assert refreshed['last_refresh'] > doc['last_refresh']
    identity = file_identity(fleet.auth(host))

    # Provisioning again (the seed is older) keeps the refreshed file: seed only if absent.
    again = fleet.run('provision')
    assert changed_by_host(again)[host] == 0 and file_identity(fleet.auth(host)) == identity
    fleet.run('verify')
    report = fleet.report()
    assert report['ok'] and report['hosts'][0]['last_refresh'].startswith(refreshed['last_refresh'][:19])


# The fleet reports of the incident, kept in tests/output for the session note.
INCIDENT_REPORTS = {}


def test_shared_token_incident_flagged_reproduced_and_repaired_by_reseed(workspace, backend):
    fleet = keepalive_fleet(workspace, backend, 2)
    first, second = fleet.hosts
    doc, tokens = backend.login(access_ttl=SHORT)
    workspace.remember(tokens)
    for host in fleet.hosts:
        fleet.seed(host, doc)  # the mistake: one auth.json copied onto two runners
    refused = fleet.run('provision', expect_failure=True)
    assert '%s and %s' % (first, second) in refused
    # The documented, unsafe override writes the shared seed; provision's own report still says so.
    shared = fleet.run('provision', codex_auth_allow_shared_refresh_token=True, codex_auth_report_fail=False)
    assert '2 sharing a refresh token' in shared

    flagged = fleet.run('verify', expect_failure=True)
    assert 'shared refresh token' in flagged
    assert list(fleet.report()['shared_fingerprints'].values()) == [[first, second]]

    rotated, reused = backend.count('/oauth/token', 'rotated'), backend.count('/oauth/token', 'refresh_token_reused')
    run_keepalive(fleet, first)
    assert backend.count('/oauth/token', 'rotated') == rotated + 1
    remember_file(workspace, fleet.auth(first))
    broken = run_keepalive(fleet, second)
    assert 'refresh token was already used' in broken
    assert backend.count('/oauth/token', 'refresh_token_reused') > reused
    # The server revoked the whole token family on the reuse: the first runner's rotated token is dead
    # too, and its file still looks perfect. The real server revokes its access token with it, so its
    # next request gets a 401 and Codex refreshes; the loopback backend serves no model API, so the
    # access token is aged instead, which sends Codex down the same refresh path.
    expire_access_token(fleet.auth(first))
    # The documented recipe: probe, then reseed, no names.
    probed = fleet.run('verify', expect_failure=True, codex_auth_probe=True)
    report = fleet.report()
    assert report['refresh_failed'] == [first, second], probed
    reasons = dict((row['host'], row['keepalive_reason']) for row in report['hosts'])
    assert reasons == {first: 'refresh_token_invalidated', second: 'refresh_token_reused'}
    markdown = (fleet.report_dir / 'fleet-report.md').read_text()
    assert '0 healthy, 2 broken' in markdown and '`refresh_failed`' in markdown
    INCIDENT_REPORTS['before'] = markdown

    # Each runner gets its own login from the trusted machine; reseed finds both by itself.
    for host in fleet.hosts:
        own, own_tokens = backend.login(account_id='acct-%s' % host, access_ttl=SHORT)
        workspace.remember(own_tokens)
        fleet.seed(host, own)
    fleet.run('reseed')
    assert all(list(fleet.home(host).glob('auth.json.*.bak')) for host in fleet.hosts)

    rotated, reused = backend.count('/oauth/token', 'rotated'), backend.count('/oauth/token', 'refresh_token_reused')
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda host: run_keepalive(fleet, host), fleet.hosts))
    assert backend.count('/oauth/token', 'rotated') == rotated + 2
    assert backend.count('/oauth/token', 'refresh_token_reused') == reused
    for host in fleet.hosts:
        remember_file(workspace, fleet.auth(host))
    fleet.run('verify')
    assert fleet.report()['ok']
    INCIDENT_REPORTS['after'] = (fleet.report_dir / 'fleet-report.md').read_text()
    (OUTPUT / 'incident-fleet-reports.md').write_text('\n'.join(
        '## %s\n\n%s' % (when, INCIDENT_REPORTS[when]) for when in ('before', 'after')))


@pytest.mark.parametrize('failure, reason', [('revoked', 'refresh_token_invalidated'),
                                             ('expired', 'refresh_token_expired')])
def test_a_revoked_or_expired_token_is_found_by_the_keepalive_and_reseeded(workspace, backend, failure, reason):
    """The scheduled keepalive itself (no probe) finds the dead token; reseed, with no names,
    replaces that runner only, and the new login refreshes."""
    fleet = keepalive_fleet(workspace, backend, 2)
    dead, alive = fleet.hosts
    docs = {}
    for host in fleet.hosts:
        docs[host], tokens = backend.login(account_id='acct-%s' % host, access_ttl=SHORT)
        workspace.remember(tokens)
        fleet.seed(host, docs[host])
    fleet.run('provision')
    token = docs[dead]['tokens']['refresh_token']
    if failure == 'revoked':
        backend.revoke_login(token)
    else:
        backend.fail_refresh(token, 'refresh_token_expired')
    output = run_keepalive(fleet, dead)
    assert 'result=failed reason="%s"' % reason in output, output
    untouched = file_identity(fleet.auth(alive))

    fleet.run('verify', expect_failure=True)
    report = fleet.report()
    assert report['refresh_failed'] == [dead] and report['needs_reseed'] == [dead]
    assert [row['keepalive_reason'] for row in report['hosts'] if row['host'] == dead] == [reason]

    own, own_tokens = backend.login(account_id='acct-%s-new' % dead, access_ttl=SHORT)
    workspace.remember(own_tokens)
    fleet.seed(dead, own)
    fleet.run('reseed')
    assert fleet.auth_doc(dead)['tokens']['refresh_token'] == own['tokens']['refresh_token']
    assert file_identity(fleet.auth(alive)) == untouched
    rotated = backend.count('/oauth/token', 'rotated')
    run_keepalive(fleet, dead)
    assert backend.count('/oauth/token', 'rotated') > rotated
    remember_file(workspace, fleet.auth(dead))
    fleet.run('verify')
    assert fleet.report()['ok']


DAYS_AGO = datetime.timedelta(days=-5)


def test_incident_recipe_on_business_and_enterprise_runners_whose_access_tokens_expired_days_ago(workspace, backend):
    """Issue 19's case: a business and an enterprise runner, a week after their last job (access tokens
    expired days ago), whose refresh tokens died in an incident (one was used elsewhere, one login was
    revoked). Codex on these plans loads the workspace's cloud config bundle first; the README's recipe
    (`verify -e codex_auth_probe=true`, fresh seeds, `reseed`) still finds both refresh_failed with the
    token endpoint's own reason, reseed replaces both, and both then refresh with no new reuse."""
    fleet = keepalive_fleet(workspace, backend, 2)
    plans = {'runner-1': 'business', 'runner-2': 'enterprise'}
    week_ago = fake_credentials.now() - datetime.timedelta(days=7)
    docs = {}
    for host, plan in plans.items():
        docs[host], tokens = backend.login(account_id='acct-%s' % host, plan=plan, access_ttl=DAYS_AGO,
                                           last_refresh=week_ago)
        workspace.remember(tokens)
        fleet.seed(host, docs[host])
    fleet.run('provision', codex_auth_report_fail=False)  # stale and expired: warnings only
    workspace.remember(list(backend.refresh_elsewhere(docs['runner-1']['tokens']['refresh_token']).values()))
    backend.revoke_login(docs['runner-2']['tokens']['refresh_token'])

    probed = fleet.run('verify', expect_failure=True, codex_auth_probe=True)
    report = fleet.report()
    assert report['refresh_failed'] == ['runner-1', 'runner-2'], probed[-3000:]
    reasons = dict((row['host'], row['keepalive_reason']) for row in report['hosts'])
    assert reasons == {'runner-1': 'refresh_token_reused', 'runner-2': 'refresh_token_invalidated'}

    for host, plan in plans.items():
        own, own_tokens = backend.login(account_id='acct-%s-new' % host, plan=plan, access_ttl=DAYS_AGO,
                                        last_refresh=week_ago)
        workspace.remember(own_tokens)
        fleet.seed(host, own)
        docs[host] = own
    fleet.run('reseed')
    for host in fleet.hosts:
        assert fleet.auth_doc(host)['tokens']['refresh_token'] == docs[host]['tokens']['refresh_token']

    rotated, reused = backend.count('/oauth/token', 'rotated'), backend.count('/oauth/token', 'refresh_token_reused')
    with ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(lambda host: run_keepalive(fleet, host), fleet.hosts))
    assert all('result=ok' in output and 'refreshed=true' in output for output in outputs), outputs
    assert backend.count('/oauth/token', 'rotated') == rotated + 2
    assert backend.count('/oauth/token', 'refresh_token_reused') == reused
    for host in fleet.hosts:
        remember_file(workspace, fleet.auth(host))
        assert fleet.auth_doc(host)['tokens']['refresh_token'] == backend.current_refresh_token(
            docs[host]['tokens']['refresh_token'])
    fleet.run('verify')
    assert fleet.report()['ok']
