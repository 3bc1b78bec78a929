"""The gateway's live state machine, driven without a broker."""

from __future__ import annotations

import datetime as dt

import pytest

from crp_common.events import GatewayKind
from crp_common.rules import AuthIndex
from crp_common.snapshot import Snapshot
from gateway import tracker as tracker_mod
from gateway.tracker import Fact, Tracker

T0 = 1_790_000_000_000  # a UTC ms timestamp in 2026
MIN = 60_000


def snap(**over) -> Snapshot:
    data = {
        "version": "v1",
        "site": {"code": "DKR", "tz": "Africa/Dakar", "locale": "fr"},
        "machines": [
            {"id": "bandsaw-1", "type": "bandsaw", "node": "n-bs1", "idle_timeout_s": 600},
            {"id": "lathe-1", "type": "metal_lathe", "node": "n-l1", "locked": True},
        ],
        "badges": [
            {"uid": "AAAA0001", "artisan": 1},
            {"uid": "AAAA0002", "artisan": 2},
            {"uid": "AAAA0003", "artisan": 3, "status": "revoked"},
            {"uid": "AAAA0004", "artisan": 4},
            {"uid": "AAAA0005", "artisan": 5},
            {"uid": "AAAA0006", "artisan": 6},
        ],
        "artisans": [
            {"id": 1, "name": "Awa Diop", "qualifications": [{"type": "bandsaw"}, {"type": "metal_lathe"}]},
            {"id": 2, "name": "Moussa Ndiaye", "qualifications": [{"type": "bandsaw"}]},
            {"id": 3, "name": "Fatou Sall", "qualifications": [{"type": "bandsaw"}]},
            {"id": 4, "name": "Ibrahima Fall", "status": "suspended", "qualifications": [{"type": "bandsaw"}]},
            {"id": 5, "name": "Khady Ba", "qualifications": [{"type": "bandsaw", "expires": "2020-01-01"}]},
            {"id": 6, "name": "Ousmane Sy", "credit_blocked": True, "qualifications": [{"type": "bandsaw"}]},
        ],
    }
    data.update(over)
    return Snapshot.model_validate(data)


@pytest.fixture
def tr() -> Tracker:
    t = Tracker(AuthIndex.of(snap()))
    t.connected_since_ms = 0
    t.observe("status", "bandsaw-1", "n-bs1", 1, {"state": "online"}, T0)
    return t


def kinds(out) -> list[str]:
    return [f.kind for f in out.facts]


def by_kind(out, kind):
    return [f for f in out.facts if f.kind == kind]


def test_grant_then_tap_out_closes_at_the_tap(tr: Tracker) -> None:
    out = tr.badge("bandsaw-1", "n-bs1", 1, 2, "AAAA0001", T0 + MIN)
    assert out.commands[0].payload["result"] == "grant"
    (opened,) = by_kind(out, GatewayKind.SESSION_OPEN)
    assert opened.body["session"] == "bandsaw-1:n-bs1:1:2" and opened.t == T0 + MIN
    out = tr.badge("bandsaw-1", "n-bs1", 1, 9, "AAAA0001", T0 + 8 * MIN)
    assert out.commands[0].payload["result"] == "end"
    (closed,) = by_kind(out, GatewayKind.SESSION_CLOSE)
    assert closed.t == T0 + 8 * MIN and closed.body == {"session": opened.body["session"], "reason": "tap_out"}


@pytest.mark.parametrize("uid,machine,reason", [
    ("FFFF0000", "bandsaw-1", "unknown_badge"),
    ("AAAA0003", "bandsaw-1", "badge_revoked"),
    ("AAAA0004", "bandsaw-1", "artisan_suspended"),
    ("AAAA0002", "lathe-1", "machine_locked"),
    ("AAAA0005", "bandsaw-1", "qualification_expired"),
    ("AAAA0006", "bandsaw-1", "credit_limit"),
    ("AAAA0001", "planer-9", "unknown_machine"),
])
def test_every_deny_reason(tr: Tracker, uid: str, machine: str, reason: str) -> None:
    out = tr.badge(machine, "n-x", 1, 2, uid, T0 + MIN)
    assert out.commands[0].payload["result"] == "deny"
    assert out.commands[0].payload["reason"] == reason
    assert out.commands[0].payload["text"]  # a text for the node's display
    assert not by_kind(out, GatewayKind.SESSION_OPEN)


