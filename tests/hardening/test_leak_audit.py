"""Leak audit: every playbook and every role, in normal, check and failing runs, all at -vvvv
with --diff, on local fleets whose runners are owned by the runner user.

Secrets: each host's seed (id, access and refresh tokens), the fingerprint salt, the vault
password, three personal access tokens (old, new, rejected) and an API key. The workspace fixture
fails the test if any of them (or the payload or signature of any JWT among them) appears in any
playbook output, or sits in a file under the workspace that is not exactly 0600; files the runs
create outside the workspace (/tmp, ~/.ansible) are searched as well. While the access-token
login and the rotation run, every process's argv and environment is sampled from /proc, and
`ps -eo args` is polled: the token never shows there either.
"""

import json
import os
import secrets
import time
from pathlib import Path


from hardening_support import (COLLECTIONS, REPO, ProcessSampler, codex_binary, local_fleet, report_figures,
                               runner_ids, secret_needles)
from support import fake_credentials
from support.private_files import write_private


def outside_files_with_secrets(needles, since, skip):
    """Files created or changed since `since` outside the workspace that hold a secret."""
    found = []
    roots = [Path('/tmp'), Path.home() / '.ansible']
    for root in roots:
        if not root.exists():
            continue
        for base, dirs, files in os.walk(str(root)):
            if base.startswith(str(skip)) or base.count(os.sep) - str(root).count(os.sep) > 4:
                dirs[:] = []
                continue
            for name in files:
                path = os.path.join(base, name)
                try:
                    st = os.lstat(path)
                    if st.st_mtime < since or st.st_size > 4 * 1024 * 1024 or not os.path.isfile(path):
                        continue
                    with open(path, 'rb') as handle:
                        data = handle.read()
                except OSError:
                    continue
                if any(needle.encode() in data for needle in needles):
                    found.append(path)
    return found


def keepalive_and_cli_vars(space):
    for number in (1, 2):
        (space.root / 'systemd' / ('runner-%d' % number)).mkdir(parents=True)
    return {
        'codexops_keepalive': True, 'codex_keepalive_scheduler': 'systemd',
        'codex_keepalive_codex_path': codex_binary(),
        'codex_keepalive_script_dir': str(space.root / 'libexec' / '{{ inventory_hostname }}'),
        'codex_keepalive_systemd_dir': str(space.root / 'systemd' / '{{ inventory_hostname }}'),
        # The pinned CLI is already in this prefix: the codex_cli role checks it and links it.
        'codexops_install_cli': True, 'codex_cli_prefix': str(Path(codex_binary()).parents[2]),
        'codex_cli_link': str(space.root / 'bin' / '{{ inventory_hostname }}' / 'codex'),
    }


def test_seed_fleet_playbooks_and_roles_leak_nothing(workspace, backend):
    started = time.time()
    salt = 'salt-' + secrets.token_hex(12)
    password = 'vault-' + secrets.token_hex(12)
    workspace.remember([salt, password])
    password_file = write_private(workspace.root / 'vault-password', password)
    vault = ['--vault-password-file', password_file]
    (workspace.root / 'bin' / 'runner-1').mkdir(parents=True)
    (workspace.root / 'bin' / 'runner-2').mkdir(parents=True)
    fleet = local_fleet.LocalFleet(workspace, 2, codex_auth_fingerprint_salt=salt, **keepalive_and_cli_vars(workspace))
    os.chmod(str(fleet.inventory), 0o600)  # it holds the salt (a vaulted variable in real life)
    for host in fleet.hosts:
        fleet.seed(host)
    runs = []

    def run(name, **kwargs):
        runs.append('%s%s%s' % (name, ' --check' if kwargs.get('check') else '',
                                ' (fails)' if kwargs.get('expect_failure') else ''))
        return fleet.run(name, **kwargs)

    # provision: check, run (codex_cli, codex_auth, codex_keepalive roles), then verify.
    run('provision', check=True)
    run('provision')
    run('verify', check=True)
    run('verify')
    # The probe runs each runner's installed keepalive (the real Codex, offline): its output is discarded.
    run('verify', codex_auth_probe=True, check=True)
    run('verify', codex_auth_probe=True)
    for host in fleet.hosts:
        assert (fleet.home(host) / 'codexops-keepalive.json').exists()

    # A job refreshed runner-1: a newer file for the same login. Write-back stores it (vaulted).
    doc = fleet.auth_doc('runner-1')
    refreshed, new_secrets = fake_credentials.chatgpt_seed(account_id='acct-runner-1')
    workspace.remember(new_secrets)
    doc['tokens'] = refreshed['tokens']
    doc['last_refresh'] = fake_credentials.rfc3339(fake_credentials.now())
    fleet.auth('runner-1').write_text(json.dumps(doc))  # same inode and mode
    run('writeback', check=True, extra_args=vault)
    run('writeback', extra_args=vault)
    assert (fleet.seed_dir / 'runner-1.json').read_text().startswith('$ANSIBLE_VAULT;')

    # runner-2 breaks: verify and write-back fail on it; reseed (check, then for real) repairs it.
    fleet.auth('runner-2').write_text('{"tokens": {"refresh_token": "%s"' % doc['tokens']['refresh_token'])
    run('verify', expect_failure=True)
    run('writeback', expect_failure=True, extra_args=vault)
    run('reseed', check=True, extra_args=vault)
    run('reseed', extra_args=vault)

    # A bad seed: provisioning (replace: always) and reseeding both fail, naming no content.
    broken = fleet.auth_doc('runner-2')
    fleet.seed('runner-2', doc=None)
    bad = fleet.seed_dir / 'runner-2.json'
    bad.unlink()
    write_private(bad, '{"auth_mode": "api_key", "tokens": {"refresh_token": "%s"}}'
                  % broken['tokens']['refresh_token'])
    failed = run('provision', expect_failure=True, extra_args=vault, codex_auth_replace='always')
    assert 'auth_mode_invalid' in failed
    fleet.auth('runner-2').write_text('not json')
    run('reseed', expect_failure=True, extra_args=vault)

    assert outside_files_with_secrets(secret_needles(workspace.secrets), started, workspace.root) == []
    report_figures('leak_audit_seed_fleet',
                   {'playbook_runs': runs, 'runs': len(runs), 'secrets_tracked': len(workspace.secrets)})


