"""Plug converters with payloads in each firmware's public shapes (Tasmota docs, Shelly Gen1
MQTT API, Shelly Gen2 RPC/Notifications docs), and their dead-letter reasons."""

from __future__ import annotations

import json

import pytest

from gateway.plugs.converters import convert, shelly1, shelly2, tasmota
from gateway.plugs.mapping import plugs_from_data
from gateway.plugs.readings import PlugError, PlugReading
from gateway.plugs.topics import Router, subscriptions

CFG = plugs_from_data({
    "plugs": {
        "plug-drill": {"machine": "drill-1", "type": "tasmota", "topic": "tasmota_5A9AE8", "threshold_w": 150,
                       "reader": "reader-drill"},
        "plug-dual": {"machine": "sander-1", "type": "tasmota", "topic": "dual_meter", "threshold_w": 100,
                      "channel": 1},
        "plug-saw": {"machine": "saw-1", "type": "shelly1", "topic": "shellyplug-s-7C87CEB4A2F1",
                     "threshold_w": 200},
        "plug-lathe": {"machine": "lathe-1", "type": "shelly2", "topic": "shellyplusplugs-a8032ab12345",
                       "threshold_w": 120},
    }
})
R = Router(CFG)

# Tasmota: tele/<topic>/SENSOR of a Sonoff POW / Athom plug (docs: "Energy" page, MQTT section).
TASMOTA_SENSOR = {"Time": "2024-03-05T10:15:00", "ENERGY": {
    "TotalStartTime": "2023-01-12T09:31:22", "Total": 12.345, "Yesterday": 0.812, "Today": 0.233, "Period": 2,
    "Power": 480, "ApparentPower": 510, "ReactivePower": 172, "Factor": 0.94, "Voltage": 229, "Current": 2.217}}
# A two-channel meter (e.g. Shelly 2.5 flashed with Tasmota): arrays per channel.
TASMOTA_DUAL = {"Time": "2024-03-05T10:15:00", "ENERGY": {
    "TotalStartTime": "2023-01-12T09:31:22", "Total": [1.5, 7.25], "Yesterday": [0.1, 0.2], "Today": [0.0, 0.3],
    "Period": [0, 4], "Power": [0, 650], "ApparentPower": [0, 690], "ReactivePower": [0, 220],
    "Factor": [0.0, 0.94], "Voltage": 231, "Current": [0.0, 2.98]}}
# Shelly Gen2: status/switch:0 of a Plus Plug S (docs: Switch component, GetStatus).
GEN2_STATUS = {"id": 0, "source": "init", "output": True, "apower": 480.2, "voltage": 229.1, "freq": 50.0,
               "current": 2.213, "pf": 0.94,
               "aenergy": {"total": 1234.567, "by_minute": [12.3, 45.6, 32.1], "minute_ts": 1709633700},
               "temperature": {"tC": 41.2, "tF": 106.2}}


def conv(topic: str, payload: bytes | str | dict, last=None):
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    route = R.route(topic)
    assert route is not None
    return convert(route, payload, last)


# --------------------------------------------------------------------------- Tasmota


def test_tasmota_sensor_gives_power_energy_current_voltage():
    _, readings = conv("tele/tasmota_5A9AE8/SENSOR", TASMOTA_SENSOR)
    assert readings == [PlugReading("plug-drill", power_w=480.0, energy_wh=12345.0, amps=2.217, volts=229.0)]


def test_tasmota_lwt_and_power_state():
    assert conv("tele/tasmota_5A9AE8/LWT", "Online")[1] == [PlugReading("plug-drill", online=True)]
    assert conv("tele/tasmota_5A9AE8/LWT", "Offline")[1] == [PlugReading("plug-drill", online=False)]
    assert conv("stat/tasmota_5A9AE8/POWER", "ON")[1] == [PlugReading("plug-drill", relay=True)]
    assert conv("stat/tasmota_5A9AE8/POWER", "OFF")[1] == [PlugReading("plug-drill", relay=False)]


def test_tasmota_multi_channel_takes_the_mapped_channel():
    _, readings = conv("tele/dual_meter/SENSOR", TASMOTA_DUAL)
    assert readings == [PlugReading("plug-dual", power_w=650.0, energy_wh=7250.0, amps=2.98, volts=231.0)]
    assert conv("stat/dual_meter/POWER2", "ON")[1] == [PlugReading("plug-dual", relay=True)]
    assert conv("stat/dual_meter/POWER1", "ON")[1] == []  # the other channel: not this machine's


