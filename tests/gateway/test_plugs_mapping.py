"""The plug mapping file: valid files load, mistakes are refused with a message naming them."""

from __future__ import annotations

import json

import pytest

from gateway.plugs.mapping import PlugsConfigError, load_plugs, plugs_from_data

GOOD = {"plugs": {
    "plug-drill": {"machine": "drill-1", "type": "tasmota", "topic": "tasmota_5A9AE8", "threshold_w": 150,
                   "reader": "reader-drill"},
    "plug-saw": {"machine": "saw-1", "type": "shelly1", "topic": "shellyplug-s-7C87CEB4A2F1", "threshold_w": 200,
                 "hysteresis_w": 50},
}}


def test_yaml_and_json_files_load(tmp_path):
    y = tmp_path / "plugs.yaml"
    y.write_text("""
plugs:
  plug-drill:
    machine: drill-1
    type: tasmota
    topic: tasmota_5A9AE8
    threshold_w: 150
    reader: reader-drill
""")
    cfg = load_plugs(y)
    assert cfg.plugs["plug-drill"].machine == "drill-1"
    assert cfg.plugs["plug-drill"].off_below_w == pytest.approx(120.0)  # default hysteresis 20 %
    assert cfg.reader_machines() == {"reader-drill": "drill-1"}
    j = tmp_path / "plugs.json"
    j.write_text(json.dumps(GOOD))
    cfg = load_plugs(j)
    assert cfg.plugs["plug-saw"].off_below_w == 150.0
    assert cfg.machine_plug("saw-1") == "plug-saw"


@pytest.mark.parametrize("change, needle", [
    ({"plug-x": {"machine": "drill-1", "type": "shelly1", "topic": "a", "threshold_w": 5}}, "two plugs"),
    ({"plug-x": {"machine": "m-x", "type": "tasmota", "topic": "tasmota_5A9AE8", "threshold_w": 5}}, "share"),
    ({"plug-x": {"machine": "m-x", "type": "zigbee", "topic": "a", "threshold_w": 5}}, "type"),
    ({"plug-x": {"machine": "m-x", "type": "tasmota", "topic": "a", "threshold_w": 0}}, "threshold_w"),
    ({"plug-x": {"machine": "m-x", "type": "tasmota", "topic": "a"}}, "threshold_w"),
    ({"plug-x": {"machine": "m-x", "type": "tasmota", "topic": "a/b", "threshold_w": 5}}, "one MQTT level"),
    ({"plug-x": {"machine": "m-x", "type": "tasmota", "topic": "tele/#", "threshold_w": 5}}, "topic"),
    ({"plug-x": {"machine": "m-x", "type": "tasmota", "topic": "a", "threshold_w": 5, "hysteresis_w": 9}},
     "hysteresis"),
    ({"plug-x": {"machine": "m-x", "type": "tasmota", "topic": "a", "threshold_w": 5, "reader": "reader-drill"}},
     "serves two"),
    ({"plug-x": {"machine": "m-x", "type": "tasmota", "topic": "a", "threshold_w": 5, "reader": "saw-1"}},
     "itself a plug machine"),
    ({"Plug_X": {"machine": "m-x", "type": "tasmota", "topic": "a", "threshold_w": 5}}, "Plug_X"),
    ({"plug-x": {"machine": "m-x", "type": "tasmota", "topic": "a", "threshold_w": 5, "colour": "red"}}, "colour"),
])
def test_mistakes_are_refused_with_a_clear_message(change, needle):
    with pytest.raises(PlugsConfigError) as e:
        plugs_from_data({"plugs": {**GOOD["plugs"], **change}})
    assert needle in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(PlugsConfigError, match="cannot read"):
        load_plugs(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("plugs: [unclosed")
    with pytest.raises(PlugsConfigError, match="not valid YAML"):
        load_plugs(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(PlugsConfigError, match="must be an object"):
        load_plugs(lst)
    with pytest.raises(PlugsConfigError, match="tasmota_full_topic"):
        plugs_from_data({"tasmota_full_topic": "%topic%/", "plugs": {}})
    with pytest.raises(PlugsConfigError, match="overlap"):
        plugs_from_data({"plugs": {
            "p-a": {"machine": "m-a", "type": "shelly2", "topic": "atelier", "threshold_w": 5},
            "p-b": {"machine": "m-b", "type": "shelly2", "topic": "atelier/scie", "threshold_w": 5}}})
