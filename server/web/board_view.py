"""What a machine's tile on the workshop board shows: a pure function of what the server
knows (the gateway's last state, the lock, the open session)."""

from __future__ import annotations

from dataclasses import dataclass

from crp_common.contract import MachineState

# state -> (colour class, icon name); the word comes from web.state.<state>
LOOKS = {
    MachineState.AVAILABLE.value: ("green", "check"),
    MachineState.IN_USE.value: ("blue", "person"),
    MachineState.MAINTENANCE.value: ("orange", "wrench"),
    MachineState.FAULT.value: ("red", "alert"),
    MachineState.OFFLINE.value: ("grey", "plug"),
}


@dataclass(frozen=True)
class Tile:
    machine: str
    name: str
    state: str
    colour: str
    icon: str
    who: str | None = None  # in use: the artisan
    since_ms: int | None = None  # in use: session start; otherwise the state's time
    reason: str | None = None  # maintenance: the lock reason


def short_name(full: str | None) -> str | None:
    """'Awa Diop' -> 'Awa D.': enough to find someone across the room, no more."""
    if not full:
        return None
    parts = full.split()
    if len(parts) == 1:
        return parts[0]
    return f"{parts[0]} {parts[-1][0]}."


def tile_state(last_state: str | None, locked: bool, session_open: bool, fault_alert: bool = False) -> str:
    """Fault first (the gateway said so, or a fault alert is not resolved yet: the machine is
    stopped), then use, then the lock, then what the gateway said; a machine the gateway never
    reported on is offline."""
    if last_state == MachineState.FAULT.value or fault_alert:
        return MachineState.FAULT.value
    if session_open or last_state == MachineState.IN_USE.value:
        return MachineState.IN_USE.value
    if locked or last_state == MachineState.MAINTENANCE.value:
        return MachineState.MAINTENANCE.value
    if last_state in LOOKS:
        return last_state
    return MachineState.OFFLINE.value


def make_tile(machine: str, name: str, last_state: str | None, state_ms: int | None, locked: bool,
              lock_reason: str | None, artisan_name: str | None, session_start_ms: int | None,
              fault_alert: bool = False) -> Tile:
    session_open = session_start_ms is not None
    state = tile_state(last_state, locked, session_open, fault_alert)
    colour, icon = LOOKS[state]
    in_use = state == MachineState.IN_USE.value
    return Tile(
        machine=machine, name=name, state=state, colour=colour, icon=icon,
        who=short_name(artisan_name) if in_use else None,
        since_ms=session_start_ms if in_use and session_open else state_ms,
        reason=lock_reason if state in (MachineState.MAINTENANCE.value, MachineState.FAULT.value) else None,
    )
