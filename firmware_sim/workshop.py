"""A workshop described as data: the site, its machine types and machines, the artisans with
their badges and qualifications.

The same JSON file drives the simulator (which node plays which machine, who taps which badge)
and seeds the server registry in the demo, so it carries every field the registry needs. The
loader is strict: a malformed file raises :class:`WorkshopError` naming the faulty field.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from crp_common.contract import BADGE_UID_RE, ID_RE, SITE_RE
from crp_common.snapshot import (
    SnapArtisan,
    SnapBadge,
    SnapMachine,
    SnapQualification,
    Snapshot,
    SnapSite,
)

DEMO_WORKSHOP = "demo.json"
PLUG_TYPES = ("tasmota", "shelly1", "shelly2")  # as in the gateway's plug mapping (docs/plugs.md)
PLUG_THRESHOLD_W = 150.0
PLUG_LOAD_W = 750.0
PLUG_IDLE_W = 3.0


class WorkshopError(ValueError):
    """The workshop file does not describe a valid workshop."""


@dataclass(frozen=True)
class Site:
    code: str
    name: str
    tz: str
    currency: str
    locale: str = "fr"


@dataclass(frozen=True)
class RateCard:
    """Price of one hour of a machine type, in minor units of the site currency."""

    member_per_hour: int
    non_member_per_hour: int
    basis: str = "badge"  # "badge" (badge time) or "motor" (motor run time)
    increment_min: int = 15  # rounded up to this increment
    minimum_min: int = 15
    per_kwh: int = 0  # metered energy (plug machines), minor units per kWh; 0: not priced


@dataclass(frozen=True)
class MachineType:
    code: str
    name_fr: str
    name_en: str
    idle_timeout_s: int
    rate: RateCard | None = None


@dataclass(frozen=True)
class Plug:
    """A machine powered and metered through an off-the-shelf smart plug, with a badge reader
    node of its own (docs/plugs.md). The machine's ``node`` is then the plug id."""

    type: str  # tasmota | shelly1 | shelly2
    topic: str  # Tasmota %topic%, Shelly Gen1 device id, Shelly Gen2 prefix
    reader: str  # the machine id the badge reader publishes under
    reader_node: str  # the reader node's id
    threshold_w: float = PLUG_THRESHOLD_W  # above this the gateway counts the motor as running
    load_w: float = PLUG_LOAD_W  # simulated draw with the motor running
    idle_w: float = PLUG_IDLE_W  # simulated draw with the relay on and the motor stopped


@dataclass(frozen=True)
class Machine:
    id: str
    node: str  # the node id; for a machine on a plug, the plug id
    type: str
    name: str = ""
    # Node wall clock minus true time, in seconds; None: the node has no clock and sends no ts.
    clock_skew_s: float | None = 0.0
    fw: str = "crp-node 1.4.2"
    plug: Plug | None = None

    @property
    def on_plug(self) -> bool:
        return self.plug is not None


@dataclass(frozen=True)
class Badge:
    uid: str
    status: str = "active"  # "active" or "revoked"


@dataclass(frozen=True)
class Qualification:
    type: str
    expires_on: dt.date | None = None

    def valid_on(self, day: dt.date) -> bool:
        return self.expires_on is None or self.expires_on >= day


@dataclass(frozen=True)
class Cooperative:
    code: str
    name: str


@dataclass(frozen=True)
class MaintenancePlan:
    """A maintenance plan for every machine of a type (data for the server's seed)."""

    type: str
    task: str
    every_run_hours: float | None = None
    every_days: int | None = None
    # Condition on telemetry: metric above limit for at least `for_s` seconds.
    metric: str | None = None
    above: float | None = None
    for_s: int | None = None


