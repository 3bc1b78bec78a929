"""Property-based run of the whole authenticated API (schemathesis, from the app's OpenAPI):
with a manager token and a gateway key, no generated request gets a 5xx. A few examples per
operation keep it under a minute."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings

from server.app import create_app
from server.db import upgrade
from server.settings import ServerSettings

ADMIN = "schemathesis-admin-token"
MAX_EXAMPLES = 3

@pytest.fixture(scope="module")
def authed_schema(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'crp.db'}"
    upgrade(url)
    s = ServerSettings(database_url=url, demo_mode=False, secret_key="schemathesis-secret-key",
                       admin_token=ADMIN, _env_file=None)
    if hasattr(s, "background_jobs"):
        s.background_jobs = False
    app = create_app(s)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        for path, body in (
            ("/api/v1/sites", {"code": "DKR", "name": "CRP Dakar"}),
            ("/api/v1/machine-types", {"code": "bandsaw", "name_fr": "Scie", "name_en": "Saw"}),
            ("/api/v1/machines", {"id": "bandsaw-1", "site": "DKR", "type": "bandsaw", "name": "Scie 1"}),
            ("/api/v1/artisans", {"site": "DKR", "name": "Awa Diop"}),
            ("/api/v1/users", {"username": "boss", "password": "a-long-manager-password", "role": "manager"}),
        ):
            assert c.post(path, json=body).status_code == 201
        key = c.post("/api/v1/gateways", json={"id": "gw-dkr", "site": "DKR"}).json()["api_key"]
        token = c.post("/api/v1/auth/token", data={"username": "boss", "password": "a-long-manager-password"},
                       headers={"Authorization": ""}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "X-API-Key": key}
    with TestClient(app) as client:
        yield schemathesis.openapi.from_asgi("/openapi.json", app), headers, client


def _operations(schema):
    out = []
    for result in schema.get_all_operations():
        op = result.ok() if hasattr(result, "ok") else result
        out.append(op)
    return out


def test_no_server_error(authed_schema):
    schema, auth, client = authed_schema
    operations = _operations(schema)
    assert len(operations) > 50  # the whole API, not an empty schema
    failures: list[str] = []
    statuses: list[int] = []
    for op in operations:
        headers = {k: v for k, v in auth.items() if not (op.path == "/api/v1/auth/token" and k == "Authorization")}

        @given(op.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def run(case):
            # Sent with FastAPI's TestClient: schemathesis' own ASGI transport trips over the
            # urllib3-future package installed here (it counts pool connections).
            kw = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
            kw = {k: v for k, v in kw.items() if k in ("method", "url", "headers", "params", "json", "data",
                                                       "files", "cookies", "content")}
            if not kw.get("cookies"):
                kw.pop("cookies", None)
            if isinstance(kw.get("data"), (bytes, str)):
                kw["content"] = kw.pop("data")
            response = client.request(**kw)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")

        run()
    assert not failures, "\n".join(failures)
    # the credentials worked: most answers are not refusals
    assert sum(1 for x in statuses if x in (401, 403)) < len(statuses) // 4, statuses
    assert sum(1 for x in statuses if x < 300) >= 20
