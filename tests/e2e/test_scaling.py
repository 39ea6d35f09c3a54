"""A service scales by running more replicas in its consumer group: three allocators share
the partitions, and when one is SIGKILLed mid-burst the others take its partitions over;
nothing is lost and nothing is allocated twice."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter

import pytest
from aiokafka import TopicPartition
from tests.e2e.client import Platform, fetchval
from tests.kafka_tools import group_assignment

from devstack.stack import Stack

pytestmark = pytest.mark.integration

BURST = 60
REPLICAS = 3


async def settled_on(stack: Stack, count: int, timeout_s: float = 60.0) -> None:
    """Wait until the allocator group has `count` members that between them hold each of its
    partitions exactly once (a rebalance, or noticing a killed member, takes seconds)."""
    members: dict[str, list[TopicPartition]] = {}
    for _ in range(int(timeout_s / 0.5)):
        members = await group_assignment(stack.bootstrap_servers, "allocator")
        if len(members) == count and all(members.values()) and each_held_once(stack, members):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the allocator group did not settle on {count} members: {members}")


def each_held_once(stack: Stack, members: dict[str, list[TopicPartition]]) -> bool:
    held = Counter(tp for partitions in members.values() for tp in partitions)
    topics = {tp.topic for tp in held}
    every = {TopicPartition(t, p) for t in topics for p in range(stack.config.partitions)}
    return set(held.values()) == {1} and set(held) == every


async def test_three_allocators_share_partitions_and_one_killed_loses_nothing(
    platform: Platform,
):
    stack = platform.stack
    try:
        for replica in range(1, REPLICAS):
            await asyncio.to_thread(stack.start_service, "allocator", replica)
        await settled_on(stack, REPLICAS)

        names = [f"scaled_{uuid.uuid4().hex[:12]}" for _ in range(BURST)]
        accepted: list[str] = []

        async def submit_steadily() -> None:
            for name in names:
                answer = await platform.api.post(
                    "/v1/requests",
                    json={"catalog_item": "postgres_schema", "parameters": {"name": name}},
                )
                assert answer.status_code == 202, answer.text
                accepted.append(answer.json()["id"])
                await asyncio.sleep(0.05)

        async def kill_one_mid_burst() -> None:
            await asyncio.sleep(1.0)
            assert stack.kill_service("allocator", signal.SIGKILL, replica=1) is not None

        await asyncio.gather(submit_steadily(), kill_one_mid_burst())
        # The survivors take the dead member's partitions over.
        await settled_on(stack, REPLICAS - 1)

        for request_id in accepted:
            request = await platform.wait_terminal(request_id, timeout_s=180)
            assert request["status"] == "completed", request
        ids = [uuid.UUID(i) for i in accepted]
        allocations = await fetchval(
            stack, "allocator", "SELECT count(*) FROM allocations WHERE request_id = ANY($1)", ids
        )
        assert allocations == len(ids)
        used, active = await fetchval(
            stack,
            "allocator",
            "SELECT ROW((SELECT used FROM server_capacity WHERE catalog_item = 'postgres_schema'),"
            " (SELECT count(*) FROM allocations WHERE catalog_item = 'postgres_schema'"
            "  AND state IN ('held', 'committed')))",
        )
        assert used == active
    finally:
        for replica in range(1, REPLICAS):
            stack.kill_service("allocator", signal.SIGTERM, replica=replica)
        # A static member does not leave its group on shutdown: the one allocator left
        # takes the stopped replicas' partitions once their sessions time out.
        await settled_on(stack, 1)