@dataclass(frozen=True)
class Artisan:
    id: int
    name: str
    phone: str
    trade: str
    cooperative: str | None
    member: bool
    status: str  # "active" or "suspended"
    badges: tuple[Badge, ...] = ()
    qualifications: tuple[Qualification, ...] = ()

    @property
    def active_badges(self) -> tuple[Badge, ...]:
        return tuple(b for b in self.badges if b.status == "active")

    def qualified_for(self, machine_type: str, day: dt.date) -> bool:
        return any(q.type == machine_type and q.valid_on(day) for q in self.qualifications)


@dataclass(frozen=True)
class Workshop:
    site: Site
    machine_types: tuple[MachineType, ...]
    machines: tuple[Machine, ...]
    artisans: tuple[Artisan, ...]
    cooperatives: tuple[Cooperative, ...] = ()
    maintenance_plans: tuple[MaintenancePlan, ...] = ()
    _types: dict[str, MachineType] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._types.update({t.code: t for t in self.machine_types})

    def machine_type(self, code: str) -> MachineType:
        return self._types[code]

    def machine(self, machine_id: str) -> Machine:
        for m in self.machines:
            if m.id == machine_id:
                return m
        raise KeyError(machine_id)

    def artisan(self, artisan_id: int) -> Artisan:
        for a in self.artisans:
            if a.id == artisan_id:
                return a
        raise KeyError(artisan_id)

    def badge_owner(self, uid: str) -> Artisan | None:
        for a in self.artisans:
            if any(b.uid == uid for b in a.badges):
                return a
        return None

    def idle_timeout_s(self, machine_id: str) -> int:
        return self.machine_type(self.machine(machine_id).type).idle_timeout_s

    @property
    def plug_machines(self) -> tuple[Machine, ...]:
        return tuple(m for m in self.machines if m.plug is not None)

    def without_plugs(self) -> "Workshop":
        """The same workshop with only its node machines (for runs without plug credentials)."""
        return Workshop(site=self.site, machine_types=self.machine_types,
                        machines=tuple(m for m in self.machines if m.plug is None), artisans=self.artisans,
                        cooperatives=self.cooperatives, maintenance_plans=self.maintenance_plans)

    def plugs_mapping(self, tasmota_full_topic: str | None = None) -> dict[str, Any]:
        """The gateway's plug mapping (``CRP_PLUGS_FILE``, docs/plugs.md) for this workshop's
        plug machines, as data to dump in YAML or JSON: plug id (the machine's node) -> machine,
        type, topic, threshold and reader."""
        out: dict[str, Any] = {"plugs": {
            m.node: {"machine": m.id, "type": m.plug.type, "topic": m.plug.topic,
                     "threshold_w": m.plug.threshold_w, "reader": m.plug.reader}
            for m in self.machines if m.plug is not None}}
        if tasmota_full_topic is not None:
            out["tasmota_full_topic"] = tasmota_full_topic
        return out

    def snapshot(self, version: str = "workshop", generated_at: int = 0) -> Snapshot:
        """The authorization snapshot a server would derive from this workshop."""
        return Snapshot(
            version=version,
            generated_at=generated_at,
            site=SnapSite(code=self.site.code, name=self.site.name, tz=self.site.tz,
                          currency=self.site.currency, locale=self.site.locale),
            machines=[SnapMachine(id=m.id, type=m.type, node=m.node, name=m.name,
                                  idle_timeout_s=self.machine_type(m.type).idle_timeout_s)
                      for m in self.machines],
            badges=[SnapBadge(uid=b.uid, artisan=a.id, status=b.status)
                    for a in self.artisans for b in a.badges],
            artisans=[SnapArtisan(id=a.id, name=a.name, status=a.status, member=a.member,
                                  qualifications=[SnapQualification(type=q.type, expires=q.expires_on)
                                                  for q in a.qualifications])
                      for a in self.artisans],
        )


# --------------------------------------------------------------------------- loading


