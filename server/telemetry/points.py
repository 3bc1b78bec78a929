"""Events -> InfluxDB line protocol points (pure, no I/O).

One point per telemetry event, named by measurement, tags and the event time in epoch
milliseconds (write precision ``ms``)::

    machine_current,machine=bandsaw-1,machine_type=bandsaw,site=DKR amps=4.2 1718000000000

Tags are only ``site``, ``machine`` and ``machine_type``: a handful of values per workshop,
never one per artisan, session or node boot (those would explode the series count).

Idempotence: InfluxDB keeps one point per (measurement, tag set, timestamp); a second write
of the same point overwrites the first. Re-sending a batch after a lost acknowledgement
therefore never duplicates anything, which is what lets the spool retry freely.

The mapping is declared as data in :data:`MEASUREMENTS`; see docs/telemetry.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping

from crp_common.contract import Kind, MachineState
from crp_common.events import Event, GatewayKind

FieldType = Literal["float", "int", "bool_int", "str", "state_code"]

# Stable integer codes for machine states (Grafana value mappings and state timelines use
# them; a string field cannot be aggregated). Never renumber: add new states at the end.
STATE_CODES: dict[str, int] = {
    MachineState.AVAILABLE.value: 0,
    MachineState.IN_USE.value: 1,
    MachineState.MAINTENANCE.value: 2,
    MachineState.FAULT.value: 3,
    MachineState.OFFLINE.value: 4,
}

TAG_KEYS = ("machine", "machine_type", "site")  # sorted: InfluxDB's preferred order


@dataclass(frozen=True)
class FieldSpec:
    """One field of a measurement: ``field`` name in InfluxDB from ``source`` key in the body."""

    field: str
    source: str
    type: FieldType
    required: bool = True


@dataclass(frozen=True)
class MeasurementSpec:
    measurement: str
    fields: tuple[FieldSpec, ...]


MEASUREMENTS: dict[str, MeasurementSpec] = {
    Kind.CURRENT.value: MeasurementSpec("machine_current", (FieldSpec("amps", "amps", "float"),)),
    Kind.TEMP.value: MeasurementSpec("machine_temp", (FieldSpec("c", "c", "float"),)),
    Kind.VIB.value: MeasurementSpec("machine_vib", (FieldSpec("rms", "rms", "float"),)),
    Kind.HEARTBEAT.value: MeasurementSpec("machine_heartbeat", (
        FieldSpec("relay", "relay", "bool_int"),
        FieldSpec("motor", "motor", "bool_int"),
        FieldSpec("rssi", "rssi", "int", required=False),
    )),
    Kind.MOTOR.value: MeasurementSpec("machine_motor", (
        FieldSpec("running", "running", "bool_int"),
        FieldSpec("amps", "amps", "float", required=False),
    )),
    Kind.RELAY.value: MeasurementSpec("machine_relay", (FieldSpec("on", "on", "bool_int"),)),
    # The meter's cumulative counter (metering plugs): it restarts after some power cuts, so
    # queries take non_negative_difference() rather than plain differences.
    Kind.ENERGY.value: MeasurementSpec("machine_energy", (FieldSpec("wh", "wh", "float"),)),
    Kind.FAULT.value: MeasurementSpec("machine_fault", (
        FieldSpec("code", "code", "str"),
        FieldSpec("active", "active", "bool_int"),
    )),
    GatewayKind.STATE.value: MeasurementSpec("machine_state", (
        FieldSpec("state", "state", "str"),
        FieldSpec("state_code", "state", "state_code"),
    )),
}


class PointError(ValueError):
    """An event that cannot become a point; ``reason`` is a stable code for counters."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# --------------------------------------------------------------------------- escaping


def escape_measurement(s: str) -> str:
    """Measurement names escape commas and spaces."""
    return _clean(s).replace(",", r"\,").replace(" ", r"\ ")


