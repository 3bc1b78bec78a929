"""``simulation``: simulated workshop-days per minute of real time.

A generated day (``firmware_sim.scenario.generate_day``, fixed date and seed) is played by the
simulator's nodes through a private Mosquitto to the gateway process, which decides every
badge from its cached snapshot; all share one accelerated clock. Each speed is played once;
a run counts as correct when every tap got its answer and every decision was the expected one.
The headline is the fastest correct run."""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from crp_common.clock import ScaledClock

from .figures import Figure
from .harness import GatewayProcess, seed_spool, start_broker, unused_url

BENCH_DATE = dt.date(2026, 3, 10)
SEED = 7
CLOCK_LEAD_REAL_S = 4.0  # real seconds to start the gateway before the clock reaches its origin
CLOCK_LEAD_SIM_S = 60.0  # simulated seconds between the clock's origin and the opening
# The gateway drops a badge request older than CRP_BADGE_MAX_AGE_S (default 10 s) on ITS clock:
# at x720 that is 14 ms of real time, less than a busy player thread's lag, so taps would go
# unanswered. A node's patience is real time (the simulator waits DECISION_TIMEOUT_S real
# seconds), so the benchmark gives the gateway that patience in simulated seconds.
NODE_PATIENCE_REAL_S = 5.0
MAX_LATE_S = 120.0  # simulated seconds a player may lag behind and still count as correct
QUICK_PLAY_S = 4 * 3600.0  # --quick plays the first hours of the day and scales the rate to a day


def play_day(speed: float, workdir: Path, seed: int = SEED, date: dt.date = BENCH_DATE,
             play_s: float | None = None) -> dict:
    """Play the day (or its first ``play_s`` simulated seconds) at ``speed``; days per minute
    is the share of the day played per real minute."""
    from firmware_sim.runner import run_scenario
    from firmware_sim.scenario import day_bounds, generate_day
    from firmware_sim.workshop import load_workshop

    ws = load_workshop().without_plugs()  # the figure stays comparable: custom nodes only
    actions = generate_day(ws, date, seed)
    open_ts, _ = day_bounds(date, ws.site.tz)
    day_start = open_ts - CLOCK_LEAD_SIM_S
    until = None
    if play_s is not None:
        until = open_ts + play_s
        actions = [a for a in actions if a.at <= until]
    env = start_broker(workdir / "broker")
    try:
        clock = ScaledClock(real_origin=time.time() + CLOCK_LEAD_REAL_S, sim_origin=open_ts - CLOCK_LEAD_SIM_S,
                            speed=speed)
        gw = GatewayProcess(env, workdir, unused_url(), gateway_id="gw-sim", clock_spec=clock.spec(),
                            extra_env={"CRP_BADGE_MAX_AGE_S": str(NODE_PATIENCE_REAL_S * speed)})
        seed_spool(gw.data_dir, ws.snapshot(version="bench").model_dump_json())
        with gw:
            user, password = env.creds("sim")
            report = run_scenario(actions, ws, env.host, env.port, user, password, clock, workdir / "nodes",
                                  until=until)
            real_s = time.time() - clock.real_origin
            full_day_s = _day_length(generate_day(ws, date, seed), ws, day_start)
    finally:
        env.broker.stop()
    sim_s = real_s * speed
    share = min(1.0, sim_s / full_day_s)
    correct = report.timeouts == 0 and not report.mismatches and report.max_late_s <= MAX_LATE_S
    return {"speed": speed, "real_s": real_s, "sim_s": sim_s, "days_per_min": 60.0 * share / real_s, "day_share": share, "taps": report.taps,
            "timeouts": report.timeouts, "mismatches": len(report.mismatches), "messages": report.messages,
            "max_late_s": report.max_late_s, "correct": correct}


def _day_length(actions: list, ws: object, day_start: float) -> float:
    """Simulated seconds a whole day takes to play (as run_scenario plays it by default)."""
    from firmware_sim.runner import END_TAIL_S
    from firmware_sim.scenario import Op

    ends = [a.at + (ws.idle_timeout_s(a.machine) if a.op == Op.WALK_AWAY and a.machine else 0)  # type: ignore[attr-defined]
            for a in actions]
    return max(ends, default=day_start) + END_TAIL_S - day_start


def bench_simulation(speeds: tuple[float, ...] = (720.0, 1440.0, 2880.0), quick: bool = False,
                     workdir: Path | None = None) -> tuple[list[Figure], dict]:
    runs = []
    for speed in speeds:
        with tempfile.TemporaryDirectory(prefix="bench-sim-", dir=workdir) as tmp:
            runs.append(play_day(speed, Path(tmp), play_s=QUICK_PLAY_S if quick else None))
    figs = []
    for r in runs:
        figs.append(Figure(
            "simulation", f"workshop-days per minute at x{r['speed']:g}", r["days_per_min"], "days/min",
            reference=f"{r['day_share']:.0%} of a day in {r['real_s']:.0f} s real",
            note=(f"{'correct' if r['correct'] else 'NOT correct'}: {r['taps']} taps, {r['timeouts']} unanswered, "
                  f"{r['mismatches']} unexpected decisions, players late up to {r['max_late_s']:.0f} sim s, "
                  f"{r['messages']:,} msgs")))
    return figs, {"runs": runs}
