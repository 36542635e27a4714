"""HTTP plumbing shared by both APIs, installed by the composition root: request ids, the error
envelope of API.md, request logging, body limits."""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.errors import TaskFlowError
from infra.availability import DEPENDENCY_ERRORS
from infra.logs import request_id_var
from infra.ratelimit import RateLimiter, RateLimitMiddleware

log = logging.getLogger("taskflow.http")

STATUS_BY_CODE = {
    "VALIDATION_FAILED": 400,
    "UNAUTHORIZED": 401,
    "TOKEN_EXPIRED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "NOT_ACCEPTABLE": 406,
    "CONFLICT": 409,
    "PRECONDITION_FAILED": 412,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "RATE_LIMITED": 429,
    "INTERNAL": 500,
    "NOT_READY": 503,
    "STALE_READ": 503,
}
CODE_BY_STATUS = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}
BREAKER_OPEN_SECONDS = 2.0


class _CircuitOpen(Exception):
    """A request refused without trying, while the breaker is open."""


_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_request_id() -> str:
    """``req_`` and 32 random hex digits. Not uuid4: os.urandom releases the GIL, and the event
    loop then waits for the writer and worker threads to hand it back, on every request. A request
    id needs to be unique, not unpredictable; each worker process seeds its own generator."""
    return f"req_{random.getrandbits(128):032x}"


def error_body(code: str, message: str, request_id: str | None, details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    error["requestId"] = request_id
    return {"error": error}


def error_response(request: Request, code: str, message: str, details: list[dict[str, str]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    status = STATUS_BY_CODE.get(code, 500)
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(error_body(code, message, request_id_of(request), details), status_code=status, headers=headers)


def request_id_of(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TaskFlowError)
    async def domain_error(request: Request, error: TaskFlowError) -> JSONResponse:
        details = [{"field": d.field, "message": d.message} for d in error.details]
        headers = getattr(error, "headers", None)
        return error_response(request, error.code, error.message, details, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        details = []
        for problem in error.errors():
            message = problem.get("msg", "invalid value")
            if problem.get("type") == "json_invalid":
                message = "body is not valid JSON"
            details.append({"field": _field_of(tuple(problem.get("loc", ()))), "message": message})
        return error_response(request, "VALIDATION_FAILED", "Request validation failed", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = CODE_BY_STATUS.get(error.status_code, "INTERNAL" if error.status_code >= 500 else "VALIDATION_FAILED")
        message = error.detail if isinstance(error.detail, str) else "request failed"
        # A 400 from the framework is a body it could not read (bad encoding, nesting too deep).
        details = [{"field": "body", "message": message}] if error.status_code == 400 else None
        response = error_response(request, code, message, details)
        response.status_code = error.status_code
        return response


class RequestContextMiddleware:
    """Gives every request an id (the client's X-Request-ID if sane), echoes it, logs one line
    per request, enforces body limits, and turns any unhandled error into a 500 envelope without
    a traceback (the traceback goes to the log, with the request id)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = 1_000_000):
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Circuit breaker: after a backend turned out to be unreachable, answer 503 at once for
        # a moment instead of letting every request wait out the drivers' timeouts and retries.
        self.unavailable_until = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client_id = headers.get("x-request-id", "")
        request_id = client_id if _CLIENT_REQUEST_ID.match(client_id) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", request_id.encode())]
            await send(message)

        received = 0

        async def receive_within_limit() -> Message:
            # Content-Length is checked up front; a streamed (chunked) body is counted as it is read.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise StarletteHTTPException(413, f"request body is larger than {self.max_body_bytes} bytes")
            return message

        try:
            if time.monotonic() < self.unavailable_until and scope["path"] not in ("/health", "/ready"):
                raise _CircuitOpen
            refusal = self._refuse(scope, headers)
            if refusal is not None:
                await self._send_error(send_with_id, request_id, *refusal)
            else:
                await self.app(scope, receive_within_limit, send_with_id)
        except TaskFlowError as error:  # raised by inner middleware (e.g. the rate limiter)
            if not status["sent"]:
                await self._send_error(send_with_id, request_id, error.code, error.message,
                                       getattr(error, "headers", None))
        except (DEPENDENCY_ERRORS + (_CircuitOpen,)) as error:
            if not isinstance(error, _CircuitOpen):
                self.unavailable_until = time.monotonic() + BREAKER_OPEN_SECONDS
                log.warning("dependency unavailable", extra={"path": scope["path"], "error": repr(error)})
            if not status["sent"]:
                await self._send_error(send_with_id, request_id, "NOT_READY",
                                       "a service TaskFlow depends on is unavailable; retry shortly",
                                       {"Retry-After": "1"})
        except Exception:
            log.exception("unhandled error", extra={"method": scope["method"], "path": scope["path"]})
            if not status["sent"]:
                await self._send_error(send_with_id, request_id, "INTERNAL", "internal server error")
        finally:
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status["code"],
                    "durationMs": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(token)

    def _refuse(self, scope: Scope, headers: dict[str, str]) -> tuple[str, str] | None:
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return None
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_body_bytes:
            return "PAYLOAD_TOO_LARGE", f"request body is larger than {self.max_body_bytes} bytes"
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        has_body = (length and length != "0") or "transfer-encoding" in headers
        if has_body and not (content_type == "application/json" or content_type.endswith("+json")):
            return "UNSUPPORTED_MEDIA_TYPE", "request body must be application/json"
        return None

    @staticmethod
    async def _send_error(send: Send, request_id: str, code: str, message: str,
                          headers: dict[str, str] | None = None) -> None:
        body = json.dumps(error_body(code, message, request_id)).encode()
        extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({
            "type": "http.response.start",
            "status": STATUS_BY_CODE[code],
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra],
        })
        await send({"type": "http.response.body", "body": body})


def install_http_plumbing(app: FastAPI, *, max_body_bytes: int, rate_limiter: RateLimiter | None = None,
                          identify: Callable[[str], str | None] | None = None) -> None:
    install_error_handlers(app)
    if rate_limiter is not None:
        # Added first, so it runs inside the request-context middleware (request id, envelope).
        app.add_middleware(RateLimitMiddleware, limiter=rate_limiter, identify=identify)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=max_body_bytes)
