"""Events as the gateway forwards them to the server (the uplink batch format).

An event is either a node message (``source`` = node id) or a fact the gateway decided
(``source`` = gateway id, kinds in :class:`GatewayKind`). ``(source, boot, seq)`` is unique
across the whole system, which makes every hop idempotent: the gateway's spool, the
forwarder's retries and the server's ingestion all deduplicate on it.

``t`` is the event time in UTC epoch milliseconds on the gateway's clock, the clock the system
trusts (see docs/protocol.md, "Whose clock"). ``skew_ms`` is node wall clock minus ``t`` when
the node sent a ``ts``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from .contract import ID_RE, MAX_U32, SITE_RE, Kind

# Events older than 2020 or later than 2100 are refused: they can only come from a broken clock.
MIN_T_MS = 1_577_836_800_000
MAX_T_MS = 4_102_444_800_000


class GatewayKind(StrEnum):
    DECISION = "decision"  # body: uid, artisan, result, reason, req{node,boot,seq}
    SESSION_OPEN = "session_open"  # body: session, artisan, uid, req{node,boot,seq}
    SESSION_CLOSE = "session_close"  # body: session, reason (EndReason)
    STATE = "state"  # body: state (MachineState), cause
    GATEWAY_START = "gateway_start"  # body: version, cache_version
    # body: cause (stable id, e.g. "condition:<rule id>" or "fault:estop"), kind ("condition" |
    # "fault"), state ("raised" | "cleared"), and metric/value/limit or code
    ALERT = "alert"


EVENT_KINDS = {k.value for k in Kind} | {k.value for k in GatewayKind}


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Annotated[str, Field(pattern=ID_RE.pattern)]
    boot: Annotated[int, Field(ge=0, le=MAX_U32)]
    seq: Annotated[int, Field(ge=0, le=MAX_U32)]
    kind: Annotated[str, Field(max_length=32)]
    site: Annotated[str, Field(pattern=SITE_RE.pattern)]
    machine: Annotated[str, Field(pattern=ID_RE.pattern)] | None = None
    t: Annotated[int, Field(ge=MIN_T_MS, le=MAX_T_MS)]
    body: dict[str, Any] = Field(default_factory=dict)
    skew_ms: int | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.source, self.boot, self.seq)


class IngestBatch(BaseModel):
    """POST /api/v1/ingest. Events are validated one by one so one bad event never blocks the
    rest: the server dead-letters it and reports it in ``rejected``."""

    model_config = ConfigDict(extra="forbid")

    gateway: Annotated[str, Field(pattern=ID_RE.pattern)]
    site: Annotated[str, Field(pattern=SITE_RE.pattern)]
    sent_at: int
    events: Annotated[list[dict[str, Any]], Field(max_length=5000)]


class Rejected(BaseModel):
    index: int
    reason: str


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejected] = Field(default_factory=list)
