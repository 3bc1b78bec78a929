"""Upload the dashboards to an existing Grafana through its HTTP API (grafana-client).

The folder (uid ``crp`` by default, the one provisioning uses) is created when missing; every
dashboard is saved with ``overwrite`` so pushing again updates it in place (same uid). The
datasources the panels use (``crp-influx``, ``crp-postgres``) are looked up and reported when
missing: create them first (docs/dashboards.md), pushing does not touch datasources.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .check import iter_panels, load_dashboards, target_datasource

DEFAULT_FOLDER_TITLE = "CRP"
DEFAULT_FOLDER_UID = "crp"
PUSH_TIMEOUT_S = 10.0
PUSH_MESSAGE = "crp dashboards push"


class PushError(RuntimeError):
    """Grafana refused or could not be reached; the message says which call and why."""


@dataclass
class PushReport:
    folder_uid: str
    folder_created: bool
    dashboards: list[dict[str, Any]] = field(default_factory=list)  # uid, title, url, version
    missing_datasources: list[str] = field(default_factory=list)


def datasource_uids(dashboard: dict[str, Any]) -> set[str]:
    uids = set()
    for panel in iter_panels(dashboard.get("panels") or []):
        for t in panel.get("targets") or []:
            uid = target_datasource(panel, t).get("uid")
            if uid:
                uids.add(str(uid))
    for v in (dashboard.get("templating") or {}).get("list") or []:
        ds = v.get("datasource")
        if isinstance(ds, dict) and ds.get("uid"):
            uids.add(str(ds["uid"]))
    return uids


def _status(e: Exception) -> int | None:
    return getattr(e, "status_code", None)


def push_dashboards(
    dashboards_dir: Path,
    grafana_url: str,
    token: str,
    *,
    folder_title: str = DEFAULT_FOLDER_TITLE,
    folder_uid: str = DEFAULT_FOLDER_UID,
    timeout_s: float = PUSH_TIMEOUT_S,
) -> PushReport:
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError, GrafanaException

    dashboards = load_dashboards(dashboards_dir)
    api = GrafanaApi.from_url(grafana_url, credential=token, timeout=timeout_s)

    def call(what: str, fn, *args, **kwargs):  # noqa: ANN001, ANN202
        try:
            return fn(*args, **kwargs)
        except GrafanaException as e:
            raise PushError(f"{what}: {_status(e) or ''} {getattr(e, 'message', e)}".strip()) from None

    created = False
    try:
        api.folder.get_folder(folder_uid)
    except GrafanaClientError as e:
        if _status(e) != 404:
            raise PushError(f"folder {folder_uid}: {_status(e)} {getattr(e, 'message', e)}") from None
        call(f"create folder {folder_uid}", api.folder.create_folder, folder_title, uid=folder_uid)
        created = True
    except GrafanaException as e:
        raise PushError(f"folder {folder_uid}: {getattr(e, 'message', e)}") from None
    report = PushReport(folder_uid, created)
    wanted: set[str] = set()
    for path, dash in dashboards:
        body = {k: v for k, v in dash.items() if k != "id"}  # Grafana assigns ids; uids name them
        if not body.get("uid"):
            raise PushError(f"{path.name}: dashboard without a uid")
        wanted |= datasource_uids(dash)
        r = call(f"dashboard {body['uid']}", api.dashboard.update_dashboard,
                 {"dashboard": body, "overwrite": True, "folderUid": folder_uid, "message": PUSH_MESSAGE})
        r = r if isinstance(r, dict) else {}
        report.dashboards.append({"uid": body["uid"], "title": body.get("title", ""), "url": r.get("url"),
                                  "version": r.get("version")})
    for uid in sorted(wanted):
        try:
            api.datasource.get_datasource_by_uid(uid)
        except GrafanaClientError as e:
            if _status(e) != 404:
                raise PushError(f"datasource {uid}: {_status(e)} {getattr(e, 'message', e)}") from None
            report.missing_datasources.append(uid)
        except GrafanaException as e:
            raise PushError(f"datasource {uid}: {getattr(e, 'message', e)}") from None
    return report