def escape_key(s: str) -> str:
    """Tag keys, tag values and field keys escape commas, equals signs and spaces."""
    return _clean(s).replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def escape_string_field(s: str) -> str:
    """String field values are double-quoted; backslashes and double quotes are escaped."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _clean(s: str) -> str:
    # Line protocol has no escape for line breaks in names or tags, and a trailing backslash
    # would escape the separator after it: both are replaced rather than sent broken.
    s = s.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    return s.rstrip("\\")


def _format_field(spec: FieldSpec, value: Any) -> str:
    if spec.type == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PointError("bad_field", f"{spec.source} must be a number")
        f = float(value)
        if not math.isfinite(f):
            raise PointError("bad_field", f"{spec.source} must be finite")
        # Always a float literal: InfluxDB refuses a field whose type changes between points.
        return repr(f)
    if spec.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise PointError("bad_field", f"{spec.source} must be an integer")
        return f"{value}i"
    if spec.type == "bool_int":
        if not isinstance(value, bool):
            raise PointError("bad_field", f"{spec.source} must be a boolean")
        return "1i" if value else "0i"
    if spec.type == "str":
        if not isinstance(value, str):
            raise PointError("bad_field", f"{spec.source} must be a string")
        return escape_string_field(value)
    if spec.type == "state_code":
        if value not in STATE_CODES:
            raise PointError("bad_field", f"unknown state {str(value)[:32]!r}")
        return f"{STATE_CODES[value]}i"
    raise AssertionError(spec.type)  # pragma: no cover - FieldType is closed


# --------------------------------------------------------------------------- conversion


def tags_for(event: Event, machine_type: str | None = None) -> dict[str, str]:
    """The tag set of an event's point: site, machine and (when known) machine type."""
    tags = {"site": event.site}
    if event.machine:
        tags["machine"] = event.machine
    if machine_type and _clean(machine_type).strip():
        tags["machine_type"] = machine_type
    return tags


def is_telemetry(event: Event) -> bool:
    """Whether this event kind is written to InfluxDB (see :data:`MEASUREMENTS`)."""
    return event.kind in MEASUREMENTS and event.machine is not None


def event_to_point(event: Event, machine_type: str | None = None) -> str:
    """One line of line protocol for ``event``, or :class:`PointError` when the event is not
    telemetry (``not_telemetry``), has no machine (``no_machine``) or a malformed body
    (``bad_field``/``missing_field``)."""
    spec = MEASUREMENTS.get(event.kind)
    if spec is None:
        raise PointError("not_telemetry", event.kind)
    if event.machine is None:
        raise PointError("no_machine", event.kind)
    fields: list[str] = []
    for f in spec.fields:
        if f.source not in event.body or event.body[f.source] is None:
            if f.required:
                raise PointError("missing_field", f.source)
            continue
        fields.append(f"{escape_key(f.field)}={_format_field(f, event.body[f.source])}")
    tags = tags_for(event, machine_type)
    tag_str = "".join(f",{escape_key(k)}={escape_key(tags[k])}" for k in TAG_KEYS if k in tags)
    return f"{escape_measurement(spec.measurement)}{tag_str} {','.join(fields)} {event.t}"


def events_to_points(
    events: Iterable[Event], machine_types: Mapping[str, str] | None = None
) -> tuple[list[str], dict[str, int]]:
    """Lines for the telemetry events among ``events`` and a count of the skipped ones by
    reason (non-telemetry kinds are skipped silently and not counted).

    ``machine_types`` maps machine id -> machine type (the tag), e.g. from the machine table.
    """
    lines: list[str] = []
    skipped: dict[str, int] = {}
    types = machine_types or {}
    for e in events:
        if e.kind not in MEASUREMENTS:
            continue
        try:
            lines.append(event_to_point(e, types.get(e.machine or "")))
        except PointError as err:
            skipped[err.reason] = skipped.get(err.reason, 0) + 1
    return lines, skipped