def test_access_token_and_api_key_playbooks_leak_nothing(workspace, backend):
    started = time.time()
    old, new, rejected = (fake_credentials.personal_access_token() for _unused in range(3))
    api_key_doc, api_secrets = fake_credentials.apikey_seed()
    workspace.remember([old, new, rejected] + api_secrets)
    for token in (old, new):
        backend.allow_access_token(token)
    fleet = local_fleet.LocalFleet(workspace, 2, codex_auth_method='access_token', codex_auth_codex_path=codex_binary())
    inventory = json.loads(fleet.inventory.read_text())
    inventory['codex_runners']['hosts']['runner-2'].update(codex_auth_method='api_key',
                                                           codex_auth_api_key=api_key_doc['OPENAI_API_KEY'])
    fleet.inventory.write_text(json.dumps(inventory))
    os.chmod(str(fleet.inventory), 0o600)  # it holds the API key now
    needles = secret_needles(workspace.secrets)
    samplers = []
    runs = []

    def run(name, **kwargs):
        runs.append('%s%s%s' % (name, ' --check' if kwargs.get('check') else '',
                                ' (fails)' if kwargs.get('expect_failure') else ''))
        with ProcessSampler(needles) as sampler:
            output = fleet.run(name, **kwargs)
        samplers.append(sampler)
        assert sampler.hits == [], sampler.hits
        return output

    logins = backend.count('/whoami')
    run('provision', codex_auth_access_token=old)
    # The API key host's mode is reported, not masked as a no_log value (auth mode names are not secrets).
    modes = dict((row['host'], row['auth_mode']) for row in fleet.report()['hosts'])
    assert modes == {'runner-1': 'personalAccessToken', 'runner-2': 'apikey'}, modes
    # (On a fresh fleet, check mode does not pass yet: see test_access_token_provision_check_on_a_fresh_fleet.)
    run('provision', check=True, codex_auth_access_token=old)
    run('verify')
    run('rotate_access_token', check=True, codex_new_access_token=new, codexops_hosts='runner-1')
    output = run('rotate_access_token', codex_new_access_token=new, codexops_hosts='runner-1')
    assert 'It is now safe to revoke the old token' in output
    failed = run('rotate_access_token', expect_failure=True, codex_new_access_token=rejected,
                 codexops_hosts='runner-1')
    assert 'Do NOT revoke the old access token yet: runner-1' in failed
    assert new in fleet.auth('runner-1').read_text()
    assert api_key_doc['OPENAI_API_KEY'] in fleet.auth('runner-2').read_text()
    uid, _gid = runner_ids()
    assert os.stat(str(fleet.auth('runner-1'))).st_uid == uid

    samples = sum(s.samples for s in samplers)
    during_login = sum(s.watched_samples for s in samplers)
    # Codex logged in three times (old, new, rejected) plus a smoke test: the sampler saw it run.
    assert backend.count('/whoami') - logins >= 4
    assert during_login > 0, 'the process sampler never caught `codex login` running'
    assert outside_files_with_secrets(needles, started, workspace.root) == []
    report_figures('leak_audit_access_tokens', {
        'playbook_runs': runs, 'runs': len(runs), 'proc_samples': samples,
        'proc_samples_while_codex_login_ran': during_login, 'ps_samples': sum(s.ps_samples for s in samplers),
        'process_entries_read': sum(s.processes_seen for s in samplers), 'whoami_calls': backend.count('/whoami') - logins,
        'secret_hits': 0})


def test_access_token_provision_check_on_a_fresh_fleet(workspace, backend):
    token = fake_credentials.personal_access_token()
    workspace.remember([token])
    backend.allow_access_token(token)
    fleet = local_fleet.LocalFleet(workspace, 1, codex_auth_method='access_token', codex_auth_codex_path=codex_binary())
    fleet.run('provision', check=True, codex_auth_access_token=token)
    assert not fleet.home('runner-1').exists()


def test_collection_path_is_the_checkout():
    """The audit ran the collection under test, not an installed copy."""
    link = COLLECTIONS / 'ansible_collections' / 'codexops' / 'runner'
    assert link.resolve() == REPO.resolve()
