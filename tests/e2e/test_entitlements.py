"""Entitlements under policy, end to end: a value outside the tenant's allow-list is refused
before anything is filed (a dry run, a request, a SCIM group); a privileged group and a modify
raising a limit above its threshold wait for an approver, and are done once approved."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tests.e2e.client import Platform, fetchval, key_for
from tests.e2e.test_scim import ERROR, GROUP, SCIM, created, new_user, unique_person
from tests.polling import eventually

pytestmark = pytest.mark.integration

JUSTIFIED = {"justification": "needed for the on-call rota"}


@pytest.fixture
async def requester(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """A requester of the default tenant: the platform's admin key decides their requests."""
    name = f"requester-{uuid.uuid4().hex[:6]}"
    key = await key_for(platform.stack, name=name, tenant="default", roles=["requester"])
    async with httpx.AsyncClient(
        base_url=platform.stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30.0,
    ) as api:
        yield api


def account(**parameters: Any) -> dict[str, Any]:
    name = f"ent_{uuid.uuid4().hex[:8]}"
    return {
        "catalog_item": "directory_account",
        "parameters": {
            "name": name,
            "given_name": "Ada",
            "family_name": "Lovelace",
            "department": "web",
            **parameters,
        },
    }


async def status_of(api: httpx.AsyncClient, request_id: str) -> str:
    return str((await api.get(f"/v1/requests/{request_id}")).json()["status"])


async def awaiting(api: httpx.AsyncClient, request_id: str) -> bool:
    return await status_of(api, request_id) == "awaiting_approval"


async def test_a_dry_run_naming_a_group_outside_the_allow_list_is_refused_naming_the_field(
    platform: Platform, requester: httpx.AsyncClient
):
    body = account(groups=["web-admins", "domain-admins"])
    for params in ({"dry_run": "true"}, {}):
        answer = await requester.post("/v1/requests", params=params, json=body)
        assert answer.status_code == 422, answer.text
        assert [e["field"] for e in answer.json()["errors"]] == ["parameters.groups[1]"]
    filed = await fetchval(
        platform.stack,
        "request_api",
        "SELECT count(*) FROM requests WHERE parameters->>'name' = $1",
        body["parameters"]["name"],
    )
    assert filed == 0


async def test_a_privileged_group_waits_for_an_approver_then_is_given(
    platform: Platform, requester: httpx.AsyncClient
):
    body = account(groups=["vpn-users", "sudo"])
    plan = await requester.post("/v1/requests", params={"dry_run": "true"}, json=body)
    assert plan.status_code == 200, plan.text
    assert plan.json()["approval_required"] is True
    assert plan.json()["approval"]["stages"] == ["approval"]
    (reason,) = plan.json()["approval"]["reasons"]
    assert reason["field"] == "parameters.groups[1]" and "'sudo'" in reason["message"]

    answer = await requester.post("/v1/requests", json=body)
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["id"]
    await eventually(lambda: awaiting(requester, request_id), what="the request waiting")
    approved = await platform.api.post(f"/v1/requests/{request_id}/approve", json=JUSTIFIED)
    assert approved.status_code == 202, approved.text
    request = await platform.wait_terminal(request_id, timeout_s=90)
    assert request["status"] == "completed", request
    removed = await platform.deprovision(request["resource_id"])
    assert removed["status"] == "completed", removed


async def test_a_modify_raising_the_connection_limit_waits_for_approval_then_completes(
    platform: Platform, requester: httpx.AsyncClient
):
    name = f"ent_{uuid.uuid4().hex[:8]}"
    body = {"catalog_item": "postgres_database", "parameters": {"name": name}}
    answer = await requester.post("/v1/requests", json=body)
    assert answer.status_code == 202, answer.text
    provisioned = await platform.wait_terminal(answer.json()["id"], timeout_s=90)
    assert provisioned["status"] == "completed", provisioned
    resource_id = provisioned["resource_id"]
    first = await requester.get(f"/v1/resources/{resource_id}/credentials")
    assert first.status_code == 200, first.text

    # 10 → 30: above the item's approval threshold of 25; the secret rotated with it.
    change = {"parameters": {"connection_limit": 30}, "rotate_credentials": True}
    answer = await requester.patch(f"/v1/resources/{resource_id}", json=change)
    assert answer.status_code == 202, answer.text
    modify_id = answer.json()["id"]
    await eventually(lambda: awaiting(requester, modify_id), what="the modify waiting")
    approved = await platform.api.post(f"/v1/requests/{modify_id}/approve", json=JUSTIFIED)
    assert approved.status_code == 202, approved.text
    modified = await platform.wait_terminal(modify_id, timeout_s=90)
    assert modified["status"] == "completed", modified
    resource = (await requester.get(f"/v1/resources/{resource_id}")).json()
    assert resource["parameters"]["connection_limit"] == 30
    # Approved, the modify still rotates: a new secret, revealable once more.
    rotated = await requester.get(f"/v1/resources/{resource_id}/credentials")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["password"] != first.json()["password"]

    # Lowering what was approved needs nobody; a value outside the tenant's list is refused.
    answer = await requester.patch(
        f"/v1/resources/{resource_id}", json={"parameters": {"connection_limit": 20}}
    )
    assert answer.status_code == 202, answer.text
    lowered = await platform.wait_terminal(answer.json()["id"], timeout_s=90)
    assert lowered["status"] == "completed", lowered
    removed = await platform.deprovision(resource_id)
    assert removed["status"] == "completed", removed


async def test_a_scim_group_outside_the_allow_list_is_refused_and_not_kept(platform: Platform):
    person = unique_person("eve")
    user = await created(platform, new_user(person))
    body = {"schemas": [GROUP], "displayName": "Domain Admins", "members": [{"value": user["id"]}]}
    answer = await platform.api.post(f"{SCIM}/Groups", json=body)
    assert answer.status_code == 400, answer.text
    problem = answer.json()
    assert problem["schemas"] == [ERROR] and problem["scimType"] == "invalidValue"
    assert "parameters.groups[0]" in problem["detail"] and "domain-admins" in problem["detail"]
    found = await platform.api.get(
        f"{SCIM}/Groups", params={"filter": 'displayName eq "Domain Admins"'}
    )
    assert found.json()["totalResults"] == 0
    assert (await platform.api.delete(f"{SCIM}/Users/{user['id']}")).status_code == 204
