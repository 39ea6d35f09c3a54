"""SIGKILL each service in turn in the middle of a burst; `make up` brings it back.
Nothing accepted may be lost and no effect may be applied twice."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter

import asyncpg
import httpx
import pytest
from tests.e2e.client import Platform
from tests.e2e.test_pipeline import PIPELINE_EVENTS

pytestmark = pytest.mark.integration

BURST = 60
KILL_ORDER = ["validator", "allocator", "configurator", "deployer", "auditor", "request-api"]


async def test_killing_services_mid_burst_loses_nothing_and_repeats_nothing(platform: Platform):
    stack = platform.stack
    names = [f"burst_{uuid.uuid4().hex[:12]}" for _ in range(BURST)]
    accepted: dict[str, str] = {}

    async def submit_steadily() -> None:
        for name in names:
            try:
                answer = await platform.api.post(
                    "/v1/requests",
                    json={"catalog_item": "postgres_schema", "parameters": {"name": name}},
                )
                if answer.status_code == 202:
                    accepted[name] = answer.json()["id"]
            except httpx.TransportError:
                pass  # request-api is down: not accepted, and the caller knows it
            await asyncio.sleep(0.1)

    async def kill_each_service() -> None:
        for service in KILL_ORDER:
            await asyncio.sleep(0.8)
            assert stack.kill_service(service, signal.SIGKILL) is not None
            await asyncio.sleep(0.3)
            await asyncio.to_thread(stack.up)  # what `make up` does: start what is missing

    await asyncio.gather(submit_steadily(), kill_each_service())
    assert len(accepted) >= BURST // 2, "too few requests got through to test anything"

    for name, request_id in accepted.items():
        request = await platform.wait_terminal(request_id, timeout_s=180)
        assert request["status"] == "completed", (name, request)

    # Every effect exactly once: one allocation, one credential, one resource, and each
    # pipeline event once in the audit history.
    ids = [uuid.UUID(i) for i in accepted.values()]
    assert await _count(stack, "allocator", "allocations", ids) == len(ids)
    assert await _count(stack, "deployer", "credentials", ids) == len(ids)
    assert await _count(stack, "request_api", "resources", ids) == len(ids)
    for request_id in accepted.values():
        history = (await platform.audit.get(f"/v1/audit/requests/{request_id}")).json()
        # A retry (a handler that failed while a service it called was being killed) is
        # reported, not an effect: every pipeline event, though, is there exactly once.
        counts = Counter(
            event["type"] for event in history["events"] if event["type"] != "processing.retried"
        )
        assert counts == Counter(PIPELINE_EVENTS), (request_id, counts)
    assert (await platform.audit.get("/v1/audit/verify")).json()["ok"] is True

    # The pool's bookkeeping matches what was allocated.
    allocator = await asyncpg.connect(stack.database_dsn("allocator"))
    try:
        used, active = await allocator.fetchrow(
            "SELECT (SELECT used FROM server_capacity WHERE catalog_item = 'postgres_schema'),"
            " (SELECT count(*) FROM allocations"
            "   WHERE catalog_item = 'postgres_schema' AND state IN ('held', 'committed'))"
        )
    finally:
        await allocator.close()
    assert used == active


async def _count(stack, database: str, table: str, request_ids: list[uuid.UUID]) -> int:
    connection = await asyncpg.connect(stack.database_dsn(database))
    try:
        return int(
            await connection.fetchval(
                f"SELECT count(*) FROM {table} WHERE request_id = ANY($1::uuid[])", request_ids
            )
        )
    finally:
        await connection.close()
