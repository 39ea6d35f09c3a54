"""API keys end to end: an admin manages its tenant's keys, and a rotated, revoked or expired
key is refused at once; rate limits answer 429 with Retry-After; the in-flight count."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from tests.e2e.client import Platform, key_for

from devstack.stack import Stack
from request_api.limits_repository import count_in_flight
from request_api.models import ProvisioningRequest

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def holding(stack: Stack, secret: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30.0,
    ) as api:
        yield api


async def works(stack: Stack, secret: str) -> int:
    """The status of an ordinary call made with `secret`."""
    async with holding(stack, secret) as api:
        return (await api.get("/v1/catalog")).status_code


async def new_key(platform: Platform, **body: Any) -> dict[str, Any]:
    body = {"name": f"ci-{uuid.uuid4().hex[:8]}", "roles": ["requester"], **body}
    answer = await platform.api.post("/v1/keys", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def test_an_admin_creates_a_key_that_works_and_is_shown_once(platform: Platform):
    key = await new_key(platform, roles=["requester"], scopes=["requests"])
    secret = key["secret"]
    assert secret.startswith("prov_") and key["hint"] == f"prov_…{secret[-4:]}"
    assert key["tenant"] == "default" and key["roles"] == ["requester"]
    assert key["status"] == "active" and key["created_by"] == "bootstrap-admin"
    # The secret is kept nowhere, not even for replaying a retried POST.
    retry_key = {"Idempotency-Key": f"keys-{uuid.uuid4()}"}
    body = {"name": "retried", "roles": ["requester"]}
    first = await platform.api.post("/v1/keys", json=body, headers=retry_key)
    assert first.status_code == 201 and first.headers["cache-control"] == "no-store"
    again = await platform.api.post("/v1/keys", json=body, headers=retry_key)
    assert first.json()["secret"] not in again.text
    assert await works(platform.stack, secret) == 200

    async with holding(platform.stack, secret) as api:
        dry_run = await api.post(
            "/v1/requests?dry_run=true",
            json={"catalog_item": "postgres_schema", "parameters": {"name": "keyed_plan"}},
        )
    assert dry_run.status_code == 200, dry_run.text

    shown = await platform.api.get(f"/v1/keys/{key['id']}")
    assert shown.status_code == 200 and "secret" not in shown.json()
    assert shown.json()["name"] == key["name"]


async def test_a_list_never_shows_a_secret_or_its_hash(platform: Platform):
    key = await new_key(platform)
    listing = await platform.api.get("/v1/keys")
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert key["id"] in {item["id"] for item in items}
    assert all("secret" not in item and "secret_hash" not in item for item in items)
    assert key["secret"] not in listing.text
    assert hashlib.sha256(key["secret"].encode()).hexdigest() not in listing.text


async def test_rotation_refuses_the_old_secret_at_once(platform: Platform):
    key = await new_key(platform)
    rotated = await platform.api.post(f"/v1/keys/{key['id']}/rotate")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["id"] == key["id"] and rotated.json()["rotated_at"]
    assert await works(platform.stack, key["secret"]) == 401
    assert await works(platform.stack, rotated.json()["secret"]) == 200


async def test_a_revoked_key_is_refused_at_once(platform: Platform):
    key = await new_key(platform)
    assert await works(platform.stack, key["secret"]) == 200
    revoked = await platform.api.delete(f"/v1/keys/{key['id']}")
    assert revoked.status_code == 204
    async with holding(platform.stack, key["secret"]) as api:
        refused = await api.get("/v1/catalog")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    shown = (await platform.api.get(f"/v1/keys/{key['id']}")).json()
    assert shown["status"] == "revoked" and shown["revoked_at"]
    # Revoking again changes nothing; a revoked key cannot be brought back by a rotation.
    assert (await platform.api.delete(f"/v1/keys/{key['id']}")).status_code == 204
    assert (await platform.api.post(f"/v1/keys/{key['id']}/rotate")).status_code == 409


async def test_an_expired_key_is_refused(platform: Platform):
    expires_at = datetime.now(UTC) + timedelta(seconds=2)
    key = await new_key(platform, expires_at=expires_at.isoformat())
    await asyncio.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.2)
    assert await works(platform.stack, key["secret"]) == 401
    shown = (await platform.api.get(f"/v1/keys/{key['id']}")).json()
    assert shown["status"] == "expired"


async def test_a_non_admin_cannot_manage_keys(platform: Platform):
    requester = (await new_key(platform, roles=["requester", "approver"]))["secret"]
    target = await new_key(platform)
    async with holding(platform.stack, requester) as api:
        answers = [
            await api.post("/v1/keys", json={"name": "sneaky", "roles": ["admin"]}),
            await api.get("/v1/keys"),
            await api.get(f"/v1/keys/{target['id']}"),
            await api.post(f"/v1/keys/{target['id']}/rotate"),
            await api.delete(f"/v1/keys/{target['id']}"),
        ]
    assert [answer.status_code for answer in answers] == [403] * 5
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    assert await works(platform.stack, target["secret"]) == 200


async def test_an_admin_never_reaches_another_tenants_key(platform: Platform):
    other_admin = await key_for(
        platform.stack, name="finance-admin", tenant="finance", roles=["admin"]
    )
    async with holding(platform.stack, other_admin) as finance:
        created = await finance.post("/v1/keys", json={"name": "payroll", "roles": ["requester"]})
        assert created.status_code == 201, created.text
        theirs = created.json()
        assert theirs["tenant"] == "finance"
        finance_listing = (await finance.get("/v1/keys")).json()["items"]
        assert {item["tenant"] for item in finance_listing} == {"finance"}

    assert (await platform.api.get(f"/v1/keys/{theirs['id']}")).status_code == 404
    assert (await platform.api.post(f"/v1/keys/{theirs['id']}/rotate")).status_code == 404
    assert (await platform.api.delete(f"/v1/keys/{theirs['id']}")).status_code == 404
    listing = (await platform.api.get("/v1/keys")).json()["items"]
    assert theirs["id"] not in {item["id"] for item in listing}
    assert {item["tenant"] for item in listing} == {"default"}
    assert await works(platform.stack, theirs["secret"]) == 200


async def test_the_operator_issues_a_new_tenants_first_admin_and_nobody_else_can(
    platform: Platform,
):
    tenant = f"new-{uuid.uuid4().hex[:8]}"
    first = await new_key(platform, name="first-admin", roles=["admin"], tenant=tenant)
    assert first["tenant"] == tenant
    async with holding(platform.stack, first["secret"]) as theirs:
        # That admin runs its own tenant, but is no operator: neither another tenant's key
        # nor the operator's scope is theirs to give.
        own = await theirs.post("/v1/keys", json={"name": "ci", "roles": ["requester"]})
        assert own.status_code == 201 and own.json()["tenant"] == tenant
        for body in (
            {"name": "x", "roles": ["admin"], "tenant": "default"},
            {"name": "x", "roles": ["admin"], "scopes": ["platform"]},
        ):
            refused = await theirs.post("/v1/keys", json=body)
            assert refused.status_code == 403, refused.text
        assert [k["tenant"] for k in (await theirs.get("/v1/keys")).json()["items"]] == [
            tenant,
            tenant,
        ]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "roles": ["root"]},
        {"name": "x", "roles": []},
        {"name": "x", "roles": ["requester"], "rate_limit": "fast"},
        {"name": "x", "roles": ["requester"], "expires_at": "2020-01-01T00:00:00Z"},
        {"name": "x", "roles": ["requester"], "tenant": "Not A Tenant"},
        {"name": "", "roles": ["requester"]},
    ],
)
async def test_a_bad_key_request_is_refused_with_422(platform: Platform, body: dict[str, Any]):
    answer = await platform.api.post("/v1/keys", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


async def test_a_key_over_its_own_rate_limit_gets_429_with_retry_after(platform: Platform):
    key = await new_key(platform, rate_limit="3/second")
    async with holding(platform.stack, key["secret"]) as api:
        answers = await asyncio.gather(*(api.get("/v1/catalog") for _ in range(4)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200, 200, 200, 429], statuses
        [refused] = [answer for answer in answers if answer.status_code == 429]
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        await asyncio.sleep(int(refused.headers["retry-after"]))
        assert (await api.get("/v1/catalog")).status_code == 200
    # Another key of the same tenant is not held back by this one's limit.
    assert await works(platform.stack, platform.key) == 200


async def test_in_flight_counts_the_tenants_requests_that_have_not_ended(stack: Stack):
    """The cap's query on the real read model. The rows are rolled back: the running
    services never see them."""
    tenant = f"inflight-{uuid.uuid4().hex[:8]}"
    statuses = ["submitted", "awaiting_approval", "compensating", "completed", "rolled_back"]
    engine = create_async_engine(stack.database_url("request_api"))
    try:
        async with AsyncSession(engine) as session, session.begin():
            assert await count_in_flight(session, tenant=tenant) == 0
            for owner, status in [(tenant, s) for s in statuses] + [("elsewhere", "submitted")]:
                session.add(
                    ProvisioningRequest(
                        id=uuid.uuid4(),
                        catalog_item="postgres_schema",
                        parameters={"name": "counted"},
                        requester="ci",
                        tenant=owner,
                        status=status,
                        resource_id=uuid.uuid4(),
                    )
                )
            await session.flush()
            assert await count_in_flight(session, tenant=tenant) == 3
            await session.rollback()
    finally:
        await engine.dispose()
