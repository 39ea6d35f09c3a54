"""Every Kafka topic the platform uses, and their idempotent creation."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from events.contracts import (
    allocation,
    configuration,
    deployment,
    processing,
    requests,
    validation,
)

SERVICES = ("request-api", "validator", "allocator", "configurator", "deployer", "auditor")

EVENT_TOPICS = (
    requests.TOPIC,
    validation.TOPIC,
    allocation.TOPIC,
    configuration.TOPIC,
    deployment.TOPIC,
    processing.TOPIC,
)


def dead_letter_topic(service: str) -> str:
    """Poison messages are per consumer: what one service cannot handle another may."""
    return f"deadletter.{service}"


# The auditor's signed checkpoints: documents, not events of a request, kept outside its
# database (nobody consumes them in the pipeline; verifiers read them).
AUDIT_CHECKPOINTS = "audit.checkpoints"

# For whoever follows requests (webhooks, the live stream): the pipeline's services and the
# audit do not consume them (the audit records the events that moved each status).
FOLLOWER_TOPICS = (requests.STATUS_TOPIC,)

ALL_TOPICS = (
    EVENT_TOPICS
    + FOLLOWER_TOPICS
    + tuple(dead_letter_topic(service) for service in SERVICES)
    + (AUDIT_CHECKPOINTS,)
)


async def ensure_topics(
    bootstrap_servers: str, *, partitions: int, timeout_s: float = 30.0
) -> list[str]:
    """Create every missing topic with `partitions` partitions; returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout_s))
        missing = [topic for topic in ALL_TOPICS if topic not in existing]
        if missing:
            new_topics = [
                NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing
            ]
            # Another process may create them between our list and create.
            with contextlib.suppress(TopicAlreadyExistsError):
                await asyncio.wait_for(admin.create_topics(new_topics), timeout_s)
        return missing
    finally:
        await asyncio.wait_for(admin.close(), timeout_s)
