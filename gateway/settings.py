"""Gateway settings, from the environment (prefix CRP_) and the shared `.env`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_MQTT_PASSWORD = "demo-gateway-password-change-me"
DEMO_API_KEY = "demo-gateway-key-change-me"


class InsecureDefaults(RuntimeError):
    pass


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRP_", env_file=".env", extra="ignore")

    gateway_id: str = "gw-dkr-1"
    site: str = "DKR"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str = "gw-dkr-1"
    mqtt_password: str = DEMO_MQTT_PASSWORD
    server_url: str = "http://127.0.0.1:8000"
    gateway_api_key: str = DEMO_API_KEY
    data_dir: Path = Path("./gateway-data")
    clock: str = "system"
    demo_mode: bool = False
    # Used until the first snapshot tells the site's own language and time zone.
    lang: str = "fr"
    tz: str = "Africa/Dakar"
    snapshot_interval_s: float = Field(default=60.0, gt=0)
    # Metering plugs (Tasmota, Shelly) as machine sensors and interlocks: a YAML or JSON mapping
    # file, see docs/plugs.md. None: no plugs.
    plugs_file: Path | None = None
    # A badge request older than this (gateway clock) when the gateway gets to it is not
    # decided: the node has given up waiting (after 3 s) and shows "try again". Deciding it
    # late would open a session on a machine whose relay stayed off.
    badge_max_age_s: float = Field(default=10.0, gt=0)
    # A node silent this long (heartbeats every 60 s) is offline; its session ends at its last
    # sign of life.
    offline_after_s: float = Field(default=150.0, gt=0)

    def check_secrets(self) -> None:
        """Outside demo mode, refuse to run with the published demo secrets."""
        if self.demo_mode:
            return
        bad = [n for n, v, d in (("CRP_MQTT_PASSWORD", self.mqtt_password, DEMO_MQTT_PASSWORD),
                                 ("CRP_GATEWAY_API_KEY", self.gateway_api_key, DEMO_API_KEY))
               if not v or v == d or len(v) < 16 or v.startswith(("unsafe-placeholder", "change-me"))]
        if bad:
            raise InsecureDefaults(
                f"refusing to start: {', '.join(bad)} is a demo default, a placeholder or shorter than 16 "
                "characters; set a real secret "
                "in the environment or .env (or CRP_DEMO_MODE=true for a demo)")
