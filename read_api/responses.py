"""Single-resource responses: the envelope, ETag from the row's version, and If-None-Match."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response


def single(request: Request, response: Response, data: dict[str, Any]) -> Any:
    etag = f'"{data["version"]}"' if "version" in data else None
    if etag:
        response.headers["ETag"] = etag
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=dict(response.headers))
    return {"data": data}
