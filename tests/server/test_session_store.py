"""The sessions table equals the pure fold of all stored events, however the events arrive:
the same batch twice, shuffled, split across batches, late events."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import select

from crp_common.sessions import FoldEvent, derive_sessions
from server.api_keys import hash_api_key
from server.ingest import ingest_batch
from server.models import Gateway, Session, Site
from server.session_store import all_sessions_of, motor_since


T0 = int(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)  # a Monday
MIN = 60_000
MACHINES = (("bandsaw-1", "node-bs1"), ("lathe-1", "node-lt1"))
ARTISANS = ((1, "04A1B2C3"), (2, "04D4E5F6"), (3, "04112233445566"))
ENDINGS = ("tap_out", "idle", "handover", "power_loss", "lwt", "open")


def workshop_day(seed: int, make_events, sessions_per_machine: int = 6):
    """A random but reproducible day: sessions ended every possible way, motor runs (some
    crossing a session's end), heartbeats, reboots."""
    rng = random.Random(seed)
    ev = make_events()
    for machine, node in MACHINES:
        t = T0 + rng.randrange(0, 10) * MIN
        boot = rng.randrange(1, 50)
        sid = None
        for i in range(sessions_per_machine):
            artisan, uid = rng.choice(ARTISANS)
            new = ev.tap_in(machine, node, boot, uid, artisan, t)
            t += rng.randrange(1, 4) * MIN
            running = False
            for _ in range(rng.randrange(0, 4)):
                ev.node(machine, node, boot, "motor", t, running=True)
                running = True
                t += rng.randrange(1, 10) * MIN
                ev.node(machine, node, boot, "hb", t, relay=True, motor=True)
                t += rng.randrange(0, 5) * MIN
                if rng.random() < 0.8:
                    ev.node(machine, node, boot, "motor", t, running=False)
                    running = False
                    t += rng.randrange(1, 4) * MIN
            sid = new
            ending = rng.choice(ENDINGS if i < sessions_per_machine - 1 else ("tap_out", "open", "power_loss"))
            if ending in ("tap_out", "idle"):
                ev.close(machine, sid, ending, t)
                if running and rng.random() < 0.5:  # the motor runs on after the close
                    t += MIN
                    ev.node(machine, node, boot, "motor", t, running=False)
            elif ending == "power_loss":
                t += rng.randrange(5, 40) * MIN
                boot += 1
                ev.node(machine, node, boot, "status", t, state="online", up=1000, fw="1.2")
            elif ending == "lwt":
                t += MIN
                ev.node(machine, node, boot, "status", t, seq=0, state="offline")
                t += rng.randrange(5, 40) * MIN
                boot += 1
                ev.node(machine, node, boot, "status", t, state="online", up=1000)
            elif ending == "open":
                ev.node(machine, node, boot, "hb", t, relay=True, motor=running)
            # handover: the next tap_in opens without a close
            t += rng.randrange(1, 15) * MIN
    return ev


@pytest.fixture
def gw_db(db_session):
    db_session.add(Site(code="DKR", name="CRP Dakar", tz="Africa/Dakar"))
    db_session.flush()
    db_session.add(Gateway(id="gw-dkr", site="DKR", api_key_hash=hash_api_key("k")))
    db_session.commit()
    return db_session


def stored(db) -> list[tuple]:
    return [
        (s.id, s.machine, s.artisan, s.badge_uid, s.start_ms, s.end_ms, s.end_reason, s.run_ms, s.last_ms, s.open)
        for s in db.scalars(select(Session).order_by(Session.id))
    ]


def folded(db) -> list[tuple]:
    return sorted(
        (s.id, s.machine, s.artisan, s.uid, s.start_ms, s.end_ms, s.end_reason, s.run_ms, s.last_ms, s.open)
        for s in all_sessions_of(db)
    )


def feed(db, ev, chunks: list[list[dict]]) -> None:
    for chunk in chunks:
        result = ingest_batch(db, "gw-dkr", ev.ingest_batch(chunk))
        assert result.rejected == []
        db.commit()


def test_generated_day_covers_every_ending(gw_db, make_events):
    ev = workshop_day(7, make_events)
    feed(gw_db, ev, [ev.events])
    reasons = {row[6] for row in stored(gw_db)}
    assert {"tap_out", "handover", "power_loss"} <= reasons
    assert stored(gw_db) == folded(gw_db)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_order_and_batching_do_not_change_sessions(gw_db, make_events, seed):
    ev = workshop_day(seed, make_events)
    rng = random.Random(seed * 1000)
    shuffled = ev.events[:]
    rng.shuffle(shuffled)
    chunks, i = [], 0
    while i < len(shuffled):
        n = rng.randrange(1, 12)
        chunks.append(shuffled[i : i + n])
        i += n
    feed(gw_db, ev, chunks)
    got = stored(gw_db)
    assert got == folded(gw_db)
    assert len(got) == 2 * 6
    # the same events again, in order, in one batch: nothing changes
    feed(gw_db, ev, [ev.events])
    assert stored(gw_db) == got


def pure_fold(ev) -> list[tuple]:
    """The sessions straight from the generated events, without any database."""
    evs = [FoldEvent(e["t"], e["source"], e["boot"], e["seq"], e["kind"], e["machine"], e["body"]) for e in ev.events]
    return sorted(
        (s.id, s.machine, s.artisan, s.uid, s.start_ms, s.end_ms, s.end_reason, s.run_ms, s.last_ms, s.open)
        for s in derive_sessions(evs)
    )


@pytest.mark.parametrize("size", [1, 2, 5])
def test_in_order_small_batches_equal_the_pure_fold(gw_db, make_events, size):
    ev = workshop_day(11, make_events)
    feed(gw_db, ev, [ev.events[i : i + size] for i in range(0, len(ev.events), size)])
    assert stored(gw_db) == pure_fold(ev)


def test_motor_since_follows_the_fold_rules():
    def e(t, kind, boot=1, seq=None, **body):
        return FoldEvent(t=t, source="n", boot=boot, seq=seq if seq is not None else t, kind=kind, machine="m", body=body)

    assert motor_since([]) is None
    assert motor_since([e(1, "motor", running=True), e(2, "hb", relay=True, motor=True)]) == 1
    assert motor_since([e(1, "motor", running=True), e(3, "motor", running=True)]) == 1
    assert motor_since([e(1, "motor", running=True), e(2, "motor", running=False)]) is None
    assert motor_since([e(1, "motor", running=True), e(5, "status", boot=2, state="online")]) is None
    assert motor_since([e(1, "motor", running=True), e(5, "status", seq=0, state="offline")]) is None
