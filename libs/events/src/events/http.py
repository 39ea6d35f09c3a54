"""HTTP conventions shared by every service: RFC 9457 problem details, a body size cap, and
the RED metrics of every route."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, AwareDatetime
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from events.errors import is_database_unavailable
from events.logs import REQUEST_ID
from events.metrics import RuntimeMetrics

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# A name, key or filter taken from a caller: printable text (PostgreSQL cannot even store NUL).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"


def _in_utc(moment: datetime) -> datetime:
    """As the database compares it; a moment near year 1 or 9999 may not convert."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range") from None


# A time a caller gives (a query's bound): with an offset, and one the database can hold.
UtcMoment = Annotated[AwareDatetime, AfterValidator(_in_utc)]


PROBLEM_TYPE_PREFIX = "urn:provisioning:problem:"
# A database restart takes seconds: sooner, the caller would only be refused again.
DATABASE_RETRY_AFTER_S = 5


class ProblemError(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(title)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra
        self.headers = headers


def problem_type(title: str) -> str:
    """A stable URI naming the kind of problem, made from its title (titles are constants:
    the variable part of a problem goes in `detail`)."""
    return PROBLEM_TYPE_PREFIX + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": problem_type(title), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in location if p != "body"]
    return ".".join(parts) if parts else "body"


def _describe(error: dict[str, Any]) -> dict[str, str]:
    location = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid":
        # The location is ("body", <character position>), not a field.
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        return {"field": "body", "message": f"{reason} at character {location[-1]}"}
    return {"field": _field_path(location), "message": str(error.get("msg", "invalid"))}


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def on_problem(_: Request, error: ProblemError) -> JSONResponse:
        return problem(error.status, error.title, error.detail, error.headers, **error.extra)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [_describe(e) for e in error.errors()]
        json_invalid = any(e.get("type") == "json_invalid" for e in error.errors())
        return problem(
            400 if json_invalid else 422,
            "Malformed JSON" if json_invalid else "Invalid request",
            "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers) if error.headers else None
        # An exception may say more than its constant title (apikeys.authorization's 403).
        explanation = getattr(error, "explanation", None)
        return problem(error.status_code, str(error.detail), explanation, headers=headers)

    # Handled here rather than as `Exception`, which Starlette answers outside the app's
    # middleware: the metrics must count the 503 that the caller gets.
    @app.exception_handler(OSError)
    @app.exception_handler(SQLAlchemyError)
    async def on_database_error(request: Request, error: Exception) -> JSONResponse:
        if not is_database_unavailable(error):
            return unexpected(request, error)
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, error)
        return problem(
            503,
            "Service unavailable",
            "The database cannot be reached; try again later.",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        return unexpected(request, error)


def unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(500, "Internal error", "The error was logged.")


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # FastAPI re-raises HTTPException from body parsing; anything else becomes 400.
                raise StarletteHTTPException(413, "Request body too large")
            return message

        await self.app(scope, counting_receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, "Request body too large", f"At most {self.max_bytes} bytes.")
        await response(scope, receive, send)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """Counts and times every HTTP request by method, route template and status code. The
    template (`/v1/requests/{request_id}`), never the path: ids would make a series each.
    A path that matches no route is `unmatched`."""

    def __init__(self, app: ASGIApp, metrics: RuntimeMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: an exception becomes a 500 further out

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_duration.labels(method, route).observe(time.perf_counter() - started)


async def bind_request_id(request: Request) -> None:
    """An app-wide dependency: log lines of a route about one request carry its id."""
    request_id = request.path_params.get("request_id")
    if request_id is not None:
        REQUEST_ID.set(str(request_id))
