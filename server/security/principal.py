"""Who is calling: a person (user token), the legacy admin token, or a gateway (API key)."""

from __future__ import annotations

from dataclasses import dataclass

MANAGER = "manager"
TECHNICIAN = "technician"
ARTISAN = "artisan"
GATEWAY = "gateway"
HUMAN_ROLES = (MANAGER, TECHNICIAN, ARTISAN)
ALL_ROLES = (*HUMAN_ROLES, GATEWAY)
ADMIN_TOKEN_ACTOR = "admin-token"


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" | "admin-token" | "gateway" | "system"
    name: str  # username, "admin-token", gateway id
    role: str  # manager | technician | artisan | gateway
    user_id: int | None = None
    artisan_id: int | None = None
    site: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        if self.kind == "gateway":
            return f"gateway:{self.name}"
        return self.name


ADMIN = Principal(kind="admin-token", name=ADMIN_TOKEN_ACTOR, role=MANAGER)
SYSTEM = Principal(kind="system", name="system", role="system")
