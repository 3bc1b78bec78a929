"""The workshop file: the packaged demo workshop and the loader's checks."""

from __future__ import annotations

import copy
import datetime as dt
import json
from importlib import resources

import pytest

from crp_common.contract import BADGE_UID_RE, ID_RE
from crp_common.rules import AuthIndex, MachineLive, decide
from firmware_sim.workshop import WorkshopError, load_workshop, workshop_from_dict

TODAY = dt.date(2025, 3, 12)


@pytest.fixture(scope="module")
def ws():
    return load_workshop()


@pytest.fixture
def raw() -> dict:
    text = resources.files("firmware_sim").joinpath("workshops", "demo.json").read_text("utf-8")
    return json.loads(text)


def test_demo_workshop_has_the_site_machines_and_artisans(ws):
    assert (ws.site.code, ws.site.name, ws.site.tz, ws.site.currency) == (
        "DKR", "CRP de Dakar — Colobane", "Africa/Dakar", "XOF")
    # Twelve machines with a custom node, three on metering plugs (one per firmware).
    assert len(ws.machines) == 15 and len(ws.artisans) == 30
    assert len(ws.without_plugs().machines) == 12
    types = {t.code for t in ws.machine_types}
    assert {"bandsaw", "arc_welder", "metal_lathe", "sewing_machine", "planer", "drill_press", "grain_mill"} <= types
    assert {m.type for m in ws.machines} == types
    for m in ws.machines:
        assert ID_RE.match(m.id) and ID_RE.match(m.node)
        if m.plug is None:
            assert m.node == f"node-{m.id}"
        else:  # the machine's node is its plug; the reader publishes under a machine id of its own
            assert m.node == f"plug-{m.id}" and m.plug.reader == f"reader-{m.id}"
            assert m.plug.reader_node == f"node-{m.plug.reader}"
            assert m.plug.idle_w < m.plug.threshold_w < m.plug.load_w
    assert sorted(m.plug.type for m in ws.plug_machines) == ["shelly1", "shelly2", "tasmota"]
    # Artisans are qualified on every plug machine's type.
    for m in ws.plug_machines:
        assert sum(a.qualified_for(m.type, TODAY) for a in ws.artisans) >= 3, m.type


def test_plug_mapping_is_what_the_gateway_reads(ws):
    from gateway.plugs.mapping import plugs_from_data

    cfg = plugs_from_data(ws.plugs_mapping())
    assert {p.machine for p in cfg.plugs.values()} == {m.id for m in ws.plug_machines}
    assert cfg.reader_machines() == {m.plug.reader: m.id for m in ws.plug_machines}
    for m in ws.plug_machines:
        spec = cfg.plugs[m.node]
        assert (str(spec.type), spec.topic, spec.threshold_w) == (m.plug.type, m.plug.topic, m.plug.threshold_w)
    assert plugs_from_data(ws.plugs_mapping("%topic%/%prefix%/")).tasmota_full_topic == "%topic%/%prefix%/"
    for t in ws.machine_types:
        assert t.name_fr and t.name_en and t.idle_timeout_s >= 60 and t.rate.member_per_hour > 0


def test_demo_artisans_cover_the_deny_cases(ws):
    assert [a.status for a in ws.artisans].count("suspended") == 1
    badges = [b for a in ws.artisans for b in a.badges]
    assert all(BADGE_UID_RE.match(b.uid) and len(b.uid) in (8, 14) for b in badges)
    assert {len(b.uid) for b in badges} == {8, 14}
    assert len({b.uid for b in badges}) == len(badges)
    assert [b.status for b in badges].count("revoked") == 1
    expired = [(a.id, q) for a in ws.artisans for q in a.qualifications if not q.valid_on(TODAY)]
    assert len(expired) == 1
    assert all(a.active_badges and a.phone.startswith("+221") for a in ws.artisans)
    assert any(a.cooperative is None for a in ws.artisans) and any(not a.member for a in ws.artisans)


def test_one_node_clock_is_years_off(ws):
    skews = [m.clock_skew_s for m in ws.machines if m.clock_skew_s is not None]
    assert any(abs(s) > 2 * 365 * 86400 for s in skews)


