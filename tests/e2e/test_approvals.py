"""Multi-stage approvals end to end: a big VM needs a quorum of peers, then its budget owner.
The test stack caps every approval wait at a few seconds (`approval_time_cap_s`), so the
catalog's day-long escalation and three-day denial are watched in seconds."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.e2e.client import Platform, key_for
from tests.polling import eventually

pytestmark = pytest.mark.integration

JUSTIFIED = {"justification": "capacity planned for Q3"}


@dataclass
class Person:
    name: str
    api: httpx.AsyncClient

    async def inbox(self, status: str = "pending") -> list[dict[str, Any]]:
        answer = await self.api.get("/v1/approvals", params={"status": status})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    async def decide(self, approval_id: str, verdict: str, **body: Any) -> httpx.Response:
        return await self.api.post(f"/v1/approvals/{approval_id}/{verdict}", json=body)


Hire = Callable[..., Awaitable[Person]]


@pytest.fixture
async def hire(platform: Platform) -> AsyncIterator[Hire]:
    """Someone with their own API key: `await hire("approver")`, `hire("admin", name="dave")`."""
    async with contextlib.AsyncExitStack() as clients:

        async def person(*roles: str, name: str | None = None, tenant: str = "default") -> Person:
            name = name or f"{roles[0]}-{uuid.uuid4().hex[:6]}"
            key = await key_for(platform.stack, name=name, tenant=tenant, roles=list(roles))
            api = httpx.AsyncClient(
                base_url=platform.stack.service_url("request-api"),
                headers={"Authorization": f"Bearer {key}"},
                timeout=30.0,
            )
            await clients.enter_async_context(api)
            return Person(name, api)

        yield person


async def request_big_vm(platform: Platform, requester: Person) -> str:
    """A VM above the 8 vCPU threshold, waiting for its first stage."""
    body = {
        "catalog_item": "cloud_vm",
        "parameters": {
            "name": f"bigvm_{uuid.uuid4().hex[:8]}",
            "vcpu": 12,
            "ram_gb": 16,
            "image": "debian-12",
            "subnet": "lab",
        },
    }
    answer = await requester.api.post("/v1/requests", json=body)
    assert answer.status_code == 202, answer.text
    request_id = str(answer.json()["id"])
    await eventually(lambda: status_is(platform, request_id, "awaiting_approval"))
    return request_id


async def status_is(platform: Platform, request_id: str, status: str) -> bool:
    return bool((await platform.api.get(f"/v1/requests/{request_id}")).json()["status"] == status)


async def in_inbox(person: Person, request_id: str, stage: str) -> dict[str, Any] | None:
    return next(
        (
            item
            for item in await person.inbox()
            if item["request_id"] == request_id and item["stage"] == stage
        ),
        None,
    )


async def audit_of(platform: Platform, request_id: str, *types: str) -> list[dict[str, Any]]:
    """The request's audit records, once every type in `types` is among them."""

    async def records() -> list[dict[str, Any]] | None:
        events = (await platform.audit.get(f"/v1/audit/requests/{request_id}")).json()["events"]
        return events if set(types) <= {e["type"] for e in events} else None

    return list(await eventually(records))