def test_not_qualified(tr: Tracker) -> None:
    t = Tracker(AuthIndex.of(snap(machines=[{"id": "lathe-2", "type": "metal_lathe", "node": "n-l2"}])))
    out = t.badge("lathe-2", "n-l2", 1, 2, "AAAA0002", T0)
    assert out.commands[0].payload["reason"] == "not_qualified"


def test_in_use_while_motor_runs_handover_when_idle(tr: Tracker) -> None:
    tr.badge("bandsaw-1", "n-bs1", 1, 2, "AAAA0001", T0 + MIN)
    tr.observe("motor", "bandsaw-1", "n-bs1", 1, {"running": True}, T0 + 2 * MIN)
    out = tr.badge("bandsaw-1", "n-bs1", 1, 4, "AAAA0002", T0 + 3 * MIN)
    assert out.commands[0].payload["reason"] == "machine_in_use"
    tr.observe("motor", "bandsaw-1", "n-bs1", 1, {"running": False}, T0 + 4 * MIN)
    out = tr.badge("bandsaw-1", "n-bs1", 1, 6, "AAAA0002", T0 + 5 * MIN)
    assert out.commands[0].payload["result"] == "grant"
    (closed,) = by_kind(out, GatewayKind.SESSION_CLOSE)
    assert closed.body["reason"] == "handover" and closed.t == T0 + 5 * MIN
    assert by_kind(out, GatewayKind.SESSION_OPEN)[0].body["artisan"] == 2


def test_idle_timeout_closes_at_last_activity_plus_timeout(tr: Tracker) -> None:
    tr.badge("bandsaw-1", "n-bs1", 1, 2, "AAAA0001", T0 + MIN)
    tr.observe("motor", "bandsaw-1", "n-bs1", 1, {"running": True}, T0 + 2 * MIN)
    tr.observe("motor", "bandsaw-1", "n-bs1", 1, {"running": False}, T0 + 7 * MIN)
    for i in range(8, 17):  # heartbeats keep the node alive
        tr.observe("hb", "bandsaw-1", "n-bs1", 1, {"relay": True, "motor": False}, T0 + i * MIN)
    assert not by_kind(tr.tick(T0 + 16 * MIN), GatewayKind.SESSION_CLOSE)
    out = tr.tick(T0 + 17 * MIN + 5_000)
    (closed,) = by_kind(out, GatewayKind.SESSION_CLOSE)
    assert closed.body["reason"] == "idle" and closed.t == T0 + 17 * MIN
    assert out.commands[0].payload["cmd"] == "relay_off"


def test_power_loss_closes_at_last_sign_of_life_not_reboot(tr: Tracker) -> None:
    tr.badge("bandsaw-1", "n-bs1", 1, 2, "AAAA0001", T0 + MIN)
    tr.observe("hb", "bandsaw-1", "n-bs1", 1, {"relay": True, "motor": True}, T0 + 9 * MIN)
    out = tr.observe("status", "bandsaw-1", "n-bs1", 1, {"state": "offline"}, T0 + 10 * MIN)
    (closed,) = by_kind(out, GatewayKind.SESSION_CLOSE)
    assert closed.body["reason"] == "power_loss" and closed.t == T0 + 9 * MIN
    out = tr.observe("status", "bandsaw-1", "n-bs1", 2, {"state": "online"}, T0 + 40 * MIN)
    assert not by_kind(out, GatewayKind.SESSION_CLOSE)
    assert by_kind(out, GatewayKind.STATE)[0].body["state"] == "available"


def test_reboot_without_last_will_also_closes_at_last_sign_of_life(tr: Tracker) -> None:
    tr.badge("bandsaw-1", "n-bs1", 1, 2, "AAAA0001", T0 + MIN)
    tr.observe("current", "bandsaw-1", "n-bs1", 1, {"amps": 4.0}, T0 + 6 * MIN)
    out = tr.observe("status", "bandsaw-1", "n-bs1", 2, {"state": "online"}, T0 + 30 * MIN)
    (closed,) = by_kind(out, GatewayKind.SESSION_CLOSE)
    assert closed.t == T0 + 6 * MIN and closed.body["reason"] == "power_loss"


