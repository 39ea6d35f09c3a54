"""Small helpers the tests use to talk to the real broker directly."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment


async def create_topics(bootstrap: str, *topics: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics]
        )
    finally:
        await admin.close()


async def produce(
    bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, *, at_least: int, timeout_s: float = 30.0, settle_s: float = 1.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Everything on `topic` from the start: waits for `at_least` records, then `settle_s`
    more so that extra (duplicate) records would show up too."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while loop.time() < deadline and len(records) < at_least:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        settle_until = loop.time() + settle_s
        while loop.time() < settle_until:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def group_assignment(bootstrap: str, group: str) -> dict[str, list[TopicPartition]]:
    """The partitions each member of a consumer group holds, as the group coordinator says."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    members: dict[str, list[TopicPartition]] = {}
    for response in responses:
        for described in response.groups:
            for member in described[5]:
                member_id, assignment = member[0], member[-1]
                members[member_id] = (
                    ConsumerProtocolMemberAssignment.decode(assignment).partitions()
                    if assignment
                    else []
                )
    return members
