"""The allocator under concurrency and redelivery, on the real broker and database."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg
import pytest
from tests.e2e.client import Platform
from tests.kafka_tools import produce

from events.contracts.validation import RequestValidated
from events.envelope import Envelope

pytestmark = pytest.mark.integration


async def test_fifty_for_ten_with_every_message_delivered_several_times(platform: Platform):
    """Each of 50 validated requests arrives three times (twice as the same message, once
    re-wrapped under a new id), shuffled: still exactly 10 allocations."""
    messages = []
    request_ids = []
    for _ in range(50):
        event = RequestValidated(
            request_id=uuid.uuid4(),
            catalog_item="postgres_schema",
            parameters={"name": f"redelivered_{uuid.uuid4().hex[:10]}"},
            requester="race-test",
            tenant="redelivered",
            resource_id=uuid.uuid4(),
        )
        request_ids.append(event.request_id)
        envelope = Envelope.wrap(event, source="validator")
        again = Envelope.wrap(event, source="validator")  # the same fact, another message id
        key = envelope.subject.encode()
        messages += [
            (key, envelope.to_bytes()),
            (key, envelope.to_bytes()),
            (key, again.to_bytes()),
        ]
    random.Random(7).shuffle(messages)
    await produce(platform.stack.bootstrap_servers, RequestValidated.topic, messages)

    connection = await asyncpg.connect(platform.stack.database_dsn("allocator"))
    try:
        decided = 0
        for _ in range(300):
            allocated = await connection.fetchval(
                "SELECT count(*) FROM allocations WHERE request_id = ANY($1::uuid[])"
                " AND state IN ('held', 'committed')",
                request_ids,
            )
            decided = allocated
            quota = await connection.fetchrow(
                "SELECT held, committed FROM tenant_quotas WHERE tenant = 'redelivered'"
            )
            if allocated == 10 and quota["held"] + quota["committed"] == 10:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # late copies must change nothing
        allocated = await connection.fetchval(
            "SELECT count(*) FROM allocations WHERE request_id = ANY($1::uuid[])"
            " AND state IN ('held', 'committed')",
            request_ids,
        )
        quota = await connection.fetchrow(
            "SELECT held, committed FROM tenant_quotas WHERE tenant = 'redelivered'"
        )
    finally:
        await connection.close()
    assert decided == allocated == 10
    assert quota["held"] + quota["committed"] == 10
    refused = await _decisions(platform, request_ids, "allocation.failed")
    granted = await _decisions(platform, request_ids, "resource.allocated")
    # One decision per request, however many copies arrived.
    assert len(granted) == 10 and len(set(granted)) == 10
    assert len(refused) == 40 and len(set(refused)) == 40


async def _decisions(platform: Platform, request_ids: list[uuid.UUID], event_type: str) -> list:
    connection = await asyncpg.connect(platform.stack.database_dsn("auditor"))
    try:
        for _ in range(100):
            rows = await connection.fetch(
                "SELECT subject FROM audit_records WHERE event_type = $1"
                " AND subject = ANY($2::text[])",
                event_type,
                [str(r) for r in request_ids],
            )
            if len(rows) >= (10 if event_type == "resource.allocated" else 40):
                break
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    return [row["subject"] for row in rows]
