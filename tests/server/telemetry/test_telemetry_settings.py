"""CRP_INFLUX_* settings and make_writer()."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.telemetry.backends import V1Backend, V2Backend
from server.telemetry.settings import InfluxSettings
from server.telemetry.writer import make_writer


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for k in list(os.environ):
        if k.startswith("CRP_INFLUX_"):
            monkeypatch.delenv(k)


def test_default_is_off_and_gives_no_writer():
    s = InfluxSettings(_env_file=None)
    assert s.mode == "off"
    assert make_writer(s) is None


def test_v1_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CRP_INFLUX_MODE", "v1")
    monkeypatch.setenv("CRP_INFLUX_URL", "http://influx.local:8086")
    monkeypatch.setenv("CRP_INFLUX_DB", "atelier")
    monkeypatch.setenv("CRP_INFLUX_SPOOL", str(tmp_path / "sp" / "spool.sqlite"))
    monkeypatch.setenv("CRP_INFLUX_SPOOL_MAX_POINTS", "1234")
    s = InfluxSettings(_env_file=None)
    w = make_writer(s)
    try:
        assert isinstance(w.backend, V1Backend)
        assert w.backend.params == {"db": "atelier", "precision": "ms"}
        assert w.spool.path == tmp_path / "sp" / "spool.sqlite" and w.spool.max_points == 1234
    finally:
        w.close(flush_timeout=0)


def test_v2_from_env_file(tmp_path):
    env = tmp_path / ".env"
    env.write_text("CRP_INFLUX_MODE=v2\nCRP_INFLUX_URL=https://influx.example\nCRP_INFLUX_ORG=crp-sn\n"
                   f"CRP_INFLUX_BUCKET=telemetry\nCRP_INFLUX_TOKEN=abc\nCRP_INFLUX_SPOOL={tmp_path / 's.db'}\n")
    s = InfluxSettings(_env_file=env)
    assert s.token.get_secret_value() == "abc" and "abc" not in repr(s)
    w = make_writer(s)
    try:
        assert isinstance(w.backend, V2Backend)
        assert (w.backend.org, w.backend.bucket) == ("crp-sn", "telemetry")
    finally:
        w.close(flush_timeout=0)


@pytest.mark.parametrize("env,needle", [
    ({"CRP_INFLUX_MODE": "v2"}, "CRP_INFLUX_TOKEN"),
    ({"CRP_INFLUX_MODE": "v1", "CRP_INFLUX_URL": "influx:8086"}, "CRP_INFLUX_URL"),
    ({"CRP_INFLUX_MODE": "v1", "CRP_INFLUX_DB": ""}, "CRP_INFLUX_DB"),
    ({"CRP_INFLUX_MODE": "v3"}, "mode"),
    ({"CRP_INFLUX_SPOOL_MAX_POINTS": "0"}, "spool_max_points"),
])
def test_bad_settings_say_what_is_wrong(monkeypatch, env, needle):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValidationError, match=needle):
        InfluxSettings(_env_file=None)
