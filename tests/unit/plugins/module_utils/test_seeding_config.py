"""codex_auth_seed's config_settings: config.toml and auth.json in one run, predicted exactly."""

import os

import pytest

from ansible_collections.codexops.runner.plugins.module_utils import config_file
from ansible_collections.codexops.runner.plugins.module_utils import seeding
from support import fake_credentials

STORE = {'cli_auth_credentials_store': 'file'}


DOC, _SECRETS = fake_credentials.chatgpt_seed(tag='cfg')


def _run(home, check_mode, settings=None):
    data = fake_credentials.dumps(DOC).encode()
    seed = seeding.load_seed(data, ['chatgpt'], True)
    return seeding.SeedRun(home, data, seed, check_mode=check_mode, config_settings=settings or STORE).run()


def _comparable(result):
    result = dict(result, auth=dict(result['auth'], age_days=None))
    result.pop('diff')
    return result


def test_check_mode_predicts_config_and_seed_exactly(tmp_path):
    home = str(tmp_path / '.codex')
    predicted = _run(home, True)
    assert not os.path.exists(home)
    real = _run(home, False)
    assert _comparable(predicted) == _comparable(real)
    assert real['config_changed_keys'] == {'cli_auth_credentials_store': 'added'}
    assert real['attributes_changed'] == ['codex_home_created']
    assert real['auth']['healthy'] and real['auth']['credentials_store'] == 'file'
    with open(os.path.join(home, 'config.toml')) as handle:
        assert handle.read() == 'cli_auth_credentials_store = "file"\n'


def test_second_run_changes_nothing(tmp_path):
    home = str(tmp_path / '.codex')
    _run(home, False)
    again = _run(home, False)
    assert not again['changed'] and again['config_changed_keys'] == {}


def test_keyring_is_replaced_and_reported(tmp_path):
    home = tmp_path / '.codex'
    home.mkdir(mode=0o700)
    (home / 'config.toml').write_text('cli_auth_credentials_store = "keyring"\n[x]\ny = 1\n')
    predicted = _run(str(home), True)
    assert predicted['auth']['credentials_store'] == 'file' and predicted['auth']['healthy']
    real = _run(str(home), False)
    assert real['config_changed_keys'] == {'cli_auth_credentials_store': 'updated'}
    assert (home / 'config.toml').read_text() == 'cli_auth_credentials_store = "file"\n[x]\ny = 1\n'


def test_bad_setting_is_refused_before_anything_is_written(tmp_path):
    home = str(tmp_path / '.codex')
    with pytest.raises(config_file.ConfigError):
        _run(home, False, {'cli_auth_credentials_store': 'bogus'})
    assert not os.path.exists(home)


@pytest.mark.parametrize('settings, named', [
    ({'model': 5}, 'model'),
    ({'sandbox_mode': 'bogus'}, 'sandbox_mode'),
    ({'approval_policy': 'sometimes'}, 'approval_policy'),
    ({'model': 'gpt-x', 'sandbox_mode': 'bogus'}, 'sandbox_mode'),
])
def test_a_value_codex_refuses_is_refused_and_nothing_is_written(tmp_path, settings, named):
    """One verdict: codex_config asks the type table verify asks (config_schema), so it never writes a
    config.toml that verify would call config_invalid and Codex would refuse to load."""
    home = tmp_path / '.codex'
    home.mkdir(mode=0o700)
    before = 'cli_auth_credentials_store = "file"\n'
    (home / 'config.toml').write_text(before)
    for check_mode in (True, False):
        with pytest.raises(config_file.ConfigError) as caught:
            _run(str(home), check_mode, settings)
        assert named in caught.value.message and 'bogus' not in caught.value.message
    assert (home / 'config.toml').read_text() == before


def test_a_wrong_value_elsewhere_does_not_block_an_edit(tmp_path):
    """Only the keys being set are judged: the edit may be what fixes the file."""
    home = tmp_path / '.codex'
    home.mkdir(mode=0o700)
    (home / 'config.toml').write_text('model = 5\n')
    config_file.plan_settings(None, {'sandbox_mode': 'read-only'})
    run = _run(str(home), False, {'model': 'gpt-5', 'cli_auth_credentials_store': 'file'})
    assert run['config_changed_keys'] == {'model': 'updated', 'cli_auth_credentials_store': 'added'}
