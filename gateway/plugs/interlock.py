"""The power interlock, as a pure reconciliation: the plug's relay must follow the machine's
session (on while a session is open, off otherwise).

- When the wanted state changes (grant: on; session end, lock-out, fault: off) the gateway
  commands the plug at once.
- The plug's own report confirms it. While the reported relay differs from the wanted state the
  command is repeated every COMMAND_RETRY_S (someone pressed the plug's button, a command was
  lost), and once the mismatch has lasted the plug's ``grace_s`` an ``alert`` fact is raised
  (kind ``interlock``; cleared when the plug agrees again).
- An offline plug is not judged (its machine is offline and its sessions are closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COMMAND_RETRY_S = 5.0


@dataclass
class InterlockState:
    commanded: bool | None = None
    commanded_at: int = 0
    mismatch_since: int | None = None
    alerted: bool = False


def _onoff(v: bool | None) -> str | None:
    return None if v is None else ("on" if v else "off")


def reconcile(st: InterlockState, plug: str, want_on: bool, reported: bool | None, online: bool, now_ms: int,
              grace_s: float) -> tuple[bool | None, dict[str, Any] | None]:
    """Update ``st``; return ``(command to send or None, alert fact body or None)``."""
    command: bool | None = None
    if st.commanded != want_on:
        command = want_on
        st.commanded, st.commanded_at, st.mismatch_since = want_on, now_ms, None
    elif online and reported is not None and reported != want_on and now_ms - st.commanded_at >= COMMAND_RETRY_S * 1000:
        command = want_on
        st.commanded_at = now_ms
    alert: dict[str, Any] | None = None
    mismatch = online and reported is not None and reported != want_on
    if mismatch:
        if st.mismatch_since is None:
            st.mismatch_since = now_ms
        if not st.alerted and now_ms - st.mismatch_since >= grace_s * 1000:
            st.alerted = True
            alert = {"cause": f"interlock:{plug}", "kind": "interlock", "state": "raised", "plug": plug,
                     "expected": _onoff(want_on), "reported": _onoff(reported),
                     "since_ms": st.mismatch_since}
    else:
        st.mismatch_since = None
        if st.alerted:
            st.alerted = False
            alert = {"cause": f"interlock:{plug}", "kind": "interlock", "state": "cleared", "plug": plug,
                     "expected": _onoff(want_on), "reported": _onoff(reported)}
    return command, alert
