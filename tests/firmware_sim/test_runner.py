"""run_scenario against a private Mosquitto, with the test answering badge requests itself."""

from __future__ import annotations

import time

import pytest

from crp_common import contract
from crp_common.clock import ScaledClock
from firmware_sim import runner
from firmware_sim.scenario import Action, Op, script

pytestmark = pytest.mark.mqtt
SITE = "DKR"
T0 = 1_750_000_000.0
SPEED = 300.0


def clock_at(t0: float = T0) -> ScaledClock:
    return ScaledClock(real_origin=time.time(), sim_origin=t0, speed=SPEED)


class SessionGateway:
    def __init__(self):
        self.open: dict[str, str] = {}

    def __call__(self, machine, badge):
        if self.open.get(machine) == badge.uid:
            del self.open[machine]
            return {"result": "end", "reason": "tap_out"}
        self.open[machine] = badge.uid
        return {"result": "grant", "artisan": "1", "text": "Bonjour"}


def play(mosquitto, workshop, actions, tmp_path, **kw):
    user, pw = mosquitto.creds("sim")
    return runner.run_scenario(actions, workshop, mosquitto.host, mosquitto.port, user, pw,
                               kw.pop("clock", None) or clock_at(), tmp_path / "flash", **kw)


def ups(msgs: list[dict]) -> list[int]:
    return [m["up"] for m in msgs]


def test_granted_session_plays_its_work_with_planned_uptimes(mosquitto, tmp_path, uniq, recorder,
                                                              fake_gateway, small_workshop):
    ws = small_workshop(uniq)
    m = ws.machines[0].id
    fake_gateway(SessionGateway())
    actions = script([
        (T0 + 60, m, Op.TAP, {"uid": "04A1B2C3", "expect": "grant"}),
        (T0 + 90, m, Op.WORK, {"amps": 6.5, "cycles": [[120, 60], [200, 0]]}),
        (T0 + 600, m, Op.TAP_OUT, {"uid": "04A1B2C3", "expect": "end", "reason": "tap_out"}),
    ])
    progress: list[tuple[int, int]] = []
    report = play(mosquitto, ws, actions, tmp_path, on_progress=lambda d, n, t: progress.append((d, n)))
    assert (report.taps, report.grants, report.ends, report.timeouts, report.skipped) == (2, 1, 1, 0, 0)
    assert not report.mismatches and [d.result for d in report.decisions] == ["grant", "end"]
    assert sorted(progress) == [(1, 3), (2, 3), (3, 3)]
    recorder.wait_for(lambda t, d, r: t.endswith(f"/{m}/status") and d["state"] == "offline")

    badges = recorder.of(m, "badge")
    assert badges[1]["up"] - badges[0]["up"] == 540_000  # exactly the planned 9 minutes
    motors = recorder.of(m, "motor")
    assert [x["running"] for x in motors] == [True, False, True, False]
    on1, off1, on2, off2 = ups(motors[:4])
    assert (off1 - on1, on2 - off1, off2 - on2) == (120_000, 60_000, 200_000)
    assert on1 - badges[0]["up"] == 30_000
    relays = recorder.of(m, "relay")
    assert [r["on"] for r in relays] == [True, False] and relays[1]["up"] == badges[1]["up"]
    # Current every 10 s while the motor runs, never at or after a stop.
    cur = ups(recorder.of(m, "current"))
    assert cur == [on1 + k * 10_000 for k in range(1, 12)] + [on2 + k * 10_000 for k in range(1, 20)]
    hb = ups(recorder.of(m, "hb"))
    # The first heartbeat leaves once connected (its uptime is then the connection time), the
    # next ones every 60 s exactly.
    assert len(hb) >= 10 and hb[1] - hb[0] <= 60_000 and all(b - a == 60_000 for a, b in zip(hb[1:], hb[2:]))
    # Every message of the run follows the contract and seq counts up from 1 without gaps.
    seqs = []
    for t, p, _ in recorder.raw():
        if f"/{m}/" in t and not t.endswith("/decision"):
            _, _, _, msg = contract.decode_uplink(t, p)
            seqs.append(msg.seq)
    assert seqs[:-1] == list(range(1, len(seqs))) and seqs[-1] == 0  # the Will closes the run


def test_work_after_a_denied_tap_does_not_happen(mosquitto, tmp_path, uniq, recorder, fake_gateway,
                                                 small_workshop):
    ws = small_workshop(uniq)
    m = ws.machines[0].id
    fake_gateway(lambda machine, badge: {"result": "deny", "reason": "not_qualified", "text": "Non habilité"})
    actions = script([
        (T0 + 30, m, Op.TAP, {"uid": "04A1B2C3", "expect": "grant"}),
        (T0 + 60, m, Op.WORK, {"amps": 6.5, "cycles": [[120, 0]]}),
    ])
    report = play(mosquitto, ws, actions, tmp_path)
    assert report.denies == {"not_qualified": 1} and report.grants == 0 and report.skipped == 1
    assert [d.case for d in report.mismatches] == [None] and report.mismatches[0].result == "deny"
    recorder.wait_for(lambda t, d, r: t.endswith(f"/{m}/status") and d["state"] == "offline")
    assert recorder.of(m, "motor") == [] and recorder.of(m, "relay") == []