def test_tasmota_arrays_on_a_single_channel_mapping_are_dead_lettered():
    with pytest.raises(PlugError) as e:
        conv("tele/tasmota_5A9AE8/SENSOR", TASMOTA_DUAL)
    assert e.value.reason == "multi_channel"


@pytest.mark.parametrize("payload, reason", [
    ({"Time": "2024-03-05T10:15:00", "ANALOG": {"A0": 12}}, "missing_field"),
    ({"Time": "2024-03-05T10:15:00", "ENERGY": {"Total": 1.0}}, "missing_field"),
    ({"Time": "2024-03-05T10:15:00", "ENERGY": {"Power": 10}}, "missing_field"),
    ({"ENERGY": {"Power": "480", "Total": 1.0}}, "bad_value"),
    ({"ENERGY": {"Power": -5, "Total": 1.0}}, "bad_value"),
    ({"ENERGY": {"Power": True, "Total": 1.0}}, "bad_value"),
    ({"ENERGY": [1, 2]}, "bad_value"),
    ([1, 2], "not_object"),
    ("{not json", "not_json"),
    (b"\xff\xfe", "not_utf8"),
])
def test_tasmota_bad_sensor_payloads(payload, reason):
    with pytest.raises(PlugError) as e:
        conv("tele/tasmota_5A9AE8/SENSOR", payload)
    assert e.value.reason == reason
    assert str(e.value)


def test_tasmota_bad_words():
    with pytest.raises(PlugError) as e:
        conv("stat/tasmota_5A9AE8/POWER", "MAYBE")
    assert e.value.reason == "bad_value"
    with pytest.raises(PlugError) as e:
        conv("tele/tasmota_5A9AE8/LWT", "online")  # Tasmota capitalises
    assert e.value.reason == "bad_value"


def test_tasmota_custom_full_topic():
    cfg = plugs_from_data({"tasmota_full_topic": "tasmota/%topic%/%prefix%/", "plugs": {
        "plug-a": {"machine": "m-a", "type": "tasmota", "topic": "atelier_a", "threshold_w": 50}}})
    r = Router(cfg)
    route = r.route("tasmota/atelier_a/tele/SENSOR")
    assert route is not None and route.plug == "plug-a" and route.rest == "tele/SENSOR"
    assert ("tasmota/+/tele/SENSOR", 0) in subscriptions(cfg)
    assert r.route("tele/atelier_a/SENSOR") is None


# --------------------------------------------------------------------------- Shelly Gen1


def test_shelly1_topics():
    base = "shellies/shellyplug-s-7C87CEB4A2F1"
    assert conv(f"{base}/relay/0", "on")[1] == [PlugReading("plug-saw", relay=True)]
    assert conv(f"{base}/relay/0", "overpower")[1] == [PlugReading("plug-saw", relay=False)]
    assert conv(f"{base}/relay/0/power", "480.25")[1] == [PlugReading("plug-saw", power_w=480.25)]
    assert conv(f"{base}/relay/0/energy", "12345")[1] == [PlugReading("plug-saw", energy_wh=205.75)]  # W-min / 60
    assert conv(f"{base}/online", "true")[1] == [PlugReading("plug-saw", online=True)]
    assert conv(f"{base}/online", "false")[1] == [PlugReading("plug-saw", online=False)]


def test_shelly1_bad_input():
    base = "shellies/shellyplug-s-7C87CEB4A2F1"
    for topic, payload, reason in ((f"{base}/relay/0/power", "lots", "bad_value"),
                                   (f"{base}/relay/0", "ON", "bad_value"),
                                   (f"{base}/relay/1", "on", "multi_channel"),
                                   (f"{base}/relay/0/energy", "-3", "bad_value")):
        with pytest.raises(PlugError) as e:
            conv(topic, payload)
        assert e.value.reason == reason, topic


# --------------------------------------------------------------------------- Shelly Gen2


