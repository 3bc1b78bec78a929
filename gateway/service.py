"""The workshop gateway: MQTT in, decisions out, everything spooled and forwarded exactly once.

Threads:
- paho's network thread runs :meth:`Gateway._on_message`: validate, time-stamp, decide (badge
  requests are answered from the in-memory authorization index before anything touches the
  disk), then hand the records to the writer;
- the writer commits records in batches (one transaction each) and only then acknowledges the
  QoS 1 messages to the broker (paho manual ack): a crash before the commit means the broker
  delivers them again, a crash after means they are already on disk;
- the forwarder posts pending events to the server in batches, with backoff, and marks them
  forwarded on acknowledgement; the server deduplicates on ``(source, boot, seq)``;
- the syncer fetches the authorization snapshot and keeps the last one on disk;
- the ticker runs idle timeouts, silent-node detection and lock-outs.
"""

from __future__ import annotations

import gzip
import json
import logging
import queue
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import paho.mqtt.client as mqtt

from crp_common.clock import Clock, clock_from_spec
from crp_common.contract import (
    DOWNLINK, UPLINK, CommandMsg, ContractError, DecisionMsg, Kind, body_of, decode_uplink, encode,
    TOPIC_ROOT, gateway_status_topic, topic, uplink_filter,
)
from crp_common.events import GatewayKind
from crp_common.rules import AuthIndex
from crp_common.snapshot import Snapshot

from .dedup import Seen
from .fastdecode import FastDecoder
from .mqttio import GatewayClient
from .settings import GatewaySettings
from .spool import SPOOL_RETENTION_MS, Spool, dumps
from .stamping import Stamper, StampError
from .tracker import DISCONNECTED, Fact, Output, Tracker
from .plugs.bridge import SPOOL_KEY as PLUGS_SPOOL_KEY
from .plugs.bridge import PlugBridge
from .plugs.mapping import load_plugs
from .plugs.topics import Route

log = logging.getLogger("crp.gateway")

WRITE_BATCH_MAX = 2000
WRITE_WAIT_S = 0.02
FORWARD_BATCH = 1000
FORWARD_IDLE_S = 0.5
FORWARD_RETRY_INITIAL_S = 0.5
FORWARD_RETRY_MAX_S = 60.0
FORWARD_GZIP_LEVEL = 6
HTTP_TIMEOUT_S = 10.0
TICK_S = 0.2
CHECKPOINT_EVERY_S = 2.0
SNAPSHOT_RETRY_S = 5.0
PRUNE_EVERY_S = 3600.0
STATUS_EVERY_S = 1.0
KEEPALIVE_S = 30
RECONNECT_MAX_S = 10

# Subscriptions are data: (topic filter template, QoS).
SUBSCRIPTIONS: tuple[tuple[str, int], ...] = (("{uplink}", 1),)


@dataclass
class _Batch:
    events: list[tuple] = field(default_factory=list)
    dead: list[tuple] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    checkpoint: str | None = None