def _req(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise WorkshopError(f"{where}: missing field {key!r}")
    v = d[key]
    types = typ if isinstance(typ, tuple) else (typ,)
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
        raise WorkshopError(f"{where}.{key}: expected {getattr(typ, '__name__', typ)}, got {type(v).__name__}")
    return v


def _opt(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    if d.get(key) is None:
        return default
    return _req(d, key, typ, where)


def _date(v: Any, where: str) -> dt.date | None:
    if v is None:
        return None
    try:
        return dt.date.fromisoformat(v)
    except (TypeError, ValueError):
        raise WorkshopError(f"{where}: expected a date YYYY-MM-DD, got {v!r}") from None


def _site(d: Any) -> Site:
    if not isinstance(d, dict):
        raise WorkshopError("site: expected an object")
    code = _req(d, "code", str, "site")
    if not SITE_RE.match(code):
        raise WorkshopError(f"site.code: {code!r} must be 2-8 uppercase letters or digits")
    return Site(code=code, name=_req(d, "name", str, "site"), tz=_req(d, "tz", str, "site"),
                currency=_req(d, "currency", str, "site"), locale=_opt(d, "locale", str, "site", "fr"))


def _rate(d: Any, where: str) -> RateCard | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        raise WorkshopError(f"{where}: expected an object")
    basis = _opt(d, "basis", str, where, "badge")
    if basis not in ("badge", "motor"):
        raise WorkshopError(f"{where}.basis: must be 'badge' or 'motor'")
    return RateCard(member_per_hour=_req(d, "member_per_hour", int, where),
                    non_member_per_hour=_req(d, "non_member_per_hour", int, where),
                    basis=basis, increment_min=_opt(d, "increment_min", int, where, 15),
                    minimum_min=_opt(d, "minimum_min", int, where, 15),
                    per_kwh=_opt(d, "per_kwh", int, where, 0))


def _plug(d: Any, w: str, machine_id: str) -> Plug | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        raise WorkshopError(f"{w}: expected an object")
    known = {"type", "topic", "reader", "reader_node", "threshold_w", "load_w", "idle_w"}
    extra = sorted(set(d) - known)
    if extra:
        raise WorkshopError(f"{w}: unknown field {extra[0]!r}")
    typ = _req(d, "type", str, w)
    if typ not in PLUG_TYPES:
        raise WorkshopError(f"{w}.type: {typ!r} must be one of {', '.join(PLUG_TYPES)}")
    topic = _req(d, "topic", str, w)
    if not topic or len(topic) > 120 or any(c in topic for c in "#+ \t\n") or topic.startswith("/") \
            or topic.endswith("/") or (typ != "shelly2" and "/" in topic):
        raise WorkshopError(f"{w}.topic: {topic!r} must be one MQTT level without wildcards"
                            " (Shelly Gen2 prefixes may have several)")
    reader = _req(d, "reader", str, w)
    reader_node = _opt(d, "reader_node", str, w, f"node-{reader}")
    for k, v in (("reader", reader), ("reader_node", reader_node)):
        if not ID_RE.match(v):
            raise WorkshopError(f"{w}.{k}: {v!r} must be lowercase letters, digits and '-'")
    if reader == machine_id:
        raise WorkshopError(f"{w}.reader: the reader publishes under its own machine id, not {machine_id!r}")
    watts = {}
    for k, default in (("threshold_w", PLUG_THRESHOLD_W), ("load_w", PLUG_LOAD_W), ("idle_w", PLUG_IDLE_W)):
        v = _opt(d, k, (int, float), w, default)
        if not 0 <= v <= 100_000:
            raise WorkshopError(f"{w}.{k}: {v!r} out of range (0 to 100000 W)")
        watts[k] = float(v)
    if not watts["idle_w"] < watts["threshold_w"] < watts["load_w"]:
        raise WorkshopError(f"{w}: idle_w < threshold_w < load_w is needed to tell the motor running")
    return Plug(type=typ, topic=topic, reader=reader, reader_node=reader_node, **watts)


def workshop_from_dict(data: Any) -> Workshop:
    """Build and check a :class:`Workshop` from parsed JSON."""
    if not isinstance(data, dict):
        raise WorkshopError("workshop: expected a JSON object")
    site = _site(data.get("site"))

    types: list[MachineType] = []
    for i, t in enumerate(_req(data, "machine_types", list, "workshop")):
        w = f"machine_types[{i}]"
        if not isinstance(t, dict):
            raise WorkshopError(f"{w}: expected an object")
        types.append(MachineType(code=_req(t, "code", str, w), name_fr=_req(t, "name_fr", str, w),
                                 name_en=_req(t, "name_en", str, w),
                                 idle_timeout_s=_req(t, "idle_timeout_s", int, w),
                                 rate=_rate(t.get("rate"), f"{w}.rate")))
    type_codes = {t.code for t in types}
    if len(type_codes) != len(types):
        raise WorkshopError("machine_types: duplicate code")

    machines: list[Machine] = []
    for i, m in enumerate(_req(data, "machines", list, "workshop")):
        w = f"machines[{i}]"
        if not isinstance(m, dict):
            raise WorkshopError(f"{w}: expected an object")
        mid, node, typ = _req(m, "id", str, w), _req(m, "node", str, w), _req(m, "type", str, w)
        for k, v in (("id", mid), ("node", node)):
            if not ID_RE.match(v):
                raise WorkshopError(f"{w}.{k}: {v!r} must be lowercase letters, digits and '-'")
        if typ not in type_codes:
            raise WorkshopError(f"{w}.type: unknown machine type {typ!r}")
        skew = m.get("clock_skew_s", 0.0)
        if skew is not None and (isinstance(skew, bool) or not isinstance(skew, (int, float))):
            raise WorkshopError(f"{w}.clock_skew_s: expected a number or null")
        machines.append(Machine(id=mid, node=node, type=typ, name=_opt(m, "name", str, w, ""),
                                clock_skew_s=None if skew is None else float(skew),
                                fw=_opt(m, "fw", str, w, "crp-node 1.4.2"),
                                plug=_plug(m.get("plug"), f"{w}.plug", mid)))
    for k in ("id", "node"):
        vals = [getattr(m, k) for m in machines]
        if len(set(vals)) != len(vals):
            raise WorkshopError(f"machines: duplicate {k}")
    plugged = [m for m in machines if m.plug is not None]
    ids = {m.id for m in machines}
    nodes = {m.node for m in machines}
    readers: set[str] = set()
    reader_nodes: set[str] = set()
    topics: set[tuple[str, str]] = set()
    for m in plugged:
        p = m.plug
        assert p is not None
        if p.reader in ids or p.reader in readers:
            raise WorkshopError(f"machines: reader {p.reader!r} of {m.id} is a machine or serves another plug")
        if p.reader_node in nodes or p.reader_node in reader_nodes:
            raise WorkshopError(f"machines: reader node {p.reader_node!r} of {m.id} is used twice")
        if (p.type, p.topic) in topics:
            raise WorkshopError(f"machines: two {p.type} plugs on the topic {p.topic!r}")
        readers.add(p.reader)
        reader_nodes.add(p.reader_node)
        topics.add((p.type, p.topic))
    gen2 = [m.plug.topic for m in plugged if m.plug is not None and m.plug.type == "shelly2"]
    for a in gen2:
        for b in gen2:
            if a != b and b.startswith(a + "/"):
                raise WorkshopError(f"machines: Shelly Gen2 prefixes overlap: {a} and {b}")

    coops: list[Cooperative] = []
    for i, c in enumerate(data.get("cooperatives") or []):
        w = f"cooperatives[{i}]"
        if not isinstance(c, dict):
            raise WorkshopError(f"{w}: expected an object")
        coops.append(Cooperative(code=_req(c, "code", str, w), name=_req(c, "name", str, w)))
    coop_codes = {c.code for c in coops}

    artisans: list[Artisan] = []
    uids: set[str] = set()
    for i, a in enumerate(_req(data, "artisans", list, "workshop")):
        w = f"artisans[{i}]"
        if not isinstance(a, dict):
            raise WorkshopError(f"{w}: expected an object")
        status = _opt(a, "status", str, w, "active")
        if status not in ("active", "suspended"):
            raise WorkshopError(f"{w}.status: must be 'active' or 'suspended'")
        coop = _opt(a, "cooperative", str, w)
        if coop is not None and coop not in coop_codes:
            raise WorkshopError(f"{w}.cooperative: unknown cooperative {coop!r}")
        badges: list[Badge] = []
        for j, b in enumerate(_req(a, "badges", list, w)):
            wb = f"{w}.badges[{j}]"
            if not isinstance(b, dict):
                raise WorkshopError(f"{wb}: expected an object")
            uid = _req(b, "uid", str, wb)
            if not BADGE_UID_RE.match(uid):
                raise WorkshopError(f"{wb}.uid: {uid!r} must be 8, 14 or 20 uppercase hex digits")
            if uid in uids:
                raise WorkshopError(f"{wb}.uid: {uid} is issued twice")
            uids.add(uid)
            bstatus = _opt(b, "status", str, wb, "active")
            if bstatus not in ("active", "revoked"):
                raise WorkshopError(f"{wb}.status: must be 'active' or 'revoked'")
            badges.append(Badge(uid=uid, status=bstatus))
        quals: list[Qualification] = []
        for j, q in enumerate(_req(a, "qualifications", list, w)):
            wq = f"{w}.qualifications[{j}]"
            if not isinstance(q, dict):
                raise WorkshopError(f"{wq}: expected an object")
            qt = _req(q, "type", str, wq)
            if qt not in type_codes:
                raise WorkshopError(f"{wq}.type: unknown machine type {qt!r}")
            quals.append(Qualification(type=qt, expires_on=_date(q.get("expires_on"), f"{wq}.expires_on")))
        artisans.append(Artisan(id=_req(a, "id", int, w), name=_req(a, "name", str, w),
                                phone=_req(a, "phone", str, w), trade=_req(a, "trade", str, w),
                                cooperative=coop, member=_req(a, "member", bool, w), status=status,
                                badges=tuple(badges), qualifications=tuple(quals)))
    ids = [a.id for a in artisans]
    if len(set(ids)) != len(ids):
        raise WorkshopError("artisans: duplicate id")

    plans: list[MaintenancePlan] = []
    for i, p in enumerate(data.get("maintenance_plans") or []):
        w = f"maintenance_plans[{i}]"
        if not isinstance(p, dict):
            raise WorkshopError(f"{w}: expected an object")
        pt = _req(p, "type", str, w)
        if pt not in type_codes:
            raise WorkshopError(f"{w}.type: unknown machine type {pt!r}")
        plans.append(MaintenancePlan(type=pt, task=_req(p, "task", str, w),
                                     every_run_hours=_opt(p, "every_run_hours", (int, float), w),
                                     every_days=_opt(p, "every_days", int, w),
                                     metric=_opt(p, "metric", str, w), above=_opt(p, "above", (int, float), w),
                                     for_s=_opt(p, "for_s", int, w)))

    return Workshop(site=site, machine_types=tuple(types), machines=tuple(machines),
                    artisans=tuple(artisans), cooperatives=tuple(coops), maintenance_plans=tuple(plans))


def load_workshop(path: str | Path | None = None) -> Workshop:
    """Load a workshop JSON file; ``None`` loads the packaged demo workshop."""
    try:
        if path is None:
            text = resources.files("firmware_sim").joinpath("workshops", DEMO_WORKSHOP).read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
    except OSError as e:
        raise WorkshopError(f"cannot read workshop file: {e}") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise WorkshopError(f"workshop file is not valid JSON: {e}") from None
    return workshop_from_dict(data)
