"""Gateway endpoints (header ``X-API-Key``): event ingestion and the authorization snapshot."""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from crp_common.events import IngestBatch, IngestResult
from crp_common.snapshot import Snapshot

from ..errors import ApiError, invalid
from ..ingest import first_error, ingest_and_commit
from ..snapshot_builder import build_snapshot
from .deps import CurrentGateway, Db

router = APIRouter(prefix="/api/v1", tags=["gateway"])

MAX_BODY_BYTES = 32 * 1024 * 1024  # after decompression
GZIP_WBITS = 16 + zlib.MAX_WBITS

_INGEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": IngestBatch.model_json_schema(ref_template="#/components/schemas/{model}")}},
    }
}


def _decode_body(raw: bytes, encoding: str | None) -> Any:
    enc = (encoding or "identity").strip().lower()
    if enc == "gzip":
        d = zlib.decompressobj(GZIP_WBITS)
        try:
            raw = d.decompress(raw, MAX_BODY_BYTES + 1)
        except zlib.error as e:
            raise ApiError(400, "server.error.bad_gzip", detail=str(e)) from None
        if len(raw) > MAX_BODY_BYTES or d.unconsumed_tail:
            raise ApiError(413, "server.error.too_large", limit=MAX_BODY_BYTES)
    elif enc not in ("identity", ""):
        raise ApiError(415, "server.error.encoding", encoding=enc[:32])
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "server.error.too_large", limit=MAX_BODY_BYTES)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise invalid(f"body: {str(e)[:200]}") from None


@router.post("/ingest", response_model=IngestResult, openapi_extra=_INGEST_BODY)
async def ingest(request: Request, gw: CurrentGateway, db: Db) -> IngestResult:
    data = _decode_body(await request.body(), request.headers.get("content-encoding"))
    try:
        batch = IngestBatch.model_validate(data)
    except ValidationError as e:
        raise invalid(first_error(e)) from None
    if batch.gateway != gw.id:
        raise ApiError(403, "server.error.wrong_gateway", gateway=batch.gateway, expected=gw.id)

    def work() -> IngestResult:
        return ingest_and_commit(db, gw.id, batch)

    return await run_in_threadpool(work)


def _etag_matches(header: str | None, version: str) -> bool:
    if not header:
        return False
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') == version:
            return True
    return False


@router.get("/gateway/snapshot", response_model=Snapshot)
def snapshot(request: Request, gw: CurrentGateway, db: Db) -> Response:
    snap = build_snapshot(db, gw.site, int(time.time() * 1000))
    headers = {"ETag": f'"{snap.version}"', "Cache-Control": "no-cache"}
    if _etag_matches(request.headers.get("if-none-match"), snap.version):
        return Response(status_code=304, headers=headers)
    return Response(snap.model_dump_json(), media_type="application/json", headers=headers)
