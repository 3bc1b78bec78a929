"""The interlock: the plug follows the session; a mismatch past the grace period is an alert."""

from __future__ import annotations

import json

from gateway.plugs.bridge import PlugBridge
from gateway.plugs.commands import relay_command
from gateway.plugs.interlock import COMMAND_RETRY_S, InterlockState, reconcile
from gateway.plugs.mapping import plugs_from_data

CFG = plugs_from_data({"plugs": {
    "plug-drill": {"machine": "drill-1", "type": "tasmota", "topic": "tasmota_5A9AE8", "threshold_w": 150,
                   "grace_s": 10},
    "plug-saw": {"machine": "saw-1", "type": "shelly1", "topic": "shellyplug-s-7C87CEB4A2F1", "threshold_w": 200},
    "plug-lathe": {"machine": "lathe-1", "type": "shelly2", "topic": "shellyplusplugs-a8032ab12345",
                   "threshold_w": 120, "channel": 0},
}})
T0 = 1_772_438_400_000


def test_commands_in_each_firmware_shape():
    assert relay_command(CFG, CFG.plugs["plug-drill"], True) == ("cmnd/tasmota_5A9AE8/POWER", b"ON", 1)
    assert relay_command(CFG, CFG.plugs["plug-saw"], False) == ("shellies/shellyplug-s-7C87CEB4A2F1/relay/0/command",
                                                                b"off", 1)
    topic, payload, qos = relay_command(CFG, CFG.plugs["plug-lathe"], True, rpc_id=7, src="crp-gw-dkr-1")
    assert topic == "shellyplusplugs-a8032ab12345/rpc" and qos == 1
    assert json.loads(payload) == {"id": 7, "src": "crp-gw-dkr-1", "method": "Switch.Set",
                                   "params": {"id": 0, "on": True}}


def test_grant_commands_on_confirmation_clears_nothing_to_alert():
    st = InterlockState()
    assert reconcile(st, "p", False, None, True, T0, 10) == (False, None)  # first sight: off
    assert reconcile(st, "p", True, False, True, T0 + 100, 10) == (True, None)  # grant
    assert reconcile(st, "p", True, True, True, T0 + 300, 10) == (None, None)  # confirmed
    assert reconcile(st, "p", False, True, True, T0 + 5000, 10) == (False, None)  # tap out
    assert reconcile(st, "p", False, False, True, T0 + 5200, 10) == (None, None)


def test_plug_on_without_session_is_reasserted_then_alerted_then_cleared():
    st = InterlockState()
    reconcile(st, "p", False, False, True, T0, 10)
    # Someone pressed the button: reported on, no session.
    assert reconcile(st, "p", False, True, True, T0 + 1000, 10) == (None, None)
    cmd, alert = reconcile(st, "p", False, True, True, T0 + int(COMMAND_RETRY_S * 1000), 10)
    assert cmd is False and alert is None  # the OFF is repeated
    cmd, alert = reconcile(st, "p", False, True, True, T0 + 11_000, 10)
    assert alert is not None and alert["kind"] == "interlock" and alert["state"] == "raised"
    assert alert["expected"] == "off" and alert["reported"] == "on" and alert["cause"] == "interlock:p"
    assert reconcile(st, "p", False, True, True, T0 + 12_000, 10)[1] is None  # raised once
    cmd, alert = reconcile(st, "p", False, False, True, T0 + 13_000, 10)
    assert alert is not None and alert["state"] == "cleared"


def test_plug_off_during_a_session_is_alerted_and_offline_plugs_are_not_judged():
    st = InterlockState()
    reconcile(st, "p", True, False, True, T0, 10)
    assert reconcile(st, "p", True, False, True, T0 + 9_000, 10)[1] is None
    assert reconcile(st, "p", True, False, True, T0 + 10_000, 10)[1]["expected"] == "on"
    st2 = InterlockState()
    reconcile(st2, "p", True, False, False, T0, 10)
    assert reconcile(st2, "p", True, False, False, T0 + 60_000, 10) == (None, None)


def test_bridge_reconcile_and_reader_routing():
    b = PlugBridge(plugs_from_data({"plugs": {"plug-drill": {
        "machine": "drill-1", "type": "tasmota", "topic": "tasmota_5A9AE8", "threshold_w": 150,
        "reader": "reader-drill"}}}), "gw-dkr-1")
    assert b.badge_machine("reader-drill") == "drill-1" and b.badge_machine("drill-1") is None
    cmds, facts = b.reconcile({"drill-1": False}, T0)
    assert [(c.topic, c.payload) for c in cmds] == [("cmnd/tasmota_5A9AE8/POWER", b"OFF")] and facts == []
    route = b.route("stat/tasmota_5A9AE8/POWER")
    b.handle(route, b"OFF", T0 + 10)
    cmds, _ = b.reconcile({"drill-1": True}, T0 + 20)
    assert [c.payload for c in cmds] == [b"ON"]
    _, facts = b.reconcile({"drill-1": True}, T0 + 20 + 10_000)
    assert [f.body["state"] for f in facts] == ["raised"] and facts[0].machine == "drill-1"
    assert b.take_dirty() and not b.take_dirty()
    restored = PlugBridge(b.cfg, "gw-dkr-1")
    restored.load(b.to_dict())
    assert restored.live["plug-drill"].boot == b.live["plug-drill"].boot == 1
