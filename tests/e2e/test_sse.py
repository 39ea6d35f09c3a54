"""A request's events as Server-Sent Events, and the journal they come from."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from tests.e2e.client import TERMINAL, Platform, key_for

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Message:
    id: int
    type: str
    event: dict[str, Any]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def stream(
    api: httpx.AsyncClient, request_id: str, *, last_event_id: int | None = None
) -> list[Message]:
    """Every event of the stream until the server ends it."""
    messages: list[Message] = []
    try:
        async with asyncio.timeout(60):
            await _read(api, request_id, last_event_id, messages)
    except TimeoutError:
        raise AssertionError(f"{request_id}: no end after {[m.type for m in messages]}") from None
    return messages


async def _read(
    api: httpx.AsyncClient, request_id: str, last_event_id: int | None, messages: list[Message]
) -> None:
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    fields: dict[str, str] = {}
    async with api.stream("GET", f"/v1/requests/{request_id}/events", headers=headers) as answer:
        assert answer.status_code == 200, await answer.aread()
        assert answer.headers["content-type"].startswith("text/event-stream")
        async for line in answer.aiter_lines():
            if line.startswith(":"):
                continue  # a keep-alive comment
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if "data" in fields:
                event = json.loads(fields["data"])
                messages.append(Message(int(fields["id"]), fields["event"], event))
            fields = {}


async def test_a_stream_follows_a_request_to_its_end_and_resumes(platform: Platform):
    request = await platform.submit("postgres_schema", name=unique("streamed"))
    live = await stream(platform.api, request["id"])
    assert [m.type for m in live] == [
        "request.submitted",
        "request.validated",
        "request.allocated",
        "request.configured",
        "request.deployed",
        "request.verified",
        "resource.active",
        "request.completed",
    ]
    ids = [m.id for m in live]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for message in live:
        assert message.event["type"] == message.type and message.event["specversion"] == "1.0"
        assert message.event["subject"] == request["id"]
        assert message.event["sequence"] == str(message.id)
    assert live[-1].event["data"]["status"] == "completed"
    assert "credentials_ref" not in live[-2].event["data"]

    resumed = await stream(platform.api, request["id"], last_event_id=live[2].id)
    assert resumed == live[3:]
    assert await stream(platform.api, request["id"], last_event_id=live[-1].id) == []

    # The deprovision's stream tells of the resource going away.
    deprovision = await platform.api.delete(f"/v1/resources/{request['resource_id']}")
    assert deprovision.status_code == 202, deprovision.text
    retiring = await stream(platform.api, deprovision.json()["id"])
    types = [m.type for m in retiring]
    # The resource is marked retiring as the deprovision is filed, in the same transaction.
    assert types[:2] == ["resource.retiring", "request.submitted"], types
    assert types[-1] == "request.completed" and "resource.retired" in types, types
    assert retiring[types.index("resource.retired")].event["data"]["retired_at"]


async def test_another_tenants_request_has_no_stream(platform: Platform):
    request = await platform.submit("postgres_schema", name=unique("private"))
    key = await key_for(platform.stack, name="nosy", tenant="finance", roles=["admin"])
    async with httpx.AsyncClient(
        base_url=platform.stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {key}"},
    ) as other:
        answer = await other.get(f"/v1/requests/{request['id']}/events")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    unknown = await platform.api.get(f"/v1/requests/{uuid.uuid4()}/events")
    assert unknown.status_code == 404


async def cancelled(platform: Platform) -> str:
    """Cancelled in flight: once the cancel is accepted the request can only end cancelled
    (a request that completed first refuses it, and another is tried)."""
    for _ in range(5):
        request_id = str((await platform.submit("postgres_schema", name=unique("cancelled")))["id"])
        answer = await platform.api.post(f"/v1/requests/{request_id}/cancel")
        if answer.status_code == 202:
            return request_id
    raise AssertionError("every request completed before its cancel")


async def failed(platform: Platform) -> str:
    name = unique("taken")
    await platform.completed("postgres_schema", name=name)
    return str((await platform.submit("postgres_schema", name=name))["id"])


async def submitted(platform: Platform, item: str, name: str) -> str:
    return str((await platform.submit(item, name=name))["id"])


async def test_every_final_status_reaches_the_journal(platform: Platform):
    """Each way a request can end is journaled, and ends its stream."""
    cases = {
        "completed": submitted(platform, "postgres_schema", unique("fine")),
        "rejected": submitted(platform, "postgres_database", "postgres"),
        "failed": failed(platform),
        "rolled_back": submitted(platform, "postgres_schema", unique("fault_at_deploy")),
        "compensation_failed": submitted(
            platform, "postgres_schema", unique("fault_at_verify_fault_at_undo")
        ),
        "cancelled": cancelled(platform),
    }
    request_ids = dict(zip(cases, await asyncio.gather(*cases.values()), strict=True))
    streams = await asyncio.gather(*(stream(platform.api, rid) for rid in request_ids.values()))
    for (status, request_id), messages in zip(request_ids.items(), streams, strict=True):
        types = [m.type for m in messages]
        assert types[0] == "request.submitted", (status, types)
        assert types[-1] == f"request.{status}", (status, types)
        assert messages[-1].event["data"]["status"] == status
        await reasons_reach_the_journal(platform, request_id, after=messages[-1])


async def reasons_reach_the_journal(platform: Platform, request_id: str, after: Message) -> None:
    """A failure's reason may arrive after the final status (events of one request come on
    several topics): then it follows the end as `request.reasons_added`."""
    for _ in range(50):
        request = (await platform.api.get(f"/v1/requests/{request_id}")).json()
        later = await stream(platform.api, request_id, last_event_id=after.id)
        assert {m.type for m in later} <= {"request.reasons_added"}, later
        latest = (later or [after])[-1].event["data"]
        if latest["reasons"] == request["reasons"]:
            assert latest["status"] == request["status"]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{request_id}: {request['reasons']} never journaled")


async def test_every_request_so_far_is_journaled_from_submission_to_its_end(platform: Platform):
    """Across everything this session's stack has done: no ended request lacks its end in the
    journal, none lacks its submission, and no snapshot carries a secret's reference."""
    await platform.completed("postgres_schema", name=unique("counted"))
    connection = await asyncpg.connect(platform.stack.database_dsn("request_api"))
    try:
        unjournaled = await connection.fetch(
            """
            SELECT r.id, r.status FROM requests r
            WHERE NOT EXISTS (SELECT 1 FROM activity a
                              WHERE a.request_id = r.id AND a.type = 'request.submitted')
               OR (r.status = ANY($1::text[]) AND NOT EXISTS (
                       SELECT 1 FROM activity a
                       WHERE a.request_id = r.id AND a.type = 'request.' || r.status))
            """,
            sorted(TERMINAL),
        )
        leaked = await connection.fetchval(
            "SELECT count(*) FROM activity WHERE data ? 'credentials_ref' OR data ? 'server_id'"
        )
    finally:
        await connection.close()
    assert [tuple(row) for row in unjournaled] == []
    assert leaked == 0