def test_snapshot_decides_like_the_registry_would(ws):
    idx = AuthIndex.of(ws.snapshot(version="t"))
    free = MachineLive()
    suspended = next(a for a in ws.artisans if a.status == "suspended")
    revoked = next(b.uid for a in ws.artisans for b in a.badges if b.status == "revoked")
    lathe = next(m.id for m in ws.machines if m.type == "metal_lathe")
    expired_owner = next(a for a in ws.artisans for q in a.qualifications if not q.valid_on(TODAY))
    assert decide(idx, lathe, suspended.active_badges[0].uid, free, TODAY).reason == "artisan_suspended"
    assert decide(idx, lathe, revoked, free, TODAY).reason == "badge_revoked"
    assert decide(idx, lathe, expired_owner.active_badges[0].uid, free, TODAY).reason == "qualification_expired"
    turner = next(a for a in ws.artisans if a.qualified_for("metal_lathe", TODAY) and a.status == "active")
    assert decide(idx, lathe, turner.active_badges[0].uid, free, TODAY).result == "grant"
    assert {m.idle_timeout_s for m in idx.machines.values()} == {t.idle_timeout_s for t in ws.machine_types}


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["site"].pop("tz"), "site: missing field 'tz'"),
    (lambda d: d["site"].update(code="dakar"), "site.code"),
    (lambda d: d["machines"][0].update(type="jigsaw"), "machines[0].type: unknown machine type"),
    (lambda d: d["machines"][1].update(id=d["machines"][0]["id"]), "duplicate id"),
    (lambda d: d["artisans"][0]["badges"][0].update(uid="12345"), "artisans[0].badges[0].uid"),
    (lambda d: d["artisans"][1]["badges"][0].update(uid=d["artisans"][0]["badges"][0]["uid"]), "issued twice"),
    (lambda d: d["artisans"][0].update(member="yes"), "artisans[0].member: expected bool"),
    (lambda d: d["artisans"][0].update(status="gone"), "artisans[0].status"),
    (lambda d: d["artisans"][0]["qualifications"][0].update(expires_on="31/12/2030"), "expected a date"),
    (lambda d: d["artisans"][0].update(cooperative="NOPE"), "unknown cooperative"),
    (lambda d: d["artisans"][0].update(id=True), "artisans[0].id: expected int"),
    (lambda d: d["machines"][12]["plug"].update(type="zigbee"), "machines[12].plug.type"),
    (lambda d: d["machines"][12]["plug"].update(topic="tele/#"), "machines[12].plug.topic"),
    (lambda d: d["machines"][12]["plug"].pop("reader"), "machines[12].plug: missing field 'reader'"),
    (lambda d: d["machines"][12]["plug"].update(reader=d["machines"][12]["id"]), "its own machine id"),
    (lambda d: d["machines"][12]["plug"].update(reader="bandsaw-1"), "reader 'bandsaw-1'"),
    (lambda d: d["machines"][13]["plug"].update(reader=d["machines"][12]["plug"]["reader"]), "serves another plug"),
    (lambda d: d["machines"][13]["plug"].update(reader_node="node-bandsaw-1"), "used twice"),
    (lambda d: d["machines"][12]["plug"].update(threshold_w=5000), "idle_w < threshold_w < load_w"),
    (lambda d: d["machines"][12]["plug"].update(watts=3), "unknown field 'watts'"),
    (lambda d: d["machines"][12].update(plug="tasmota"), "machines[12].plug: expected an object"),
    (lambda d: d["machines"][13]["plug"].update(type="tasmota", topic=d["machines"][12]["plug"]["topic"]),
     "two tasmota plugs"),
    (lambda d: d["machines"][13]["plug"].update(topic="a/b"), "one MQTT level"),
])
def test_loader_names_the_faulty_field(raw, mutate, message):
    d = copy.deepcopy(raw)
    mutate(d)
    with pytest.raises(WorkshopError) as e:
        workshop_from_dict(d)
    assert message in str(e.value)


def test_unreadable_files_are_workshop_errors(tmp_path):
    bad = tmp_path / "w.json"
    bad.write_text("{not json")
    with pytest.raises(WorkshopError, match="not valid JSON"):
        load_workshop(bad)
    with pytest.raises(WorkshopError, match="cannot read"):
        load_workshop(tmp_path / "missing.json")
    bad.write_text("[]")
    with pytest.raises(WorkshopError, match="JSON object"):
        load_workshop(bad)
