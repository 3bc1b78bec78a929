"""The plug mapping, declared as data: which plug serves which machine, how to read it.

A YAML (or JSON) file, named by ``CRP_PLUGS_FILE``::

    tasmota_full_topic: "%prefix%/%topic%/"    # the devices' FullTopic (Tasmota default)
    plugs:
      plug-drill-1:                 # plug id: the event source, same rules as a node id
        machine: drill-1            # the machine it powers and measures
        type: tasmota               # tasmota | shelly1 | shelly2
        topic: tasmota_5A9AE8       # Tasmota %topic%, Shelly Gen1 device id, Shelly Gen2 prefix
        threshold_w: 150            # above this the motor counts as running
        hysteresis_w: 30            # optional: stopped below threshold - hysteresis (default 20 %)
        channel: 0                  # optional: which channel of a multi-channel meter
        reader: reader-drill-1      # the machine id the badge reader publishes under
        grace_s: 10                 # optional: interlock mismatch tolerated this long
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from crp_common.contract import ID_RE

# A mismatch between the plug's relay and the session is tolerated this long before an alert.
INTERLOCK_GRACE_S = 10.0
# Stopped below threshold * (1 - DEFAULT_HYSTERESIS) unless hysteresis_w is given.
DEFAULT_HYSTERESIS = 0.2
DEFAULT_TASMOTA_FULL_TOPIC = "%prefix%/%topic%/"

Id = Annotated[str, Field(pattern=ID_RE.pattern)]
# Device topics: one MQTT level for Tasmota %topic% and Shelly Gen1 ids; Gen2 prefixes may
# have several levels. Never wildcards.
DeviceTopic = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^#+\s]+$")]


class PlugType(StrEnum):
    TASMOTA = "tasmota"
    SHELLY1 = "shelly1"  # Shelly Gen1 (shellies/<id>/...)
    SHELLY2 = "shelly2"  # Shelly Gen2+ (Plus, Pro, Gen3: RPC over MQTT)


class PlugsConfigError(ValueError):
    pass


class PlugSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    machine: Id
    type: PlugType
    topic: DeviceTopic
    threshold_w: Annotated[float, Field(gt=0, le=100_000)]
    hysteresis_w: Annotated[float, Field(ge=0)] | None = None
    channel: Annotated[int, Field(ge=0, le=15)] | None = None
    reader: Id | None = None
    grace_s: Annotated[float, Field(gt=0, le=3600)] = INTERLOCK_GRACE_S

    @model_validator(mode="after")
    def _check(self) -> "PlugSpec":
        if self.hysteresis_w is not None and self.hysteresis_w >= self.threshold_w:
            raise ValueError("hysteresis_w must be smaller than threshold_w")
        if self.type != PlugType.SHELLY2 and "/" in self.topic:
            raise ValueError(f"a {self.type} topic is one MQTT level (no '/')")
        if self.reader is not None and self.reader == self.machine:
            raise ValueError("reader is the machine id the badge reader publishes under, not the plug's machine")
        return self

    @property
    def off_below_w(self) -> float:
        h = self.hysteresis_w if self.hysteresis_w is not None else self.threshold_w * DEFAULT_HYSTERESIS
        return self.threshold_w - h

    @property
    def ch(self) -> int:
        return self.channel or 0


class PlugsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tasmota_full_topic: str = DEFAULT_TASMOTA_FULL_TOPIC
    plugs: dict[Id, PlugSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "PlugsConfig":
        ft = self.tasmota_full_topic
        if "%prefix%" not in ft or "%topic%" not in ft or not ft.endswith("/") or "+" in ft or "#" in ft:
            raise ValueError("tasmota_full_topic must contain %prefix% and %topic% and end with '/'")
        seen_machine: dict[str, str] = {}
        seen_topic: dict[tuple[str, str], str] = {}
        readers: dict[str, str] = {}
        for pid, p in self.plugs.items():
            if p.machine in seen_machine:
                raise ValueError(f"machine {p.machine} has two plugs: {seen_machine[p.machine]} and {pid}")
            seen_machine[p.machine] = pid
            key = (str(p.type), p.topic)
            if key in seen_topic:
                raise ValueError(f"plugs {seen_topic[key]} and {pid} share the {p.type} topic {p.topic}")
            seen_topic[key] = pid
            if p.reader is not None:
                if p.reader in readers:
                    raise ValueError(f"reader {p.reader} serves two plugs: {readers[p.reader]} and {pid}")
                readers[p.reader] = pid
        for r, pid in readers.items():
            if r in seen_machine:
                raise ValueError(f"reader {r} of {pid} is itself a plug machine")
        gen2 = [p.topic for p in self.plugs.values() if p.type == PlugType.SHELLY2]
        for a in gen2:
            for b in gen2:
                if a != b and b.startswith(a + "/"):
                    raise ValueError(f"Shelly Gen2 prefixes overlap: {a} and {b}")
        return self

    def machine_plug(self, machine: str) -> str | None:
        return next((pid for pid, p in self.plugs.items() if p.machine == machine), None)

    def reader_machines(self) -> dict[str, str]:
        """reader machine id -> the plug machine whose badges it reads."""
        return {p.reader: p.machine for p in self.plugs.values() if p.reader is not None}


def _first_error(e: ValidationError) -> str:
    err = e.errors(include_url=False)[0]
    loc = ".".join(str(x) for x in err.get("loc", ())) or "file"
    return f"{loc}: {err.get('msg', 'invalid')}"


def plugs_from_data(data: Any) -> PlugsConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PlugsConfigError(f"the plug mapping must be an object, not {type(data).__name__}")
    try:
        return PlugsConfig.model_validate(data)
    except ValidationError as e:
        raise PlugsConfigError(_first_error(e)) from None


def load_plugs(path: str | Path) -> PlugsConfig:
    """Read and validate a plug mapping file (YAML, or JSON which YAML reads too)."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as e:
        raise PlugsConfigError(f"cannot read plug mapping {p}: {e}") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise PlugsConfigError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {str(e)[:200]}") from None
    try:
        return plugs_from_data(data)
    except PlugsConfigError as e:
        raise PlugsConfigError(f"{p}: {e}") from None


