"""What a plug message says, firmware-neutral."""

from __future__ import annotations

from dataclasses import dataclass

from crp_common.contract import ContractError


class PlugError(ContractError):
    """A plug message the gateway refuses; ``reason`` is the dead-letter reason code:
    ``unknown_plug``, ``not_utf8``, ``not_json``, ``not_object``, ``missing_field``,
    ``bad_value``, ``multi_channel``, ``too_large``."""


@dataclass(frozen=True)
class PlugReading:
    """One fact reported by plug ``plug``. Only the fields the message carried are set."""

    plug: str
    online: bool | None = None
    relay: bool | None = None
    power_w: float | None = None
    energy_wh: float | None = None  # the plug's cumulative counter, in Wh
    amps: float | None = None
    volts: float | None = None
