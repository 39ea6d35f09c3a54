"""Prometheus metrics of the runtime, in a registry owned by one service instance.

Consumer lag is named as danielqsj/kafka_exporter names it (`kafka_consumergroup_lag`, with
`consumergroup`, `topic` and `partition` labels), so that dashboards made for it work here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

# From a health check's milliseconds to a slow target's half minute.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PARTITION_LABELS = ["consumergroup", "topic", "partition"]


@dataclass(frozen=True)
class RuntimeMetrics:
    registry: CollectorRegistry
    messages_processed: Counter
    handler_duration: Histogram
    dead_letters: Counter
    outbox_published: Counter
    outbox_dead_lettered: Counter
    outbox_backlog: Gauge
    outbox_oldest_age: Gauge
    consumer_lag: Gauge
    consumer_lag_seconds: Gauge
    consumer_offset: Gauge
    http_requests: Counter
    http_duration: Histogram

    @classmethod
    def create(cls) -> RuntimeMetrics:
        registry = CollectorRegistry()
        # CPU, memory, open files and start time of this process: the saturation dashboard's.
        ProcessCollector(registry=registry)
        return cls(
            registry=registry,
            messages_processed=Counter(
                "events_processed",
                "Messages taken from Kafka, by event type and outcome "
                "(handled, duplicate, dead_lettered).",
                ["event_type", "outcome"],
                registry=registry,
            ),
            handler_duration=Histogram(
                "event_handler_duration_seconds",
                "Time spent in one handler call (one try), by event type and outcome (ok, error).",
                ["event_type", "outcome"],
                registry=registry,
            ),
            dead_letters=Counter(
                "events_dead_lettered",
                "Messages sent to the dead-letter topic, by the topic they came from.",
                ["topic"],
                registry=registry,
            ),
            outbox_published=Counter(
                "outbox_published", "Outbox messages published to Kafka.", registry=registry
            ),
            outbox_dead_lettered=Counter(
                "outbox_dead_lettered",
                "Outbox messages Kafka refused for good (too large, no such topic), moved to "
                "the outbox's dead-letter table, by the topic they were for.",
                ["topic"],
                registry=registry,
            ),
            outbox_backlog=Gauge(
                "outbox_backlog", "Outbox messages not yet published.", registry=registry
            ),
            outbox_oldest_age=Gauge(
                "outbox_oldest_unpublished_age_seconds",
                "Age of the oldest outbox message not yet published (0 when none).",
                registry=registry,
            ),
            consumer_lag=Gauge(
                "kafka_consumergroup_lag",
                "Messages of a partition not yet processed and committed by the group "
                "(end offset - committed offset), for the partitions this instance holds.",
                PARTITION_LABELS,
                registry=registry,
            ),
            consumer_lag_seconds=Gauge(
                "kafka_consumergroup_lag_seconds",
                "Age of the oldest message not yet processed: now - timestamp of the message "
                "at the committed offset (0 when caught up).",
                PARTITION_LABELS,
                registry=registry,
            ),
            consumer_offset=Gauge(
                "kafka_consumergroup_current_offset",
                "The group's committed offset of a partition.",
                PARTITION_LABELS,
                registry=registry,
            ),
            http_requests=Counter(
                "http_requests",
                "HTTP requests answered, by method, route template and status code.",
                ["method", "route", "status"],
                registry=registry,
            ),
            http_duration=Histogram(
                "http_request_duration_seconds",
                "Time from receiving an HTTP request to the end of its answer, by method and "
                "route template.",
                ["method", "route"],
                buckets=HTTP_BUCKETS,
                registry=registry,
            ),
        )


_PENDING = "events.after_commit"


def after_commit(session: AsyncSession, action: Callable[[], None]) -> None:
    """Run `action` once the session's transaction commits; drop it if that transaction, or
    the savepoint it was called in, rolls back. For metrics of what a transaction did: a
    batch the consume loop runs again must not be counted twice."""
    sync = session.sync_session
    if _PENDING not in sync.info:
        sync.info[_PENDING] = []
        event.listen(sync, "after_commit", _run_pending)
        event.listen(sync, "after_soft_rollback", _drop_pending)
    within = sync.get_nested_transaction() or sync.get_transaction()
    sync.info[_PENDING].append((within, action))


def _run_pending(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released: its work may still be rolled back
    pending, session.info[_PENDING] = session.info[_PENDING], []
    for _, action in pending:
        action()


def _drop_pending(session: Session, rolled_back: SessionTransaction) -> None:
    session.info[_PENDING] = [
        (within, action)
        for within, action in session.info[_PENDING]
        if not _inside(within, rolled_back)
    ]


def _inside(transaction: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False
