"""Event time on the gateway's clock, from the node's uptime.

Nodes have no battery-backed clock, so their wall clock (``ts``) is never trusted. Each node
message carries ``up``, its uptime in ms, which is monotonic within a boot. The gateway learns
the boot's *anchor* (gateway time at the node's uptime 0) from the first message of that boot:
``anchor = received_at - up``, and stamps every message ``t = anchor + up``. Durations inside a
boot are therefore exact, whatever the delivery delays; a message that the broker queued while
the gateway was away still gets the time it happened, not the time it was delivered.

If a later message shows the first one was delivered late (``received_at - up`` smaller by
more than ANCHOR_REFINE_MS), the anchor moves down to it; an uptime that jumps forward is
handled the same way, so no event is ever stamped more than ANCHOR_REFINE_MS in the future.
A message whose uptime runs backwards within a boot (with a higher seq) is refused and
dead-lettered as ``uptime_backwards``.
"""

from __future__ import annotations

from dataclasses import dataclass

ANCHOR_REFINE_MS = 30_000
UPTIME_BACKWARDS_TOLERANCE_MS = 2_000


class StampError(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Anchor:
    anchor_ms: int
    max_seq: int
    up_at_max_seq: int


class Stamper:
    def __init__(self) -> None:
        self.anchors: dict[tuple[str, int], Anchor] = {}
        self.dirty: set[tuple[str, int]] = set()

    def load(self, rows: list[tuple[str, int, int, int, int]]) -> None:
        for node, boot, anchor, max_seq, up in rows:
            self.anchors[(node, boot)] = Anchor(anchor, max_seq, up)

    def stamp(self, node: str, boot: int, seq: int, up: int | None, received_ms: int) -> int:
        if up is None:  # a Last Will: it happens when the broker notices, i.e. now
            return received_ms
        key = (node, boot)
        a = self.anchors.get(key)
        candidate = received_ms - up
        if a is None:
            a = self.anchors[key] = Anchor(candidate, seq, up)
            self.dirty.add(key)
            return candidate + up
        if seq > a.max_seq:
            if up + UPTIME_BACKWARDS_TOLERANCE_MS < a.up_at_max_seq:
                raise StampError("uptime_backwards", f"seq {seq} up {up} < {a.up_at_max_seq} at seq {a.max_seq}")
            a.max_seq, a.up_at_max_seq = seq, up
            self.dirty.add(key)
        if candidate < a.anchor_ms - ANCHOR_REFINE_MS:
            # Either the boot's first message reached us late, or the uptime jumped forward:
            # both ways the event cannot lie in the future, so the anchor moves down to it.
            a.anchor_ms = candidate
            self.dirty.add(key)
        return a.anchor_ms + up

    def take_dirty(self) -> list[tuple[str, int, int, int, int]]:
        rows = [(n, b, self.anchors[(n, b)].anchor_ms, self.anchors[(n, b)].max_seq,
                 self.anchors[(n, b)].up_at_max_seq) for (n, b) in self.dirty]
        self.dirty.clear()
        return rows
