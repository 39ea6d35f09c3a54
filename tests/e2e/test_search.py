"""Finding things: GET /v1/requests and /v1/resources filtered by parameters and SCIM filter
expressions, sorted, and paged by cursor while new requests keep arriving; always within the
caller's tenant, and bad input answers a 422 problem naming the parameter."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from tests.e2e.client import TERMINAL, key_for

from devstack.stack import Stack

pytestmark = pytest.mark.integration


@dataclass
class Person:
    """Someone with a key of their own, so their rows are told apart by `requester`."""

    name: str
    tenant: str
    api: httpx.AsyncClient
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def submit(self, catalog_item: str, **parameters: Any) -> dict[str, Any]:
        body = {"catalog_item": catalog_item, "parameters": parameters}
        answer = await self.api.post("/v1/requests", json=body)
        assert answer.status_code == 202, answer.text
        request = dict(answer.json())
        self.requests[request["id"]] = request
        return request

    async def settled(self, request_id: str) -> dict[str, Any]:
        for _ in range(300):
            request = dict((await self.api.get(f"/v1/requests/{request_id}")).json())
            if request["status"] in TERMINAL:
                self.requests[request_id] = request
                return request
            await asyncio.sleep(0.2)
        raise AssertionError(f"request {request_id} stuck in {request['status']}")

    async def found(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item the list answers, across its pages."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self.page(path, cursor, **params)
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    async def page(self, path: str, cursor: str | None, **params: Any) -> dict[str, Any]:
        answer = await self.api.get(path, params={**params, "cursor": cursor} if cursor else params)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def person(stack: Stack, *, tenant: str) -> Person:
    name = unique("finder")
    key = await key_for(stack, name=name, tenant=tenant, roles=["requester"])
    api = httpx.AsyncClient(
        base_url=stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30.0,
    )
    return Person(name, tenant, api)


@pytest.fixture(scope="module")
async def alice(stack: Stack) -> AsyncIterator[Person]:
    """In the roomy default tenant: two schemas and a database completed, one request failed,
    and one schema deprovisioned again."""
    alice = await person(stack, tenant="default")
    submitted = [
        await alice.submit("postgres_schema", name=unique("sa")),
        await alice.submit("postgres_database", name=unique("da")),
        await alice.submit("postgres_schema", name=unique("sb")),
        await alice.submit("postgres_schema", name=unique("sf") + "_fault_at_validate"),
    ]
    settled = [await alice.settled(request["id"]) for request in submitted]
    assert [r["status"] for r in settled[:3]] == ["completed"] * 3, settled
    assert settled[3]["status"] not in ("completed", "cancelled"), settled[3]
    retired = await alice.api.delete(f"/v1/resources/{settled[0]['resource_id']}")
    assert retired.status_code == 202, retired.text
    await alice.settled(retired.json()["id"])
    yield alice
    await alice.api.aclose()


def ids(items: list[dict[str, Any]]) -> set[str]:
    return {item["id"] for item in items}


def mine(alice: Person, **where: str) -> set[str]:
    return {i for i, r in alice.requests.items() if all(r[k] == v for k, v in where.items())}


async def test_requests_are_found_by_each_parameter(alice: Person) -> None:
    found = ids(await alice.found("/v1/requests", requester=alice.name))
    assert found == set(alice.requests)

    by = {"requester": alice.name}
    completed = await alice.found("/v1/requests", status="completed", **by)
    assert ids(completed) == mine(alice, status="completed")
    failed = next(r["status"] for r in alice.requests.values() if r["status"] != "completed")
    assert ids(await alice.found("/v1/requests", status=failed, **by)) == mine(alice, status=failed)
    either = await alice.found("/v1/requests", status=["completed", failed], **by)
    assert ids(either) == set(alice.requests)

    schemas = await alice.found("/v1/requests", catalog_item="postgres_schema", **by)
    assert ids(schemas) == mine(alice, catalog_item="postgres_schema")
    deprovisions = await alice.found("/v1/requests", operation="deprovision", **by)
    assert ids(deprovisions) == mine(alice, operation="deprovision") != set()
    assert await alice.found("/v1/requests", requester=unique("nobody")) == []


async def test_requests_are_found_by_when_they_were_created(alice: Person) -> None:
    ordered = sorted(alice.requests.values(), key=lambda r: (r["created_at"], r["id"]))
    middle = ordered[2]["created_at"]
    by = {"requester": alice.name}
    after = await alice.found("/v1/requests", created_after=middle, **by)
    before = await alice.found("/v1/requests", created_before=middle, **by)
    # Half-open: created_after is inclusive, created_before exclusive; together they tile.
    assert ids(after) | ids(before) == set(alice.requests)
    assert not ids(after) & ids(before)
    assert ordered[2]["id"] in ids(after)
    assert ids(before) == {r["id"] for r in ordered if r["created_at"] < middle}


async def test_a_scim_filter_finds_what_it_says(alice: Person) -> None:
    theirs = f'requester eq "{alice.name}"'
    expression = f'status eq "completed" and catalog_item eq "postgres_schema" and {theirs}'
    found = await alice.found("/v1/requests", filter=expression)
    assert ids(found) == mine(alice, status="completed", catalog_item="postgres_schema")
    assert all(item["operation"] in ("provision", "deprovision") for item in found)

    either = f'(catalog_item eq "postgres_database" or operation eq "deprovision") and {theirs}'
    assert ids(await alice.found("/v1/requests", filter=either)) == (
        mine(alice, catalog_item="postgres_database") | mine(alice, operation="deprovision")
    )
    negated = f'not (status eq "completed") and {theirs}'
    assert ids(await alice.found("/v1/requests", filter=negated)) == (
        set(alice.requests) - mine(alice, status="completed")
    )
    resource = next(r["resource_id"] for r in alice.requests.values() if r["resource_id"])
    by_resource = f'resource_id eq "{resource}" and {theirs}'
    assert ids(await alice.found("/v1/requests", filter=by_resource)) == (
        {i for i, r in alice.requests.items() if r["resource_id"] == resource}
    )
    # A SCIM filter and the plain parameters narrow together.
    sw = 'catalog_item sw "postgres_"'
    narrowed = await alice.found(
        "/v1/requests", filter=sw, status="completed", requester=alice.name
    )
    assert ids(narrowed) == mine(alice, status="completed")


async def test_resources_are_found_by_state_owner_and_item(alice: Person) -> None:
    resources = await alice.found("/v1/resources", owner=alice.name)
    expected = {r["resource_id"] for r in alice.requests.values() if r["status"] == "completed"}
    assert ids(resources) == expected
    retired = await alice.found("/v1/resources", owner=alice.name, state="retired")
    active = await alice.found("/v1/resources", owner=alice.name, state=["active"])
    assert len(retired) == 1 and len(active) == 2
    assert {r["state"] for r in retired} == {"retired"}
    databases = await alice.found(
        "/v1/resources", filter=f'owner eq "{alice.name}" and catalog_item eq "postgres_database"'
    )
    assert [r["catalog_item"] for r in databases] == ["postgres_database"]
    assert ids(await alice.found("/v1/resources", owner=alice.name, filter="retired_at pr")) == (
        ids(retired)
    )


async def test_sorting_goes_both_ways(alice: Person) -> None:
    by = {"requester": alice.name}
    newest_first = await alice.found("/v1/requests", **by)  # the default: -created_at
    oldest_first = await alice.found("/v1/requests", sort="created_at", **by)
    assert [r["id"] for r in newest_first] == [r["id"] for r in reversed(oldest_first)]
    stamps = [r["created_at"] for r in oldest_first]
    assert stamps == sorted(stamps)

    by_item = await alice.found("/v1/requests", sort="catalog_item", limit=1, **by)
    by_item_reversed = await alice.found("/v1/requests", sort="-catalog_item", limit=2, **by)
    assert [r["catalog_item"] for r in by_item] == sorted(r["catalog_item"] for r in by_item)
    assert [r["id"] for r in by_item] == [r["id"] for r in reversed(by_item_reversed)]


async def new_request(someone: Person) -> str:
    return str((await someone.submit("postgres_schema", name=unique("pg")))["id"])


async def test_paging_stays_correct_while_requests_arrive(stack: Stack) -> None:
    bob = await person(stack, tenant=unique("search"))
    try:
        existing = [await new_request(bob) for _ in range(7)]
        # Newest first, following the Link header, two new requests between pages.
        seen: list[str] = []
        arrived: list[str] = []
        answer = await bob.api.get("/v1/requests", params={"limit": 3})
        while True:
            assert answer.status_code == 200, answer.text
            page = answer.json()
            seen += [item["id"] for item in page["items"]]
            for _ in range(2):
                arrived.append(await new_request(bob))
            if page["next_cursor"] is None:
                assert "link" not in answer.headers
                break
            link = answer.headers["link"]
            assert link.startswith("</v1/requests?") and link.endswith('>; rel="next"')
            assert f"cursor={page['next_cursor']}" in link and "limit=3" in link
            answer = await bob.api.get(link[1 : link.index(">")])
        assert len(seen) == len(set(seen)) == len(existing)
        assert set(seen) == set(existing)
        assert seen == list(reversed(existing))

        # Oldest first: what arrives during the walk comes at its end, and nothing twice.
        walked: list[str] = []
        cursor = None
        while True:
            page = await bob.page("/v1/requests", cursor, limit=4, sort="created_at")
            walked += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            await new_request(bob)
        assert len(walked) == len(set(walked))
        assert walked[: len(existing) + len(arrived)] == existing + arrived
    finally:
        await bob.api.aclose()


async def test_another_tenants_rows_never_appear(stack: Stack, alice: Person) -> None:
    carol = await person(stack, tenant=unique("search"))
    try:
        own = (await carol.submit("postgres_schema", name=unique("pc")))["id"]
        assert ids(await carol.found("/v1/requests")) == {own}
        assert await carol.found("/v1/requests", requester=alice.name) == []
        assert await carol.found("/v1/resources") == []
        some_of_alices = next(iter(alice.requests))
        assert await carol.found("/v1/requests", filter=f'id eq "{some_of_alices}"') == []
        assert own not in ids(await alice.found("/v1/requests", filter=f'id eq "{own}"'))
        tenant = await carol.api.get("/v1/requests", params={"filter": 'tenant eq "default"'})
        assert tenant.status_code == 422
        # A cursor carries no tenant: alice's cursor pages carol's own rows only.
        page = (await alice.api.get("/v1/requests", params={"limit": 1})).json()
        followed = await carol.api.get("/v1/requests", params={"cursor": page["next_cursor"]})
        assert followed.status_code == 200
        assert ids(followed.json()["items"]) <= {own}
    finally:
        await carol.api.aclose()


async def test_unauthenticated_callers_find_nothing(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.service_url("request-api")) as anonymous:
        for path in ("/v1/requests", "/v1/resources"):
            answer = await anonymous.get(path)
            assert answer.status_code == 401
            assert answer.headers["content-type"].startswith("application/problem+json")


def other_sort_cursor() -> str:
    payload = {"sort": "catalog_item", "after": ["postgres_schema", str(uuid.uuid4())]}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


BAD_QUERIES = [
    ("filter syntax", "/v1/requests", {"filter": 'status eq "completed" and'}, "filter"),
    ("unknown attribute", "/v1/requests", {"filter": 'colour eq "red"'}, "filter"),
    ("wrong value type", "/v1/requests", {"filter": "created_at gt 5"}, "filter"),
    ("naive date in filter", "/v1/resources", {"filter": 'created_at gt "2026-01-01"'}, "filter"),
    ("resource status", "/v1/resources", {"filter": 'status eq "active"'}, "filter"),
    ("empty filter", "/v1/requests", {"filter": ""}, "filter"),
    ("unknown sort", "/v1/requests", {"sort": "-tenant"}, "sort"),
    ("nullable sort", "/v1/resources", {"sort": "expires_at"}, "sort"),
    ("garbage cursor", "/v1/requests", {"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
    ("cursor of another sort", "/v1/requests", {"cursor": other_sort_cursor()}, "cursor"),
    ("naive date", "/v1/requests", {"created_after": "2026-01-01T00:00:00"}, "created_after"),
    ("not a date", "/v1/resources", {"created_before": "yesterday"}, "created_before"),
    ("nul in a string", "/v1/requests", {"filter": 'status eq "\\u0000"'}, "filter"),
    ("nul in a parameter", "/v1/requests", {"status": ["ok", "\x00"]}, "status.1"),
    ("far date", "/v1/requests", {"created_after": "0001-01-01T00:00+14:00"}, "created_after"),
    ("limit too small", "/v1/requests", {"limit": 0}, "limit"),
    ("limit too large", "/v1/resources", {"limit": 201}, "limit"),
    ("unknown parameter", "/v1/requests", {"owner": "alice"}, "owner"),
]


@pytest.mark.parametrize(
    ("case", "path", "params", "parameter"), BAD_QUERIES, ids=[c[0] for c in BAD_QUERIES]
)
async def test_bad_queries_get_a_problem_naming_the_parameter(
    alice: Person, case: str, path: str, params: dict[str, Any], parameter: str
) -> None:
    answer = await alice.api.get(path, params=params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["status"] == 422 and problem["title"] == "Invalid request"
    assert f"query.{parameter}" in [error["field"] for error in problem["errors"]], problem
    assert "Traceback" not in answer.text
