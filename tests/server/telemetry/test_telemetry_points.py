"""Events -> line protocol (pure)."""

from __future__ import annotations

import pytest

from crp_common.contract import MachineState
from crp_common.events import Event
from server.telemetry.points import (
    MEASUREMENTS,
    STATE_CODES,
    PointError,
    escape_key,
    escape_measurement,
    escape_string_field,
    event_to_point,
    events_to_points,
)

T = 1_718_000_000_123


def ev(kind: str, body: dict, *, machine: str | None = "bandsaw-1", seq: int = 1, source: str = "node-1",
       t: int = T) -> Event:
    return Event(source=source, boot=3, seq=seq, kind=kind, site="DKR", machine=machine, t=t, body=body)


def test_current_point_has_measurement_tags_field_and_ms_timestamp():
    line = event_to_point(ev("current", {"amps": 4.25}), machine_type="bandsaw")
    assert line == f"machine_current,machine=bandsaw-1,machine_type=bandsaw,site=DKR amps=4.25 {T}"


@pytest.mark.parametrize("kind,body,expected_fields", [
    ("temp", {"c": 41.5}, "c=41.5"),
    ("vib", {"rms": 2}, "rms=2.0"),  # an int sample is still written as a float
    ("hb", {"relay": True, "motor": False, "rssi": -61}, "relay=1i,motor=0i,rssi=-61i"),
    ("hb", {"relay": False, "motor": True}, "relay=0i,motor=1i"),
    ("motor", {"running": True, "amps": 3.5}, "running=1i,amps=3.5"),
    ("motor", {"running": False}, "running=0i"),
    ("relay", {"on": True}, "on=1i"),
    ("energy", {"wh": 1234}, "wh=1234.0"),  # a plug's cumulative counter
    ("fault", {"code": "estop", "active": True}, 'code="estop",active=1i'),
])
def test_fields_per_kind(kind, body, expected_fields):
    line = event_to_point(ev(kind, body))
    measurement = MEASUREMENTS[kind].measurement
    assert line == f"{measurement},machine=bandsaw-1,site=DKR {expected_fields} {T}"


@pytest.mark.parametrize("state", list(MachineState))
def test_gateway_state_has_string_and_code(state):
    line = event_to_point(ev("state", {"state": state.value, "cause": "badge"}, source="gw-1"))
    assert line == (f'machine_state,machine=bandsaw-1,site=DKR state="{state.value}",'
                    f"state_code={STATE_CODES[state.value]}i {T}")


def test_state_codes_are_distinct_and_cover_every_state():
    assert set(STATE_CODES) == {s.value for s in MachineState}
    assert len(set(STATE_CODES.values())) == len(STATE_CODES)


def test_tags_never_carry_artisan_session_or_boot():
    e = ev("state", {"state": "in_use", "cause": "session_open", "artisan": "a-17",
                     "session": "node-1:3:9"}, source="gw-1")
    line = event_to_point(e)
    tag_part = line.split(" ", 1)[0]
    tags = dict(kv.split("=", 1) for kv in tag_part.split(",")[1:])
    assert set(tags) == {"site", "machine"}
    assert "a-17" not in line and "node-1" not in line and "session" not in tag_part


def test_escaping_of_names_tags_and_strings():
    assert escape_measurement("a b,c=d") == r"a\ b\,c=d"
    assert escape_key("scie à ruban, 2=x") == r"scie\ à\ ruban\,\ 2\=x"
    assert escape_string_field('say "hi" \\ there') == r'"say \"hi\" \\ there"'
    # No line break may survive in a tag (it would end the line) nor a trailing backslash
    # (it would escape the separator).
    assert "\n" not in escape_key("a\nb") and not escape_key("ab\\").endswith("\\")


def test_machine_type_with_spaces_is_escaped_in_the_tag():
    line = event_to_point(ev("temp", {"c": 30.0}), machine_type="scie à ruban")
    assert line.startswith(r"machine_temp,machine=bandsaw-1,machine_type=scie\ à\ ruban,site=DKR c=30.0 ")


def test_string_field_with_quotes_is_escaped():
    line = event_to_point(ev("fault", {"code": 'x"y\\z', "active": False}))
    assert r'code="x\"y\\z"' in line


@pytest.mark.parametrize("body,reason", [
    ({}, "missing_field"),
    ({"amps": None}, "missing_field"),
    ({"amps": "4"}, "bad_field"),
    ({"amps": True}, "bad_field"),
    ({"amps": float("nan")}, "bad_field"),
    ({"amps": float("inf")}, "bad_field"),
])
def test_malformed_bodies_are_refused_with_a_reason(body, reason):
    with pytest.raises(PointError) as e:
        event_to_point(ev("current", body))
    assert e.value.reason == reason


def test_unknown_state_is_refused():
    with pytest.raises(PointError) as e:
        event_to_point(ev("state", {"state": "exploded"}, source="gw-1"))
    assert e.value.reason == "bad_field"


def test_non_telemetry_and_machineless_events_are_not_points():
    with pytest.raises(PointError) as e:
        event_to_point(ev("badge", {"uid": "04A1B2C3"}))
    assert e.value.reason == "not_telemetry"
    with pytest.raises(PointError) as e:
        event_to_point(ev("state", {"state": "available"}, machine=None, source="gw-1"))
    assert e.value.reason == "no_machine"


def test_events_to_points_skips_non_telemetry_silently_and_counts_malformed():
    events = [
        ev("current", {"amps": 1.0}, seq=1),
        ev("badge", {"uid": "04A1B2C3"}, seq=2),
        ev("session_open", {"session": "s"}, seq=3, source="gw-1"),
        ev("current", {"amps": "x"}, seq=4),
        ev("temp", {"c": 20.0}, seq=5, machine="lathe-2"),
    ]
    lines, skipped = events_to_points(events, {"bandsaw-1": "bandsaw", "lathe-2": "lathe"})
    assert lines == [
        f"machine_current,machine=bandsaw-1,machine_type=bandsaw,site=DKR amps=1.0 {T}",
        f"machine_temp,machine=lathe-2,machine_type=lathe,site=DKR c=20.0 {T}",
    ]
    assert skipped == {"bad_field": 1}


def test_same_event_gives_the_same_point():
    # Idempotence relies on it: a re-sent event lands on the same series and timestamp.
    a = ev("vib", {"rms": 1.25}, seq=7)
    assert event_to_point(a, "bandsaw") == event_to_point(a.model_copy(), "bandsaw")
