"""RFC 9457 problem+json responses."""

from __future__ import annotations

import json

from starlette.responses import Response

from gateway.errors import ApiError, BadRequest, Denied

MEDIA_TYPE = "application/problem+json"


def problem_response(error: ApiError, rid: str | None = None) -> Response:
    body: dict[str, object] = {
        "type": error.type_uri,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if isinstance(error, BadRequest) and error.parameter:
        body["parameter"] = error.parameter
    if isinstance(error, Denied):
        body["reason"] = error.code
    if rid:
        body["request_id"] = rid
    headers = dict(error.headers)
    headers["Cache-Control"] = "no-store"
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=error.status,
        headers=headers,
        media_type=MEDIA_TYPE,
    )
