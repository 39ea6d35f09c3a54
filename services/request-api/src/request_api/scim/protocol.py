"""The SCIM wire protocol around the routes: application/scim+json answers, SCIM Error bodies
for every failure (RFC 7644 §3.12), weak ETags and If-Match."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from scim2_models import (
    Error,
    InvalidSyntaxException,
    PreconditionFailedException,
    SCIMException,
)
from starlette.exceptions import HTTPException

from events.http import ProblemError

SCIM_JSON = "application/scim+json"
log = logging.getLogger(__name__)


class ScimResponse(JSONResponse):
    media_type = SCIM_JSON


def error_response(error: Error) -> ScimResponse:
    return ScimResponse(error.model_dump(), status_code=error.status or 500)


def scim_error_of(exc: Exception) -> Error:
    """The SCIM Error a failure answers with; never a stack trace."""
    if isinstance(exc, SCIMException):
        return exc.to_error()
    if isinstance(exc, ValidationError):
        return Error.from_validation_errors(exc)[0]
    if isinstance(exc, RequestValidationError):
        detail = "; ".join(str(e.get("msg", "invalid")) for e in exc.errors())
        return Error(status=400, scim_type="invalidValue", detail=detail)
    if isinstance(exc, ProblemError):
        detail = f"{exc.title}: {exc.detail}" if exc.detail else exc.title
        return Error(status=exc.status, detail=detail)
    if isinstance(exc, HTTPException):
        return Error(status=exc.status_code, detail=str(exc.detail))
    log.exception("unhandled error in a SCIM route", exc_info=exc)
    return Error(status=500, detail="Internal error; it was logged.")


class ScimRoute(APIRoute):
    """Every failure of a SCIM route, its dependencies (authentication) included, answers
    with a SCIM Error rather than the service's problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_scim(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:  # every failure becomes a SCIM Error
                response = error_response(scim_error_of(exc))
                if isinstance(exc, ProblemError):
                    # Retry-After of a rate limit, and the like.
                    response.headers.update(exc.extra.get("headers") or {})
                    if exc.status == 401:
                        response.headers["WWW-Authenticate"] = "Bearer"
                return response

        return handle_scim


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidSyntaxException(detail=f"the body is not JSON: {error}") from error
    if not isinstance(body, dict):
        raise InvalidSyntaxException(detail="the body must be a JSON object")
    return body


def etag(version: int) -> str:
    return f'W/"{version}"'


def require_match(if_match: str | None, version: int) -> None:
    """RFC 7232 If-Match with weak comparison: `*` or any listed tag of this version."""
    if if_match is None:
        return
    listed = [tag.strip() for tag in if_match.split(",")]
    current = etag(version)
    if "*" in listed or any(tag.removeprefix("W/") == current.removeprefix("W/") for tag in listed):
        return
    raise PreconditionFailedException(detail=f"the resource is at version {current}")
