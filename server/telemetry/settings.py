"""Telemetry settings from the environment (``CRP_INFLUX_*``, shared ``.env`` with compose)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .spool import DEFAULT_MAX_POINTS


class InfluxSettings(BaseSettings):
    """``mode``: ``off`` (no telemetry), ``v1`` (InfluxDB 1.x ``/write``, e.g. on a 32-bit
    Raspberry Pi) or ``v2`` (InfluxDB 2.x/3.x write API through influxdb-client)."""

    model_config = SettingsConfigDict(env_prefix="CRP_INFLUX_", env_file=".env",
                                      env_file_encoding="utf-8", extra="ignore")

    mode: Literal["off", "v1", "v2"] = "off"
    url: str = "http://127.0.0.1:8086"
    # v1
    db: str = "crp"
    username: str = ""
    password: SecretStr = SecretStr("")
    retention_policy: str = ""
    # v2
    org: str = "crp"
    bucket: str = "crp"
    token: SecretStr = SecretStr("")
    # both
    spool: Path = Path("data/telemetry-spool.sqlite")
    spool_max_points: int = Field(DEFAULT_MAX_POINTS, ge=1)
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "InfluxSettings":
        if self.mode != "off" and not self.url.startswith(("http://", "https://")):
            raise ValueError("CRP_INFLUX_URL must start with http:// or https://")
        if self.mode == "v2" and not self.token.get_secret_value():
            raise ValueError("CRP_INFLUX_TOKEN is required when CRP_INFLUX_MODE=v2")
        if self.mode == "v1" and not self.db:
            raise ValueError("CRP_INFLUX_DB is required when CRP_INFLUX_MODE=v1")
        return self
