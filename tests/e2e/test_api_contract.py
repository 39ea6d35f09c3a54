"""Predictable under retries and concurrency: Idempotency-Key on POST, ETag and If-Match, and
the tenant boundary held by PostgreSQL's row-level security as well as by the queries."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from tests.e2e.client import Platform, key_for

from devstack.stack import Stack

pytestmark = pytest.mark.integration


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def schema_request(name: str) -> dict[str, object]:
    return {"catalog_item": "postgres_schema", "parameters": {"name": name}}


async def requests_named(stack: Stack, name: str) -> int:
    connection = await asyncpg.connect(stack.database_dsn("request_api"))
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM requests WHERE parameters->>'name' = $1", name
        )
    finally:
        await connection.close()
    return int(count)


async def test_a_retried_post_gets_the_first_answer_and_does_nothing_twice(
    platform: Platform, stack: Stack
):
    key = str(uuid.uuid4())
    body = schema_request(unique_name("idem"))
    first = await platform.api.post("/v1/requests", json=body, headers={"Idempotency-Key": key})
    again = await platform.api.post("/v1/requests", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await requests_named(stack, body["parameters"]["name"]) == 1  # type: ignore[index]

    other = schema_request(unique_name("idem_other"))
    reused = await platform.api.post("/v1/requests", json=other, headers={"Idempotency-Key": key})
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert await requests_named(stack, other["parameters"]["name"]) == 0  # type: ignore[index]


async def test_two_concurrent_posts_with_one_key_make_one_request(platform: Platform, stack: Stack):
    key = str(uuid.uuid4())
    body = schema_request(unique_name("idem_race"))
    answers = await asyncio.gather(
        *(
            platform.api.post("/v1/requests", json=body, headers={"Idempotency-Key": key})
            for _ in range(5)
        )
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) <= {202, 409}, [answer.text for answer in answers]
    accepted = {answer.json()["id"] for answer in answers if answer.status_code == 202}
    assert len(accepted) == 1
    for answer in answers:
        if answer.status_code == 409:
            assert answer.headers["retry-after"] == "1"
    assert await requests_named(stack, body["parameters"]["name"]) == 1  # type: ignore[index]
    # Once the first has finished, every retry gets its answer.
    later = await platform.api.post("/v1/requests", json=body, headers={"Idempotency-Key": key})
    assert later.status_code == 202 and later.json()["id"] in accepted


async def test_idempotency_keys_belong_to_a_tenant(platform: Platform, stack: Stack):
    # A tenant of its own: whichever of the two same-named requests is allocated first takes
    # the name, and the other's tenant must not be one whose quota another test counts.
    other = await key_for(
        stack, name="ivy", tenant=f"idem-{uuid.uuid4().hex[:8]}", roles=["requester"]
    )
    key = str(uuid.uuid4())
    name = unique_name("idem_tenant")
    mine = await platform.api.post(
        "/v1/requests", json=schema_request(name), headers={"Idempotency-Key": key}
    )
    theirs = await platform.api.post(
        "/v1/requests",
        json=schema_request(name),
        headers={"Idempotency-Key": key, "Authorization": f"Bearer {other}"},
    )
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]


async def test_a_malformed_idempotency_key_is_refused(platform: Platform):
    answer = await platform.api.post(
        "/v1/requests",
        json=schema_request(unique_name("idem_bad")),
        headers={"Idempotency-Key": "x" * 300},
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_a_stale_etag_is_refused_and_the_current_one_accepted(platform: Platform):
    request = await platform.completed("postgres_schema", name=unique_name("etag"))
    resource_id = request["resource_id"]
    read = await platform.api.get(f"/v1/resources/{resource_id}")
    etag = read.headers["etag"]
    assert etag == f'"{read.json()["version"]}"'

    stale = '"0"'
    for method, path, body in (
        ("PATCH", "", {"parameters": {}, "rotate_credentials": True}),
        ("POST", "/extend", {"expires_at": "2099-01-01T00:00:00+00:00"}),
        ("DELETE", "", None),
    ):
        answer = await platform.api.request(
            method, f"/v1/resources/{resource_id}{path}", json=body, headers={"If-Match": stale}
        )
        assert answer.status_code == 412, (method, path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert (await platform.api.get(f"/v1/resources/{resource_id}")).headers["etag"] == etag

    # The first change made from a read wins; the second, from the same read, is refused.
    first = await platform.api.patch(
        f"/v1/resources/{resource_id}",
        json={"parameters": {}, "rotate_credentials": True},
        headers={"If-Match": etag},
    )
    assert first.status_code == 202, first.text
    second = await platform.api.delete(f"/v1/resources/{resource_id}", headers={"If-Match": etag})
    assert second.status_code == 412
    await platform.wait_terminal(first.json()["id"])


async def test_cancel_honours_if_match(platform: Platform):
    submitted = await platform.submit("postgres_schema", name=unique_name("etag_cancel"))
    stale = await platform.api.post(
        f"/v1/requests/{submitted['id']}/cancel", headers={"If-Match": '"999999"'}
    )
    assert stale.status_code in (412, 409), stale.text  # 409 once it has already completed
    read = await platform.api.get(f"/v1/requests/{submitted['id']}")
    assert read.headers["etag"] == f'"{read.json()["version"]}"'


async def test_row_level_security_hides_other_tenants_even_without_a_tenant_filter(
    platform: Platform, stack: Stack
):
    """The API's own role cannot read another tenant's rows, even by a query that forgets to
    name the tenant: the database holds the boundary too."""
    await platform.submit("postgres_schema", name=unique_name("rls"))
    connection = await asyncpg.connect(stack.database_dsn("request_api"))
    try:
        async with connection.transaction():
            await connection.execute("SET LOCAL ROLE request_api_tenant")
            await connection.execute("SELECT set_config('app.tenant', 'ten-seats', true)")
            tenants = await connection.fetch("SELECT DISTINCT tenant FROM requests")
            assert {row["tenant"] for row in tenants} <= {"ten-seats"}
            moved = await connection.execute("UPDATE requests SET status = status")
            assert moved == "UPDATE 0" or all(row["tenant"] == "ten-seats" for row in tenants)
            try:
                await connection.execute(
                    "INSERT INTO bundles (id, tenant, requester, all_or_nothing, created_at) "
                    "VALUES ($1, 'default', 'mallory', false, now())",
                    uuid.uuid4(),
                )
            except asyncpg.InsufficientPrivilegeError:
                pass
            else:
                raise AssertionError("a row for another tenant was written")
    finally:
        await connection.close()
