"""The board tile of a machine: a pure function of the gateway's last state, the lock, the
open session and unresolved fault alerts."""

from __future__ import annotations

import pytest

from server.web.board_view import make_tile, short_name, tile_state


@pytest.mark.parametrize("last, locked, session, fault, want", [
    (None, False, False, False, "offline"),
    ("available", False, False, False, "available"),
    ("offline", False, False, False, "offline"),
    ("in_use", False, False, False, "in_use"),
    ("available", False, True, False, "in_use"),  # the session is there before the state event
    ("available", True, False, False, "maintenance"),
    ("maintenance", False, False, False, "maintenance"),
    ("in_use", True, True, False, "in_use"),  # locked during use: still in use until it ends
    ("fault", True, True, False, "fault"),
    ("available", True, False, True, "fault"),  # a fault alert not resolved yet
    ("bogus", False, False, False, "offline"),
])
def test_tile_state(last, locked, session, fault, want):
    assert tile_state(last, locked, session, fault) == want


def test_in_use_tile_says_who_and_since_when():
    t = make_tile("saw-1", "Scie", "in_use", 5_000, False, None, "Awa Diop Ndiaye", 1_000)
    assert (t.state, t.colour, t.icon, t.who, t.since_ms, t.reason) == ("in_use", "blue", "person", "Awa N.", 1_000,
                                                                        None)


def test_maintenance_tile_gives_the_reason_and_no_name():
    t = make_tile("saw-1", "Scie", "available", 5_000, True, "manual: courroie", "Awa Diop", None)
    assert (t.state, t.colour, t.who, t.reason, t.since_ms) == ("maintenance", "orange", None, "manual: courroie",
                                                                5_000)


def test_short_name():
    assert short_name("Awa Diop") == "Awa D."
    assert short_name("Mamadou") == "Mamadou"
    assert short_name("") is None and short_name(None) is None