def test_power_cut_drops_nodes_and_restore_boots_them_again(mosquitto, tmp_path, uniq, recorder,
                                                            fake_gateway, small_workshop):
    ws = small_workshop(uniq, machines=(("bandsaw", "bandsaw"), ("drill", "drill_press")))
    saw, drill = (x.id for x in ws.machines)
    fake_gateway(SessionGateway())
    actions = script([
        (T0 + 30, None, Op.POWER_CUT, {"machines": [saw]}),
        (T0 + 60, saw, Op.TAP, {"uid": "04A1B2C3"}),  # dead reader: nothing happens
        (T0 + 120, None, Op.POWER_RESTORE, {"machines": [saw]}),
        (T0 + 150, saw, Op.TAP, {"uid": "04A1B2C3", "expect": "grant"}),
    ])
    report = play(mosquitto, ws, actions, tmp_path)
    assert (report.power_cuts, report.nodes_cut, report.skipped, report.taps) == (1, 1, 1, 1)
    recorder.wait_for(lambda t, d, r: t.endswith(f"/{saw}/status") and d["state"] == "offline" and d["boot"] == 2)
    statuses = [(s["boot"], s["seq"], s["state"]) for s in recorder.of(saw, "status")]
    assert statuses == [(1, 1, "online"), (1, 0, "offline"), (2, 1, "online"), (2, 0, "offline")]
    badge = recorder.of(saw, "badge")
    assert len(badge) == 1 and badge[0]["boot"] == 2 and badge[0]["up"] == 30_000
    # The other node kept its power until the end of the run: one boot, no Will before the end.
    recorder.wait_for(lambda t, d, r: t.endswith(f"/{drill}/status") and d["state"] == "offline")
    drill_msgs = recorder.of(drill)
    assert {x["boot"] for x in drill_msgs} == {1}
    assert [x["seq"] for x in drill_msgs if x.get("state") == "offline"] == [0] and drill_msgs[-1]["seq"] == 0


def test_a_tap_without_an_answer_times_out(mosquitto, tmp_path, uniq, fake_gateway, small_workshop):
    ws = small_workshop(uniq)
    m = ws.machines[0].id
    gw = fake_gateway(lambda machine, badge: None)
    actions = [Action(T0 + 20, m, Op.TAP, {"uid": "04A1B2C3"})]
    report = play(mosquitto, ws, actions, tmp_path, decision_timeout_s=0.3)
    assert report.timeouts == 1 and report.decisions[0].result is None
    assert [b.uid for _, b in gw.requests] == ["04A1B2C3"]


def test_overheat_keeps_the_temperature_above_70_for_more_than_five_minutes(mosquitto, tmp_path, uniq, recorder,
                                                                            small_workshop):
    ws = small_workshop(uniq)
    m = ws.machines[0].id
    actions = [Action(T0 + 60, m, Op.OVERHEAT, {"peak_c": 78.5, "duration_s": 600})]
    play(mosquitto, ws, actions, tmp_path, until=T0 + 900)
    recorder.wait_for(lambda t, d, r: t.endswith(f"/{m}/status") and d["state"] == "offline")
    temps = [(x["up"], x["c"]) for x in recorder.of(m, "temp")]
    hot = [up for up, c in temps if c > 70]
    assert hot and hot[-1] - hot[0] > 300_000
    assert all(c < 45 for up, c in temps if up < hot[0] - 120_000 or up > hot[-1] + 120_000)
    assert max(c for _, c in temps) <= 78.5 + runner.OVERHEAT_OVERSHOOT_C + 0.5


def test_silence_stops_all_traffic_for_a_while(mosquitto, tmp_path, uniq, recorder, small_workshop):
    ws = small_workshop(uniq)
    m = ws.machines[0].id
    actions = [Action(T0 + 100, m, Op.SILENCE, {"duration_s": 300})]
    play(mosquitto, ws, actions, tmp_path, until=T0 + 600)
    recorder.wait_for(lambda t, d, r: t.endswith(f"/{m}/status") and d["state"] == "offline")
    hb = ups(recorder.of(m, "hb"))
    gaps = [b - a for a, b in zip(hb[1:], hb[2:])]  # the first heartbeat leaves once connected
    assert max(gaps) >= 300_000 and sorted(gaps)[:-1] == [60_000] * (len(gaps) - 1)
