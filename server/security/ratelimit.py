"""Login rate limit: too many failures for one username or from one address within a window
answer 429 with Retry-After. The pure rule is :func:`retry_after`; the failures are the rows of
``login_attempts`` (see :mod:`.login`)."""

from __future__ import annotations

import datetime as dt
from typing import Iterable

LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW_S = 300


def retry_after(failures: Iterable[dt.datetime], now: dt.datetime,
                max_failures: int = LOGIN_MAX_FAILURES, window_s: int = LOGIN_WINDOW_S) -> int | None:
    """Seconds until another attempt is allowed, or None if one is allowed now.

    Blocked while ``max_failures`` or more failures fall within the last ``window_s`` seconds;
    the block lifts when the oldest of them leaves the window."""
    start = now - dt.timedelta(seconds=window_s)
    recent = sorted(t for t in failures if start < t <= now)
    if len(recent) < max_failures:
        return None
    # The attempt is allowed again once only max_failures - 1 failures remain in the window.
    lifting = recent[len(recent) - max_failures]
    wait = (lifting + dt.timedelta(seconds=window_s) - now).total_seconds()
    return max(1, int(wait + 0.999))
