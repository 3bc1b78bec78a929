"""Notifications to technicians: e-mail (SMTP), SMS (a provider's HTTP API), webhook (JSON
POST) and MQTT (``crp/v1/<site>/_tech/alerts`` for technicians' devices).

:func:`dispatch` sends the pending deliveries: each one on its own, so a failing channel never
blocks the others; a failure is recorded and retried with exponential backoff until
:data:`MAX_ATTEMPTS`. Text is in the technician's language (the site's for site-wide targets).
Channel settings come from the environment (``CRP_NOTIFY_*``), see :class:`NotifySettings`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import smtplib
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import or_, select
from sqlalchemy.orm import Session as DbSession

from crp_common.i18n import normalize_lang, tr

from ..models import Machine, Site
from ..timeutil import zone
from .models import Alert, NotificationDelivery, NotificationTarget, Technician
from .views import iso

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0
RETRY_BASE_S = 30.0  # first retry after this, then doubled
RETRY_MAX_S = 3600.0
MAX_ATTEMPTS = 8
DISPATCH_BATCH = 200
MQTT_TOPIC = "crp/v1/{site}/_tech/alerts"
MAX_ERROR_CHARS = 500


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRP_NOTIFY_", env_file=".env", extra="ignore")

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "crp@localhost"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    sms_url: str | None = None  # the provider adapter's endpoint (JSON POST)
    sms_token: str | None = None
    sms_sender: str = "CRP"
    webhook_secret: str | None = None  # signs webhook bodies (X-CRP-Signature: sha256=...)
    mqtt_host: str | None = None
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    mqtt_password: str | None = None


@dataclass
class Outgoing:
    """One message to one address."""

    channel: str
    address: str
    site: str
    lang: str
    subject: str
    text: str
    payload: dict[str, Any] = field(default_factory=dict)


class ChannelError(RuntimeError):
    pass


class Channel(Protocol):
    def send(self, msg: Outgoing) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- channels


class SmtpChannel:
    def __init__(self, host: str, port: int, sender: str, user: str | None = None, password: str | None = None,
                 starttls: bool = False, timeout: float = SEND_TIMEOUT_S):
        self.host, self.port, self.sender = host, port, sender
        self.user, self.password, self.starttls, self.timeout = user, password, starttls, timeout

    def send(self, msg: Outgoing) -> None:
        em = EmailMessage()
        em["From"] = self.sender
        em["To"] = msg.address
        em["Subject"] = msg.subject
        em["Content-Language"] = msg.lang
        em.set_content(msg.text)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as s:
            if self.starttls:
                s.starttls()
            if self.user:
                s.login(self.user, self.password or "")
            refused = s.send_message(em)
        if refused:
            raise ChannelError(f"refused: {refused}")

    def close(self) -> None:
        pass


class HttpSmsChannel:
    """A generic SMS provider adapter: POST ``{"to", "text", "sender"}`` as JSON with a bearer
    token; any 2xx is accepted. Providers with another shape get their own adapter."""

    def __init__(self, url: str, token: str | None = None, sender: str = "CRP", timeout: float = SEND_TIMEOUT_S):
        self.url, self.token, self.sender, self.timeout = url, token, sender, timeout

    def send(self, msg: Outgoing) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        r = httpx.post(self.url, json={"to": msg.address, "text": msg.text, "sender": self.sender},
                       headers=headers, timeout=self.timeout)
        if r.status_code // 100 != 2:
            raise ChannelError(f"SMS provider answered {r.status_code}: {r.text[:200]}")

    def close(self) -> None:
        pass


class WebhookChannel:
    def __init__(self, secret: str | None = None, timeout: float = SEND_TIMEOUT_S):
        self.secret, self.timeout = secret, timeout

    def send(self, msg: Outgoing) -> None:
        body = json.dumps({**msg.payload, "text": msg.text, "subject": msg.subject}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "X-CRP-Event": str(msg.payload.get("event", ""))}
        if self.secret:
            headers["X-CRP-Signature"] = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        r = httpx.post(msg.address, content=body, headers=headers, timeout=self.timeout)
        if r.status_code // 100 != 2:
            raise ChannelError(f"webhook answered {r.status_code}")

    def close(self) -> None:
        pass


class MqttChannel:
    """Publishes at QoS 1 to ``crp/v1/<site>/_tech/alerts``; one connection per dispatch pass."""

    def __init__(self, host: str, port: int = 1883, username: str | None = None, password: str | None = None,
                 timeout: float = SEND_TIMEOUT_S):
        self.host, self.port, self.username, self.password, self.timeout = host, port, username, password, timeout
        self._client: Any = None

    def _connect(self) -> Any:
        import paho.mqtt.client as mqtt

        if self._client is not None:
            return self._client
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        if self.username:
            c.username_pw_set(self.username, self.password)
        connected = threading.Event()
        refused: list[str] = []

        def on_connect(_c: Any, _ud: Any, _flags: Any, rc: Any, _props: Any = None) -> None:
            if rc.is_failure:
                refused.append(str(rc))
            connected.set()

        c.on_connect = on_connect
        c.connect(self.host, self.port, keepalive=30)
        c.loop_start()
        if not connected.wait(self.timeout) or refused:
            c.disconnect()
            c.loop_stop()
            raise ChannelError(f"MQTT connection refused: {refused[0]}" if refused else "MQTT connection timed out")
        self._client = c
        return c

    def send(self, msg: Outgoing) -> None:
        import paho.mqtt.client as mqtt

        c = self._connect()
        payload = json.dumps({**msg.payload, "to": msg.address or None, "text": msg.text}, ensure_ascii=False)
        info = c.publish(MQTT_TOPIC.format(site=msg.site), payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ChannelError(f"publish failed: {mqtt.error_string(info.rc)}")
        info.wait_for_publish(self.timeout)
        if not info.is_published():
            raise ChannelError("publish not acknowledged in time")

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None


def channels_from_settings(s: NotifySettings) -> dict[str, Channel]:
    out: dict[str, Channel] = {"webhook": WebhookChannel(s.webhook_secret)}
    if s.smtp_host:
        out["email"] = SmtpChannel(s.smtp_host, s.smtp_port, s.smtp_from, s.smtp_user, s.smtp_password, s.smtp_starttls)
    if s.sms_url:
        out["sms"] = HttpSmsChannel(s.sms_url, s.sms_token, s.sms_sender)
    if s.mqtt_host:
        out["mqtt"] = MqttChannel(s.mqtt_host, s.mqtt_port, s.mqtt_username, s.mqtt_password)
    return out


# --------------------------------------------------------------------------- messages


def _num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def render(alert: Alert, event: str, lang: str, machine_name: str, tz: dt.tzinfo, now: dt.datetime) -> tuple[str, str]:
    """Subject and text of the message for one alert event, in ``lang``."""
    d = alert.detail or {}
    name = machine_name or alert.machine
    params: dict[str, Any] = {"machine": name}
    if alert.kind == "fault":
        code = str(d.get("code", alert.cause.partition(":")[2]))
        params["code"] = tr(f"maint.fault.{code}", lang) if code in ("estop", "thermal", "overcurrent", "sensor", "other") else code
    elif alert.kind == "condition":
        metric = str(d.get("metric", ""))
        params.update(metric=tr(f"maint.metric.{metric}", lang) if metric else "", value=_num(d.get("value", "")),
                      limit=_num(d.get("limit", "")), minutes=_num(round(int(d.get("for_s") or 0) / 60, 1)))
    elif alert.kind == "offline":
        since = alert.raised_at
        if d.get("since") is not None:
            since = dt.datetime.fromtimestamp(int(d["since"]) / 1000, dt.timezone.utc)
        params["since"] = since.astimezone(tz).strftime("%d/%m %H:%M")
    else:
        unit = tr(f"maint.unit.{d.get('unit', 'h')}", lang)
        params.update(task=d.get("task", ""), left=f"{_num(round(float(d.get('left', 0)), 1))} {unit}",
                      late=f"{_num(round(-float(d.get('left', 0)), 1))} {unit}")
    text = tr(f"maint.msg.{alert.kind}", lang, **params)
    if alert.critical:
        text = f"{text} {tr('maint.msg.locked', lang)}"
    if event == "escalated":
        minutes = int((now - alert.raised_at).total_seconds() // 60)
        text = tr("maint.msg.escalated", lang, minutes=minutes, text=text)
    subject = tr("maint.notify.subject", lang, site=alert.site, kind=tr(f"maint.kind.{alert.kind}", lang), machine=name)
    return subject, text


def build_message(db: DbSession, d: NotificationDelivery, now: dt.datetime) -> Outgoing:
    alert = db.get(Alert, d.alert_id)
    target = db.get(NotificationTarget, d.target_id)
    if alert is None or target is None:
        raise ChannelError("alert or target gone")
    site = db.get(Site, alert.site)
    tech = db.get(Technician, target.technician_id) if target.technician_id is not None else None
    lang = normalize_lang(tech.lang if tech else (site.locale if site else None))
    machine = db.get(Machine, alert.machine)
    subject, text = render(alert, d.event, lang, machine.name if machine else alert.machine,
                           zone(site.tz if site else None), now)
    payload = {"v": 1, "alert": alert.id, "event": d.event, "site": alert.site, "machine": alert.machine,
               "kind": alert.kind, "cause": alert.cause, "state": alert.state, "critical": alert.critical,
               "raised_at": iso(alert.raised_at), "lang": lang}
    return Outgoing(d.channel, target.address, alert.site, lang, subject, text, payload)


# --------------------------------------------------------------------------- dispatch


def backoff_s(attempts: int) -> float:
    """Delay before the next attempt after ``attempts`` failed ones."""
    return min(RETRY_MAX_S, RETRY_BASE_S * (2 ** max(0, attempts - 1)))


@dataclass
class DispatchResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


def dispatch(db: DbSession, now: dt.datetime, channels: dict[str, Channel] | None = None,
             settings: NotifySettings | None = None) -> DispatchResult:
    """Send the deliveries that are due at ``now``. Commits after each delivery, so a message
    sent is recorded as sent before the next one is tried."""
    if channels is None:
        channels = channels_from_settings(settings or NotifySettings())
    due = db.scalars(
        select(NotificationDelivery)
        .where(NotificationDelivery.status == "pending",
               or_(NotificationDelivery.next_attempt_at.is_(None), NotificationDelivery.next_attempt_at <= now))
        .order_by(NotificationDelivery.id)
        .limit(DISPATCH_BATCH)
    ).all()
    result = DispatchResult()
    try:
        for d in due:
            try:
                msg = build_message(db, d, now)
                ch = channels.get(d.channel)
                if ch is None:
                    raise ChannelError(f"channel {d.channel} is not configured")
                ch.send(msg)
            except Exception as e:  # noqa: BLE001 - any failure of one channel is recorded, never fatal
                d.attempts += 1
                d.last_error = f"{type(e).__name__}: {e}"[:MAX_ERROR_CHARS]
                if d.attempts >= MAX_ATTEMPTS:
                    d.status = "failed"
                    d.next_attempt_at = None
                    result.failed += 1
                else:
                    d.next_attempt_at = now + dt.timedelta(seconds=backoff_s(d.attempts))
                    result.retrying += 1
                log.warning("notification %s (%s) failed: %s", d.id, d.channel, d.last_error)
            else:
                d.attempts += 1
                d.status = "sent"
                d.sent_at = now
                d.next_attempt_at = None
                d.last_error = None
                result.sent += 1
            db.commit()
    finally:
        for ch in channels.values():
            try:
                ch.close()
            except Exception:  # noqa: BLE001
                log.warning("closing a notification channel failed", exc_info=True)
    return result
