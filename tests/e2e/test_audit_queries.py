"""Reading the audit: by request, person, event type and time, in pages; the tenant's auditor
reads all of it, anyone else only what they did or had done for them; every read is itself
recorded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.e2e.client import Platform, key_for

pytestmark = pytest.mark.integration


async def as_person(
    platform: Platform, name: str, tenant: str, roles: list[str]
) -> httpx.AsyncClient:
    key = await key_for(platform.stack, name=name, tenant=tenant, roles=roles)
    return httpx.AsyncClient(
        base_url=platform.stack.service_url("auditor"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30.0,
    )


async def every_page(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = await client.get("/v1/audit/records", params=query)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def test_records_are_found_by_request_person_type_and_time(platform: Platform):
    rita_name = f"rita-{uuid.uuid4().hex[:6]}"
    rita_key = await key_for(platform.stack, name=rita_name, tenant="default", roles=["requester"])
    started = datetime.now(UTC) - timedelta(seconds=1)
    async with httpx.AsyncClient(
        base_url=platform.stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {rita_key}"},
        timeout=30.0,
    ) as rita_api:
        answer = await rita_api.post(
            "/v1/requests",
            json={
                "catalog_item": "postgres_schema",
                "parameters": {"name": f"aq_{uuid.uuid4().hex[:8]}"},
            },
        )
        assert answer.status_code == 202, answer.text
    request = await platform.wait_terminal(answer.json()["id"])
    assert request["status"] == "completed"

    auditor = await as_person(platform, f"audrey-{uuid.uuid4().hex[:6]}", "default", ["auditor"])
    rita = await as_person(platform, rita_name, "default", ["requester"])
    stranger = await as_person(platform, "ivy", "ten-seats", ["auditor"])
    try:
        # By request, in pages of two: the whole journey, in order, each record once.
        journey = await every_page(auditor, request_id=request["id"], limit=2)
        types = [record["type"] for record in journey]
        assert types[0] == "request.submitted" and "provisioning.completed" in types
        assert [r["seq"] for r in journey] == sorted({r["seq"] for r in journey})
        submitted = journey[0]
        assert (submitted["actor"], submitted["step"], submitted["after"]) == (
            rita_name,
            "submission",
            "submitted",
        )
        # By event type and time.
        completed = await every_page(
            auditor,
            event_type="provisioning.completed",
            occurred_after=started.isoformat(),
        )
        assert request["id"] in {r["request_id"] for r in completed}
        # Rita reads what she did or had done for her, nobody else's.
        hers = await every_page(rita)
        assert hers and all(rita_name in (r["actor"], r["on_behalf_of"]) for r in hers)
        refused = await rita.get("/v1/audit/records", params={"person": "someone-else"})
        assert refused.status_code == 403
        # Another tenant's auditor finds nothing of it.
        assert await every_page(stranger, request_id=request["id"]) == []
        # Every read is on the record, with who read and what they asked.
        reads = await every_page(auditor, event_type="audit.read", person=rita_name)
        assert reads and all(r["step"] == "audit" for r in reads)
        # Her refused read too, as refused.
        assert [r["data"]["query"] for r in reads if r["outcome"] == "refused"] == [
            {"person": "someone-else", "view": "records"}
        ]
        assert {r["outcome"] for r in reads} == {"read", "refused"}
        bad = await auditor.get("/v1/audit/records", params={"cursor": "nonsense"})
        assert bad.status_code == 422
    finally:
        for client in (auditor, rita, stranger):
            await client.aclose()
