"""Server settings from the environment (prefix ``CRP_``) and the shared ``.env`` file."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from crp_common.i18n import tr

# Unsafe defaults: fine for the demo, refused anywhere else (see check_secrets).
DEMO_SECRET_KEY = "demo-secret-change-me"
DEMO_ADMIN_TOKEN = "demo-admin-token-change-me"
# Outside demo mode a secret must be at least this long and not look like a placeholder.
MIN_SECRET_LENGTH = 16
PLACEHOLDER_PREFIXES = ("unsafe-placeholder", "change-me")


def is_weak_secret(value: str, default: str) -> bool:
    """The demo default, too short, or a placeholder left in a template."""
    v = value.strip()
    return (
        value == default
        or len(v) < MIN_SECRET_LENGTH
        or v.lower().startswith(PLACEHOLDER_PREFIXES)
    )


class InsecureSettingsError(RuntimeError):
    """The server must not start outside demo mode with a default secret."""


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRP_", env_file=".env", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        default="sqlite:///./crp.db",
        validation_alias=AliasChoices("CRP_DATABASE_URL", "DATABASE_URL", "database_url"),
    )
    demo_mode: bool = False
    # Periodic jobs (maintenance calendar, escalation, notifications) in the server process.
    background_jobs: bool = True
    secret_key: str = DEMO_SECRET_KEY
    # Legacy bearer token, accepted as a manager (the demo and the CLI use it); people log in
    # with POST /api/v1/auth/token instead (server/security).
    admin_token: str = DEMO_ADMIN_TOKEN
    # Lifetime of the access tokens issued at login (seconds).
    token_ttl_s: int = Field(default=900, ge=30, le=7 * 24 * 3600)
    default_site: str | None = None
    default_tz: str = "Africa/Dakar"

    def insecure_defaults(self) -> list[str]:
        """Names of the settings still at their unsafe demo default."""
        out = []
        if is_weak_secret(self.secret_key, DEMO_SECRET_KEY):
            out.append("CRP_SECRET_KEY")
        if is_weak_secret(self.admin_token, DEMO_ADMIN_TOKEN):
            out.append("CRP_ADMIN_TOKEN")
        return out

    def check_secrets(self, lang: str | None = None) -> None:
        """Raise :class:`InsecureSettingsError` outside demo mode when a secret is a default."""
        if self.demo_mode:
            return
        names = self.insecure_defaults()
        if names:
            raise InsecureSettingsError(
                tr("server.error.weak_secrets", lang, names=", ".join(names), min=MIN_SECRET_LENGTH)
            )
