"""The authorization snapshot the server hands to each gateway.

The gateway persists it on disk and decides every badge from it, so the workshop keeps working
while the server is unreachable. ``version`` changes whenever the content changes.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_IDLE_TIMEOUT_S = 600


class SnapSite(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: str
    name: str = ""
    tz: str = "Africa/Dakar"
    currency: str = "XOF"
    locale: str = "fr"


class SnapCondition(BaseModel):
    """A condition on telemetry the gateway watches: ``metric`` above ``above`` for ``for_s``
    seconds raises an alert (and locks the machine when ``critical``)."""

    model_config = ConfigDict(extra="ignore")
    id: str  # stable id of the rule (e.g. the plan id on the server)
    metric: Literal["temp", "vib", "current"]
    above: float
    for_s: int = Field(default=0, ge=0, le=24 * 3600)
    critical: bool = False


class SnapMachine(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    type: str
    node: str | None = None
    name: str = ""
    locked: bool = False  # under maintenance: badges refused with machine_locked
    lock_reason: str | None = None
    idle_timeout_s: int = Field(default=DEFAULT_IDLE_TIMEOUT_S, ge=30, le=24 * 3600)
    conditions: list[SnapCondition] = Field(default_factory=list)


class SnapBadge(BaseModel):
    model_config = ConfigDict(extra="ignore")
    uid: str
    artisan: int
    status: Literal["active", "revoked"] = "active"


class SnapQualification(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    expires: dt.date | None = None


class SnapArtisan(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    name: str
    status: Literal["active", "suspended"] = "active"
    member: bool = True
    # Prepaid credit exhausted or balance over the limit: badge refused with credit_limit.
    credit_blocked: bool = False
    qualifications: list[SnapQualification] = Field(default_factory=list)


class Snapshot(BaseModel):
    model_config = ConfigDict(extra="ignore")
    version: str
    generated_at: int = 0  # UTC epoch ms, server clock
    site: SnapSite
    machines: list[SnapMachine] = Field(default_factory=list)
    badges: list[SnapBadge] = Field(default_factory=list)
    artisans: list[SnapArtisan] = Field(default_factory=list)
