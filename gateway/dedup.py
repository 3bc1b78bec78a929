"""Which node messages the gateway has already seen, before anything reaches the tracker.

Per node boot: the highest seq seen and the exact set of seqs seen within REPLAY_WINDOW below
it. A seq already in the set is a duplicate (QoS 1 redelivery, a node resending); a seq older
than the window is a replay (a sequence number that went backwards within its boot). Both are
counted and acknowledged, never ingested twice. Seq 0 is the boot's Last Will, tracked apart.
Memory stays bounded: at most REPLAY_WINDOW seqs per live boot."""

from __future__ import annotations

from typing import Iterable

REPLAY_WINDOW = 4096


class Seen:
    def __init__(self, window: int = REPLAY_WINDOW):
        self.window = window
        self.high: dict[tuple[str, int], int] = {}
        self.seqs: dict[tuple[str, int], set[int]] = {}
        self.wills: set[tuple[str, int]] = set()

    def check(self, node: str, boot: int, seq: int) -> str | None:
        """``None`` if new (and now recorded), else ``"duplicate"`` or ``"replay"``."""
        key = (node, boot)
        if seq == 0:
            if key in self.wills:
                return "duplicate"
            self.wills.add(key)
            return None
        high = self.high.get(key, 0)
        seen = self.seqs.setdefault(key, set())
        if seq <= high - self.window:
            return "replay"
        if seq in seen:
            return "duplicate"
        seen.add(seq)
        if seq > high:
            self.high[key] = seq
            if len(seen) > 2 * self.window:
                floor = seq - self.window
                self.seqs[key] = {s for s in seen if s > floor}
        return None

    def load(self, keys: Iterable[tuple[str, int, int]]) -> None:
        for node, boot, seq in keys:
            self.check(node, boot, seq)

    def forget_boots(self, keep: set[tuple[str, int]]) -> None:
        for key in [k for k in self.high if k not in keep]:
            self.high.pop(key, None)
            self.seqs.pop(key, None)