def test_shelly2_status_then_notify_deltas_overlaid():
    p = "shellyplusplugs-a8032ab12345"
    last, readings = conv(f"{p}/status/switch:0", GEN2_STATUS)
    assert readings == [PlugReading("plug-lathe", relay=True, power_w=480.2, energy_wh=1234.567, amps=2.213,
                                    volts=229.1)]
    notify = {"src": p, "dst": f"{p}/events", "method": "NotifyStatus",
              "params": {"ts": 1709633712.34, "switch:0": {"id": 0, "apower": 0.0, "current": 0.0}}}
    last2, readings = conv(f"{p}/events/rpc", notify, last)
    assert readings == [PlugReading("plug-lathe", power_w=0.0, amps=0.0)]
    assert last2["output"] is True and last2["apower"] == 0.0 and last2["aenergy"]["total"] == 1234.567
    energy = {"src": p, "dst": f"{p}/events", "method": "NotifyStatus", "params": {"ts": 1709633760.0,
              "switch:0": {"id": 0, "aenergy": {"by_minute": [0.0, 12.3, 45.6], "minute_ts": 1709633760,
                                                "total": 1240.1}}}}
    last3, readings = conv(f"{p}/events/rpc", energy, last2)
    assert readings == [PlugReading("plug-lathe", energy_wh=1240.1)]
    assert last3["aenergy"] == {"by_minute": [0.0, 12.3, 45.6], "minute_ts": 1709633760, "total": 1240.1}
    assert last3["voltage"] == 229.1  # untouched fields stay from the last status


def test_shelly2_other_events_and_components_are_ignored():
    p = "shellyplusplugs-a8032ab12345"
    event = {"src": p, "dst": f"{p}/events", "method": "NotifyEvent",
             "params": {"ts": 1.0, "events": [{"component": "sys", "event": "scheduled_restart"}]}}
    assert conv(f"{p}/events/rpc", event, {"x": 1}) == ({"x": 1}, [])
    wifi = {"src": p, "dst": f"{p}/events", "method": "NotifyStatus", "params": {"ts": 1.0, "wifi": {"rssi": -60}}}
    assert conv(f"{p}/events/rpc", wifi)[1] == []
    assert conv(f"{p}/status/sys", {"uptime": 5})[1] == []
    assert conv(f"{p}/online", "false")[1] == [PlugReading("plug-lathe", online=False)]


def test_shelly2_bad_input():
    p = "shellyplusplugs-a8032ab12345"
    no_energy = {k: v for k, v in GEN2_STATUS.items() if k != "aenergy"}
    cases = [(f"{p}/status/switch:0", no_energy, "missing_field"),
             (f"{p}/status/switch:0", {**GEN2_STATUS, "output": "on"}, "bad_value"),
             (f"{p}/status/switch:1", GEN2_STATUS, "multi_channel"),
             (f"{p}/events/rpc", {"method": "NotifyStatus"}, "missing_field"),
             (f"{p}/events/rpc", {"method": "NotifyStatus", "params": {"switch:0": {"apower": "x"}}}, "bad_value")]
    for topic, payload, reason in cases:
        with pytest.raises(PlugError) as e:
            conv(topic, payload)
        assert e.value.reason == reason, payload


def test_pure_functions_by_type():
    route = R.route("tele/tasmota_5A9AE8/LWT")
    assert tasmota(route, b"Online") == [PlugReading("plug-drill", online=True)]
    route = R.route("shellies/shellyplug-s-7C87CEB4A2F1/relay/0")
    assert shelly1(route, b"off") == [PlugReading("plug-saw", relay=False)]
    route = R.route("shellyplusplugs-a8032ab12345/online")
    assert shelly2(None, route, b"true") == (None, [PlugReading("plug-lathe", online=True)])


# --------------------------------------------------------------------------- routing


def test_unknown_plug_ids_are_dead_lettered():
    for topic in ("tele/tasmota_FFFFFF/SENSOR", "shellies/shelly1pm-000000/relay/0/power"):
        with pytest.raises(PlugError) as e:
            R.route(topic)
        assert e.value.reason == "unknown_plug"
    assert R.route("crp/v1/DKR/drill-1/badge") is None
    assert R.route("zigbee2mqtt/bridge/state") is None


def test_subscriptions_are_derived_from_the_mapping():
    subs = subscriptions(CFG)
    assert ("tele/+/SENSOR", 0) in subs and ("tele/+/LWT", 1) in subs
    assert ("stat/+/POWER", 1) in subs and ("stat/+/POWER2", 1) in subs
    assert ("shellies/+/relay/+/energy", 0) in subs
    assert ("shellyplusplugs-a8032ab12345/status/+", 1) in subs
    assert ("shellyplusplugs-a8032ab12345/events/rpc", 1) in subs
    assert len(subs) == len(set(subs))
    assert subscriptions(plugs_from_data({"plugs": {}})) == []
