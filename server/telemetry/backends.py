"""Where the spool's points go: InfluxDB 1.x (``/write``) or 2.x/3.x (influxdb-client).

A backend writes one batch synchronously and says how it went:
- returns normally: InfluxDB acknowledged the batch;
- raises :class:`WriteFailed`: try again later (unreachable, timeout, 401/403/404, 429, 5xx);
- raises :class:`WriteRefused`: InfluxDB will never take these points as they are (400, 413,
  422: malformed point, field type conflict, batch too large); the writer sets them aside.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import httpx

# HTTP statuses that mean "these points will never be accepted as sent"; anything else that is
# not a success is worth retrying (auth fixed, database created, server back).
REFUSED_STATUSES = frozenset({400, 413, 422})


class WriteFailed(Exception):
    """Transient: keep the points and retry."""


class WriteRefused(Exception):
    """Permanent for these points: set them aside with the reason."""


class Backend(Protocol):
    name: str

    def write(self, lines: Sequence[str]) -> None: ...

    def close(self) -> None: ...


def _short(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


class V1Backend:
    """InfluxDB 1.x HTTP API: ``POST /write?db=<db>&precision=ms`` (also served by 1.8+ and 2.x
    through their compatibility endpoint)."""

    name = "v1"

    def __init__(self, url: str, db: str, *, username: str = "", password: str = "",
                 retention_policy: str = "", timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self.params = {"db": db, "precision": "ms"}
        if retention_policy:
            self.params["rp"] = retention_policy
        auth = httpx.BasicAuth(username, password) if username else None
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, auth=auth, transport=transport)

    def write(self, lines: Sequence[str]) -> None:
        body = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            r = self._http.post("/write", params=self.params, content=body,
                                headers={"Content-Type": "text/plain; charset=utf-8"})
        except httpx.HTTPError as e:
            raise WriteFailed(f"{type(e).__name__}: {_short(str(e))}") from None
        if r.is_success:
            return
        msg = f"HTTP {r.status_code}: {_short(r.text)}"
        if r.status_code in REFUSED_STATUSES:
            raise WriteRefused(msg)
        raise WriteFailed(msg)

    def close(self) -> None:
        self._http.close()


class V2Backend:
    """InfluxDB 2.x/3.x through influxdb-client's synchronous WriteApi (org, bucket, token).

    The client's own batching buffer is not used: it lives in memory and drops points after
    its retries. Batching and retries are the spool's and the writer's job."""

    name = "v2"

    def __init__(self, url: str, token: str, org: str, bucket: str, *, timeout_s: float = 10.0):
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self._client = InfluxDBClient(url=self.url, token=token, org=org,
                                      timeout=int(timeout_s * 1000))
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: Sequence[str]) -> None:
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._api.write(bucket=self.bucket, org=self.org, record=list(lines),
                            write_precision=WritePrecision.MS)
        except ApiException as e:
            body = e.body.decode("utf-8", "replace") if isinstance(e.body, bytes) else str(e.body or e.reason)
            msg = f"HTTP {e.status}: {_short(body)}"
            if e.status in REFUSED_STATUSES:
                raise WriteRefused(msg) from None
            raise WriteFailed(msg) from None
        except Exception as e:  # urllib3 connection errors, timeouts, TLS: all transient
            raise WriteFailed(f"{type(e).__name__}: {_short(str(e))}") from None

    def close(self) -> None:
        self._api.close()
        self._client.close()
