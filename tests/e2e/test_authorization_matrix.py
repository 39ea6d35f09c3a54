"""Every operation of every service that takes an id, called by every kind of principal on
an object of their own tenant and on another tenant's, answers what the authorization table
(apikeys.authorization) prescribes: allowed (neither 401, 403 nor 404), 403 for a colleague's
object they may not touch, 404 for another tenant's. Each operation names its action in its
OpenAPI document (`x-authorization`); one that takes an id and names none fails here."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from tests.e2e.client import SERVICES, Platform, key_for
from tests.e2e.test_tenancy import GROUP, USER, body_for
from tests.polling import eventually

from apikeys import Caller
from apikeys.authorization import OPENAPI_EXTENSION, WHO_MAY, Action, Subject, relations
from apikeys.bootstrap import ADMIN_KEY_NAME

pytestmark = pytest.mark.integration

# The SCIM schemas and resource types are the same for every tenant: no tenant's object.
SHARED = ("/scim/v2/Schemas/", "/scim/v2/ResourceTypes/")
# Addressed by a person's name: another tenant's person is not an object, it owns nothing.
BY_NAME = ("/v1/people/",)


@dataclass
class Principal:
    name: str
    tenant: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    client: httpx.AsyncClient

    @property
    def caller(self) -> Caller:
        return Caller(
            key_id="-", name=self.name, scopes=self.scopes, tenant=self.tenant, roles=self.roles
        )


async def _principal(
    platform: Platform, name: str, roles: list[str], tenant: str = "default"
) -> Principal:
    key = await key_for(platform.stack, name=name, tenant=tenant, roles=roles)
    client = httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30.0)
    return Principal(name, tenant, tuple(roles), ("requests",), client)


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def test_every_operation_with_an_id_answers_as_the_authorization_table_says(
    platform: Platform,
):
    stack = platform.stack
    suffix = uuid.uuid4().hex[:6]
    rita = await _principal(platform, f"rita{suffix}", ["requester"])
    colin = await _principal(platform, f"colin{suffix}", ["requester"])
    april = await _principal(platform, f"april{suffix}", ["approver"])
    adam = await _principal(platform, f"adam{suffix}", ["admin"])
    audrey = await _principal(platform, f"audrey{suffix}", ["auditor"])
    mallory = await _principal(
        platform, f"mallory{suffix}", ["admin", "requester", "approver", "auditor"], "ten-seats"
    )
    operator = Principal(
        ADMIN_KEY_NAME, "default", ("admin",), ("platform",), httpx.AsyncClient(timeout=30.0)
    )
    operator.client.headers["Authorization"] = f"Bearer {platform.key}"
    everyone = [rita, colin, april, adam, audrey, operator, mallory]
    try:
        world = await World.build(platform, rita, adam)
        tried: list[str] = []
        for service in SERVICES:
            base = stack.service_url(service)
            document = (await operator.client.get(base + "/openapi.json")).json()
            for path, operations in document["paths"].items():
                if "{" not in path:
                    continue
                for method, operation in operations.items():
                    declared = operation.get(OPENAPI_EXTENSION)
                    assert declared, f"{service} {method.upper()} {path} declares no action"
                    action = Action(declared["action"])
                    assert declared["who"] == sorted(WHO_MAY[action])
                    ids = await world.ids_for(method, path)
                    expected = {
                        p.name: _expected(p, action, world.subject(path, p), path) for p in everyone
                    }
                    # Refusals first: an allowed call may change the object (a revoke).
                    for principal in sorted(everyone, key=lambda p: expected[p.name] == "ok"):
                        if method == "delete" and path.startswith(MADE_AGAIN):
                            ids = await world.ids_for(method, path, again=True)
                        concrete = path
                        for name, value in ids.items():
                            concrete = concrete.replace("{" + name + "}", value)
                        assert "{" not in concrete, f"no object for {path}"
                        answer = await principal.client.request(
                            method, base + concrete, json=_body_for(method, path)
                        )
                        _check(answer, expected[principal.name], principal, method, path)
                    tried.append(f"{service} {method.upper()} {path}")
        assert len(tried) >= 45, tried
        # What still waits for a decision would count as stuck for the tests after this one,
        # and a subscription would keep failing deliveries for them.
        await world.withdraw()
        await adam.client.delete(f"{world.api}/v1/webhooks/{world.ids['subscription_id']}")
    finally:
        for principal in everyone:
            await principal.client.aclose()


def _body_for(method: str, path: str) -> Any:
    if path.startswith("/internal/pools/"):
        return {"units": [_unique("unit-")]}
    return body_for(method, path)


# Deleted by the first allowed caller: each caller gets an object of its own.
MADE_AGAIN = ("/v1/webhooks/", "/scim/v2/Users/", "/scim/v2/Groups/")


def _expected(principal: Principal, action: Action, subject: Subject, path: str) -> str:
    """`ok`, `403` or `404`: for another tenant's object, 404; otherwise as the table says."""
    by_role_only = path.startswith(SHARED) or path.startswith(BY_NAME)
    if principal.tenant != "default" and not by_role_only:
        return "404"
    if principal.tenant != "default":
        subject = Subject()
    allowed = WHO_MAY[action] & relations(principal.caller, subject)
    return "ok" if allowed else "403"


