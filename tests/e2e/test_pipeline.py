"""End to end through the REST API: a real database and schema provisioned on PostgreSQL."""

from __future__ import annotations

import json
import uuid

import asyncpg
import httpx
import pytest
from tests.e2e.client import SERVICES, Platform, login

pytestmark = pytest.mark.integration

PIPELINE_EVENTS = [
    "request.submitted",
    "request.validated",
    "resource.allocated",
    "resource.configured",
    "resource.deployed",
    "resource.verified",
    "provisioning.completed",
]


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def test_a_database_request_completes_and_its_credentials_log_in(platform: Platform):
    name = unique_name("orders")
    submitted = await platform.submit("postgres_database", name=name, extensions=["citext"])
    assert submitted["status"] == "submitted"

    request = await platform.wait_terminal(submitted["id"])
    assert request["status"] == "completed", request
    resource = (await platform.api.get(f"/v1/resources/{request['resource_id']}")).json()
    assert resource["state"] == "active"
    outputs = resource["outputs"]
    assert outputs["database"] == name and outputs["username"] == f"{name}_db_owner"

    reveal = await platform.api.get(f"/v1/resources/{resource['id']}/credentials")
    assert reveal.status_code == 200, reveal.text
    credentials = reveal.json()
    assert credentials["username"] == outputs["username"]

    connection = await login(outputs, credentials)
    try:
        assert await connection.fetchval("SELECT current_database()") == name
        await connection.execute("CREATE TABLE t (x citext)")
    finally:
        await connection.close()
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            host=outputs["host"],
            port=outputs["port"],
            user=credentials["username"],
            password="not-the-password",
            database=name,
        )

    again = await platform.api.get(f"/v1/resources/{resource['id']}/credentials")
    assert again.status_code == 410
    assert again.headers["content-type"].startswith("application/problem+json")

    history = (await platform.audit.get(f"/v1/audit/requests/{request['id']}")).json()
    assert [e["type"] for e in history["events"]] == PIPELINE_EVENTS
    assert credentials["password"] not in json.dumps(history)
    await assert_secret_is_nowhere(platform, credentials["password"])
    verdict = (await platform.audit.get("/v1/audit/verify")).json()
    assert verdict["ok"] is True and verdict["records"] >= len(PIPELINE_EVENTS)


async def assert_secret_is_nowhere(platform: Platform, secret: str) -> None:
    """Not in any log, trace, metrics page, nor in the target server's log."""
    config = platform.stack.config
    for folder in (config.logs_dir, config.traces_dir):
        for path in folder.iterdir():
            assert secret not in path.read_text(errors="replace"), path
    async with httpx.AsyncClient() as client:
        for name in SERVICES:
            metrics = await client.get(f"{platform.stack.service_url(name)}/metrics")
            assert metrics.status_code == 200 and "events_processed" in metrics.text
            assert secret not in metrics.text


async def test_a_schema_request_gives_a_schema_its_role_can_use(platform: Platform):
    name = unique_name("team")
    request = await platform.wait_terminal(
        (await platform.submit("postgres_schema", name=name))["id"]
    )
    assert request["status"] == "completed", request
    resource = (await platform.api.get(f"/v1/resources/{request['resource_id']}")).json()
    outputs = resource["outputs"]
    credentials = (await platform.api.get(f"/v1/resources/{resource['id']}/credentials")).json()
    connection = await login(outputs, credentials)
    try:
        await connection.execute(f"CREATE TABLE {name}.things (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("CREATE TABLE public.intruder (id int)")
    finally:
        await connection.close()


async def test_a_name_already_taken_fails_with_a_reason(platform: Platform):
    name = unique_name("dup")
    first = await platform.wait_terminal(
        (await platform.submit("postgres_schema", name=name))["id"]
    )
    second = await platform.wait_terminal(
        (await platform.submit("postgres_schema", name=name))["id"]
    )
    assert first["status"] == "completed"
    assert second["status"] == "failed"
    assert "already exists" in second["reasons"][0]["message"]


async def test_policy_rejections_come_back_with_reasons(platform: Platform):
    # `postgres` passes the schema but not the policy, which the validator enforces.
    request = await platform.wait_terminal(
        (await platform.submit("postgres_database", name="postgres"))["id"]
    )
    assert request["status"] == "rejected"
    [reason] = request["reasons"]
    assert reason["code"] == "reserved_name" and reason["step"] == "validation"
    assert reason["field"] == "parameters.name"
    assert reason["message"] == "'postgres' is a reserved name"
    assert reason["policy"].startswith("catalog-")


async def test_every_v1_endpoint_needs_a_valid_key(platform: Platform):
    anonymous = httpx.AsyncClient(base_url=platform.stack.service_url("request-api"))
    auditor = httpx.AsyncClient(base_url=platform.stack.service_url("auditor"))
    try:
        for client, path in [
            (anonymous, "/v1/catalog"),
            (anonymous, f"/v1/requests/{uuid.uuid4()}"),
            (auditor, "/v1/audit/verify"),
        ]:
            assert (await client.get(path)).status_code == 401
            wrong = await client.get(path, headers={"Authorization": "Bearer prov_wrong"})
            assert wrong.status_code == 401
            assert wrong.headers["content-type"].startswith("application/problem+json")
        posted = await anonymous.post("/v1/requests", json={"catalog_item": "postgres_schema"})
        assert posted.status_code == 401
    finally:
        await anonymous.aclose()
        await auditor.aclose()


async def test_catalog_lists_items_with_their_parameter_schemas(platform: Platform):
    items = {i["name"]: i for i in (await platform.api.get("/v1/catalog")).json()["items"]}
    assert items["postgres_database"]["parameters"]["required"] == ["name"]
    assert "postgres_schema" in items
