"""ServerSettings: environment, DATABASE_URL, refusal to start with demo secrets."""

from __future__ import annotations

import pytest

from server.__main__ import run
from server.settings import DEMO_ADMIN_TOKEN, DEMO_SECRET_KEY, InsecureSettingsError, ServerSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("CRP_DATABASE_URL", "DATABASE_URL", "CRP_DEMO_MODE", "CRP_SECRET_KEY", "CRP_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults():
    s = ServerSettings()
    assert s.database_url == "sqlite:///./crp.db"
    assert (s.demo_mode, s.default_tz, s.secret_key, s.admin_token) == (False, "Africa/Dakar", DEMO_SECRET_KEY, DEMO_ADMIN_TOKEN)


def test_database_url_from_plain_or_prefixed_env(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://db/crp")
    assert ServerSettings().database_url == "postgresql+psycopg://db/crp"
    monkeypatch.setenv("CRP_DATABASE_URL", "sqlite:///other.db")
    assert ServerSettings().database_url == "sqlite:///other.db"


def test_env_file_is_read_and_extra_keys_ignored(tmp_path):
    (tmp_path / ".env").write_text("CRP_DEMO_MODE=true\nCRP_DEFAULT_SITE=DKR\nGRAFANA_PASSWORD=x\n")
    s = ServerSettings()
    assert s.demo_mode is True and s.default_site == "DKR"


def test_refuses_default_secrets_outside_demo(monkeypatch):
    with pytest.raises(InsecureSettingsError) as e:
        ServerSettings().check_secrets()
    assert "CRP_SECRET_KEY" in str(e.value) and "CRP_ADMIN_TOKEN" in str(e.value)
    monkeypatch.setenv("CRP_SECRET_KEY", "s3cret-from-the-vault")
    with pytest.raises(InsecureSettingsError) as e:
        ServerSettings().check_secrets("en")
    assert "CRP_ADMIN_TOKEN" in str(e.value) and "CRP_SECRET_KEY" not in str(e.value)
    monkeypatch.setenv("CRP_ADMIN_TOKEN", "another-real-secret")
    ServerSettings().check_secrets()  # both set: fine


def test_demo_mode_accepts_default_secrets(monkeypatch):
    monkeypatch.setenv("CRP_DEMO_MODE", "1")
    ServerSettings().check_secrets()


def test_run_refuses_to_start_before_touching_the_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'never.db'}"
    with pytest.raises(InsecureSettingsError):
        run("127.0.0.1", 0, ServerSettings(database_url=url))
    assert not (tmp_path / "never.db").exists()


def test_main_exits_with_a_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    from server.__main__ import main

    monkeypatch.setenv("CRP_DATABASE_URL", f"sqlite:///{tmp_path / 'never.db'}")
    with pytest.raises(SystemExit) as e:
        main(["--port", "0"])
    assert e.value.code == 2
    assert "CRP_SECRET_KEY" in capsys.readouterr().err
