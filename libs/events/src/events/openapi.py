"""The OpenAPI document every service publishes: each operation lists the problem documents it
may answer with (RFC 9457, `application/problem+json`), with an example of each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict

from events.http import PROBLEM_JSON, problem_type


class Problem(BaseModel):
    """An error. `type` is stable per kind of problem; `errors` names each field at fault."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, str]] | None = None


# What any operation may answer besides its success, with the title of a typical instance.
PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("The request is malformed (JSON, header or query syntax)", "Malformed JSON"),
    401: ("No valid API key or token", "Invalid bearer token"),
    403: ("The caller's role does not allow this", "Only an admin may do this"),
    404: ("Not found, or not the caller's tenant's", "Request not found"),
    409: ("The object is not in a state that allows this", "Request cannot be cancelled"),
    412: ("`If-Match` names a version that is no longer current", "Precondition failed"),
    413: ("The body is larger than the service accepts", "Request body too large"),
    422: ("The body or parameters fail validation", "Invalid request"),
    429: ("Rate limit or in-flight cap reached: retry after `Retry-After` s", "Too many requests"),
    503: ("A dependency is unavailable; retry later", "Service unavailable"),
}
# Health and metrics: no API key, and no problem documents.
OPEN_PATHS = ("/healthz", "/readyz", "/metrics")


def _problem_response(status: int) -> dict[str, Any]:
    description, title = PROBLEMS[status]
    example = {"type": problem_type(title), "title": title, "status": status}
    return {
        "description": description,
        "content": {
            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}, "example": example}
        },
    }


def document_problems(app: FastAPI, own_error_format: Sequence[str] = ()) -> None:
    """Make `app.openapi()` list the problem responses of every operation, in place of
    FastAPI's default validation error schema (which this platform never sends). Paths
    under a prefix in `own_error_format` (a protocol with its own error documents, such as
    SCIM) document their errors themselves."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = Problem.model_json_schema()
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if path in OPEN_PATHS or path.startswith(tuple(own_error_format)):
                    continue  # they answer for themselves, never with a problem document
                for status in PROBLEMS:
                    responses[str(status)] = _problem_response(status)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
