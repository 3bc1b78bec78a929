"""Notifications against real receivers: an aiosmtpd SMTP server, a local HTTP receiver (SMS
provider and webhook) and the private Mosquitto; exactly one message per target per alert
event, in the technician's language, and a failing channel never blocks the others."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from crp_cli.broker import free_port
from server.maintenance import notify
from server.maintenance.models import NotificationDelivery
from server.maintenance.notify import NotifySettings, channels_from_settings, dispatch

T0 = int(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)
NOW = dt.datetime(2026, 3, 2, 8, 5, tzinfo=dt.timezone.utc)
MQTT_WAIT_S = 10.0
TOPIC = "crp/v1/DKR/_tech/alerts"


def ok(r) -> Any:
    assert r.status_code in (200, 201, 204), r.text
    return r.json() if r.content else None


# --------------------------------------------------------------------------- receivers


class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.rcpt: list[list[str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802 - aiosmtpd API
        self.rcpt.append(list(envelope.rcpt_tos))
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content,
                                                      policy=email.policy.default))
        return "250 OK"


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    ctl = Controller(sink, hostname="127.0.0.1", port=free_port())
    ctl.start()
    yield ctl.hostname, ctl.port, sink
    ctl.stop()


class HttpReceiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.status: dict[str, int] = {}
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recv.requests.append((self.path, dict(self.headers), json.loads(body)))
                code = recv.status.get(self.path, 200)
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def on(self, path: str) -> list[tuple[str, dict[str, str], Any]]:
        return [r for r in self.requests if r[0] == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_receiver():
    r = HttpReceiver()
    yield r
    r.stop()


class MqttListener:
    def __init__(self, broker, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[dict] = []
        self.got = threading.Event()
        subscribed = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        c.username_pw_set(*broker.creds("observer"))
        c.on_connect = lambda cl, *_: cl.subscribe(topic, qos=1)
        c.on_subscribe = lambda *_: subscribed.set()

        def on_message(_c, _ud, msg) -> None:
            self.messages.append(json.loads(msg.payload))
            self.got.set()

        c.on_message = on_message
        c.connect(broker.host, broker.port)
        c.loop_start()
        assert subscribed.wait(MQTT_WAIT_S), "could not subscribe to the test broker"
        self.client = c

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def settings_for(smtp=None, http=None, broker=None) -> NotifySettings:
    kw: dict[str, Any] = {}
    if smtp:
        kw.update(smtp_host=smtp[0], smtp_port=smtp[1], smtp_from="crp@example.org")
    if http:
        kw.update(sms_url=f"{http.url}/sms", sms_token="test-token")
    if broker:
        user, pw = broker.creds("gateway")
        kw.update(mqtt_host=broker.host, mqtt_port=broker.port, mqtt_username=user, mqtt_password=pw)
    return NotifySettings(_env_file=None, **kw)


def raise_fault(api, workshop, events, code: str = "thermal", machine="bandsaw-1", node="node-bs1") -> dict:
    events.node(machine, node, 1, "fault", T0, code=code, active=True)
    r = api.post("/api/v1/ingest", json=events.batch(), headers={"X-API-Key": workshop.api_key})
    assert r.status_code == 200, r.text
    events.events.clear()
    (a,) = [a for a in ok(api.get("/api/v1/alerts")) if a["machine"] == machine]
    return a


def targets(api, http, webhook_url=None) -> dict:
    fr = ok(api.post("/api/v1/technicians", json={"site": "DKR", "name": "Ibrahima Fall", "lang": "fr"}))
    en = ok(api.post("/api/v1/technicians", json={"site": "DKR", "name": "John Mensah", "lang": "en"}))
    t = {}
    for key, body in {
        "email_fr": {"technician_id": fr["id"], "channel": "email", "address": "ibrahima@example.org"},
        "email_en": {"technician_id": en["id"], "channel": "email", "address": "john@example.org"},
        "sms": {"technician_id": fr["id"], "channel": "sms", "address": "+221770000001"},
        "webhook": {"site": "DKR", "channel": "webhook", "address": webhook_url or f"{http.url}/hook"},
        "mqtt": {"technician_id": fr["id"], "channel": "mqtt", "address": "tablet-1"},
    }.items():
        t[key] = ok(api.post("/api/v1/notification-targets", json=body))
    return t


def test_exactly_one_notification_per_channel_per_alert(api, workshop, events, sm, smtp_server, http_receiver, mosquitto):
    targets(api, http_receiver)
    alert = raise_fault(api, workshop, events)
    listener = MqttListener(mosquitto, TOPIC)
    try:
        with sm() as db:
            r = dispatch(db, NOW, channels_from_settings(settings_for(smtp_server, http_receiver, mosquitto)))
        assert (r.sent, r.retrying, r.failed) == (5, 0, 0)
        assert listener.got.wait(MQTT_WAIT_S)
        # a second pass sends nothing again
        with sm() as db:
            again = dispatch(db, NOW + dt.timedelta(hours=1), channels_from_settings(settings_for(smtp_server, http_receiver, mosquitto)))
        assert (again.sent, again.retrying, again.failed) == (0, 0, 0)
    finally:
        listener.stop()

    _, _, sink = smtp_server
    by_rcpt = {rc[0]: m for rc, m in zip(sink.rcpt, sink.messages)}
    assert sorted(by_rcpt) == ["ibrahima@example.org", "john@example.org"]
    fr, en = by_rcpt["ibrahima@example.org"], by_rcpt["john@example.org"]
    assert fr["Subject"] == "[CRP DKR] Défaut : Scie 1"
    assert "déclenchement thermique" in fr.get_content() and "bloquée pour maintenance" in fr.get_content()
    assert en["Subject"] == "[CRP DKR] Fault: Scie 1"
    assert "thermal trip" in en.get_content() and "locked for maintenance" in en.get_content()

    (sms,) = http_receiver.on("/sms")
    assert sms[1]["Authorization"] == "Bearer test-token"
    assert sms[2] == {"to": "+221770000001", "text": "Scie 1 : déclenchement thermique Machine bloquée pour maintenance.",
                      "sender": "CRP"}
    (hook,) = http_receiver.on("/hook")
    assert hook[1]["X-CRP-Event"] == "raised"
    assert {k: hook[2][k] for k in ("alert", "machine", "kind", "cause", "event", "lang")} == {
        "alert": alert["id"], "machine": "bandsaw-1", "kind": "fault", "cause": "fault:thermal", "event": "raised",
        "lang": "fr"}
    assert [(m["alert"], m["to"], m["event"]) for m in listener.messages] == [(alert["id"], "tablet-1", "raised")]

    summary = ok(api.get("/api/v1/maintenance/summary"))
    assert summary == {"alerts": {"fault": 1}, "notifications": {"email": 2, "mqtt": 1, "sms": 1, "webhook": 1}}
    sent = ok(api.get("/api/v1/notifications", params={"status": "sent"}))
    assert len(sent) == 5 and all(d["attempts"] == 1 for d in sent)


def test_failing_channel_does_not_block_others_and_is_retried(api, workshop, events, sm, smtp_server, http_receiver):
    dead_url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    t = targets(api, http_receiver, webhook_url=dead_url)
    ok(api.patch(f"/api/v1/notification-targets/{t['mqtt']['id']}", json={"enabled": False}))
    http_receiver.status["/sms"] = 503
    raise_fault(api, workshop, events)
    chans = lambda: channels_from_settings(settings_for(smtp_server, http_receiver))  # noqa: E731

    with sm() as db:
        r = dispatch(db, NOW, chans())
    assert (r.sent, r.retrying, r.failed) == (2, 2, 0)
    assert len(smtp_server[2].messages) == 2  # e-mail went out although SMS and webhook failed

    def state(channel: str) -> NotificationDelivery:
        with sm() as db:
            return db.scalar(select(NotificationDelivery).where(NotificationDelivery.channel == channel))

    sms = state("sms")
    assert (sms.status, sms.attempts) == ("pending", 1) and "503" in sms.last_error
    assert sms.next_attempt_at == NOW + dt.timedelta(seconds=notify.RETRY_BASE_S)
    # not due yet: nothing is tried
    with sm() as db:
        r = dispatch(db, NOW + dt.timedelta(seconds=notify.RETRY_BASE_S - 1), chans())
    assert (r.sent, r.retrying) == (0, 0) and len(http_receiver.on("/sms")) == 1
    # the provider is back: the retry goes out, once
    http_receiver.status["/sms"] = 200
    with sm() as db:
        r = dispatch(db, NOW + dt.timedelta(seconds=notify.RETRY_BASE_S), chans())
    assert (r.sent, r.retrying) == (1, 1)
    sms = state("sms")
    assert (sms.status, sms.attempts, sms.last_error) == ("sent", 2, None)
    assert len(http_receiver.on("/sms")) == 2
    # the webhook keeps failing with a growing delay until it is given up
    now = NOW + dt.timedelta(seconds=notify.RETRY_BASE_S)
    for _ in range(notify.MAX_ATTEMPTS - 2):
        now += dt.timedelta(seconds=notify.RETRY_MAX_S)
        with sm() as db:
            dispatch(db, now, chans())
    hook = state("webhook")
    assert (hook.status, hook.attempts) == ("failed", notify.MAX_ATTEMPTS)
    assert "Connect" in hook.last_error
    assert len(smtp_server[2].messages) == 2  # never sent twice


def test_unconfigured_channel_is_recorded_not_fatal(api, workshop, events, sm, http_receiver):
    targets(api, http_receiver)
    raise_fault(api, workshop, events)
    with sm() as db:
        r = dispatch(db, NOW, channels_from_settings(NotifySettings(_env_file=None)))  # only webhook configured
    assert (r.sent, r.retrying) == (1, 4)
    with sm() as db:
        errors = {d.channel: d.last_error for d in db.scalars(select(NotificationDelivery)) if d.status == "pending"}
    assert errors["mqtt"] == "ChannelError: channel mqtt is not configured"


def test_backoff_grows_and_is_capped():
    assert [notify.backoff_s(n) for n in (1, 2, 3)] == [notify.RETRY_BASE_S, 2 * notify.RETRY_BASE_S, 4 * notify.RETRY_BASE_S]
    assert notify.backoff_s(50) == notify.RETRY_MAX_S
