"""Hostile and malformed input: a clear problem+json 4xx, nothing created, all stays healthy."""

from __future__ import annotations

import json
import uuid

import asyncpg
import httpx
import pytest
from tests.e2e.client import SERVICES, Platform

pytestmark = pytest.mark.integration


async def count_requests(platform: Platform) -> int:
    connection = await asyncpg.connect(platform.stack.database_dsn("request_api"))
    try:
        return int(await connection.fetchval("SELECT count(*) FROM requests"))
    finally:
        await connection.close()


def body(catalog_item: str, parameters: object, **extra: object) -> bytes:
    return json.dumps({"catalog_item": catalog_item, "parameters": parameters, **extra}).encode()


BAD_BODIES = [
    ("malformed json", b'{"catalog_item": "postgres_schema", ', 400, "body"),
    ("not an object", b"[1, 2, 3]", 422, "body"),
    ("unknown item", body("mainframe", {"name": "abc"}), 422, "catalog_item"),
    ("missing name", body("postgres_database", {}), 422, "parameters.name"),
    (
        "sql in the name",
        body("postgres_database", {"name": 'x"; DROP DATABASE postgres; --'}),
        422,
        "parameters.name",
    ),
    ("unexpected field", body("postgres_schema", {"name": "abc"}, x=1), 422, "x"),
    ("wrong type", body("postgres_schema", {"name": 12345}), 422, "parameters.name"),
    (
        "limit out of range",
        body("postgres_schema", {"name": "abc", "connection_limit": -1}),
        422,
        "parameters.connection_limit",
    ),
    ("parameters not an object", body("postgres_schema", "abc"), 422, "parameters"),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "field"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES]
)
async def test_bad_requests_get_a_problem_naming_the_field(
    platform: Platform, case: str, body: bytes, status: int, field: str
):
    before = await count_requests(platform)
    answer = await platform.api.post(
        "/v1/requests", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["status"] == status and problem["title"]
    assert field in [error["field"] for error in problem.get("errors", [])] or field in problem.get(
        "detail", ""
    ), problem
    assert await count_requests(platform) == before


async def test_oversized_bodies_are_refused(platform: Platform):
    before = await count_requests(platform)
    huge = b'{"catalog_item": "postgres_schema", "parameters": {"name": "' + b"a" * 200_000 + b'"}}'
    answer = await platform.api.post(
        "/v1/requests", content=huge, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("application/problem+json")

    async def chunks():
        for _ in range(100):
            yield b" " * 4096

    streamed = await platform.api.post(
        "/v1/requests", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert await count_requests(platform) == before


async def test_unknown_ids_are_404_and_bad_ids_are_422(platform: Platform):
    assert (await platform.api.get(f"/v1/requests/{uuid.uuid4()}")).status_code == 404
    assert (await platform.api.get(f"/v1/resources/{uuid.uuid4()}")).status_code == 404
    assert (await platform.api.get("/v1/requests/not-a-uuid")).status_code == 422
    assert (await platform.api.get(f"/v1/resources/{uuid.uuid4()}/credentials")).status_code == 404


async def test_every_service_stays_ready_after_the_abuse(platform: Platform):
    async with httpx.AsyncClient() as client:
        for name in SERVICES:
            answer = await client.get(f"{platform.stack.service_url(name)}/readyz")
            assert answer.status_code == 200, (name, answer.text)
