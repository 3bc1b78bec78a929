"""``crp users``, ``crp devices`` and ``crp broker`` (Typer apps in server/security/cli.py)."""

from __future__ import annotations

import json

from sqlalchemy import select
from typer.testing import CliRunner

from server.security.broker_config import check_mosquitto_hash
from server.security.cli import broker_app, devices_app, users_app
from server.security.models import AuditEntry, Device, User

runner = CliRunner()


def test_users_add_reads_the_password_from_stdin(workshop, migrated_url, db_session):
    r = runner.invoke(users_app, ["add", "--username", "awa", "--role", "artisan", "--artisan-id",
                                  str(workshop.artisans["Awa Diop"]), "--password-stdin", "--database-url",
                                  migrated_url, "--lang", "en"], input="a-long-enough-password\n")
    assert r.exit_code == 0, r.output
    assert "User awa created" in r.output
    u = db_session.scalar(select(User).where(User.username == "awa"))
    assert u.role == "artisan" and u.artisan_id == workshop.artisans["Awa Diop"] and u.site == "DKR"
    assert "a-long-enough-password" not in u.password_hash
    e = db_session.scalar(select(AuditEntry).where(AuditEntry.action == "user.created"))
    assert e.actor.startswith("cli:") and e.entity_id == "awa"


def test_users_add_refuses_bad_input(workshop, migrated_url, db_session):
    base = ["add", "--database-url", migrated_url, "--lang", "en"]
    r = runner.invoke(users_app, [*base, "--username", "bob", "--role", "manager"])
    assert r.exit_code == 2 and "--password-stdin" in r.output
    r = runner.invoke(users_app, [*base, "--username", "bob", "--role", "artisan", "--password-stdin"],
                      input="a-long-enough-password\n")
    assert r.exit_code == 2 and "artisan_id" in r.output
    r = runner.invoke(users_app, [*base, "--username", "bob", "--role", "manager", "--password-stdin"], input="x\n")
    assert r.exit_code == 2 and "Password refused" in r.output
    assert db_session.scalars(select(User)).all() == []


def test_devices_add_then_broker_config(workshop, migrated_url, db_session, tmp_path):
    base = ["--database-url", migrated_url, "--lang", "en"]
    r = runner.invoke(devices_app, ["add", "--kind", "node", "--id", "node-bs1", "--site", "DKR",
                                    "--machine", "bandsaw-1", "--json", *base])
    assert r.exit_code == 0, r.output
    node = json.loads(r.output)
    r = runner.invoke(devices_app, ["add", "--kind", "gateway", "--id", "gw-dkr", "--site", "DKR", "--json", *base])
    gw = json.loads(r.output)
    stored = db_session.get(Device, "node-bs1")
    assert node["password"] not in stored.password_hash and check_mosquitto_hash(stored.password_hash, node["password"])
    # bad input: refused, nothing added
    for args in (["--kind", "node", "--id", "node-x", "--site", "DKR"],  # no machine
                 ["--kind", "node", "--id", "node-x", "--site", "DKR", "--machine", "nope"],
                 ["--kind", "gateway", "--id", "gw-x", "--site", "ZZZ"],
                 ["--kind", "node", "--id", "Node_X", "--site", "DKR", "--machine", "lathe-1"],
                 ["--kind", "node", "--id", "node-bs1", "--site", "DKR", "--machine", "lathe-1"]):
        r = runner.invoke(devices_app, ["add", *args, *base])
        assert r.exit_code == 2, (args, r.output)
    db_session.expire_all()
    assert sorted(d.username for d in db_session.scalars(select(Device))) == ["gw-dkr", "node-bs1"]

    out = tmp_path / "broker"
    r = runner.invoke(broker_app, ["config", "--out", str(out), *base])
    assert r.exit_code == 0, r.output
    passwd = (out / "passwd").read_text()
    assert node["password"] not in passwd and gw["password"] not in passwd
    assert passwd.splitlines()[1].startswith("node-bs1:$7$")
    assert "user node-bs1\ntopic write crp/v1/DKR/bandsaw-1/status" in (out / "acl").read_text()
    assert "allow_anonymous false" in (out / "mosquitto.conf").read_text()
    assert (out / "passwd").stat().st_mode & 0o077 == 0

    r = runner.invoke(devices_app, ["revoke", "--id", "node-bs1", *base])
    assert r.exit_code == 0
    runner.invoke(broker_app, ["config", "--out", str(out), *base])
    assert "node-bs1" not in (out / "passwd").read_text()
    r = runner.invoke(broker_app, ["config", "--out", str(out), "--tls-ca", "/x/ca.crt", *base])
    assert r.exit_code == 2