def test_silent_node_goes_offline_only_while_gateway_connected(tr: Tracker) -> None:
    tr.connected_since_ms = T0
    silent = tracker_mod.OFFLINE_AFTER_S * 1000
    assert not by_kind(tr.tick(T0 + silent - 1000), GatewayKind.STATE)
    out = tr.tick(T0 + silent + 1000)
    assert by_kind(out, GatewayKind.STATE)[0].body["state"] == "offline"


def test_gateway_reconnect_grace_prevents_false_offline(tr: Tracker) -> None:
    tr.connected_since_ms = T0 + 3_600_000  # gateway was away for an hour
    out = tr.tick(T0 + 3_600_000 + 10_000)
    assert not out.facts


def test_critical_fault_ends_session_and_denies(tr: Tracker) -> None:
    tr.badge("bandsaw-1", "n-bs1", 1, 2, "AAAA0001", T0 + MIN)
    out = tr.observe("fault", "bandsaw-1", "n-bs1", 1, {"code": "estop", "active": True}, T0 + 2 * MIN)
    assert by_kind(out, GatewayKind.SESSION_CLOSE)[0].body["reason"] == "fault"
    assert out.commands[0].payload["cmd"] == "relay_off"
    assert tr.badge("bandsaw-1", "n-bs1", 1, 4, "AAAA0002", T0 + 3 * MIN).commands[0].payload["reason"] == \
        "machine_fault"


def test_replaying_recorded_facts_rebuilds_the_same_state(tr: Tracker) -> None:
    log: list[tuple[str, object]] = []

    def node(kind, body, t, boot=1):
        log.append(("node", (kind, "bandsaw-1", "n-bs1", boot, body, t)))
        out = tr.observe(kind, "bandsaw-1", "n-bs1", boot, body, t)
        log.extend(("fact", f) for f in out.facts)

    node("status", {"state": "online"}, T0)
    node("badge", {"uid": "AAAA0001"}, T0 + MIN)
    log.extend(("fact", f) for f in tr.badge("bandsaw-1", "n-bs1", 1, 2, "AAAA0001", T0 + MIN).facts)
    node("motor", {"running": True}, T0 + 2 * MIN)
    fresh = Tracker(AuthIndex.of(snap()))
    for what, item in log:
        if what == "node":
            fresh.observe(*item)
        else:
            fresh.apply(item)  # type: ignore[arg-type]
    assert fresh.to_dict() == tr.to_dict()
    assert fresh.machines["bandsaw-1"].session is not None