class Gateway:
    def __init__(self, settings: GatewaySettings, clock: Clock | None = None):
        self.s = settings
        self.clock = clock or clock_from_spec(settings.clock)
        self.site = settings.site
        self.id = settings.gateway_id
        self.spool = Spool(settings.data_dir / "gateway.db")
        self.boot = self.spool.next_boot()
        self.seq = 0
        self.lock = threading.RLock()
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.server_reachable: bool | None = None
        self._outage_logged = False

        self.stamper = Stamper()
        self.fast = FastDecoder()
        self.stamper.load(self.spool.anchors())
        auth, tz, lang = None, settings.tz, settings.lang
        raw = self.spool.get("snapshot")
        if raw:
            snap = Snapshot.model_validate_json(raw)
            auth, tz, lang = AuthIndex.of(snap), snap.site.tz, snap.site.locale
        self.snapshot_etag = self.spool.get("snapshot_etag")
        self.tracker = Tracker(auth, tz=tz, lang=lang)
        self.tracker.offline_after_ms = int(settings.offline_after_s * 1000)
        # Metering plugs (docs/plugs.md): their own topics, routed before the node contract.
        self.plugs: PlugBridge | None = None
        if settings.plugs_file is not None:
            self.plugs = PlugBridge(load_plugs(settings.plugs_file), self.id)
            raw_plugs = self.spool.get(PLUGS_SPOOL_KEY)
            if raw_plugs:
                self.plugs.load(json.loads(raw_plugs))
            self.tracker.presence_by_lwt |= set(self.plugs.machines)
        self._restore()

        self.client = GatewayClient(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"crp-{self.id}", clean_session=False,
            protocol=mqtt.MQTTv311, manual_ack=True,
        )
        self.client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        self.client.will_set(gateway_status_topic(self.site, self.id),
                             json.dumps({"v": 1, "state": "offline"}), qos=1, retain=True)
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.enable_logger(logging.getLogger("crp.gateway.mqtt"))
        self.http = httpx.Client(base_url=settings.server_url, timeout=HTTP_TIMEOUT_S,
                                 headers={"X-API-Key": settings.gateway_api_key})

    # ------------------------------------------------------------------ restore

    def _restore(self) -> None:
        """Rebuild the tracker: last checkpoint, then replay the spool rows written after it."""
        upto = 0
        raw = self.spool.get("checkpoint")
        if raw:
            self.tracker.load(json.loads(raw))
            upto = int(self.spool.get("checkpoint_upto") or 0)
        replayed = 0
        for _id, source, boot, seq, kind, machine, t, body in self.spool.rows_after(upto):
            b = json.loads(body)
            if kind in UPLINK:
                self.tracker.observe(kind, machine, source, boot, b, t)
            else:
                self.tracker.apply(Fact(kind, machine, t, b))
            replayed += 1
        self.seen = Seen()
        self.seen.load(self.spool.recent_node_keys())
        log.info("gateway %s boot %d: restored state (checkpoint row %d, %d replayed)", self.id, self.boot,
                 upto, replayed)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "Gateway":
        self.s.data_dir.mkdir(parents=True, exist_ok=True)
        with self.lock:
            self._record(Output(facts=[Fact(GatewayKind.GATEWAY_START, None, self.clock.now_ms(),
                                            {"version": "1", "cache_version": self.tracker.auth.version
                                             if self.tracker.auth else None})]))
        for name, target in (("writer", self._writer), ("forwarder", self._forwarder),
                             ("syncer", self._syncer), ("ticker", self._ticker)):
            th = threading.Thread(target=target, name=f"gw-{name}", daemon=True)
            th.start()
            self.threads.append(th)
        self.client.connect_async(self.s.mqtt_host, self.s.mqtt_port, keepalive=KEEPALIVE_S)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        try:
            self.client.publish(gateway_status_topic(self.site, self.id),
                                json.dumps({"v": 1, "state": "offline"}), qos=1, retain=True)
            self.client.disconnect()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
        self.client.loop_stop()
        self.stop_event.set()
        with self.lock:
            self.q.put(("checkpoint", dumps(self.tracker.to_dict()), None))
        for th in self.threads:
            th.join(timeout=10)
        self.http.close()
        self.spool.close()

    def run_forever(self) -> None:
        self.start()
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    # ------------------------------------------------------------------ MQTT

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, rc: Any, _props: Any = None) -> None:
        if rc.is_failure:
            log.warning("MQTT connection refused: %s", rc)
            return
        sock = client.socket()
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass
        with self.lock:
            self.tracker.connected_since_ms = self.clock.now_ms()
        subs = [(tpl.format(uplink=uplink_filter(self.site)), qos) for tpl, qos in SUBSCRIPTIONS]
        if self.plugs is not None:
            subs += self.plugs.subscriptions()
        client.subscribe(subs)
        client.publish(gateway_status_topic(self.site, self.id),
                       json.dumps({"v": 1, "state": "online", "boot": self.boot}), qos=1, retain=True)
        log.info("gateway %s connected to MQTT %s:%s", self.id, self.s.mqtt_host, self.s.mqtt_port)

    def _on_disconnect(self, _c: Any, _ud: Any, _flags: Any, rc: Any, _props: Any = None) -> None:
        with self.lock:
            # Cut off from the broker, the gateway hears nothing: silence and idleness mean
            # nothing until it is back (and has received what the broker kept for it).
            self.tracker.connected_since_ms = DISCONNECTED
        log.warning("MQTT disconnected (%s); paho reconnects", rc)

    def _dead(self, msg: mqtt.MQTTMessage, now: int, reason: str, detail: str) -> None:
        self.q.put(("dead", (now, msg.topic[:500], bytes(msg.payload[:65536]), reason, detail[:500]),
                    (msg.mid, msg.qos)))

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._handle(msg)
        except Exception as e:  # noqa: BLE001 - a bug must not lose the message: keep it, say why
            log.exception("internal error on %s", msg.topic)
            self._dead(msg, self.clock.now_ms(), "internal_error", f"{type(e).__name__}: {e}")

    def _handle(self, msg: mqtt.MQTTMessage) -> None:
        now = self.clock.now_ms()
        topic_ = msg.topic
        if self.plugs is not None and not topic_.startswith(TOPIC_ROOT + "/"):
            try:
                route = self.plugs.route(topic_)
            except ContractError as e:
                self._dead(msg, now, e.reason, e.detail)
                return
            if route is not None:
                self._on_plug_message(route, msg, now)
                return
        payload = msg.payload
        fast = self.fast.decode(topic_, payload)
        if fast is not None:  # plain high-rate telemetry, already checked against the contract
            site, machine, kind, m, body, body_text = fast
        else:
            try:
                site, machine, kind, m = decode_uplink(topic_, payload)
            except ContractError as e:
                if e.reason in ("system_topic", "downlink_topic"):  # our own traffic on the site's tree
                    self.q.put(("ignored", None, (msg.mid, msg.qos)))
                    return
                self._dead(msg, now, e.reason, e.detail)
                return
            body = body_of(m)
            body_text = dumps(body)
        if site != self.site:
            self._dead(msg, now, "wrong_site", site)
            return
        node, boot, seq = m.node, m.boot, m.seq
        with self.lock:
            auth = self.tracker.auth
            if auth is not None:
                sm = auth.machines.get(machine)
                if sm is not None and sm.node and sm.node != node:
                    self._dead(msg, now, "node_mismatch", f"{node} on {machine}, expected {sm.node}")
                    return
            seen = self.seen.check(node, boot, seq)
            if seen is not None:  # duplicate or replay: counted, acknowledged, not ingested again
                self.q.put(("dup", seen, (msg.mid, msg.qos)))
                return
            try:
                t = self.stamper.stamp(node, boot, seq, m.up, now)
            except StampError as e:
                self._dead(msg, now, e.reason, e.detail)
                return
            skew = int(m.ts * 1000) - t if m.ts is not None else None
            event = (node, boot, seq, kind, machine, t, body_text, skew, now)
            out = self.tracker.observe(kind, machine, node, boot, body, t)
            if kind == Kind.BADGE:
                if now - t > self.s.badge_max_age_s * 1000:
                    out.extend(self.tracker.expired_badge(machine, node, boot, seq, m.uid, t))
                else:
                    out.extend(self._badge(machine, node, boot, seq, m.uid, t))
            if out.commands:
                self._publish(out)
            # The node's event and the facts it caused (decision, session opened...) are one
            # queue item: they reach the spool in the same transaction, before the broker gets
            # its acknowledgement. Apart, a kill between the two commits would keep the badge
            # request (acknowledged, so never redelivered) and lose the session it opened.
            self.q.put(("events", [event, *self._fact_rows(out)] if out.facts else [event], (msg.mid, msg.qos)))
            if self.plugs is not None:
                self._plug_sync(now)

    def _badge(self, machine: str, node: str, boot: int, seq: int, uid: str, t: int) -> Output:
        """Decide a badge request. A reader serving a plug machine asks for that machine; its
        answer goes back to the reader's own topic."""
        target = self.plugs.badge_machine(machine) if self.plugs is not None else None
        if target is None:
            return self.tracker.badge(machine, node, boot, seq, uid, t)
        out = self.tracker.badge(target, node, boot, seq, uid, t)
        for c in out.commands:
            if c.downlink == "decision" and c.machine == target:
                c.machine = machine
        return out

    # ------------------------------------------------------------------ plugs

    def _on_plug_message(self, route: Route, msg: mqtt.MQTTMessage, now: int) -> None:
        """A plug message: its records take the same path as node messages (tracker, spool,
        forwarding), stamped with the gateway's receive time (plugs have no uptime)."""
        assert self.plugs is not None
        ack = (msg.mid, msg.qos)
        with self.lock:
            try:
                recs = self.plugs.handle(route, bytes(msg.payload), now)
            except ContractError as e:
                self._dead(msg, now, e.reason, e.detail)
                return
            rows: list[tuple] = []  # the message's records and the facts they caused: one queue item
            for r in recs:
                seen = self.seen.check(r.source, r.boot, r.seq)
                if seen is not None:  # e.g. a retained Last Will delivered again
                    self.q.put(("dup", seen, None))
                    continue
                out = self.tracker.observe(r.kind, r.machine, r.source, r.boot, r.body, r.t)
                self._publish(out)
                rows.append((r.source, r.boot, r.seq, r.kind, r.machine, r.t, dumps(r.body), None, now))
                rows.extend(self._fact_rows(out))
            self.q.put(("events", rows, ack) if rows else ("plug_noop", None, ack))
            self._plug_sync(now)

    def _plug_sync(self, now: int) -> None:
        """The interlock: command plugs to follow their machine's session; alert on mismatch.
        Called under the lock after anything that may open or close a session."""
        if self.plugs is None:
            return
        sessions = {mid: (lm := self.tracker.machines.get(mid)) is not None and lm.session is not None
                    for mid in self.plugs.machines}
        commands, facts = self.plugs.reconcile(sessions, now)
        for c in commands:
            self.client.publish(c.topic, c.payload, qos=c.qos)
        if facts:
            self._record(Output(facts=facts))
        if self.plugs.take_dirty():
            self.spool.put(PLUGS_SPOOL_KEY, dumps(self.plugs.to_dict()))

    def _publish(self, out: Output) -> None:
        for c in out.commands:
            spec = DOWNLINK[c.downlink]
            model = DecisionMsg if c.downlink == "decision" else CommandMsg
            payload = encode(model(**{k: v for k, v in c.payload.items() if v is not None}))
            self.client.publish(topic(self.site, c.machine, c.downlink), payload, qos=spec.qos, retain=spec.retain)
        if out.commands:
            # On the network thread (a badge request, a fault): on the wire before the spool and
            # the other threads hear of it.
            self.client.flush_from_callback()

    def _fact_rows(self, out: Output) -> list[tuple]:
        """The tracker's facts as spool rows, with their gateway identity (under the lock)."""
        now = self.clock.now_ms()
        rows = []
        for f in out.facts:
            self.seq += 1
            rows.append((self.id, self.boot, self.seq, str(f.kind), f.machine, f.t, dumps(f.body), None, now))
        return rows

    def _record(self, out: Output) -> None:
        """Queue facts that no node message caused (timers, the interlock) for the spool."""
        if out.facts:
            self.q.put(("events", self._fact_rows(out), None))

    # ------------------------------------------------------------------ writer

    def _writer(self) -> None:
        last_checkpoint = 0.0
        while True:
            try:
                first = self.q.get(timeout=0.2)
            except queue.Empty:
                if self.stop_event.is_set():
                    return
                continue
            items = [first]
            # Let a batch gather, then take it without a timed wait per item.
            self.stop_event.wait(WRITE_WAIT_S)
            get = self.q.get_nowait
            try:
                while len(items) < WRITE_BATCH_MAX:
                    items.append(get())
            except queue.Empty:
                pass
            b = _Batch()
            for kind, rec, ack in items:
                if kind == "events":
                    b.events.extend(rec)
                elif kind == "dead":
                    b.dead.append(rec)
                    b.counters[f"dead:{rec[3]}"] += 1
                elif kind == "dup":
                    b.counters[rec] += 1
                elif kind == "ignored":
                    b.counters["system_topic"] += 1
                elif kind == "checkpoint":
                    b.checkpoint = rec
                elif kind == "prune":
                    self.spool.prune(rec)
                if ack is not None and ack[1] > 0:
                    b.acks.append(ack)
            if b.checkpoint is None and time.monotonic() - last_checkpoint > CHECKPOINT_EVERY_S:
                state = None
                with self.lock:
                    # Everything the tracker has seen is already in the queue before this point
                    # or in this batch; a snapshot taken now covers it only if the queue is empty.
                    if self.q.empty():
                        state = self.tracker.to_dict()  # a copy: serialised outside the lock
                        last_checkpoint = time.monotonic()
                if state is not None:
                    b.checkpoint = dumps(state)
            with self.lock:
                anchors = self.stamper.take_dirty()
            try:
                self.spool.write(b.events, b.dead, anchors, dict(b.counters), b.checkpoint)
            except Exception:  # noqa: BLE001
                log.exception("spool write failed; not acknowledging, the broker will redeliver")
                continue
            if b.acks:
                try:
                    self.client.ack_many(b.acks)
                except Exception:  # noqa: BLE001 - the broker redelivers on reconnect
                    pass

    # ------------------------------------------------------------------ forwarder

    def _forwarder(self) -> None:
        delay = FORWARD_RETRY_INITIAL_S
        last_prune = 0.0
        while not self.stop_event.is_set():
            rows = self.spool.pending(FORWARD_BATCH)
            if not rows:
                if time.monotonic() - last_prune > PRUNE_EVERY_S:
                    last_prune = time.monotonic()
                    self.q.put(("prune", self.clock.now_ms() - SPOOL_RETENTION_MS, None))
                self.stop_event.wait(FORWARD_IDLE_S)
                continue
            body = gzip.compress(self._batch_json(rows).encode(), compresslevel=FORWARD_GZIP_LEVEL)
            try:
                r = self.http.post("/api/v1/ingest", content=body,
                                   headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
                if r.status_code >= 500 or r.status_code in (401, 403, 404, 408, 429):
                    raise httpx.HTTPStatusError(f"server answered {r.status_code}", request=r.request, response=r)
                if r.status_code < 300:
                    r.json()  # a 2xx must carry the ingest result: anything else is not our server
            except (httpx.HTTPError, ValueError) as e:
                if not self._outage_logged:
                    log.warning("server unreachable (%s): spooling, will retry", e)
                    self._outage_logged = True
                self.server_reachable = False
                self.stop_event.wait(delay)
                delay = min(delay * 2, FORWARD_RETRY_MAX_S)
                continue
            if self._outage_logged:
                log.info("server reachable again: forwarding %d+ spooled events", len(rows))
                self._outage_logged = False
            self.server_reachable = True
            delay = FORWARD_RETRY_INITIAL_S
            if r.status_code >= 400:
                # A 4xx for the whole batch is a bug on one side: keep the events, retry later.
                log.error("server refused a batch (%s): %s", r.status_code, r.text[:300])
                self.stop_event.wait(FORWARD_RETRY_MAX_S)
                continue
            self.spool.mark_forwarded([row[0] for row in rows])

    def _batch_json(self, rows: list[tuple]) -> str:
        """The ingest batch as JSON, built around the bodies as stored (already JSON): no
        decode/encode round trip per event on a small board."""
        site = json.dumps(self.site)
        parts = []
        for _id, source, boot, seq, kind, machine, t, body, skew in rows:
            parts.append(
                f'{{"source":{json.dumps(source)},"boot":{boot},"seq":{seq},"kind":{json.dumps(kind)},'
                f'"site":{site},"machine":{json.dumps(machine)},"t":{t},"body":{body}'
                + (f',"skew_ms":{skew}}}' if skew is not None else "}"))
        return (f'{{"gateway":{json.dumps(self.id)},"site":{site},"sent_at":{self.clock.now_ms()},'
                f'"events":[{",".join(parts)}]}}')

    # ------------------------------------------------------------------ snapshot sync

    def _syncer(self) -> None:
        while not self.stop_event.is_set():
            ok = self.sync_once()
            self.stop_event.wait(self.s.snapshot_interval_s if ok else min(SNAPSHOT_RETRY_S, self.s.snapshot_interval_s))

    def sync_once(self) -> bool:
        headers = {"If-None-Match": self.snapshot_etag} if self.snapshot_etag else {}
        try:
            r = self.http.get("/api/v1/gateway/snapshot", headers=headers)
        except httpx.HTTPError:
            return False
        if r.status_code == 304:
            return True
        if r.status_code != 200:
            log.warning("snapshot refused: %s %s", r.status_code, r.text[:200])
            return False
        try:
            snap = Snapshot.model_validate_json(r.content)
        except ValueError as e:
            log.error("snapshot does not validate: %s", e)
            return False
        etag = r.headers.get("ETag")
        with self.lock:
            self.spool.put("snapshot", r.text)
            if etag:
                self.spool.put("snapshot_etag", etag)
            self.snapshot_etag = etag
            self.tracker.tz = ZoneInfo(snap.site.tz)
            self.tracker.lang = snap.site.locale
            out = self.tracker.snapshot_changed(AuthIndex.of(snap), self.clock.now_ms())
            self._record(out)
        return True

    # ------------------------------------------------------------------ ticker

    def _ticker(self) -> None:
        last_status = 0.0
        while not self.stop_event.wait(TICK_S):
            with self.lock:
                out = self.tracker.tick(self.clock.now_ms())
                if out.facts or out.commands:
                    self._publish(out)
                    self._record(out)
                self._plug_sync(self.clock.now_ms())
            if time.monotonic() - last_status > STATUS_EVERY_S:
                last_status = time.monotonic()
                self._publish_status()

    def _publish_status(self) -> None:
        """Retained presence with what a supervisor needs: cache version, backlog, server link."""
        with self.lock:
            cache = self.tracker.auth.version if self.tracker.auth else None
            open_sessions = sum(1 for m in self.tracker.machines.values() if m.session is not None)
        status = {"v": 1, "state": "online", "boot": self.boot, "now": self.clock.now_ms(), "cache": cache,
                  "pending": self.spool.pending_count() + self.q.qsize(), "open_sessions": open_sessions,
                  "server": self.server_reachable}
        self.client.publish(gateway_status_topic(self.site, self.id), json.dumps(status), qos=1, retain=True)
