"""`crp demo`: a simulated workshop day through the real pipeline.

broker (private Mosquitto, or the embedded amqtt broker when Mosquitto is not installed)
-> simulated machine nodes and metering plugs with their badge readers -> gateway (with the
workshop's plug mapping) -> server (SQLite unless DATABASE_URL is set) -> summary. Every part
runs as its own process; they share one accelerated clock. Each plug has a broker user of its
own (Mosquitto); the embedded amqtt broker is anonymous and checks no topics."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from crp_common.clock import ScaledClock
from crp_common.i18n import tr

from .broker import find_mosquitto
from .stack import Stack, StackError

DEFAULT_DB_FILE = Path("crp.db")
DAY_START = dt.time(7, 0)
CLOCK_LEAD_S = 12.0  # real seconds between fixing the clock and 07:00 simulated (set-up time)
# One machine starts the day close to its greasing, so the demo shows a run-hour plan coming due.
RUN_HOUR_DEMO = ("bandsaw-1", 19.0)
SETTLE_TIMEOUT_S = 60.0
NOTIFY_WAIT_S = 15.0
AMQTT_MAX_SPEED = 480.0
OFFLINE_AFTER_REAL_S = 1.0


def _database_url() -> tuple[str, bool]:
    """DATABASE_URL if set (kept as it is), else a fresh ./crp.db that other commands use by
    default afterwards."""
    url = os.environ.get("DATABASE_URL") or os.environ.get("CRP_DATABASE_URL")
    if url:
        return url, False
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{DEFAULT_DB_FILE}{suffix}")
        if p.exists():
            p.unlink()
    return f"sqlite:///{DEFAULT_DB_FILE.resolve()}", True


def run_demo(once: bool, json_out: bool, date: str | None, seed: int, speed: float, port: int, lang: str) -> int:
    from firmware_sim.runner import run_scenario
    from firmware_sim.scenario import generate_day
    from firmware_sim.workshop import load_workshop

    err = Console(stderr=True)
    out = Console()
    workshop = load_workshop()
    tz = ZoneInfo(workshop.site.tz)
    day = dt.date.fromisoformat(date) if date else dt.datetime.now(tz).date()
    db_url, fresh = _database_url()
    workdir = Path(tempfile.mkdtemp(prefix="crp-demo-"))
    err.print(f"[bold]CRP demo[/] {workshop.site.name} — {day.isoformat()} (seed {seed}, x{speed:g})")
    err.print(f"  database: {db_url}{' (fresh)' if fresh else ''}; logs: {workdir}")

    day_start = dt.datetime.combine(day, DAY_START, tz).timestamp()
    # CRP_DEMO_BROKER=amqtt forces the embedded broker (what a machine without Mosquitto gets).
    prefer = os.environ.get("CRP_DEMO_BROKER", "mosquitto")
    if prefer == "amqtt" or find_mosquitto() is None:
        speed = min(speed, AMQTT_MAX_SPEED)  # a broker in Python: slower, so a slower day
    clock = ScaledClock(real_origin=time.time() + CLOCK_LEAD_S, sim_origin=day_start, speed=speed)
    stack = Stack(workdir, db_url, site=workshop.site.code, api_port=port, clock_spec=clock.spec(),
                  prefer_broker=prefer)
    # Silence is judged in real time too: at x720, 150 simulated seconds are 0.2 real seconds.
    stack.gateway_env["CRP_OFFLINE_AFTER_S"] = str(max(150.0, OFFLINE_AFTER_REAL_S * speed))
    stack.gateway_env["CRP_BADGE_MAX_AGE_S"] = str(max(10.0, 3.0 * speed))
    if workshop.plug_machines:
        # The plug mapping the gateway reads (docs/plugs.md), and one broker user per plug.
        plugs_file = workdir / "plugs.json"
        plugs_file.write_text(json.dumps(workshop.plugs_mapping(), indent=1))
        stack.gateway_env["CRP_PLUGS_FILE"] = str(plugs_file)
        for m in workshop.plug_machines:
            stack.add_plug(m.node, m.plug.type, m.plug.topic)
    hooks = WebhookReceiver().start()
    try:
        stack.start_broker()
        err.print(f"  broker: {stack.broker.kind} on port {stack.broker.port}")
        stack.server_env.update(stack.notify_mqtt_env())
        stack.start_server()
        err.print(f"  server: {stack.api_url}")
        if not fresh and stack.summary().get("events", 0) > 0:
            err.print("[red]DATABASE_URL already holds workshop events: use an empty database for the demo.[/]")
            return 2
        stack.seed(workshop)
        _seed_extras(stack, workshop)
        _seed_maintenance(stack, workshop, hooks.url)
        stack.start_gateway()
        err.print("  gateway: ready (authorization cache loaded)")
        actions = generate_day(workshop, day, seed)
        user, password = stack.mqtt_creds("sim")
        plug_creds = {m.node: stack.mqtt_creds(m.node) for m in workshop.plug_machines}
        t0 = time.monotonic()
        report = run_scenario(actions, workshop, stack.broker.host, stack.broker.port, user, password, clock,
                              workdir / "nodes", plug_creds=plug_creds)
        err.print(f"  simulated day played in {time.monotonic() - t0:.1f} s")
        stack.wait_settled(SETTLE_TIMEOUT_S, after_ms=clock.now_ms() + 1000 * _max_idle_s(workshop))
        invoices = _bill(stack, day)
        summary = stack.summary()
        summary.update(_maintenance_summary(stack))
        summary["plugs"] = _plug_summary(stack, workshop, day)
        summary.update({"date": day.isoformat(), "site": workshop.site.code, "seed": seed,
                        "broker": stack.broker.kind, "database_url": db_url, "invoices": invoices,
                        "invoice_totals": _totals(invoices),
                        "simulator": {"taps": getattr(report, "taps", None),
                                      "denied": getattr(report, "denies", None),
                                      "skipped": getattr(report, "skipped", None),
                                      "max_late_s": getattr(report, "max_late_s", None)}})
        if json_out:
            print(json.dumps(summary, ensure_ascii=False, default=str))
        else:
            _print_summary(out, summary, lang)
        if once:
            return 0
        err.print(tr("summary.api", lang, url=stack.api_url))
        err.print(f"  export DATABASE_URL={db_url}  # to use other crp commands on this data")
        try:
            while stack.server is not None and stack.server.alive():
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        return 0
    except StackError as e:
        err.print("demo failed:", str(e), style="red", markup=False)
        return 1
    finally:
        stack.stop()
        hooks.stop()


def _plug_summary(stack: Stack, workshop: Any, day: dt.date) -> list[dict[str, Any]]:
    """Per machine on a metering plug: its sessions of the day, how many were metered, their
    run hours and energy."""
    out = []
    with stack.api() as api:
        for m in workshop.plug_machines:
            r = api.get("/api/v1/sessions", params={"machine": m.id, "from": day.isoformat(), "to": day.isoformat(),
                                                    "limit": 5000})
            if r.status_code >= 300:
                raise StackError(f"sessions of {m.id}: {r.status_code} {r.text[:300]}")
            rows = r.json()
            metered = [s for s in rows if s.get("energy_wh") is not None]
            out.append({"machine": m.id, "name": m.name, "plug": m.node, "plug_type": m.plug.type,
                        "sessions": len(rows), "metered_sessions": len(metered),
                        "run_hours": round(sum(s.get("run_ms") or 0 for s in rows) / 3_600_000, 2),
                        "energy_kwh": round(sum(s["energy_wh"] for s in metered) / 1000, 3)})
    return out


def _max_idle_s(workshop: Any) -> int:
    return max((t.idle_timeout_s for t in workshop.machine_types), default=600)


def _seed_extras(stack: Stack, workshop: Any) -> None:
    """Rate cards from the workshop file, when the billing API is there."""
    with stack.api() as api:
        for t in workshop.machine_types:
            if t.rate is None:
                continue
            r = api.post("/api/v1/rate-cards", json={
                "scope_type": t.code, "currency": workshop.site.currency,
                "price_per_hour_member": t.rate.member_per_hour,
                "price_per_hour_non_member": t.rate.non_member_per_hour,
                "basis": "run" if t.rate.basis in ("run", "motor") else "badge",
                "increment_minutes": t.rate.increment_min, "rounding": "up",
                "minimum_minutes": t.rate.minimum_min, "effective_from": "2020-01-01",
                "price_per_kwh": t.rate.per_kwh})
            if r.status_code == 404:
                return
            if r.status_code >= 300:
                raise StackError(f"rate card for {t.code}: {r.status_code} {r.text[:300]}")


def _seed_maintenance(stack: Stack, workshop: Any, webhook_url: str) -> None:
    """Plans from the workshop file, one technician reached by MQTT and webhook, and one
    machine already near its greasing."""
    with stack.api() as api:
        def post(path: str, body: dict[str, Any]) -> dict[str, Any] | None:
            r = api.post(path, json=body)
            if r.status_code == 404:
                return None
            if r.status_code >= 300:
                raise StackError(f"POST {path}: {r.status_code} {r.text[:300]}")
            return r.json()

        plans = []
        for p in workshop.maintenance_plans:
            body: dict[str, Any] = {"machine_type": p.type, "task": p.task}
            if p.every_run_hours:
                body.update(kind="run_hours", interval=p.every_run_hours)
            elif p.every_days:
                body.update(kind="calendar_days", interval=p.every_days)
            elif p.metric:
                body.update(kind="condition", metric=p.metric, above=p.above, for_s=p.for_s)
            else:
                continue
            created = post("/api/v1/maintenance/plans", body)
            if created is None:
                return
            plans.append((p, created))
        for code in ("estop", "thermal"):
            post("/api/v1/maintenance/plans", {"machine_type": workshop.machines[0].type, "kind": "fault",
                                               "fault_code": code, "critical": True,
                                               "task": f"Défaut {code} : contrôle avant remise en service"})
        machine, run_h = RUN_HOUR_DEMO
        mtype = next(m.type for m in workshop.machines if m.id == machine)
        for p, created in plans:
            if p.type == mtype and p.every_run_hours and p.every_run_hours > run_h:
                r = api.put(f"/api/v1/maintenance/plans/{created['id']}/counters/{machine}", json={"run_h": run_h})
                if r.status_code >= 300:
                    raise StackError(f"plan counter: {r.status_code} {r.text[:300]}")
                break
        tech = post("/api/v1/technicians", {"site": workshop.site.code, "name": "Ibou Technicien", "lang": "fr"})
        if tech:
            for channel, address in (("mqtt", "atelier"), ("webhook", webhook_url)):
                post("/api/v1/notification-targets", {"technician_id": tech["id"], "channel": channel,
                                                      "address": address})


def _maintenance_summary(stack: Stack) -> dict[str, Any]:
    """Alerts by kind and notifications sent by channel (after letting the server deliver)."""
    with stack.api() as api:
        deadline = time.monotonic() + NOTIFY_WAIT_S
        while True:
            r = api.get("/api/v1/maintenance/summary")
            if r.status_code != 200:
                return {"alerts": {}, "notifications": {}}
            data = r.json()
            pending = api.get("/api/v1/notifications", params={"status": "pending"})
            if pending.status_code != 200 or not pending.json() or time.monotonic() > deadline:
                return {"alerts": data.get("alerts", {}), "notifications": data.get("notifications", {})}
            time.sleep(0.5)


class WebhookReceiver:
    """A local webhook endpoint for the demo's technician (what a team chat bridge would be)."""

    def __init__(self) -> None:
        import http.server
        import threading

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                received.append(self.rfile.read(n))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/crp"

    def start(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _bill(stack: Stack, day: dt.date) -> list[dict[str, Any]]:
    with stack.api() as api:
        r = api.post("/api/v1/billing/run", json={"period": day.strftime("%Y-%m")})
        if r.status_code == 404:
            return []
        if r.status_code >= 300:
            raise StackError(f"billing run: {r.status_code} {r.text[:300]}")
        data = r.json()
        return data.get("invoices", data) if isinstance(data, dict) else data


def _totals(invoices: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for inv in invoices:
        cur = inv.get("currency", "XOF")
        totals[cur] = totals.get(cur, 0) + int(inv.get("total", 0))
    return totals


def _hours(x: float) -> str:
    return f"{x:.2f}"


def _print_summary(out: Console, s: dict[str, Any], lang: str) -> None:
    out.print(f"\n[bold]{tr('summary.title', lang)}[/] — {s['site']} {s['date']}")
    out.print(f"{tr('summary.sessions', lang)}: {s['sessions']}")
    t = Table(title=tr("summary.artisan", lang))
    for col in (tr("summary.artisan", lang), tr("summary.sessions", lang), tr("summary.badge_hours", lang),
                tr("summary.run_hours", lang)):
        t.add_column(col)
    for a in s.get("artisans", []):
        if a.get("sessions"):
            t.add_row(a["name"], str(a["sessions"]), _hours(a["badge_hours"]), _hours(a["run_hours"]))
    out.print(t)
    t = Table(title=tr("summary.machine", lang))
    for col in (tr("summary.machine", lang), tr("summary.sessions", lang), tr("summary.badge_hours", lang),
                tr("summary.run_hours", lang)):
        t.add_column(col)
    for m in s.get("machines", []):
        t.add_row(m.get("name") or m["id"], str(m["sessions"]), _hours(m["badge_hours"]), _hours(m["run_hours"]))
    out.print(t)
    if s.get("plugs"):
        t = Table(title=tr("summary.plugs", lang))
        t.add_column(tr("summary.machine", lang), no_wrap=True, min_width=max(len(p["machine"]) for p in s["plugs"]))
        t.add_column(tr("summary.plug", lang), no_wrap=True, min_width=7)
        for col in ("summary.sessions", "summary.metered", "summary.run_hours", "summary.energy_kwh"):
            t.add_column(tr(col, lang), justify="right")
        for p in s["plugs"]:  # machine ids: the names are in the machine table above
            t.add_row(p["machine"], p["plug_type"], str(p["sessions"]), str(p["metered_sessions"]),
                      _hours(p["run_hours"]), f"{p['energy_kwh']:.3f}")
        out.print(t)
    t = Table(title=tr("summary.denied", lang))
    t.add_column(tr("summary.reason", lang))
    t.add_column(tr("summary.count", lang))
    for reason, n in sorted(s.get("denied", {}).items()):
        t.add_row(tr(f"deny.{reason}", lang), str(n))
    out.print(t)
    if s.get("invoices"):
        t = Table(title=tr("summary.invoices", lang))
        t.add_column("N°")
        t.add_column(tr("summary.artisan", lang))
        t.add_column(tr("summary.total", lang), justify="right")
        for inv in s["invoices"]:
            t.add_row(inv["number"], str(inv.get("artisan_name") or inv.get("artisan")),
                      f"{inv['total']:,} {inv.get('currency', '')}".replace(",", " "))
        out.print(t)
    sys.stdout.flush()
