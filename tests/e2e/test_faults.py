"""Faults injected mid-burst, as an operator's bad day brings them, then recovered as an
operator would: `make up` starts whatever died, and a frozen process is resumed. After each,
every accepted request has completed, every effect happened once, and the audit verifies.
Each prints its recovery time: from the fault to the last accepted request completed."""

from __future__ import annotations

import asyncio
import functools
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from tests.e2e.client import SERVICES, Platform, fetchval
from tests.e2e.test_pipeline import PIPELINE_EVENTS
from tests.polling import eventually
from tests.recovery import report_recovery

from auditor.repository import CHAIN_LOCK
from devstack import faults
from devstack.config import StackConfig
from devstack.stack import Stack

pytestmark = pytest.mark.integration

BURST = 24
PACE_S = 0.1
# Requests submitted before the fault: the pipeline is busy with them when it strikes.
FAULT_AFTER = 8
TERMINAL_TIMEOUT_S = 120.0


@dataclass
class Burst:
    accepted: dict[str, str]
    fault_at: float = 0.0
    resumed_at: float = 0.0
    make_up_s: float | None = None


async def burst_with(
    platform: Platform, fault: Callable[[Burst], Coroutine[Any, Any, None]]
) -> Burst:
    """Submit BURST requests at a steady pace; after FAULT_AFTER of them, the fault strikes
    (and is recovered from) while the rest keep coming. Returns what was accepted."""
    burst = Burst(accepted={})
    struck: asyncio.Task[None] | None = None
    for number in range(BURST):
        if number == FAULT_AFTER:
            struck = asyncio.create_task(fault(burst))
        name = f"fault_{uuid.uuid4().hex[:12]}"
        try:
            answer = await platform.api.post(
                "/v1/requests",
                json={"catalog_item": "postgres_schema", "parameters": {"name": name}},
            )
            if answer.status_code == 202:
                burst.accepted[name] = answer.json()["id"]
        except httpx.TransportError:
            pass  # the request-api is down: not accepted, and the caller knows it
        await asyncio.sleep(PACE_S)
    assert struck is not None
    await struck
    assert len(burst.accepted) >= BURST // 3, "too few requests got through to test anything"
    return burst


async def recovered(platform: Platform, burst: Burst, fault: str) -> None:
    """Every accepted request completed, each effect once, the audit whole; the recovery
    time reported."""
    for name, request_id in burst.accepted.items():
        request = await platform.wait_terminal(request_id, timeout_s=TERMINAL_TIMEOUT_S)
        assert request["status"] == "completed", (fault, name, request)
    stack = platform.stack
    ids = [uuid.UUID(i) for i in burst.accepted.values()]
    # Each pipeline event exactly once in the audit history, once the auditor has caught up.
    # A retry (a handler that failed while what it called was down) is reported, not an
    # effect, and is left out.
    for request_id in burst.accepted.values():
        counts = await eventually(
            functools.partial(_pipeline_events, platform, request_id),
            f"the audit history of {request_id} after {fault}",
            timeout_s=TERMINAL_TIMEOUT_S,
        )
        assert counts == Counter(PIPELINE_EVENTS), (fault, request_id, counts)
    last_completed = await fetchval(
        stack,
        "request_api",
        "SELECT extract(epoch FROM max(status_changed_at)) FROM requests WHERE id = ANY($1)",
        ids,
    )
    last_recorded = await fetchval(
        stack,
        "auditor",
        "SELECT extract(epoch FROM max(recorded_at)) FROM audit_records"
        " WHERE request_id = ANY($1) AND event_type = 'provisioning.completed'",
        [str(i) for i in ids],
    )
    done = max(float(last_completed), float(last_recorded))
    report_recovery(
        fault,
        seconds=done - burst.fault_at,
        after_resume=done - burst.resumed_at if burst.resumed_at else None,
        make_up_s=burst.make_up_s,
        accepted=len(ids),
    )

    # Every effect exactly once: one allocation, one credential, one resource.
    for database, table in (
        ("allocator", "allocations"),
        ("deployer", "credentials"),
        ("request_api", "resources"),
    ):
        count = await fetchval(
            stack, database, f"SELECT count(*) FROM {table} WHERE request_id = ANY($1)", ids
        )
        assert count == len(ids), (fault, table, count, len(ids))
    verdict = (await platform.audit.get("/v1/audit/verify")).json()
    assert verdict["ok"] is True, f"{fault}: {verdict}"

    # The pool's bookkeeping matches what was allocated.
    used, active = await _fetchrow(
        stack,
        "allocator",
        "SELECT (SELECT used FROM server_capacity WHERE catalog_item = 'postgres_schema'),"
        " (SELECT count(*) FROM allocations"
        "   WHERE catalog_item = 'postgres_schema' AND state IN ('held', 'committed'))",
    )
    assert used == active, fault


