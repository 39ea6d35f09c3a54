"""OAuth2 client-credentials access tokens as a second way in: the test stack's receiver plays
the identity provider (its JWKS at /idp/jwks.json), and the tests sign tokens with its private
key as the provider would. Every service that takes API keys takes these tokens too."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.e2e.client import TERMINAL, Platform

from devstack import keys
from devstack.stack import Stack

pytestmark = pytest.mark.integration

Client = Callable[..., httpx.AsyncClient]


def token(stack: Stack, roles: list[str], *, tenant: str = "default", **claims: Any) -> str:
    client_id = claims.pop("client_id", f"client-{uuid.uuid4().hex[:8]}")
    return keys.idp_token(stack.config, client_id=client_id, tenant=tenant, roles=roles, **claims)


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[Client]:
    """`client(token)`: an HTTP client of the request-api (or `service=`) presenting it."""
    async with contextlib.AsyncExitStack() as clients:

        def make(bearer: str, service: str = "request-api") -> httpx.AsyncClient:
            api = httpx.AsyncClient(
                base_url=platform.stack.service_url(service),
                headers={"Authorization": f"Bearer {bearer}"},
                timeout=30.0,
            )
            clients.push_async_callback(api.aclose)
            return api

        yield make


async def wait_terminal(api: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        answer = await api.get(f"/v1/requests/{request_id}")
        assert answer.status_code == 200, answer.text
        if answer.json()["status"] in TERMINAL:
            return dict(answer.json())
        assert time.monotonic() < deadline, answer.json()
        await asyncio.sleep(0.2)


def schema_request() -> dict[str, Any]:
    return {
        "catalog_item": "postgres_schema",
        "parameters": {"name": f"jwt_{uuid.uuid4().hex[:8]}"},
    }


async def test_a_requester_token_submits_a_request_that_completes_in_its_name(
    platform: Platform, client: Client
) -> None:
    stack = platform.stack
    bearer = token(stack, ["requester"], client_id="ci-pipeline-7")
    api = client(bearer)
    body = schema_request()
    # A dry run asks the allocator with the caller's credential: the allocator takes the token.
    planned = await api.post("/v1/requests", params={"dry_run": "true"}, json=body)
    assert planned.status_code == 200, planned.text
    submitted = await api.post("/v1/requests", json=body, headers={"Idempotency-Key": "jwt-1"})
    assert submitted.status_code == 202, submitted.text
    # The idempotency middleware knows the token's tenant: the retry is the first answer.
    again = await api.post("/v1/requests", json=body, headers={"Idempotency-Key": "jwt-1"})
    assert (again.status_code, again.json()["id"]) == (202, submitted.json()["id"])

    request = await wait_terminal(api, submitted.json()["id"])
    assert request["status"] == "completed", request
    assert (request["requester"], request["tenant"]) == ("ci-pipeline-7", "default")
    # The deployer takes the same token (the request-api passes it on for the reveal) ...
    revealed = await api.get(f"/v1/resources/{request['resource_id']}/credentials")
    assert revealed.status_code == 200, revealed.text
    # ... and so does the auditor.
    history = await client(bearer, "auditor").get(f"/v1/audit/requests/{request['id']}")
    assert history.status_code == 200, history.text
    assert "request.submitted" in {record["type"] for record in history.json()["events"]}


async def test_a_token_without_the_approver_role_cannot_approve(
    platform: Platform, client: Client
) -> None:
    stack = platform.stack
    requester = client(token(stack, ["requester"]))
    approver = client(token(stack, ["approver"]))
    # Roles the platform does not know are dropped: this one is a requester and nothing more.
    bystander = client(token(stack, ["requester", "superuser"]))
    body = {
        "catalog_item": "cloud_vm",
        "parameters": {
            "name": f"jwtvm_{uuid.uuid4().hex[:8]}",
            "vcpu": 12,
            "ram_gb": 16,
            "image": "debian-12",
            "subnet": "lab",
        },
    }
    submitted = await requester.post("/v1/requests", json=body)
    assert submitted.status_code == 202, submitted.text
    request_id = submitted.json()["id"]
    stage = await pending_stage(approver, request_id)

    justified = {"justification": "tokens are not approvers"}
    refused = await bystander.post(f"/v1/approvals/{stage['id']}/approve", json=justified)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    no_roles = client(token(stack, ["superuser"]))
    assert (
        await no_roles.post(f"/v1/requests/{request_id}/approve", json=justified)
    ).status_code == 403

    denied = await approver.post(f"/v1/approvals/{stage['id']}/deny", json=justified)
    assert denied.status_code == 200, denied.text
    assert (await wait_terminal(requester, request_id))["status"] == "rejected"


async def pending_stage(approver: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        inbox = await approver.get("/v1/approvals", params={"status": "pending"})
        assert inbox.status_code == 200, inbox.text
        for item in inbox.json()["items"]:
            if item["request_id"] == request_id:
                return dict(item)
        assert time.monotonic() < deadline, "the approval never reached the inbox"
        await asyncio.sleep(0.2)


async def test_a_token_of_another_tenant_finds_nothing(platform: Platform, client: Client) -> None:
    stack = platform.stack
    owner = client(token(stack, ["requester"]))
    submitted = await owner.post("/v1/requests", json=schema_request())
    assert submitted.status_code == 202, submitted.text
    request_id = submitted.json()["id"]
    await wait_terminal(owner, request_id)

    outsider = token(stack, ["admin", "requester", "auditor"], tenant="engineering")
    for answer in (
        await client(outsider).get(f"/v1/requests/{request_id}"),
        await client(outsider, "auditor").get(f"/v1/audit/requests/{request_id}"),
    ):
        assert answer.status_code == 404, answer.text
    listed = await client(outsider).get("/v1/requests")
    assert listed.status_code == 200, listed.text
    assert request_id not in {item["id"] for item in listed.json()["items"]}


@pytest.mark.parametrize("service", ["request-api", "auditor", "deployer", "allocator"])
async def test_a_bad_token_is_refused_at_once_by_every_service(
    platform: Platform, client: Client, service: str
) -> None:
    stack = platform.stack
    now = int(time.time())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {
        "iss": stack.config.oauth_issuer,
        "aud": stack.config.oauth_audience,
        "sub": "mallory",
        "tenant": "default",
        "roles": ["admin"],
        "exp": now + 300,
    }
    kid = keys.idp_key_id(stack.config)
    refused = [
        token(stack, ["admin"], exp=now - 120, iat=now - 420),  # expired
        jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": kid}),  # another key
        token(stack, ["admin"], aud="another-api"),
        token(stack, ["admin"], tenant=""),  # no tenant
        "not-a-token",
    ]
    method, path = {
        "request-api": ("GET", "/v1/requests"),
        "auditor": ("GET", f"/v1/audit/requests/{uuid.uuid4()}"),
        "deployer": ("GET", f"/v1/credentials/{uuid.uuid4()}"),
        "allocator": ("POST", "/internal/plan"),
    }[service]
    plan = {"catalog_item": "postgres_schema", "parameters": {"name": "nope"}}
    for bearer in refused:
        body = plan if method == "POST" else None
        answer = await client(bearer, service).request(method, path, json=body)
        assert answer.status_code == 401, (bearer, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["title"] == "Invalid bearer token"
