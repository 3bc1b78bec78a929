"""Clocks. Production uses the system clock; the demo and tests run every process on one
accelerated clock, described by a string so separate processes agree on simulated time."""

from __future__ import annotations

import time
from dataclasses import dataclass


class Clock:
    speed: float = 1.0

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def now(self) -> float:  # UTC epoch seconds
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        time.sleep(max(0.0, seconds) / self.speed)

    def spec(self) -> str:
        raise NotImplementedError


class SystemClock(Clock):
    def now(self) -> float:
        return time.time()

    def spec(self) -> str:
        return "system"


@dataclass
class ScaledClock(Clock):
    """Simulated time: ``sim_origin + (real_now - real_origin) * speed``."""

    real_origin: float
    sim_origin: float
    speed: float = 1.0

    def now(self) -> float:
        return self.sim_origin + (time.time() - self.real_origin) * self.speed

    def spec(self) -> str:
        return f"scaled:{self.real_origin!r}:{self.sim_origin!r}:{self.speed!r}"

    def real_time_of(self, sim_t: float) -> float:
        return self.real_origin + (sim_t - self.sim_origin) / self.speed


def clock_from_spec(spec: str | None) -> Clock:
    """``system`` (or empty) or ``scaled:<real_origin>:<sim_origin>:<speed>``."""
    if not spec or spec == "system":
        return SystemClock()
    kind, *rest = spec.split(":")
    if kind != "scaled" or len(rest) != 3:
        raise ValueError(f"bad clock spec {spec!r}: use 'system' or 'scaled:REAL:SIM:SPEED'")
    real, sim, speed = (float(x) for x in rest)
    if speed <= 0:
        raise ValueError("clock speed must be positive")
    return ScaledClock(real, sim, speed)