async def test_a_quorum_then_the_budget_owner_approve_and_the_vm_is_built(
    platform: Platform, hire: Hire
):
    rita = await hire("requester")
    ann, ben = await hire("approver"), await hire("approver")
    dave = await hire("auditor", name="dave")  # named in the stage, without the approver role
    request_id = await request_big_vm(platform, rita)

    peers = await eventually(lambda: in_inbox(ann, request_id, "peer_review"))
    assert peers["rule"] == "quorum" and peers["quorum"] == 2
    first = await ann.decide(peers["id"], "approve", **JUSTIFIED)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "pending"  # one of two
    again = await ann.decide(peers["id"], "approve", **JUSTIFIED)
    assert again.status_code == 409
    assert await in_inbox(ann, request_id, "peer_review") is None  # nothing left for ann
    # The request's own approve route decides its current stage on the caller's behalf.
    second = await ben.api.post(
        f"/v1/requests/{request_id}/approve", json={"justification": "agreed, fits the budget"}
    )
    assert second.status_code == 202, second.text
    assert (await ben.api.get(f"/v1/approvals/{peers['id']}")).json()["status"] == "approved"

    budget = await eventually(lambda: in_inbox(dave, request_id, "budget_owner"))
    assert await in_inbox(ann, request_id, "budget_owner") is None  # neither admin nor dave
    missing = await dave.decide(budget["id"], "approve")
    assert missing.status_code == 422
    final = await dave.decide(budget["id"], "approve", justification="paid by team web")
    assert final.status_code == 200, final.text

    request = await platform.wait_terminal(request_id, timeout_s=90)
    assert request["status"] == "completed", request
    records = await audit_of(platform, request_id, "request.approved", "request.validated")
    votes = [r["data"] for r in records if r["type"] == "approval.decision_recorded"]
    assert [(v["approver"], v["stage_status"]) for v in votes] == [
        (ann.name, "pending"),
        (ben.name, "approved"),
    ]
    assert votes[0]["justification"] == JUSTIFIED["justification"] and votes[0]["at"]
    approved = next(r["data"] for r in records if r["type"] == "request.approved")
    assert (approved["approver"], approved["stage"]) == ("dave", "budget_owner")
    assert approved["justification"] == "paid by team web"
    removed = await platform.deprovision(request["resource_id"])  # give the address back
    assert removed["status"] == "completed", removed


async def test_two_approvers_at_once_settle_the_quorum_once(platform: Platform, hire: Hire):
    rita, ann, ben = await hire("requester"), await hire("approver"), await hire("approver")
    adam = await hire("admin")
    request_id = await request_big_vm(platform, rita)
    stage = await eventually(lambda: in_inbox(ann, request_id, "peer_review"))

    both = await asyncio.gather(
        ann.decide(stage["id"], "approve", **JUSTIFIED),
        ben.decide(stage["id"], "approve", **JUSTIFIED),
    )
    assert [answer.status_code for answer in both] == [200, 200], [a.text for a in both]
    assert sorted(answer.json()["status"] for answer in both) == ["approved", "pending"]
    await eventually(lambda: in_inbox(adam, request_id, "budget_owner"))
    assert [item["stage"] for item in await adam.inbox() if item["request_id"] == request_id] == [
        "budget_owner"
    ]
    budget = await in_inbox(adam, request_id, "budget_owner")
    assert budget is not None
    await adam.decide(budget["id"], "deny", justification="not this quarter")
    assert (await platform.wait_terminal(request_id))["status"] == "rejected"


async def test_nobody_approves_their_own_request_nor_another_tenants(
    platform: Platform, hire: Hire
):
    rita = await hire("requester", "approver", "admin")
    ann = await hire("approver")
    outsider = await hire("approver", "admin", tenant="engineering")
    bystander = await hire("requester")
    request_id = await request_big_vm(platform, rita)
    stage = await eventually(lambda: in_inbox(ann, request_id, "peer_review"))

    assert await in_inbox(rita, request_id, "peer_review") is None
    own = await rita.decide(stage["id"], "approve", **JUSTIFIED)
    assert own.status_code == 403, own.text
    assert own.headers["content-type"] == "application/problem+json"
    own_old_way = await rita.api.post(f"/v1/requests/{request_id}/approve", json=JUSTIFIED)
    assert own_old_way.status_code == 403
    not_an_approver = await bystander.decide(stage["id"], "approve", **JUSTIFIED)
    assert not_an_approver.status_code == 403

    assert await in_inbox(outsider, request_id, "peer_review") is None
    for answer in (
        await outsider.api.get(f"/v1/approvals/{stage['id']}"),
        await outsider.decide(stage["id"], "approve", **JUSTIFIED),
        await outsider.decide(stage["id"], "deny", **JUSTIFIED),
        await outsider.api.post(f"/v1/requests/{request_id}/approve", json=JUSTIFIED),
        await ann.decide(str(uuid.uuid4()), "approve", **JUSTIFIED),
    ):
        assert answer.status_code == 404, answer.text

    no = await ann.decide(stage["id"], "deny", justification="use two small ones instead")
    assert no.json()["status"] == "denied", no.text
    late = await ann.decide(stage["id"], "approve", **JUSTIFIED)
    assert late.status_code == 409
    request = await platform.wait_terminal(request_id)
    assert request["status"] == "rejected"
    assert "use two small ones instead" in request["reasons"][0]["message"]


