"""One tenant can neither see nor touch another's objects, through any endpoint: every
operation of the request-api's OpenAPI document that names an object is called by another
tenant's admin with this tenant's ids, and answers 404 (never 403, never data); every list
leaves them out; the auditor and the deployer hold the same line."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from tests.e2e.client import Platform, key_for

pytestmark = pytest.mark.integration

ALL_ROLES = ["admin", "requester", "approver", "auditor"]
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
# Objects that are not a tenant's: the SCIM schemas and resource types are the same for all.
SHARED = ("/scim/v2/Schemas/", "/scim/v2/ResourceTypes/")


def body_for(method: str, path: str) -> Any:
    """A body valid in shape for the operation, so that only the tenant check can refuse."""
    if method == "patch" and path.startswith("/scim/"):
        return {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Mallory"}],
        }
    if method == "put" and "/Users/" in path:
        return {"schemas": [USER], "userName": "mallory@example.com", "active": True}
    if method == "put" and "/Groups/" in path:
        return {"schemas": [GROUP], "displayName": "mallory"}
    if path.endswith(("/approve", "/deny")):
        return {"justification": "mallory was here"}
    if path.endswith("/extend"):
        return {"expires_at": "2099-01-01T00:00:00+00:00"}
    if method == "patch" and path.startswith("/v1/resources/"):
        return {"parameters": {}, "rotate_credentials": True}
    if method == "patch" and path.startswith("/v1/webhooks/"):
        return {"description": "mallory"}
    return None


async def test_another_tenant_cannot_see_or_touch_anything(platform: Platform):
    stack = platform.stack
    api = platform.api
    # Tenant "default" owns one of everything.
    request = await platform.completed("postgres_schema", name=f"tenancy_{uuid.uuid4().hex[:8]}")
    resource_id = request["resource_id"]
    resource_before = await platform.resource(resource_id)
    bundle = await api.post(
        "/v1/bundles",
        json={
            "items": [
                {
                    "catalog_item": "postgres_schema",
                    "parameters": {"name": f"tb_{uuid.uuid4().hex[:8]}"},
                }
            ]
        },
    )
    assert bundle.status_code == 202, bundle.text
    key = await api.post("/v1/keys", json={"name": "ci-bot", "roles": ["requester"]})
    assert key.status_code == 201, key.text
    hook = await api.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["request.completed"]},
    )
    assert hook.status_code == 201, hook.text
    person = f"tenancy{uuid.uuid4().hex[:6]}"
    user = await api.post(
        "/scim/v2/Users",
        json={"schemas": [USER], "userName": f"{person}@example.com", "active": True},
    )
    assert user.status_code == 201, user.text
    group = await api.post(
        "/scim/v2/Groups", json={"schemas": [GROUP], "displayName": f"g{person}"}
    )
    assert group.status_code == 201, group.text
    ids = {
        "request_id": request["id"],
        "resource_id": resource_id,
        "bundle_id": bundle.json()["id"],
        "key_id": key.json()["id"],
        "subscription_id": hook.json()["id"],
        "delivery_id": str(uuid.uuid4()),
        "user_id": user.json()["id"],
        "group_id": group.json()["id"],
        "person": request["requester"],
    }
    approval_ids = [a["id"] for a in (await api.get("/v1/approvals")).json()["items"]]
    ids["approval_id"] = approval_ids[0] if approval_ids else str(uuid.uuid4())

    # Tenant "ten-seats" has an admin with every role.
    mallory_key = await key_for(stack, name="mallory", tenant="ten-seats", roles=ALL_ROLES)
    mallory = httpx.AsyncClient(
        base_url=stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {mallory_key}"},
        timeout=30.0,
    )
    secrets_of_a = {value for name, value in ids.items() if name != "person"}
    try:
        document = (await mallory.get("/openapi.json")).json()
        tried = []
        for path, operations in document["paths"].items():
            if "{" not in path or path.startswith(SHARED):
                continue
            for method in operations:
                concrete = path
                for name, value in ids.items():
                    concrete = concrete.replace("{" + name + "}", value)
                assert "{" not in concrete, f"no id of tenant A for {path}"
                answer = await mallory.request(method, concrete, json=body_for(method, path))
                tried.append(f"{method.upper()} {path}")
                # Echoing the id the caller sent is not a leak; any other id of A's is.
                leaked = [v for v in secrets_of_a if v in answer.text and v not in concrete]
                assert not leaked, (method, path, answer.status_code, answer.text)
                if path.startswith("/v1/people/"):
                    # A name is not an object: another tenant's person simply owns nothing.
                    assert answer.status_code in (200, 202, 404), (method, path, answer.text)
                else:
                    assert answer.status_code == 404, (
                        method,
                        path,
                        answer.status_code,
                        answer.text,
                    )
        assert len(tried) >= 30, tried

        for listing in (
            "/v1/requests",
            "/v1/resources",
            "/v1/approvals",
            "/v1/keys",
            "/v1/webhooks",
            "/scim/v2/Users",
            "/scim/v2/Groups",
        ):
            answer = await mallory.get(listing)
            assert answer.status_code == 200, (listing, answer.text)
            assert not [value for value in secrets_of_a if value in answer.text], listing

        # The auditor and the deployer: the history and the secret are not theirs either.
        audit = await mallory.get(
            stack.service_url("auditor") + f"/v1/audit/requests/{request['id']}"
        )
        assert audit.status_code == 404, audit.text
        reveal = await mallory.get(stack.service_url("deployer") + f"/v1/credentials/{resource_id}")
        assert reveal.status_code == 404, reveal.text
    finally:
        await mallory.aclose()

    # Nothing of tenant A changed: its resource, its key, its subscription, its user.
    after = await platform.resource(resource_id)
    assert (after["state"], after["version"]) == (
        resource_before["state"],
        resource_before["version"],
    )
    assert (await api.get(f"/v1/keys/{ids['key_id']}")).json()["status"] == "active"
    assert (await api.get(f"/v1/webhooks/{ids['subscription_id']}")).status_code == 200
    assert (await api.get(f"/scim/v2/Users/{ids['user_id']}")).json()["active"] is True
    assert (await platform.reveal(resource_id))["password"]
    history = await platform.audit.get(f"/v1/audit/requests/{request['id']}")
    assert history.status_code == 200 and history.json()["events"]