async def make_up(stack: Stack, burst: Burst) -> None:
    """What the operator runs: start whatever is missing."""
    started = time.monotonic()
    await asyncio.to_thread(stack.up)
    burst.make_up_s = time.monotonic() - started


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_killed_mid_burst_loses_nothing_and_repeats_nothing(
    platform: Platform, service: str
):
    stack = platform.stack

    async def kill(burst: Burst) -> None:
        burst.fault_at = time.time()
        assert stack.kill_service(service, signal.SIGKILL) is not None
        await make_up(stack, burst)

    burst = await burst_with(platform, kill)
    await recovered(platform, burst, f"SIGKILL {service}")


@pytest.mark.parametrize(
    ("crash", "fault"),
    [(faults.kill_broker, "SIGKILL kafka"), (faults.crash_postgres, "postgres immediate stop")],
)
async def test_kafka_or_postgres_dying_mid_burst_loses_nothing_and_repeats_nothing(
    platform: Platform, crash: Callable[[StackConfig], int], fault: str
):
    stack = platform.stack

    async def strike(burst: Burst) -> None:
        burst.fault_at = time.time()
        await asyncio.to_thread(crash, stack.config)
        await make_up(stack, burst)

    burst = await burst_with(platform, strike)
    await recovered(platform, burst, fault)


async def test_a_service_frozen_past_its_session_timeout_loses_nothing(platform: Platform):
    """SIGSTOP, held longer than the consumer session timeout, so the group gives up on the
    member; SIGCONT: it finds itself out of the group, rejoins, and its batch in hand is not
    applied twice."""
    stack = platform.stack
    frozen_for = 12.0  # the services' session timeout is 10 s

    async def freeze(burst: Burst) -> None:
        burst.fault_at = time.time()
        faults.freeze(stack.config, "deployer")
        try:
            await asyncio.sleep(frozen_for)
        finally:
            faults.thaw(stack.config, "deployer")
        burst.resumed_at = time.time()

    burst = await burst_with(platform, freeze)
    await recovered(platform, burst, f"SIGSTOP deployer {frozen_for:.0f} s")


async def test_the_auditor_killed_holding_the_chain_lock_leaves_the_chain_whole(
    platform: Platform,
):
    stack = platform.stack

    async def kill_in_the_lock(burst: Burst) -> None:
        watcher = await asyncpg.connect(stack.database_dsn("auditor"))
        try:
            # The auditor takes the chain lock, then inserts: holding the table in SHARE
            # mode keeps its next append waiting inside the lock, so the kill lands there.
            async with watcher.transaction():
                await watcher.execute("LOCK TABLE audit_records IN SHARE MODE")
                deadline = time.monotonic() + 20
                while not await watcher.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid = 0 AND objid = $1 AND database ="
                    " (SELECT oid FROM pg_database WHERE datname = current_database())",
                    CHAIN_LOCK,
                ):
                    assert time.monotonic() < deadline, "the auditor never held the chain lock"
                    await asyncio.sleep(0.01)
                burst.fault_at = time.time()
                assert stack.kill_service("auditor", signal.SIGKILL) is not None
        finally:
            await watcher.close()
        await make_up(stack, burst)

    burst = await burst_with(platform, kill_in_the_lock)
    await recovered(platform, burst, "SIGKILL auditor holding the chain lock")


async def _pipeline_events(platform: Platform, request_id: str) -> Counter[str] | None:
    """The request's pipeline events in its audit history, once it has them all (None until
    then)."""
    history = (await platform.audit.get(f"/v1/audit/requests/{request_id}")).json()
    counts = Counter(
        event["type"] for event in history["events"] if event["type"] != "processing.retried"
    )
    return counts if set(counts) >= set(PIPELINE_EVENTS) else None


async def _fetchrow(stack: Stack, database: str, query: str) -> asyncpg.Record:
    connection = await asyncpg.connect(stack.database_dsn(database))
    try:
        row = await connection.fetchrow(query)
        assert row is not None
        return row
    finally:
        await connection.close()