def test_plug_devices_get_their_firmware_topics_and_the_gateway_commands_them(workshop, migrated_url, db_session,
                                                                              tmp_path):
    base = ["--database-url", migrated_url, "--lang", "en"]
    ok = [["--kind", "gateway", "--id", "gw-dkr", "--site", "DKR"],
          ["--kind", "plug", "--id", "plug-bs1", "--site", "DKR", "--machine", "bandsaw-1", "--plug-type", "tasmota",
           "--plug-topic", "tasmota_5A9AE8"],
          ["--kind", "plug", "--id", "plug-lt1", "--site", "DKR", "--machine", "lathe-1", "--plug-type", "shelly2",
           "--plug-topic", "shellyplusplugs-a8032ab12345"]]
    for args in ok:
        r = runner.invoke(devices_app, ["add", *args, *base])
        assert r.exit_code == 0, (args, r.output)
    # bad input: refused with its reason, nothing added
    for args, says in (
            (["--kind", "plug", "--id", "plug-x", "--site", "DKR", "--machine", "lathe-1"], "Unknown plug type"),
            (["--kind", "plug", "--id", "plug-x", "--site", "DKR", "--machine", "lathe-1", "--plug-type", "zigbee",
              "--plug-topic", "z"], "Unknown plug type"),
            (["--kind", "plug", "--id", "plug-x", "--site", "DKR", "--machine", "lathe-1", "--plug-type", "tasmota",
              "--plug-topic", "tele/#"], "Invalid plug topic"),
            (["--kind", "plug", "--id", "plug-x", "--site", "DKR", "--machine", "lathe-1", "--plug-type", "tasmota",
              "--plug-topic", "a/b"], "Invalid plug topic"),
            (["--kind", "plug", "--id", "plug-x", "--site", "DKR", "--plug-type", "tasmota", "--plug-topic", "t2"],
             "needs its machine"),
            (["--kind", "plug", "--id", "plug-x", "--site", "DKR", "--machine", "lathe-1", "--plug-type", "tasmota",
              "--plug-topic", "tasmota_5A9AE8"], "already belongs to plug plug-bs1"),
            (["--kind", "node", "--id", "node-x", "--site", "DKR", "--machine", "lathe-1", "--plug-type", "tasmota"],
             "for plugs only")):
        r = runner.invoke(devices_app, ["add", *args, *base])
        assert r.exit_code == 2 and says in r.output, (args, r.output)
    db_session.expire_all()
    assert sorted(d.username for d in db_session.scalars(select(Device))) == ["gw-dkr", "plug-bs1", "plug-lt1"]

    out = tmp_path / "broker"
    r = runner.invoke(broker_app, ["config", "--out", str(out), *base])
    assert r.exit_code == 0, r.output
    blocks = {b.split("\n", 1)[0]: b for b in (out / "acl").read_text().split("user ")[1:]}
    assert blocks["plug-bs1"].split("\n")[1:4] == ["topic write tele/tasmota_5A9AE8/#",
                                                    "topic write stat/tasmota_5A9AE8/#",
                                                    "topic read cmnd/tasmota_5A9AE8/#"]
    assert "topic write crp-gw-dkr/rpc" in blocks["plug-lt1"] and "crp/v1" not in blocks["plug-lt1"]
    gw = blocks["gw-dkr"]
    for line in ("topic readwrite crp/v1/DKR/#", "topic readwrite cmnd/#", "topic readwrite shellies/#",
                 "topic readwrite shellyplusplugs-a8032ab12345/#", "topic read crp-gw-dkr/rpc"):
        assert line in gw, line
