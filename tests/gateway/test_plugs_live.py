"""Plug readings -> the contract's records: identity (plug, epoch, seq), motor running from
power with hysteresis, counter resets as new epochs, and energy per session never negative."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from crp_common.contract import UPLINK
from crp_common.events import GatewayKind
from crp_common.sessions import FoldEvent, derive_sessions, energy_in, energy_segments
from gateway.plugs.live import SEQ_UNIT_MS, PlugLive
from gateway.plugs.mapping import plugs_from_data
from gateway.plugs.readings import PlugReading

CFG = plugs_from_data({"plugs": {"plug-drill": {"machine": "drill-1", "type": "tasmota", "topic": "t1",
                                                "threshold_w": 150, "hysteresis_w": 50}}})
SPEC = CFG.plugs["plug-drill"]
T0 = 1_772_438_400_000  # 2026-03-02T08:00Z


def feed(live: PlugLive, readings: list[tuple[int, PlugReading]]):
    out = []
    for t, r in readings:
        out += live.observe(SPEC, r, t)
    return out


def R(**kw) -> PlugReading:
    return PlugReading("plug-drill", **kw)


def test_online_relay_and_motor_with_hysteresis():
    live = PlugLive("plug-drill")
    recs = feed(live, [
        (T0, R(online=True)), (T0 + 1000, R(relay=True)),
        (T0 + 2000, R(power_w=140.0, energy_wh=100.0)),   # below threshold: not running
        (T0 + 3000, R(power_w=480.0, energy_wh=100.2, amps=2.1)),  # running
        (T0 + 4000, R(power_w=120.0, energy_wh=100.4, amps=0.5)),  # inside the hysteresis band: still running
        (T0 + 5000, R(power_w=90.0, energy_wh=100.5)),    # below 150 - 50: stopped
        (T0 + 6000, R(relay=False)),
    ])
    kinds = [(r.kind, r.body) for r in recs]
    assert kinds == [
        ("status", {"state": "online"}), ("relay", {"on": True}),
        ("energy", {"wh": 100.0}),
        ("motor", {"running": True, "amps": 2.1}), ("energy", {"wh": 100.2}),
        ("current", {"amps": 0.5}), ("energy", {"wh": 100.4}),
        ("motor", {"running": False}), ("energy", {"wh": 100.5}),
        ("relay", {"on": False}),
    ]
    assert {r.source for r in recs} == {"plug-drill"} and {r.boot for r in recs} == {1}
    assert {r.machine for r in recs} == {"drill-1"}
    seqs = [r.seq for r in recs]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] >= 1
    for r in recs:  # every record is a valid contract message
        UPLINK[r.kind].model.model_validate({"v": 1, "node": r.source, "boot": r.boot, "seq": r.seq, "up": 0,
                                             **r.body})


def test_relay_off_stops_the_motor():
    live = PlugLive("plug-drill")
    recs = feed(live, [(T0, R(relay=True)), (T0 + 1, R(power_w=500.0)), (T0 + 2, R(relay=False))])
    assert [(r.kind, r.body) for r in recs][-2:] == [("relay", {"on": False}), ("motor", {"running": False, "amps": 0.0})]


def test_last_will_then_online_is_a_new_epoch():
    live = PlugLive("plug-drill")
    recs = feed(live, [(T0, R(online=True)), (T0 + 10, R(online=False)), (T0 + 20, R(online=False)),
                       (T0 + 30_000, R(online=True)), (T0 + 30_001, R(online=True))])
    assert [(r.kind, r.boot, r.seq, r.body["state"]) for r in recs] == [
        ("status", 1, 1, "online"), ("status", 1, 0, "offline"), ("status", 2, 1, "online")]


def test_counter_going_backwards_starts_a_new_epoch():
    live = PlugLive("plug-drill")
    recs = feed(live, [(T0, R(energy_wh=5000.0)), (T0 + 60_000, R(energy_wh=5010.0)),
                       (T0 + 120_000, R(energy_wh=3.0))])
    assert [(r.kind, r.boot) for r in recs] == [("status", 1), ("energy", 1), ("energy", 1), ("status", 2),
                                                 ("energy", 2)]


def test_seq_stays_unique_across_a_gateway_restart():
    live = PlugLive("plug-drill")
    first = feed(live, [(T0 + i, R(power_w=float(i), energy_wh=1.0)) for i in range(5)])
    restored = PlugLive.from_dict(live.to_dict() | {"last_seq": 0})  # the seq counter itself is not saved
    later = feed(restored, [(T0 + 5 * SEQ_UNIT_MS + 2000, R(power_w=1.0, energy_wh=1.0))])
    keys = [(r.boot, r.seq) for r in first + later]
    assert len(set(keys)) == len(keys)


# --------------------------------------------------------------------------- energy in the fold

readings_st = st.lists(st.tuples(st.integers(1, 600_000), st.floats(0, 5000, allow_nan=False),
                                 st.booleans()), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(readings_st, st.integers(0, 10_000_000), st.integers(0, 10_000_000))
def test_energy_is_never_negative_and_counts_only_increases(steps, a, b):
    t, boot, rs = T0, 1, []
    for dt_ms, wh, reboot in steps:
        t += dt_ms
        boot += int(reboot)
        rs.append((t, "plug-drill", boot, wh))
    segs = energy_segments(rs)
    assert all(d > 0 for _, _, d in segs)
    lo, hi = sorted((T0 + a, T0 + b))
    e = energy_in(segs, lo, hi)
    assert e >= 0
    # Never more than the sum of the increases within each boot.
    increases = sum(max(0.0, w1 - w0) for (_, _, b0, w0), (_, _, b1, w1) in zip(rs, rs[1:]) if b0 == b1)
    assert e <= round(increases, 3) + 1e-6


def _ev(t, source, boot, seq, kind, machine="drill-1", **body):
    return FoldEvent(t, source, boot, seq, kind, machine, body)


def test_session_energy_from_plug_readings_with_a_counter_reset():
    gw = "gw-dkr-1"
    evs = [
        _ev(T0, "plug-drill", 1, 1, "status", state="online"),
        _ev(T0 + 1000, "plug-drill", 1, 2, "energy", wh=1000.0),
        _ev(T0 + 60_000, gw, 1, 1, GatewayKind.SESSION_OPEN, session="s1", artisan=1, uid="04A1B2C3"),
        _ev(T0 + 61_000, "plug-drill", 1, 3, "energy", wh=1000.0),
        _ev(T0 + 121_000, "plug-drill", 1, 4, "energy", wh=1012.5),   # 12.5 Wh in the session
        _ev(T0 + 181_000, "plug-drill", 1, 5, "energy", wh=1000.5),   # backwards in the same boot: reset
        _ev(T0 + 241_000, "plug-drill", 1, 6, "energy", wh=1004.5),   # +4 Wh from the new baseline
        _ev(T0 + 241_000, gw, 1, 2, GatewayKind.SESSION_CLOSE, session="s1", reason="tap_out"),
        _ev(T0 + 301_000, "plug-drill", 1, 7, "energy", wh=1010.0),   # after the session
    ]
    [s] = derive_sessions(evs)
    assert s.energy_wh == 16.5
    # A machine without energy readings has no energy figure, not zero.
    no_meter = [e for e in evs if e.kind != "energy"]
    assert derive_sessions(no_meter)[0].energy_wh is None


def test_energy_is_spread_over_the_interval_between_readings():
    gw = "gw-dkr-1"
    evs = [
        _ev(T0, "plug-drill", 1, 1, "energy", wh=0.0),
        _ev(T0 + 30_000, gw, 1, 1, GatewayKind.SESSION_OPEN, session="s1", artisan=1, uid="04A1B2C3"),
        _ev(T0 + 60_000, "plug-drill", 1, 2, "energy", wh=60.0),
        _ev(T0 + 60_000, gw, 1, 2, GatewayKind.SESSION_CLOSE, session="s1", reason="tap_out"),
    ]
    assert derive_sessions(evs)[0].energy_wh == 30.0
