"""Dry runs answer at once, reserve nothing, and give the decision the request then gets."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from tests.e2e.client import Platform, fetchval, key_for, usage

pytestmark = pytest.mark.integration


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def plan_then_submit(api: httpx.AsyncClient, platform: Platform, body: dict) -> tuple:
    requests_before = await fetchval(platform.stack, "request_api", "SELECT count(*) FROM requests")
    usage_before = await usage(platform.stack, tenant="two-seats")
    planned = await api.post("/v1/requests", params={"dry_run": "true"}, json=body)
    assert planned.status_code == 200, planned.text
    assert planned.json()["dry_run"] is True
    # Nothing recorded, nothing reserved.
    assert await fetchval(platform.stack, "request_api", "SELECT count(*) FROM requests") == (
        requests_before
    )
    assert await usage(platform.stack, tenant="two-seats") == usage_before
    submitted = await api.post("/v1/requests", json=body)
    assert submitted.status_code == 202, submitted.text
    request_id = submitted.json()["id"]
    for _ in range(300):
        request = (await api.get(f"/v1/requests/{request_id}")).json()
        if request["status"] in {"completed", "rejected", "failed", "rolled_back"}:
            break
        await asyncio.sleep(0.1)
    return planned.json(), request


DECISION_OF = {"completed": "accepted", "rejected": "rejected", "failed": "failed"}


async def test_dry_run_decisions_match_what_the_request_then_gets(platform: Platform):
    key = await key_for(platform.stack, name="planner", tenant="two-seats", roles=["requester"])
    async with httpx.AsyncClient(
        base_url=platform.stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as api:
        schema = lambda name: {"catalog_item": "postgres_schema", "parameters": {"name": name}}  # noqa: E731

        first = unique_name("plan")
        plan, request = await plan_then_submit(api, platform, schema(first))
        assert plan["decision"] == "accepted" == DECISION_OF[request["status"]]
        assert plan["allocation"] == {"server_id": "pg-local", "units": {}}
        assert plan["quota"]["postgres_schemas"] == {
            "limit": 2,
            "warning": 1,
            "in_use_before": 0,
            "in_use_after": 1,
        }
        assert plan["cost"] == {"monthly": 2.0, "currency": "EUR"}

        plan, request = await plan_then_submit(api, platform, schema(first))
        assert plan["decision"] == "failed" == DECISION_OF[request["status"]]
        assert plan["reasons"][0]["code"] == request["reasons"][0]["code"] == "name_taken"

        plan, request = await plan_then_submit(api, platform, schema(unique_name("plan")))
        assert plan["decision"] == "accepted" == DECISION_OF[request["status"]]

        plan, request = await plan_then_submit(api, platform, schema(unique_name("plan")))
        assert plan["decision"] == "failed" == DECISION_OF[request["status"]]
        assert plan["reasons"][0]["code"] == request["reasons"][0]["code"] == "quota_exceeded"
        assert plan["quota"]["postgres_schemas"]["in_use_before"] == 2


async def test_dry_run_of_a_policy_rejection(platform: Platform):
    body = {"catalog_item": "postgres_database", "parameters": {"name": "template1"}}
    plan, request = await plan_then_submit(platform.api, platform, body)
    assert plan["decision"] == "rejected" == DECISION_OF[request["status"]]
    assert [r["code"] for r in plan["reasons"]] == [r["code"] for r in request["reasons"]]
    assert plan["policy_version"] == request["reasons"][0]["policy"]