def _check(
    answer: httpx.Response, expected: str, principal: Principal, method: str, path: str
) -> None:
    where = (principal.name, principal.roles, method.upper(), path, answer.status_code)
    if expected == "ok":
        # Past authorization: what follows may still refuse for the object's state (409),
        # or find no such delivery (a made-up id), never for who is asking.
        absent_delivery = path.endswith("/redeliver") and "Delivery not found" in answer.text
        assert answer.status_code not in (401, 403) and (
            answer.status_code != 404 or absent_delivery
        ), (*where, answer.text)
    else:
        assert answer.status_code == int(expected), (*where, answer.text)


@dataclass
class World:
    """One of everything in tenant `default`, asked for by rita (a requester) or set up by
    adam (its admin)."""

    platform: Platform
    rita: Principal
    adam: Principal
    ids: dict[str, str]
    # Who the item's approval stage names: roles and people.
    approvers: dict[str, Any] = field(default_factory=dict)
    # Every request of rita's that waited for approval.
    waited: list[str] = field(default_factory=list)

    @classmethod
    async def build(cls, platform: Platform, rita: Principal, adam: Principal) -> World:
        world = cls(platform, rita, adam, {})
        stack, api = platform.stack, world.api
        request = await _completed(rita, api, "postgres_schema", name=_unique("mx_"))
        bundle = await rita.client.post(
            api + "/v1/bundles",
            json={
                "items": [
                    {"catalog_item": "postgres_schema", "parameters": {"name": _unique("mb_")}}
                ]
            },
        )
        assert bundle.status_code == 202, bundle.text
        key = await adam.client.post(
            api + "/v1/keys", json={"name": "mx-bot", "roles": ["requester"]}
        )
        assert key.status_code == 201, key.text
        # A pool of the tenant's own: a new pool its admin stocks.
        pool = _unique("mx-pool:")
        stocked = await adam.client.post(
            stack.service_url("allocator") + f"/internal/pools/{pool}/units",
            json={"units": [_unique("unit-")]},
        )
        assert stocked.status_code == 200 and stocked.json()["shared"] is False, stocked.text
        seq = await eventually(
            lambda: _record_of(platform, request["id"], rita.name),
            timeout_s=30.0,
            what="rita's audit record",
        )
        world.ids = {
            "request_id": request["id"],
            "resource_id": request["resource_id"],
            "bundle_id": bundle.json()["id"],
            "key_id": key.json()["id"],
            "subscription_id": await world.subscription(),
            "delivery_id": str(uuid.uuid4()),
            "user_id": await world.user(),
            "group_id": await world.group(),
            "person": rita.name,
            "pool": pool,
            "seq": str(seq),
            "schema_id": USER,
            "type_id": "User",
        }
        world.ids["approval_id"] = (await world.waiting())["approval_id"]
        return world

    @property
    def api(self) -> str:
        return self.platform.stack.service_url("request-api")

    async def ids_for(self, method: str, path: str, *, again: bool = False) -> dict[str, str]:
        """The ids to call `path` with. Deciding settles a stage, so each decision route
        gets a request waiting of its own, deprovisioning a resource of its own; a deleting
        route, with `again`, a new object for each caller."""
        ids = dict(self.ids)
        if path.endswith(("/approve", "/deny")):
            ids.update(await self.waiting())
        if path.endswith("/offboard"):
            # Offboarding rita would deprovision what the later routes need.
            ids["person"] = _unique("olive")
        if (method, path) == ("delete", "/v1/resources/{resource_id}"):
            # Deprovisioned, the resource would have no secret left for the reveal routes.
            made = await _completed(self.rita, self.api, "postgres_schema", name=_unique("mx_"))
            ids["resource_id"] = made["resource_id"]
        if again:
            ids["subscription_id"] = await self.subscription()
            ids["user_id"] = await self.user()
            ids["group_id"] = await self.group()
        return ids

    def subject(self, path: str, principal: Principal) -> Subject:
        rita = self.rita.name
        if "{approval_id}" in path or path.endswith(("/approve", "/deny")):
            return Subject(requester=rita, approver=self.approves(principal))
        if "{resource_id}" in path:
            return Subject(requester=rita, owner=rita)
        if path.endswith("/offboard"):
            return Subject()
        if "{person}" in path:
            return Subject(owner=rita)
        if any("{" + kind + "}" in path for kind in ("request_id", "bundle_id", "seq")):
            return Subject(requester=rita)
        return Subject()

    def approves(self, principal: Principal) -> bool:
        """As the stage's rule says (the item's default stage: its approvers' roles and
        people), never the requester."""
        approvers = self.approvers
        return principal.name != self.rita.name and (
            principal.name in approvers["people"]
            or bool(set(principal.roles) & set(approvers["roles"]))
        )

    async def waiting(self) -> dict[str, str]:
        """A request of rita's awaiting approval, and its stage."""
        request = await _submit(
            self.rita, self.api, "postgres_database", name=_unique("mx_"), connection_limit=30
        )
        approval = await eventually(
            lambda: _approval_of(self.platform, request["id"]),
            timeout_s=30.0,
            what="the approval stage",
        )
        self.approvers = approval["approvers"]
        self.waited.append(request["id"])
        return {"request_id": request["id"], "approval_id": approval["id"]}

    async def withdraw(self) -> None:
        """Cancel what is still awaiting approval."""
        for request_id in self.waited:
            found = await self.rita.client.get(f"{self.api}/v1/requests/{request_id}")
            if found.json()["status"] == "awaiting_approval":
                cancel = await self.rita.client.post(f"{self.api}/v1/requests/{request_id}/cancel")
                assert cancel.status_code == 202, cancel.text

    async def subscription(self) -> str:
        hook = await self.adam.client.post(
            self.api + "/v1/webhooks",
            # An event the other tests hardly cause: nothing listens on port 9, and failing
            # deliveries would crowd the delivery loop for the tests after this one.
            json={"url": "http://127.0.0.1:9/hook", "event_types": ["resource.drift_resolved"]},
        )
        assert hook.status_code == 201, hook.text
        return str(hook.json()["id"])

    async def user(self) -> str:
        body = {"schemas": [USER], "userName": f"{_unique('mx')}@example.com", "active": True}
        made = await self.adam.client.post(self.api + "/scim/v2/Users", json=body)
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    async def group(self) -> str:
        body = {"schemas": [GROUP], "displayName": _unique("mxg")}
        made = await self.adam.client.post(self.api + "/scim/v2/Groups", json=body)
        assert made.status_code == 201, made.text
        return str(made.json()["id"])


async def _submit(principal: Principal, api: str, item: str, **parameters: Any) -> dict[str, Any]:
    answer = await principal.client.post(
        api + "/v1/requests", json={"catalog_item": item, "parameters": parameters}
    )
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


async def _completed(principal: Principal, api: str, item: str, **parameters: Any) -> dict:
    request = await _submit(principal, api, item, **parameters)
    found = request
    for _ in range(120):
        found = (await principal.client.get(api + f"/v1/requests/{request['id']}")).json()
        if found["status"] == "completed":
            return dict(found)
        await asyncio.sleep(0.5)
    raise AssertionError(f"not completed: {found}")


async def _approval_of(platform: Platform, request_id: str) -> dict[str, Any] | None:
    inbox = (await platform.api.get("/v1/approvals")).json()["items"]
    return next((a for a in inbox if a["request_id"] == request_id), None)


async def _record_of(platform: Platform, request_id: str, actor: str) -> int | None:
    found = await platform.audit.get("/v1/audit/records", params={"request_id": request_id})
    return next((r["seq"] for r in found.json()["items"] if r["actor"] == actor), None)
