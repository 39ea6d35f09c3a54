"""The audit record read back as a story: a request's timeline step by step (approvers waited
for, retries taken), and a resource as it stood at a past instant. Both come from the audit
records alone; another tenant finds neither."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from tests.e2e.client import Platform, key_for
from tests.polling import eventually

pytestmark = pytest.mark.integration


def client(platform: Platform, service: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=platform.stack.service_url(service),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30.0,
    )


async def person(platform: Platform, role: str, tenant: str = "default") -> tuple[str, str]:
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    return name, await key_for(platform.stack, name=name, tenant=tenant, roles=[role])


async def test_the_timeline_of_a_request_that_waited_for_approval_and_hit_a_retry_shows_both(
    platform: Platform,
):
    rita_name, rita_key = await person(platform, "requester")
    ann_name, ann_key = await person(platform, "approver")
    _, bystander_key = await person(platform, "requester")
    _, stranger_key = await person(platform, "auditor", tenant="ten-seats")
    async with (
        client(platform, "request-api", rita_key) as rita_api,
        client(platform, "request-api", ann_key) as ann_api,
        client(platform, "auditor", rita_key) as rita,
        client(platform, "auditor", bystander_key) as bystander,
        client(platform, "auditor", stranger_key) as stranger,
    ):
        # Above 25 connections needs an approver; the marker fails the deployment's first try.
        body = {
            "catalog_item": "postgres_database",
            "parameters": {
                "name": f"retry_at_deploy_{uuid.uuid4().hex[:8]}",
                "connection_limit": 40,
            },
        }
        submitted = await rita_api.post("/v1/requests", json=body)
        assert submitted.status_code == 202, submitted.text
        request_id = submitted.json()["id"]

        async def awaiting() -> bool:
            status = (await platform.api.get(f"/v1/requests/{request_id}")).json()["status"]
            return bool(status == "awaiting_approval")

        await eventually(awaiting)
        await asyncio.sleep(0.5)  # a wait long enough to see
        approved = await ann_api.post(
            f"/v1/requests/{request_id}/approve", json={"justification": "capacity planned"}
        )
        assert approved.status_code == 202, approved.text
        request = await platform.wait_terminal(request_id)
        assert request["status"] == "completed", request

        async def retried_timeline() -> dict[str, Any] | None:
            answer = await rita.get(f"/v1/audit/requests/{request_id}/timeline")
            assert answer.status_code == 200, answer.text
            found = answer.json()
            deployment = next((s for s in found["steps"] if s["name"] == "deployment"), None)
            done = found["status"] == "completed"
            return found if done and deployment and deployment["waits"]["retries"] else None

        timeline = await eventually(retried_timeline)
        assert (timeline["request_id"], timeline["tenant"], timeline["catalog_item"]) == (
            request_id,
            "default",
            "postgres_database",
        )
        assert timeline["requester"] == rita_name and len(timeline["trace_id"]) == 32
        assert timeline["resource_id"] == request["resource_id"]
        steps = timeline["steps"]
        assert [(s["name"], s["outcome"]) for s in steps] == [
            ("validation", "approval_required"),
            ("approval", "approved"),
            ("validation", "succeeded"),
            ("allocation", "succeeded"),
            ("configuration", "succeeded"),
            ("deployment", "succeeded"),
            ("verification", "succeeded"),
            ("completion", "succeeded"),
        ]
        for before, after in itertools.pairwise(steps):
            assert after["started_at"] == before["finished_at"]
        # The approval: how long it waited, and who decided.
        approval = steps[1]
        wait = approval["waits"]["approval"]
        assert (approval["service"], approval["actor"]) == ("request-api", ann_name)
        assert wait["since"] == steps[0]["finished_at"] and wait["until"] == approval["finished_at"]
        assert wait["duration_s"] >= 0.5
        assert [(d["approver"], d["decision"]) for d in wait["decisions"]] == [
            (ann_name, "approved")
        ]
        # The retry: on the step whose handler failed, with the time it cost.
        deployment = steps[5]
        assert (deployment["service"], deployment["input_event_type"]) == (
            "deployer",
            "resource.configured",
        )
        [retry] = deployment["waits"]["retries"]
        assert (retry["service"], retry["handled_type"], retry["attempts"], retry["outcome"]) == (
            "deployer",
            "resource.configured",
            2,
            "succeeded",
        )
        assert retry["lost_s"] >= 0 and "transient fault" in retry["last_error"]
        assert all(not s["waits"]["retries"] for s in steps if s is not deployment)
        assert timeline["other_retries"] == []
        assert timeline["duration_s"] >= wait["duration_s"]

        # Anyone else of the tenant is refused; another tenant does not find it.
        refused = await bystander.get(f"/v1/audit/requests/{request_id}/timeline")
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        hidden = await stranger.get(f"/v1/audit/requests/{request_id}/timeline")
        assert hidden.status_code == 404, hidden.text
        unknown = await platform.audit.get(f"/v1/audit/requests/{uuid.uuid4()}/timeline")
        assert unknown.status_code == 404
        # Reading it is on the record too.
        reads = await platform.audit.get(
            "/v1/audit/records", params={"event_type": "audit.read", "person": rita_name}
        )
        assert {"request_id": request_id, "view": "timeline"} in [
            r["data"]["query"] for r in reads.json()["items"]
        ]


async def test_the_state_of_a_resource_at_an_instant_before_and_after_a_modify_and_a_removal(
    platform: Platform,
):
    name = f"state_{uuid.uuid4().hex[:8]}"
    request = await platform.completed("postgres_database", name=name)
    resource_id = request["resource_id"]
    path = f"/v1/audit/resources/{resource_id}/state"

    async def state(**params: str) -> dict[str, Any]:
        answer = await platform.audit.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def now_in(expected: str) -> dict[str, Any] | None:
        found = await state()
        return found if found["state"] == expected else None

    provisioned = await eventually(lambda: now_in("active"))
    assert (provisioned["catalog_item"], provisioned["tenant"]) == ("postgres_database", "default")
    assert provisioned["configuration"]["connection_limit"] == 10
    assert provisioned["outputs"]["database"] == name
    assert provisioned["owner"] and provisioned["server_id"]
    between = datetime.now(UTC)

    modified = await platform.modify(resource_id, connection_limit=20)
    assert modified["status"] == "completed", modified

    async def changed() -> dict[str, Any] | None:
        found = await state()
        return found if found["parameters"].get("connection_limit") == 20 else None

    after_modify = await eventually(changed)
    assert after_modify["state"] == "active"
    assert after_modify["configuration"]["connection_limit"] == 20
    assert [r["operation"] for r in after_modify["requests"]] == ["provision", "modify"]
    after_modify_at = datetime.now(UTC)

    removed = await platform.deprovision(resource_id)
    assert removed["status"] == "completed", removed
    gone = await eventually(lambda: now_in("deprovisioned"))
    assert [r["operation"] for r in gone["requests"]] == ["provision", "modify", "deprovision"]

    # The past stays as it was: before the modify, then before the removal.
    before = await state(at=between.isoformat())
    assert before["state"] == "active"
    assert before["parameters"].get("connection_limit") != 20
    assert before["configuration"]["connection_limit"] == 10
    assert [r["operation"] for r in before["requests"]] == ["provision"]
    assert before["last_seq"] <= gone["last_seq"]
    assert datetime.fromisoformat(before["last_occurred_at"]) <= between
    still = await state(at=after_modify_at.isoformat())
    assert (still["state"], still["configuration"]["connection_limit"]) == ("active", 20)

    # Nothing before its first record; a time without offset (or with no UTC equivalent) is
    # refused; another tenant finds nothing.
    early = await platform.audit.get(path, params={"at": "2000-01-01T00:00:00+00:00"})
    assert early.status_code == 404, early.text
    for bad in ("2030-01-01T00:00:00", "0001-01-01T00:00:00+14:00"):
        refused = await platform.audit.get(path, params={"at": bad})
        assert refused.status_code == 422, refused.text
    _, stranger_key = await person(platform, "auditor", tenant="ten-seats")
    _, bystander_key = await person(platform, "requester")
    async with (
        client(platform, "auditor", stranger_key) as stranger,
        client(platform, "auditor", bystander_key) as bystander,
    ):
        hidden = await stranger.get(path)
        assert hidden.status_code == 404, hidden.text
        refused = await bystander.get(path)
        assert refused.status_code == 403, refused.text