async def test_an_undecided_stage_escalates_to_its_fallback_who_decides(
    platform: Platform, hire: Hire
):
    rita, ann, adam = await hire("requester"), await hire("approver"), await hire("admin")
    request_id = await request_big_vm(platform, rita)
    stage = await eventually(lambda: in_inbox(ann, request_id, "peer_review"))
    assert not stage["escalated"]
    early = await adam.decide(stage["id"], "approve", **JUSTIFIED)
    assert early.status_code == 403  # the admins are the fallback, not yet asked

    escalated = await eventually(lambda: in_inbox(adam, request_id, "peer_review"))
    assert escalated["escalated"] is True
    answer = await adam.decide(stage["id"], "approve", justification="peers away, approving")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "approved"
    assert answer.json()["decisions"][0]["as_fallback"] is True

    budget = await eventually(lambda: in_inbox(adam, request_id, "budget_owner"))
    denied = await adam.decide(budget["id"], "deny", justification="no budget this quarter")
    assert denied.status_code == 200, denied.text
    assert (await platform.wait_terminal(request_id))["status"] == "rejected"
    records = await audit_of(platform, request_id, "approval.escalated", "request.denied")
    types = [r["type"] for r in records]
    assert types.index("approval.escalated") < types.index("approval.decision_recorded")
    escalation = next(r["data"] for r in records if r["type"] == "approval.escalated")
    assert (escalation["stage"], escalation["fallback_roles"]) == ("peer_review", ["admin"])
    fallback = next(r["data"] for r in records if r["type"] == "approval.decision_recorded")
    assert (fallback["approver"], fallback["as_fallback"]) == (adam.name, True)
    denial = next(r["data"] for r in records if r["type"] == "request.denied")
    assert (denial["approver"], denial["stage"]) == (adam.name, "budget_owner")


async def test_a_stage_left_undecided_is_denied_by_the_clock(platform: Platform, hire: Hire):
    rita, ann = await hire("requester"), await hire("approver")
    request_id = await request_big_vm(platform, rita)
    stage = await eventually(lambda: in_inbox(ann, request_id, "peer_review"))

    request = await platform.wait_terminal(request_id, timeout_s=60)
    assert request["status"] == "rejected", request
    reason = request["reasons"][0]
    assert reason["code"] == "denied"
    assert "approval-clock" in reason["message"] and "not decided in time" in reason["message"]
    closed = (await ann.api.get(f"/v1/approvals/{stage['id']}")).json()
    assert (closed["status"], closed["escalated"]) == ("denied", True)
    assert await in_inbox(ann, request_id, "peer_review") is None
    late = await ann.decide(stage["id"], "approve", **JUSTIFIED)
    assert late.status_code == 409
    records = await audit_of(platform, request_id, "approval.escalated", "request.rejected")
    denial = next(r["data"] for r in records if r["type"] == "request.denied")
    assert denial["approver"] == "approval-clock"


async def test_a_request_cancelled_while_it_waits_ends_at_once(platform: Platform, hire: Hire):
    rita, ann = await hire("requester"), await hire("approver")
    request_id = await request_big_vm(platform, rita)
    stage = await eventually(lambda: in_inbox(ann, request_id, "peer_review"))

    cancelled = await rita.api.post(f"/v1/requests/{request_id}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert (await platform.wait_terminal(request_id, timeout_s=5))["status"] == "cancelled"
    assert (await ann.api.get(f"/v1/approvals/{stage['id']}")).json()["status"] == "withdrawn"
    assert await in_inbox(ann, request_id, "peer_review") is None
    late = await ann.decide(stage["id"], "approve", **JUSTIFIED)
    assert late.status_code == 409


async def test_the_inbox_pages_with_a_cursor(platform: Platform, hire: Hire):
    rita, ann = await hire("requester"), await hire("approver")
    mine = [await request_big_vm(platform, rita) for _ in range(3)]
    await eventually(lambda: in_inbox(ann, mine[-1], "peer_review"))
    seen: list[str] = []
    cursor = None
    for _ in range(50):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await ann.api.get("/v1/approvals", params=params)).json()
        assert len(page["items"]) <= 2
        seen += [item["request_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert set(mine) <= set(seen)
    bad = await ann.api.get("/v1/approvals", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422
    for request_id in mine:
        await rita.api.post(f"/v1/requests/{request_id}/cancel")
