"""How /scim/v2 appears in the service's OpenAPI document: application/scim+json bodies, and
SCIM Error documents (RFC 7644 §3.12) for every failure, in place of problem+json. The
resources' own schemas are published by the service itself, on /Schemas."""

from __future__ import annotations

from typing import Any

from request_api.scim.protocol import SCIM_JSON

_URNS = {"type": "array", "items": {"type": "string"}, "minItems": 1}
RESOURCE: dict[str, Any] = {
    "type": "object",
    "description": "A SCIM resource; its attributes are described on /scim/v2/Schemas.",
    "required": ["schemas"],
    "properties": {"schemas": _URNS, "id": {"type": "string"}, "meta": {"type": "object"}},
}
LIST_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["schemas", "totalResults"],
    "properties": {
        "schemas": _URNS,
        "totalResults": {"type": "integer", "minimum": 0},
        "startIndex": {"type": "integer", "minimum": 1},
        "itemsPerPage": {"type": "integer", "minimum": 0},
        "Resources": {"type": "array", "items": {"type": "object"}},
    },
}
ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["schemas", "status"],
    "properties": {
        "schemas": _URNS,
        "status": {"type": "string", "pattern": "^[1-5][0-9][0-9]$"},
        "scimType": {"type": "string"},
        "detail": {"type": "string"},
    },
}
_ERROR_EXAMPLE = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
    "status": "409",
    "scimType": "uniqueness",
    "detail": "userName is already taken in this tenant",
}
_ETAG = {
    "ETag": {"description": 'The version, as a weak tag: W/"<n>"', "schema": {"type": "string"}}
}


def responses(
    status: int, body: dict[str, Any] | None, *, etag: bool = False
) -> dict[int | str, Any]:
    """The success answer, and every failure as a SCIM Error (the `default` response)."""
    success: dict[str, Any] = {"description": "Success" if body else "No content"}
    if body is not None:
        success["content"] = {SCIM_JSON: {"schema": body}}
    if etag:
        success["headers"] = _ETAG
    return {
        status: success,
        "default": {
            "description": "A SCIM Error: 400 (scimType invalidFilter, invalidValue, "
            "invalidSyntax, mutability, noTarget, ...), 401, 403, 404 (also another tenant's), "
            "409 uniqueness, 412 If-Match stale, 413, 429, 501.",
            "content": {SCIM_JSON: {"schema": ERROR, "example": _ERROR_EXAMPLE}},
        },
    }


def request_body() -> dict[str, Any]:
    content = {"schema": RESOURCE}
    return {
        "requestBody": {
            "required": True,
            "content": {SCIM_JSON: content, "application/json": content},
        }
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


LIST_PARAMETERS = {
    "parameters": [
        _query("filter", {"type": "string"}, 'RFC 7644 §3.4.2.2, e.g. userName eq "bjensen"'),
        _query("startIndex", {"type": "integer"}, "1-based index of the first result"),
        _query("count", {"type": "integer"}, "Results per page (at most 200)"),
        _query("attributes", {"type": "string"}, "Only these attributes (comma-separated)"),
        _query("excludedAttributes", {"type": "string"}, "All but these (comma-separated)"),
    ]
}
