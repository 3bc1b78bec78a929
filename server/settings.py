"""Server settings from the environment (prefix ``CRP_``) and the shared ``.env`` file."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from crp_common.i18n import tr

# Unsafe defaults: fine for the demo, refused anywhere else (see check_secrets).
DEMO_SECRET_KEY = "demo-secret-change-me"
DEMO_ADMIN_TOKEN = "demo-admin-token-change-me"


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
    secret_key: str = DEMO_SECRET_KEY
    # Bearer token for the manager/registry endpoints until role-based auth lands.
    admin_token: str = DEMO_ADMIN_TOKEN
    default_site: str | None = None
    default_tz: str = "Africa/Dakar"

    def insecure_defaults(self) -> list[str]:
        """Names of the settings still at their unsafe demo default."""
        out = []
        if self.secret_key == DEMO_SECRET_KEY:
            out.append("CRP_SECRET_KEY")
        if self.admin_token == DEMO_ADMIN_TOKEN:
            out.append("CRP_ADMIN_TOKEN")
        return out

    def check_secrets(self, lang: str | None = None) -> None:
        """Raise :class:`InsecureSettingsError` outside demo mode when a secret is a default."""
        if self.demo_mode:
            return
        names = self.insecure_defaults()
        if names:
            raise InsecureSettingsError(tr("server.error.insecure_secrets", lang, names=", ".join(names)))
