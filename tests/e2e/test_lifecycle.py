"""The lifecycle on real infrastructure: deprovision, rollback at each step, quotas."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from tests.e2e.client import Platform, fetchval, key_for, usage
from tests.kafka_tools import read_topic
from tests.polling import eventually

from apikeys.bootstrap import ADMIN_KEY_NAME as BOOTSTRAP_NAME
from events.contracts.requests import STATUS_TOPIC
from events.envelope import Envelope

pytestmark = pytest.mark.integration


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def role_exists(platform: Platform, role: str) -> bool:
    found = await fetchval(
        platform.stack, "postgres", "SELECT 1 FROM pg_roles WHERE rolname = $1", role
    )
    return found is not None


async def usage_returns_to(platform: Platform, before: dict) -> None:
    """The last step of an undo gives capacity and quota back: wait for it."""
    for _ in range(50):
        if await usage(platform.stack) == before:
            break
        await asyncio.sleep(0.1)
    assert (await usage(platform.stack)) == before


async def announced_moves(
    platform: Platform, request_id: str, *, ending: str
) -> list[tuple[str, str, str]]:
    """The request's status changes as the request-api announced them, (old, new, cause)
    in order, once the one into `ending` is there."""

    async def moves() -> list[tuple[str, str, str]] | None:
        records = await read_topic(
            platform.stack.bootstrap_servers, STATUS_TOPIC, at_least=0, timeout_s=2, settle_s=0.3
        )
        mine = [
            Envelope.model_validate_json(r.value or b"").data
            for r in records
            if r.key == request_id.encode()
        ]
        found = [(m["old"], m["new"], m["cause"]) for m in mine]
        return found if any(new == ending for _, new, _ in found) else None

    found: list[tuple[str, str, str]] = await eventually(
        moves, f"the status changes of {request_id}", timeout_s=30
    )
    return found


async def test_every_status_change_is_announced_once_with_its_cause(platform: Platform):
    request = await platform.completed("postgres_schema", name=unique_name("announced"))
    assert await announced_moves(platform, request["id"], ending="completed") == [
        ("submitted", "validated", "request.validated"),
        ("validated", "allocated", "resource.allocated"),
        ("allocated", "configured", "resource.configured"),
        ("configured", "deployed", "resource.deployed"),
        ("deployed", "verified", "resource.verified"),
        ("verified", "completed", "provisioning.completed"),
    ]


async def schema_exists(platform: Platform, schema: str) -> bool:
    try:
        found = await fetchval(
            platform.stack,
            "tenant_schemas",
            "SELECT 1 FROM pg_namespace WHERE nspname = $1",
            schema,
        )
    except asyncpg.InvalidCatalogNameError:
        return False  # no schema was ever deployed on this server
    return found is not None


async def test_provision_then_deprovision_gives_everything_back(platform: Platform):
    before = await usage(platform.stack)
    name = unique_name("life")
    request = await platform.wait_terminal(
        (await platform.submit("postgres_database", name=name))["id"]
    )
    assert request["status"] == "completed", request
    resource_id = request["resource_id"]
    assert await role_exists(platform, f"{name}_db_owner")
    assert (await usage(platform.stack)) != before

    removal = await platform.api.delete(f"/v1/resources/{resource_id}")
    assert removal.status_code == 202, removal.text
    assert removal.json()["operation"] == "deprovision"
    assert (await platform.api.delete(f"/v1/resources/{resource_id}")).status_code == 409
    done = await platform.wait_terminal(removal.json()["id"])
    assert done["status"] == "completed", done

    resource = (await platform.api.get(f"/v1/resources/{resource_id}")).json()
    assert resource["state"] == "retired" and resource["retired_at"]
    assert [r["operation"] for r in resource["requests"]] == ["provision", "deprovision"]
    assert not await role_exists(platform, f"{name}_db_owner")
    database = await fetchval(
        platform.stack, "postgres", "SELECT 1 FROM pg_database WHERE datname = $1", name
    )
    assert database is None
    assert (await usage(platform.stack)) == before
    # A retired resource's name can be used again.
    again = await platform.wait_terminal(
        (await platform.submit("postgres_database", name=name))["id"]
    )
    assert again["status"] == "completed"


@pytest.mark.parametrize(
    ("step", "status", "code"),
    [
        ("validate", "rolled_back", "internal"),
        ("allocate", "rolled_back", "internal"),
        ("configure", "rolled_back", "internal"),
        ("deploy", "rolled_back", "target_failed"),
        ("verify", "rolled_back", "target_failed"),
    ],
)
async def test_a_failure_at_each_step_leaves_nothing_behind(
    platform: Platform, step: str, status: str, code: str
):
    before = await usage(platform.stack)
    name = unique_name(f"fault_at_{step}")
    request = await platform.wait_terminal(
        (await platform.submit("postgres_schema", name=name))["id"]
    )
    assert request["status"] == status, request
    assert request["reasons"] and request["reasons"][0]["code"] == code, request
    assert "fault injected at" in request["reasons"][0]["message"]
    assert not await role_exists(platform, f"{name}_schema_owner")
    assert not await schema_exists(platform, name)
    # The rollback's last step gives capacity and quota back.
    await usage_returns_to(platform, before)
    history = (await platform.audit.get(f"/v1/audit/requests/{request['id']}")).json()
    # A retry report travels on its own topic and may be recorded after the release; it is
    # a report, not an effect, so the effects' order is read without it.
    types = [event["type"] for event in history["events"] if event["type"] != "processing.retried"]
    if step in ("configure", "deploy", "verify"):
        assert types[-1] == "allocation.released"
        assert ("deployment.rolled_back" in types) == (step in ("deploy", "verify")), types
    moves = await announced_moves(platform, request["id"], ending=status)
    assert moves[-1][1] == status and len({new for _, new, _ in moves}) == len(moves), moves


async def test_fifty_requests_for_the_last_ten_seats(platform: Platform):
    """The tenant `ten-seats` may hold 10 schemas: 50 at once give exactly 10."""
    key = await key_for(
        platform.stack, name="quota-tester", tenant="ten-seats", roles=["requester"]
    )
    async with httpx.AsyncClient(
        base_url=platform.stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as api:

        async def submit(i: int) -> str:
            answer = await api.post(
                "/v1/requests",
                json={
                    "catalog_item": "postgres_schema",
                    "parameters": {"name": unique_name("seat")},
                },
            )
            assert answer.status_code == 202, answer.text
            return str(answer.json()["id"])

        ids = await asyncio.gather(*(submit(i) for i in range(50)))
        results = []
        for request_id in ids:
            for _ in range(600):
                request = (await api.get(f"/v1/requests/{request_id}")).json()
                if request["status"] in {"completed", "failed", "rolled_back", "rejected"}:
                    break
                await asyncio.sleep(0.1)
            results.append(request)
    statuses = sorted(r["status"] for r in results)
    assert statuses.count("completed") == 10, statuses
    assert statuses.count("failed") == 40, statuses
    assert {r["reasons"][0]["code"] for r in results if r["status"] == "failed"} == {
        "quota_exceeded"
    }
    quota = await usage(platform.stack, tenant="ten-seats")
    assert quota["quotas"] == [("postgres_schemas", 0, 10)]
    # Past the warning level (8), each further hold is announced: the 9th and the 10th.
    for _ in range(50):  # the auditor may still be catching up
        warnings = await fetchval(
            platform.stack,
            "auditor",
            "SELECT count(*) FROM audit_records WHERE event_type = 'quota.warning_reached'"
            " AND envelope->'data'->>'tenant' = 'ten-seats'",
        )
        if warnings >= 2:
            break
        await asyncio.sleep(0.1)
    assert warnings == 2
    # Another tenant's request is not visible here, nor this tenant's to another.
    assert (await platform.api.get(f"/v1/requests/{ids[0]}")).status_code == 404


async def test_a_role_the_item_does_not_allow_is_rejected_with_a_code(platform: Platform):
    key = await key_for(platform.stack, name="auditor-only", tenant="default", roles=["auditor"])
    async with httpx.AsyncClient(
        base_url=platform.stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {key}"},
    ) as api:
        answer = await api.post(
            "/v1/requests",
            json={"catalog_item": "postgres_schema", "parameters": {"name": unique_name("nope")}},
        )
        request_id = answer.json()["id"]
        for _ in range(100):
            request = (await api.get(f"/v1/requests/{request_id}")).json()
            if request["status"] == "rejected":
                break
            await asyncio.sleep(0.1)
    assert request["status"] == "rejected"
    [reason] = request["reasons"]
    assert reason["code"] == "not_authorised" and reason["policy"].startswith("catalog-")


async def wait_for_status(platform: Platform, request_id: str, status: str) -> None:
    for _ in range(300):
        if (await platform.api.get(f"/v1/requests/{request_id}")).json()["status"] == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{request_id} never reached {status}")


async def stop_service(platform: Platform, name: str) -> None:
    """Stop gracefully, so its consumer leaves the group at once."""
    platform.stack.kill_service(name, signal.SIGTERM)
    for _ in range(300):
        if not any(s.name == name and s.running for s in platform.stack.status()):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} did not stop")


@pytest.mark.parametrize(
    ("stage", "held_by"),
    [
        ("submitted", "validator"),
        ("validated", "allocator"),
        ("allocated", "configurator"),
        ("configured", "deployer"),
    ],
)
async def test_cancel_at_each_stage_ends_cancelled_with_nothing_left(
    platform: Platform, stage: str, held_by: str
):
    before = await usage(platform.stack)
    await stop_service(platform, held_by)  # the request waits at `stage`
    try:
        name = unique_name("cancel")
        request_id = (await platform.submit("postgres_schema", name=name))["id"]
        await wait_for_status(platform, request_id, stage)
        cancel = await platform.api.post(f"/v1/requests/{request_id}/cancel")
        assert cancel.status_code == 202, cancel.text
        assert cancel.json()["cancel_requested"] is True
        again = await platform.api.post(f"/v1/requests/{request_id}/cancel")
        assert again.status_code == 409
    finally:
        await asyncio.to_thread(platform.stack.up)
    request = await platform.wait_terminal(request_id)
    assert request["status"] == "cancelled", request
    # Who cancelled it, and when, is its reason.
    (reason,) = [r for r in request["reasons"] if r["code"] == "cancelled"]
    assert reason["step"] == "cancel" and reason["by"] == BOOTSTRAP_NAME, reason
    assert reason["at"] and reason["message"].startswith(f"cancelled by {BOOTSTRAP_NAME} at ")
    assert (
        request["resource_id"] is None
        or (await platform.api.get(f"/v1/resources/{request['resource_id']}")).status_code == 404
    )
    assert not await role_exists(platform, f"{name}_schema_owner")
    assert not await schema_exists(platform, name)
    await usage_returns_to(platform, before)


async def test_a_completed_request_cannot_be_cancelled(platform: Platform):
    request = await platform.wait_terminal(
        (await platform.submit("postgres_schema", name=unique_name("done")))["id"]
    )
    assert request["status"] == "completed"
    answer = await platform.api.post(f"/v1/requests/{request['id']}/cancel")
    assert answer.status_code == 409
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_a_short_lease_is_announced_then_deprovisions_the_resource(platform: Platform):
    before = await usage(platform.stack)
    name = unique_name("leased")
    expires_at = datetime.now(UTC) + timedelta(seconds=6)
    answer = await platform.api.post(
        "/v1/requests",
        json={
            "catalog_item": "postgres_schema",
            "parameters": {"name": name},
            "expires_at": expires_at.isoformat(),
        },
    )
    assert answer.status_code == 202, answer.text
    request = await platform.wait_terminal(answer.json()["id"])
    assert request["status"] == "completed"
    resource_id = request["resource_id"]
    resource = (await platform.api.get(f"/v1/resources/{resource_id}")).json()
    assert resource["expires_at"] is not None

    for _ in range(300):
        resource = (await platform.api.get(f"/v1/resources/{resource_id}")).json()
        if resource["state"] == "retired":
            break
        await asyncio.sleep(0.1)
    assert resource["state"] == "retired", resource
    assert [r["operation"] for r in resource["requests"]] == ["provision", "deprovision"]
    assert datetime.fromisoformat(resource["retired_at"]) >= expires_at
    assert not await role_exists(platform, f"{name}_schema_owner")
    history = (await platform.audit.get(f"/v1/audit/requests/{request['id']}")).json()
    assert "lease.expiring" in [event["type"] for event in history["events"]]
    await usage_returns_to(platform, before)


async def test_leases_are_extended_within_policy_only(platform: Platform):
    soon = datetime.now(UTC) + timedelta(hours=1)
    answer = await platform.api.post(
        "/v1/requests",
        json={
            "catalog_item": "postgres_schema",
            "parameters": {"name": unique_name("extend")},
            "expires_at": soon.isoformat(),
        },
    )
    request = await platform.wait_terminal(answer.json()["id"])
    path = f"/v1/resources/{request['resource_id']}/extend"
    later = datetime.now(UTC) + timedelta(days=30)
    extended = await platform.api.post(path, json={"expires_at": later.isoformat()})
    assert extended.status_code == 200, extended.text
    assert datetime.fromisoformat(extended.json()["expires_at"]) == later
    too_far = datetime.now(UTC) + timedelta(days=400)
    refused = await platform.api.post(path, json={"expires_at": too_far.isoformat()})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "expires_at"
    past = await platform.api.post(
        "/v1/requests",
        json={
            "catalog_item": "postgres_schema",
            "parameters": {"name": unique_name("past")},
            "expires_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        },
    )
    assert past.status_code == 422


async def test_above_the_threshold_a_request_waits_for_an_approver(platform: Platform):
    approver_key = await key_for(
        platform.stack, name="approver-ann", tenant="default", roles=["approver"]
    )
    body = {
        "catalog_item": "postgres_database",
        "parameters": {"name": unique_name("big"), "connection_limit": 40},
    }
    plan = (await platform.api.post("/v1/requests", params={"dry_run": "true"}, json=body)).json()
    assert plan["approval_required"] is True
    approved_id = (await platform.api.post("/v1/requests", json=body)).json()["id"]
    denied_body = {**body, "parameters": {"name": unique_name("big"), "connection_limit": 40}}
    denied_id = (await platform.api.post("/v1/requests", json=denied_body)).json()["id"]
    await wait_for_status(platform, approved_id, "awaiting_approval")
    await wait_for_status(platform, denied_id, "awaiting_approval")

    # The requester cannot approve their own request.
    own = await platform.api.post(
        f"/v1/requests/{approved_id}/approve", json={"justification": "looks fine to me"}
    )
    assert own.status_code == 403, own.text
    async with httpx.AsyncClient(
        base_url=platform.stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {approver_key}"},
    ) as approver:
        missing = await approver.post(f"/v1/requests/{approved_id}/approve", json={})
        assert missing.status_code == 422
        ok = await approver.post(
            f"/v1/requests/{approved_id}/approve", json={"justification": "capacity planned"}
        )
        assert ok.status_code == 202, ok.text
        twice = await approver.post(
            f"/v1/requests/{approved_id}/approve", json={"justification": "again"}
        )
        assert twice.status_code == 409
        no = await approver.post(
            f"/v1/requests/{denied_id}/deny", json={"justification": "use a schema instead"}
        )
        assert no.status_code == 202
    assert (await platform.wait_terminal(approved_id))["status"] == "completed"
    denied = await platform.wait_terminal(denied_id)
    assert denied["status"] == "rejected"
    assert denied["reasons"][0]["code"] == "denied"
    assert "use a schema instead" in denied["reasons"][0]["message"]
    history = (await platform.audit.get(f"/v1/audit/requests/{approved_id}")).json()
    types = [event["type"] for event in history["events"]]
    assert types[:4] == [
        "request.submitted",
        "request.awaiting_approval",
        "request.approved",
        "request.validated",
    ]


async def test_a_failed_compensation_waits_for_an_operator_then_finishes(platform: Platform):
    before = await usage(platform.stack)
    # Fails after creating the schema, and the first undo fails too.
    name = f"fault_at_verify_fault_at_undo_{uuid.uuid4().hex[:8]}"
    request = await platform.wait_terminal(
        (await platform.submit("postgres_schema", name=name))["id"]
    )
    assert request["status"] == "compensation_failed", request
    assert request["reasons"][-1]["code"] == "compensation_failed"
    assert await role_exists(platform, f"{name}_schema_owner")  # left behind, for now

    retry = await platform.api.post(f"/v1/requests/{request['id']}/retry-compensation")
    assert retry.status_code == 202, retry.text
    assert retry.json()["status"] == "compensating"
    done = await platform.wait_terminal(request["id"])
    assert done["status"] == "rolled_back", done
    assert not await role_exists(platform, f"{name}_schema_owner")
    assert not await schema_exists(platform, name)
    await usage_returns_to(platform, before)
    again = await platform.api.post(f"/v1/requests/{request['id']}/retry-compensation")
    assert again.status_code == 409
