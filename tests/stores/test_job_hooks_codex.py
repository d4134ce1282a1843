# Copyright (c) codexops.runner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole job-time loop with the real Codex CLI (the pinned one) and the loopback Codex backend:
restore onto a fresh runner, `codex exec` refreshes (rotating the refresh token), write back, restore
onto another fresh runner, refresh again, write back, restore onto a third - and the backend never
sees a refresh token twice (zero refresh_token_reused). Both stores; hooks as GitHub runs them."""

import json
import os
import pwd
import subprocess
import uuid

from job_hooks_support import layout, side  # noqa: F401 pylint: disable=unused-import
from store_harness import SECRETS, new_name
from support import fake_credentials
from support.backend_fixture import backend  # noqa: F401 pylint: disable=unused-import
from support.codex import codex_binary
from support.runner_access import runner_owner

JOBS = 3
# A CI step's time limit: offline, Codex 0.171.0 keeps retrying its model for minutes after it has
# refreshed and written auth.json (within the first seconds), so the step ends at the limit (exit 124).
STEP_SECONDS = 25
CODEX_TIMEOUT = 60
CONFIG_TOML = b'cli_auth_credentials_store = "file"\n'


def codex_job(runner, backend):  # noqa: F811
    """A CI job's step: `codex exec` as the runner user with the runner's CODEX_HOME, under the step's
    time limit; the token URL and the ChatGPT base URL point at the loopback backend (the model call
    then fails: no network)."""
    entry = pwd.getpwnam(runner_owner())
    home = os.path.dirname(runner.home)
    env = {'PATH': '/usr/local/bin:/usr/bin:/bin', 'HOME': home, 'CODEX_HOME': runner.home,
           'CODEX_REFRESH_TOKEN_URL_OVERRIDE': backend.base_url + '/oauth/token',
           'CODEX_AUTHAPI_BASE_URL': backend.base_url}
    kwargs = {'user': entry.pw_uid, 'group': entry.pw_gid, 'extra_groups': []} if os.geteuid() == 0 else {}
    try:
        return subprocess.run(['timeout', '-k', '5', str(STEP_SECONDS), codex_binary(), 'exec',
                               '--skip-git-repo-check', '-c',
                               'chatgpt_base_url="%s/backend-api/"' % backend.base_url, 'say hi'],
                              cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=CODEX_TIMEOUT, check=False, **kwargs)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError('codex exec ran longer than %ds; its output ends:\n%s\nbackend:\n%s' % (
            CODEX_TIMEOUT, (exc.output or b'').decode('utf-8', 'replace')[-3000:], '\n'.join(backend.log_lines()[-30:])))


def expire_access_token(runner):
    """Time passing on the next runner: the restored file's access token is now expired (the refresh
    token is untouched), so Codex must refresh."""
    doc = json.loads(runner.auth())
    doc['tokens']['access_token'] = fake_credentials.make_jwt({'exp': 1, 'canary': 'FAKE-EXPIRED'})
    runner.put_auth(json.dumps(doc).encode('utf-8'))


def test_restore_codex_refreshes_writeback_on_fresh_runners_without_reuse(layout, side, backend):  # noqa: F811
    import datetime
    name = new_name('codex')
    doc, tokens = backend.login(access_ttl=datetime.timedelta(minutes=1))
    SECRETS.extend(tokens)
    side.harness.seed(name, json.dumps(doc).encode('utf-8'))
    section = side.section(name)
    reused_before = backend.count('/oauth/token', 'refresh_token_reused')
    rotated_before = backend.count('/oauth/token', 'rotated')
    refresh_tokens = [doc['tokens']['refresh_token']]
    for job in range(JOBS):
        runner = layout.runner('fresh-%d-%s' % (job, uuid.uuid4().hex[:6]), side.kind, name, section)
        assert runner.auth() is None, 'a fresh runner'
        runner.put_config_toml(CONFIG_TOML)  # the runner image's config (codex_auth provisions it)
        started = runner.github_hook('started')
        assert started.returncode == 0 and started.result['action'] == 'restored', started.stdout
        restored = json.loads(runner.auth())
        assert restored['tokens']['refresh_token'] == refresh_tokens[-1], 'the newest copy was restored'
        if job:
            expire_access_token(runner)
        ran = codex_job(runner, backend)
        after = json.loads(runner.auth())
        SECRETS.extend(after['tokens'][key] for key in ('id_token', 'access_token', 'refresh_token'))
        assert after['tokens']['refresh_token'] != refresh_tokens[-1], \
            'job %d: Codex did not refresh:\n%s' % (job, ran.stdout.decode('utf-8', 'replace')[-2000:])
        refresh_tokens.append(after['tokens']['refresh_token'])
        completed = runner.github_hook('completed')
        assert completed.returncode == 0 and completed.result['action'] == 'stored', completed.stdout
        assert json.loads(side.harness.raw(name)[0])['tokens']['refresh_token'] == refresh_tokens[-1]
    assert backend.count('/oauth/token', 'rotated') - rotated_before == JOBS
    assert backend.count('/oauth/token', 'refresh_token_reused') - reused_before == 0
    assert backend.current_refresh_token(refresh_tokens[0]) == refresh_tokens[-1]
    print('\n%s: %d jobs on fresh runners, %d refreshes, 0 refresh_token_reused' % (side.kind, JOBS, JOBS))