def test_qualification_expiry_uses_site_local_date() -> None:
    # Expires 2026-01-01: at 23:30 UTC on Dec 31 it is still Dec 31 in Dakar (UTC+0) but Jan 1
    # in a UTC+1 site such as Douala.
    s = snap(site={"code": "DLA", "tz": "Africa/Douala"},
             artisans=[{"id": 1, "name": "A", "qualifications": [{"type": "bandsaw", "expires": "2025-12-31"}]}])
    t = Tracker(AuthIndex.of(s), tz="Africa/Douala")
    at = int(dt.datetime(2025, 12, 31, 23, 30, tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert t.badge("bandsaw-1", "n-bs1", 1, 2, "AAAA0001", at).commands[0].payload["reason"] == \
        "qualification_expired"
    t2 = Tracker(AuthIndex.of(s), tz="Africa/Dakar")
    assert t2.badge("bandsaw-1", "n-bs1", 1, 2, "AAAA0001", at).commands[0].payload["result"] == "grant"


def test_critical_condition_stops_the_machine_until_it_clears() -> None:
    machines = [{"id": "bandsaw-1", "type": "bandsaw", "node": "n-bs1",
                 "conditions": [{"id": "7", "metric": "temp", "above": 70, "for_s": 300, "critical": True}]}]
    t = Tracker(AuthIndex.of(snap(machines=machines)))
    t.observe("status", "bandsaw-1", "n-bs1", 1, {"state": "online"}, T0)
    t.badge("bandsaw-1", "n-bs1", 1, 2, "AAAA0001", T0)
    raised = []
    for i in range(0, 7):  # 72 °C every minute: holds from T0+MIN, raised after 5 minutes
        out = t.observe("temp", "bandsaw-1", "n-bs1", 1, {"c": 72.0}, T0 + (i + 1) * MIN)
        raised += by_kind(out, GatewayKind.ALERT)
    assert [a.body["state"] for a in raised] == ["raised"] and raised[0].t == T0 + 6 * MIN
    assert raised[0].body["cause"] == "condition:7"
    assert t.machines["bandsaw-1"].session is None
    assert t.badge("bandsaw-1", "n-bs1", 1, 9, "AAAA0002", T0 + 8 * MIN).commands[0].payload["reason"] == \
        "machine_fault"
    out = t.observe("temp", "bandsaw-1", "n-bs1", 1, {"c": 60.0}, T0 + 9 * MIN)
    assert by_kind(out, GatewayKind.ALERT)[0].body["state"] == "cleared"
    assert t.badge("bandsaw-1", "n-bs1", 1, 11, "AAAA0002", T0 + 10 * MIN).commands[0].payload["result"] == "grant"


def test_expired_badge_request_is_recorded_but_opens_nothing(tr: Tracker) -> None:
    out = tr.expired_badge("bandsaw-1", "n-bs1", 1, 2, "AAAA0001", T0)
    assert [f.body["result"] for f in by_kind(out, GatewayKind.DECISION)] == ["expired"]
    assert not out.commands and tr.machines["bandsaw-1"].session is None


def test_nothing_is_judged_while_the_gateway_is_disconnected(tr: Tracker) -> None:
    from gateway.tracker import DISCONNECTED

    tr.badge("bandsaw-1", "n-bs1", 1, 2, "AAAA0001", T0)
    tr.connected_since_ms = DISCONNECTED
    assert not tr.tick(T0 + 3_600_000).facts  # an hour cut off: no idle end, no offline
    tr.connected_since_ms = T0 + 3_600_000
    assert not tr.tick(T0 + 3_600_000 + 1000).facts  # reconnected: grace first


def test_a_tap_after_the_idle_deadline_finds_the_session_ended_even_if_no_tick_ran(tr: Tracker) -> None:
    """The timer may run late (after a reconnection, while the broker's backlog arrives): the
    tap's outcome must be the one an on-time timer gives, an idle end then a new session."""
    tr.badge("bandsaw-1", "n-bs1", 1, 2, "AAAA0001", T0 + MIN)
    tr.observe("motor", "bandsaw-1", "n-bs1", 1, {"running": True}, T0 + 2 * MIN)
    tr.observe("motor", "bandsaw-1", "n-bs1", 1, {"running": False}, T0 + 7 * MIN)
    out = tr.badge("bandsaw-1", "n-bs1", 1, 9, "AAAA0002", T0 + 20 * MIN)  # no tick since 7 min
    (closed,) = by_kind(out, GatewayKind.SESSION_CLOSE)
    assert closed.body["reason"] == "idle" and closed.t == T0 + 17 * MIN  # not a handover at 20 min
    assert out.commands[-1].payload["result"] == "grant"
    assert by_kind(out, GatewayKind.SESSION_OPEN)[0].body["artisan"] == 2
    # The same artisan back after the deadline starts a new session (no tap-out of the old one).
    tr.observe("motor", "bandsaw-1", "n-bs1", 1, {"running": False}, T0 + 21 * MIN)
    out = tr.badge("bandsaw-1", "n-bs1", 1, 11, "AAAA0002", T0 + 40 * MIN)
    assert [c.payload.get("result") for c in out.commands] == ["grant"]
    assert by_kind(out, GatewayKind.SESSION_CLOSE)[0].body["reason"] == "idle"
    # A refused tap after the deadline: the session still ends as idle and the relay goes off.
    tr.observe("motor", "bandsaw-1", "n-bs1", 1, {"running": False}, T0 + 41 * MIN)
    out = tr.badge("bandsaw-1", "n-bs1", 1, 13, "FFFF0000", T0 + 60 * MIN)
    assert by_kind(out, GatewayKind.SESSION_CLOSE)[0].body["reason"] == "idle"
    assert [c.payload.get("cmd") or c.payload.get("result") for c in out.commands] == ["relay_off", "deny"]
